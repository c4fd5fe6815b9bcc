/**
 * The settings that make a node a member of a cluster (issue 22): the etcd endpoints (`FERRY_KVDB=etcd:URL[,URL]`),
 * the cluster id (`FERRY_CLUSTER_ID`), the node's labels (`FERRY_NODE_LABELS=rack=r1,zone=z1`), and the cluster
 * secret file every node of the cluster is given. Parsing only: each function names the flag or variable its text
 * came from in the error it throws (INVALID_ARGUMENT), so a node with a bad value starts nothing.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';

/** The file a new cluster's first node writes its cluster secret to when it is given none. */
export const CLUSTER_SECRET_FILE = 'cluster.secret';
/** Fewest bytes of a cluster secret. */
export const MIN_CLUSTER_SECRET_BYTES = 32;
/** Prefix of every cluster's keys in a shared etcd: `/ferry-clusters/<cluster id>`. */
export const CLUSTER_NAMESPACE_ROOT = '/ferry-clusters/';

const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^[A-Za-z0-9._-]{0,63}$/;

function invalid(source: string, message: string, cause?: unknown): FerryError {
  return new FerryError('INVALID_ARGUMENT', `${source}: ${message}`, {
    field: source,
    ...(cause !== undefined && { cause }),
  });
}

/** The etcd client URLs of `etcd:http://h1:2379[,http://h2:2379]`. */
export function parseKvdb(text: string, source: string): string[] {
  const match = /^etcd:(.+)$/.exec(text.trim());
  if (match === null) {
    throw invalid(source, `"${text}" is not etcd:URL[,URL] (e.g. etcd:http://10.0.0.1:2379,http://10.0.0.2:2379)`);
  }
  const urls = (match[1] ?? '').split(',').map((u) => u.trim());
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err: unknown) {
      throw invalid(source, `"${url}" is not a URL (e.g. http://10.0.0.1:2379)`, err);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw invalid(source, `"${url}" must be an http:// or https:// etcd client URL`);
    }
    if (parsed.port === '' || (parsed.pathname !== '/' && parsed.pathname !== '')) {
      throw invalid(source, `"${url}" must be scheme://host:port with no path (e.g. http://10.0.0.1:2379)`);
    }
  }
  return urls;
}

/** A cluster id: 1-64 letters, digits, '.', '_' or '-' (it names the cluster's key prefix and its CA). */
export function parseClusterId(text: string, source: string): string {
  if (!CLUSTER_ID.test(text)) {
    throw invalid(source, `"${text}" must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return text;
}

/** `rack=r1,zone=z1,region=eu` as a label map (an empty text: no labels). */
export function parseLabels(text: string, source: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw invalid(source, `"${item}" is not key=value (e.g. rack=r1,zone=z1)`);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (!LABEL_KEY.test(key)) throw invalid(source, `label key "${key}" must be letters, digits, '.', '_', '/', '-'`);
    if (!LABEL_VALUE.test(value)) {
      throw invalid(source, `label ${key}: value "${value}" must be at most 63 letters, digits, '.', '_', '-'`);
    }
    if (key in labels) throw invalid(source, `label "${key}" is given twice`);
    labels[key] = value;
  }
  return labels;
}

/** The store prefix of cluster `clusterId` in a shared etcd. */
export function clusterNamespace(clusterId: string): string {
  return `${CLUSTER_NAMESPACE_ROOT}${clusterId}`;
}

/** A secret file's bytes: its content without surrounding white space (so base64 or hex text works). */
function secretBytes(content: Buffer): Buffer {
  const text = content.toString('latin1');
  const start = text.length - text.trimStart().length;
  const end = text.trimEnd().length;
  return content.subarray(start, end);
}

/** Reads a cluster secret file; INVALID_ARGUMENT naming `source` when it cannot be read or is too short. */
export async function readClusterSecret(path: string, source: string): Promise<Buffer> {
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (err: unknown) {
    throw invalid(source, `cannot read the cluster secret file ${path}`, err);
  }
  const secret = secretBytes(content);
  if (secret.length < MIN_CLUSTER_SECRET_BYTES) {
    throw invalid(
      source,
      `the cluster secret file ${path} holds ${secret.length} bytes; it needs at least ${MIN_CLUSTER_SECRET_BYTES} random bytes (e.g. openssl rand -base64 48 > ${path})`,
    );
  }
  return secret;
}

/** Writes a new cluster secret (48 random bytes as base64 text, mode 0600) to `<dataDir>/cluster.secret`. */
export async function createClusterSecret(dataDir: string): Promise<{ path: string; secret: Buffer }> {
  const path = join(dataDir, CLUSTER_SECRET_FILE);
  const text = `${randomBytes(48).toString('base64')}\n`;
  // 'wx': an existing file (a restart of the first node) is never overwritten; the caller reads it instead.
  await writeFile(path, text, { flag: 'wx', mode: 0o600 });
  return { path, secret: secretBytes(Buffer.from(text)) };
}

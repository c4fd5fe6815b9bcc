/**
 * Cluster nodes for the cluster benchmark, started the way a user starts them: a real etcd (Debian `etcd-server`,
 * test/support/etcd.ts) and `ferry node start` processes with FERRY_KVDB-style flags, each with its own data
 * directory and loopback ports; the `ferry` CLI run against them as a user runs it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NODE_ENV_SETTINGS, NODE_V8_FLAGS } from '../common/native/index.js';
import { type EtcdServer, startEtcd } from '../test/support/etcd.js';
import { freePort } from '../test/support/ports.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** One running node. */
export interface BenchNode {
  id: string;
  dataDir: string;
  apiUrl: string;
  nbdUrl: string;
  stop(): Promise<void>;
}

/** A running cluster. */
export interface BenchCluster {
  etcd: EtcdServer;
  nodes: BenchNode[];
  /** Runs `ferry --json ...args` against node `i`; resolves with its parsed output, rejects on failure. */
  ferry<T>(i: number, args: string[]): Promise<T>;
  /** GET `path` of node `i`'s API with an admin token (minted once with `ferry auth token`), parsed. */
  get<T>(i: number, path: string): Promise<T>;
  stop(): Promise<void>;
}

async function startNode(
  dir: string,
  etcd: string,
  secretFile: string,
  labels: string,
): Promise<{ child: ChildProcess; node: BenchNode }> {
  await mkdir(dir, { recursive: true });
  const [api, nbd, repl] = [await freePort(), await freePort(), await freePort()];
  const args = ['node', 'start', '--data-dir', dir, '--api-addr', `127.0.0.1:${api}`, '--nbd-addr'];
  args.push(`127.0.0.1:${nbd}`, '--repl-addr', `127.0.0.1:${repl}`, '--kvdb', `etcd:${etcd}`);
  args.push('--cluster-id', 'bench', '--labels', labels, '--cluster-secret-file', secretFile);
  const child = spawn(process.execPath, [...NODE_V8_FLAGS, MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...NODE_ENV_SETTINGS },
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`ferry node start exited early with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event.msg === 'ferry node ready') resolve(event);
    });
  });
  const id = (await readFile(join(dir, 'node-id'), 'utf8')).trim();
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  return { child, node: { id, dataDir: dir, apiUrl: String(ready.api), nbdUrl: String(ready.nbd), stop } };
}

/** Starts etcd and `count` nodes under `base`, node i labelled `rack=r<i+1>`. */
export async function startBenchCluster(base: string, count: number): Promise<BenchCluster> {
  const etcd = await startEtcd();
  const secretFile = join(base, 'cluster.secret');
  await writeFile(secretFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const started: { child: ChildProcess; node: BenchNode }[] = [];
  const stop = async (): Promise<void> => {
    for (const s of started) await s.node.stop();
    await etcd.destroy();
  };
  try {
    for (let i = 0; i < count; i++) {
      started.push(await startNode(join(base, `node${i + 1}`), etcd.url, secretFile, `rack=r${i + 1}`));
    }
  } catch (err: unknown) {
    await stop();
    throw err;
  }
  const nodes = started.map((s) => s.node);
  const ferry = <T>(i: number, args: string[]): Promise<T> => {
    const node = nodes[i] as BenchNode;
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [MAIN, '--json', ...args],
        { env: { ...process.env, FERRY_API_URL: node.apiUrl, FERRY_DATA_DIR: node.dataDir }, timeout: 120_000 },
        (error, stdout, stderr) => {
          if (error !== null) reject(new Error(`ferry ${args.join(' ')} failed: ${stderr || error.message}`));
          else resolve((stdout.trim() === '' ? {} : JSON.parse(stdout)) as T);
        },
      );
    });
  };
  const token = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [MAIN, 'auth', 'token', '--sub', 'bench', '--roles', 'system.admin'],
      { env: { ...process.env, FERRY_DATA_DIR: (nodes[0] as BenchNode).dataDir } },
      (error, stdout, stderr) => (error !== null ? reject(new Error(stderr)) : resolve(stdout.trim())),
    );
  });
  const get = async <T>(i: number, path: string): Promise<T> => {
    const res = await fetch(`${(nodes[i] as BenchNode).apiUrl}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  return { etcd, nodes, ferry, get, stop };
}

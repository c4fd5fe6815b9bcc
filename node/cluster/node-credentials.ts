/**
 * The node's TLS identity on the replication port (issue 22): the cluster CA is made by the first node that needs it
 * and kept sealed in the cluster store (`ClusterSecrets`, name `ca/key`: its key and certificate together, so a crash
 * never leaves one without the other); its certificate is also published in clear at `/ferry/ca/cert` for readers.
 * Each node issues itself a certificate (its node id as CN, its replication host as SAN) at every start and keeps it
 * in `<dataDir>/repl/` (`ca.pem`, `node.pem`, `node.key`, mode 0600) for the replication server and client.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeCredentials } from '../replication/types.js';
import { type CertifiedKey, createClusterCa, issueNodeCert, verifyNodeCert } from './ca.js';
import type { ClusterSecrets } from './sealed.js';
import type { ClusterStore } from './types.js';

/** Name of the sealed cluster CA in ClusterSecrets. */
export const CA_SECRET = 'ca/key';
/** Key of the cluster CA's certificate (public) in the store. */
export const CA_CERT_KEY = '/ferry/ca/cert';
/** Folder of the node's credentials in its data directory. */
export const REPL_DIR = 'repl';

/** Options of nodeCredentials. */
export interface NodeCredentialsOptions {
  store: ClusterStore;
  /** The cluster's shared secrets (opened with the cluster secret). */
  secrets: ClusterSecrets;
  /** Names the CA (its subject) when this node creates it. */
  clusterId: string;
  nodeId: string;
  /** Host names / IP addresses other nodes reach this node's replication port at. */
  addresses: readonly string[];
  /** The node's data directory: the credentials go to `<dataDir>/repl/`. */
  dataDir: string;
  signal?: AbortSignal;
}

/** The cluster CA, created (and sealed in the store) by the first node to ask. */
export async function clusterCa(
  options: Pick<NodeCredentialsOptions, 'store' | 'secrets' | 'clusterId' | 'signal'>,
): Promise<CertifiedKey> {
  const { secrets, store } = options;
  let sealed = await secrets.get(CA_SECRET);
  if (sealed === undefined) {
    // Made before the transaction (openssl is asynchronous); a node that loses the race drops its own.
    const fresh = await createClusterCa({ clusterId: options.clusterId }, options.signal);
    sealed = await secrets.obtain(CA_SECRET, () => Buffer.from(JSON.stringify(fresh)));
  }
  const ca = JSON.parse(sealed.toString('utf8')) as CertifiedKey;
  const published = await store.get<{ cert_pem: string }>(CA_CERT_KEY);
  if (published?.cert_pem !== ca.certPem) {
    await store.txn(
      [{ key: CA_CERT_KEY, modRevision: 0 }],
      [{ op: 'put', key: CA_CERT_KEY, value: { cert_pem: ca.certPem } }],
    );
  }
  return ca;
}

async function writePrivate(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, text, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, path);
}

/** Issues this node's certificate from the cluster CA, writes it to `<dataDir>/repl/`, and returns the credentials. */
export async function nodeCredentials(options: NodeCredentialsOptions): Promise<NodeCredentials> {
  const ca = await clusterCa(options);
  const issued = await issueNodeCert(ca, { nodeId: options.nodeId, addresses: options.addresses }, options.signal);
  verifyNodeCert(ca.certPem, issued.certPem, options.nodeId);
  const dir = join(options.dataDir, REPL_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivate(join(dir, 'ca.pem'), ca.certPem);
  await writePrivate(join(dir, 'node.pem'), issued.certPem);
  await writePrivate(join(dir, 'node.key'), issued.keyPem);
  return { caPem: ca.certPem, certPem: issued.certPem, keyPem: issued.keyPem };
}

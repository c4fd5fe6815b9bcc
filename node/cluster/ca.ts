/**
 * The cluster CA: made when a cluster is created (its key to be kept sealed in the cluster store), it issues each
 * node a certificate for mutual TLS on the replication port. A node certificate names the node id as its subject CN
 * (and as a `URI:ferry-node:<id>` SAN) and its addresses as DNS/IP SANs; keys are EC P-256.
 *
 * Node's `crypto` makes keys and verifies certificates but cannot issue them, and no pure-JS X.509 package is
 * installed, so issuing spawns Debian's `openssl` CLI on files in a private temporary directory removed afterwards.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';

/** A certificate and its private key, PEM. */
export interface CertifiedKey {
  readonly certPem: string;
  /** Secret: never log it. */
  readonly keyPem: string;
}

export interface CreateCaOptions {
  /** The cluster's name, put in the CA's subject. */
  clusterId: string;
  /** Validity in days; default 3650. */
  days?: number;
}

export interface IssueNodeCertOptions {
  /** The node id (node/cluster/node-id.ts), the certificate's subject CN. */
  nodeId: string;
  /** Host names and IP addresses the node is reached at (its replication address hosts). */
  addresses: readonly string[];
  /** Validity in days; default 825. */
  days?: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

function checkName(field: string, value: string): void {
  if (!NAME.test(value)) {
    throw new FerryError('INVALID_ARGUMENT', `${field}: "${value}" must be 1-128 letters, digits, '.', '_' or '-'`, {
      field,
    });
  }
}

function openssl(args: readonly string[], cwd: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, signal, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err === null) return resolve();
      const detail = String(stderr).trim().split('\n')[0] ?? '';
      reject(
        new FerryError('INTERNAL', `openssl ${args[0]} failed (${detail}): check that openssl is installed`, {
          cause: err,
        }),
      );
    });
  });
}

async function inTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-ca-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function newKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return `0x${bytes.toString('hex')}`;
}

/** Makes a new self-signed cluster CA. */
export async function createClusterCa(options: CreateCaOptions, signal?: AbortSignal): Promise<CertifiedKey> {
  checkName('cluster_id', options.clusterId);
  const keyPem = newKeyPem();
  const certPem = await inTempDir(async (dir) => {
    await writeFile(join(dir, 'ca.key'), keyPem, { mode: 0o600 });
    await openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'ca.key',
        '-subj',
        `/O=ferry/CN=ferry cluster ${options.clusterId} CA`,
        '-days',
        String(options.days ?? 3650),
        '-set_serial',
        serial(),
        '-addext',
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        '-out',
        'ca.pem',
      ],
      dir,
      signal,
    );
    return readFile(join(dir, 'ca.pem'), 'utf8');
  });
  return { certPem, keyPem };
}

/** Issues a certificate for node `nodeId`, valid for TLS client and server use, signed by `ca`. */
export async function issueNodeCert(
  ca: CertifiedKey,
  options: IssueNodeCertOptions,
  signal?: AbortSignal,
): Promise<CertifiedKey> {
  checkName('node_id', options.nodeId);
  const sans = [`URI:ferry-node:${options.nodeId}`];
  for (const address of options.addresses) {
    if (isIP(address) !== 0) sans.push(`IP:${address}`);
    else if (HOST.test(address)) sans.push(`DNS:${address}`);
    else throw new FerryError('INVALID_ARGUMENT', `addresses: "${address}" is neither a host name nor an IP address`);
  }
  const keyPem = newKeyPem();
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth,clientAuth',
    `subjectAltName=${sans.join(',')}`,
  ].join('\n');
  const certPem = await inTempDir(async (dir) => {
    await writeFile(join(dir, 'ca.key'), ca.keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'ca.pem'), ca.certPem);
    await writeFile(join(dir, 'node.key'), keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'ext.cnf'), `${ext}\n`);
    await openssl(
      ['req', '-new', '-key', 'node.key', '-subj', `/O=ferry/CN=${options.nodeId}`, '-out', 'node.csr'],
      dir,
      signal,
    );
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        'node.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-set_serial',
        serial(),
        '-days',
        String(options.days ?? 825),
        '-extfile',
        'ext.cnf',
        '-out',
        'node.pem',
      ],
      dir,
      signal,
    );
    return readFile(join(dir, 'node.pem'), 'utf8');
  });
  return { certPem, keyPem };
}

/** The node id a node certificate names (its subject CN), or undefined when it names none. */
export function certNodeId(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) {
    if (line.startsWith('CN=')) return line.slice(3);
  }
  return undefined;
}

/**
 * Checks that `certPem` was issued by the cluster CA `caPem`, is valid now, and (when given) names `nodeId`;
 * returns the node id it names. Throws UNAUTHENTICATED saying which check failed.
 */
export function verifyNodeCert(caPem: string, certPem: string, nodeId?: string, now = new Date()): string {
  const ca = new X509Certificate(caPem);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err: unknown) {
    throw new FerryError('UNAUTHENTICATED', 'the node certificate does not parse: issue it again', { cause: err });
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new FerryError(
      'UNAUTHENTICATED',
      'the node certificate is not from this cluster CA: issue it from the cluster CA',
    );
  }
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
    throw new FerryError(
      'UNAUTHENTICATED',
      `the node certificate is valid only from ${cert.validFrom} to ${cert.validTo}: issue a new one`,
    );
  }
  const named = certNodeId(cert);
  if (named === undefined || (nodeId !== undefined && named !== nodeId)) {
    throw new FerryError('UNAUTHENTICATED', `the certificate is for node "${named ?? ''}", not "${nodeId ?? ''}"`);
  }
  return named;
}

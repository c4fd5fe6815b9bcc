/**
 * The admin secret of a cluster: one for every node, kept sealed in the cluster store (`ClusterSecrets`, name
 * `auth/admin-secret`), so that a token minted on one node works on every node, and NBD TLS-PSK keys (derived from
 * it) are the same everywhere. At each start a cluster node writes it to its own `<dataDir>/auth/admin.secret`
 * (0600), where `ferry auth token` and the CLI read it on the node's host, as on a node alone.
 *
 * The first node of a cluster that already has an admin secret of its own (it ran alone before) makes it the
 * cluster's, so its tokens keep working. A node that joins later with an admin secret of its own takes the
 * cluster's: its file is replaced and a warning says so (tokens minted with the old one stop working). Never logged.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';
import type { ClusterSecrets } from '../../node/index.js';
import { type AdminSecret, adminSecretPath, readAdminSecret } from './admin-secret.js';

/** The name of the admin secret among the cluster's sealed secrets. */
export const CLUSTER_ADMIN_SECRET = 'auth/admin-secret';

/** The cluster's admin secret as a node took it. */
export interface ClusterAdminSecret extends AdminSecret {
  /** True when this node had an admin secret of its own, other than the cluster's, which its file no longer holds. */
  replaced: boolean;
}

/** Options of `adoptClusterAdminSecret`. */
export interface AdoptAdminSecretOptions {
  /** The node's data directory: the secret is written to `<dataDir>/auth/admin.secret`. */
  dataDir: string;
  /** The cluster's sealed secrets. */
  secrets: Pick<ClusterSecrets, 'obtain'>;
  /** Where to say what happened (paths only). */
  log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

/** Writes `secret` as the admin secret file: a temp file (0600) renamed over it, in a 0700 directory. */
async function writeAdminSecret(dataDir: string, secret: Uint8Array): Promise<void> {
  const path = adminSecretPath(dataDir);
  await mkdir(join(dataDir, 'auth'), { recursive: true, mode: 0o700 });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, Buffer.concat([Buffer.from(secret), Buffer.from('\n')]), { mode: 0o600, flag: 'wx' });
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (err: unknown) {
    await rm(temp, { force: true });
    throw new FerryError('UNAVAILABLE', `cannot write the cluster's admin secret to ${path}`, { cause: err });
  }
}

/**
 * The cluster's admin secret (made from this node's own, or new, when the cluster has none yet), written to this
 * node's admin secret file when that does not hold it already.
 */
export async function adoptClusterAdminSecret(options: AdoptAdminSecretOptions): Promise<ClusterAdminSecret> {
  const { dataDir, log } = options;
  const path = adminSecretPath(dataDir);
  const own = await readAdminSecret(dataDir);
  let made: Buffer | undefined;
  const cluster = await options.secrets.obtain(CLUSTER_ADMIN_SECRET, () => {
    made = own === undefined ? Buffer.from(randomBytes(32).toString('base64url')) : Buffer.from(own);
    return made;
  });
  const madeHere = made?.equals(cluster) === true;
  const same = own !== undefined && Buffer.from(own).equals(cluster);
  if (!same) await writeAdminSecret(dataDir, cluster);
  const replaced = own !== undefined && !same;
  if (replaced) {
    log(
      'warn',
      "this node's own admin secret was replaced by the cluster's: tokens minted with the old one no longer work",
      {
        admin_secret_path: path,
      },
    );
  } else {
    log('info', 'admin secret of the cluster', {
      admin_secret_path: path,
      source: madeHere ? (own === undefined ? 'made by this node' : "this node's own") : 'the cluster store',
    });
  }
  const mode = (await stat(path)).mode;
  return {
    secret: new Uint8Array(cluster),
    path,
    created: !same,
    looseMode: (mode & 0o077) !== 0,
    replaced,
  };
}

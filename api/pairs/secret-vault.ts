/**
 * Where a node keeps the secrets of its cluster pairs (the pairs' keys, the tokens it issued): sealed in the cluster
 * store under the cluster secret when the node is in a cluster (`ClusterSecrets`), else files of mode 0600 in a
 * directory of the data directory, as the node's other secrets are kept when it runs alone.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';

/** A named store of secrets. */
export interface SecretVault {
  /** The secret `name`, or undefined. */
  get(name: string): Promise<Buffer | undefined>;
  /** Sets the secret `name` (replacing it). */
  put(name: string, secret: Buffer): Promise<void>;
  /** Removes the secret `name` (nothing when absent). */
  delete(name: string): Promise<void>;
}

/** Secret names are short words of letters, digits, '-' and '/'. */
function fileName(name: string): string {
  if (!/^[a-z0-9][a-z0-9/-]{0,200}$/i.test(name)) throw new FerryError('INTERNAL', `bad secret name "${name}"`);
  return `${name.replaceAll('/', '_')}.key`;
}

/** A SecretVault in a directory (created with mode 0700; files 0600), for a node alone. */
export class DirectorySecrets implements SecretVault {
  constructor(private readonly dir: string) {}

  async get(name: string): Promise<Buffer | undefined> {
    try {
      return Buffer.from((await readFile(join(this.dir, fileName(name)), 'utf8')).trim(), 'base64');
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(name: string, secret: Buffer): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, fileName(name));
    const temp = `${path}.tmp`;
    await writeFile(temp, `${secret.toString('base64')}\n`, { mode: 0o600 });
    await rename(temp, path);
  }

  async delete(name: string): Promise<void> {
    await rm(join(this.dir, fileName(name)), { force: true });
  }
}

/**
 * The node's admin secret: `<dataDir>/auth/admin.secret`, 32 random bytes as base64url text, mode 0600, created on a
 * node's first start. It signs and verifies HS256 tokens; whoever can read it can mint a `system.admin` token, which
 * is how the CLI on the node's host works without a token. Its content is never logged.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';

/** Where the admin secret of a node with data directory `dataDir` lives. */
export function adminSecretPath(dataDir: string): string {
  return join(dataDir, 'auth', 'admin.secret');
}

function errnoOf(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** A secret file's bytes: its text without surrounding white space. */
function secretBytes(text: string): Uint8Array {
  return new TextEncoder().encode(text.trim());
}

/** The admin secret, and whether this call created it. */
export interface AdminSecret {
  secret: Uint8Array;
  path: string;
  created: boolean;
  /** True when the file is readable or writable by group or others (it should be 0600). */
  looseMode: boolean;
}

/** Reads the admin secret, creating it (0600, in a 0700 directory) when there is none. */
export async function ensureAdminSecret(dataDir: string): Promise<AdminSecret> {
  const path = adminSecretPath(dataDir);
  await mkdir(join(dataDir, 'auth'), { recursive: true, mode: 0o700 });
  let created = false;
  try {
    // 'wx' fails when the file exists, so two starts never overwrite each other's secret.
    await writeFile(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(path, 0o600);
    created = true;
  } catch (err: unknown) {
    if (errnoOf(err) !== 'EEXIST') {
      throw new FerryError('UNAVAILABLE', `cannot create the admin secret at ${path}`, { cause: err });
    }
  }
  const secret = await readSecretFile(path);
  const mode = (await stat(path)).mode;
  return { secret, path, created, looseMode: (mode & 0o077) !== 0 };
}

/** Reads a shared-secret file (the admin secret or another HS256 secret). */
export async function readSecretFile(path: string): Promise<Uint8Array> {
  try {
    return secretBytes(await readFile(path, 'utf8'));
  } catch (err: unknown) {
    throw new FerryError('UNAVAILABLE', `cannot read the secret file ${path}`, { cause: err });
  }
}

/** The admin secret of `dataDir` when this process can read it; undefined when it does not exist or is not ours. */
export async function readAdminSecret(dataDir: string): Promise<Uint8Array | undefined> {
  try {
    return secretBytes(await readFile(adminSecretPath(dataDir), 'utf8'));
  } catch (err: unknown) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR') return undefined;
    throw new FerryError('UNAVAILABLE', `cannot read the admin secret at ${adminSecretPath(dataDir)}`, { cause: err });
  }
}

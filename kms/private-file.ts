/**
 * Files that hold key material: written atomically (temp file, fsync, rename, fsync of the directory) with mode 0600,
 * and refused when group or others may access them.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FerryError } from '../common/index.js';

function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

/** Whether `err` is a Node error for a missing file. */
export function isMissingFile(err: unknown): boolean {
  return errnoCode(err) === 'ENOENT';
}

/**
 * Reads a private file. NOT_FOUND when it is missing; FAILED_PRECONDITION when group or others have any access to it
 * (`what` names the file in messages, e.g. "keyring file").
 */
export async function readPrivateFile(path: string, what: string): Promise<Buffer> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err: unknown) {
    if (isMissingFile(err)) throw new FerryError('NOT_FOUND', `${what} ${path} does not exist`, { cause: err });
    throw new FerryError('UNAVAILABLE', `cannot read ${what} ${path}: ${errnoCode(err) ?? 'error'}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    throw new FerryError(
      'FAILED_PRECONDITION',
      `${what} ${path} is accessible by group or others (mode ${octal}); it holds key material: run chmod 600 ${path}`,
    );
  }
  try {
    return await readFile(path);
  } catch (err: unknown) {
    throw new FerryError('UNAVAILABLE', `cannot read ${what} ${path}: ${errnoCode(err) ?? 'error'}`, { cause: err });
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with `data` atomically: a reader (or a crash) sees the old content or the new, never a mix. The
 * file is created 0600. With `exclusive`, fails with ALREADY_EXISTS when `path` exists instead of replacing it.
 */
export async function writePrivateFile(path: string, data: Buffer, exclusive = false): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (exclusive) {
      // link() fails when the target exists, so two first starts cannot both create the file.
      await link(temp, path);
      await unlink(temp);
    } else {
      await rename(temp, path);
    }
    await fsyncDirectory(dir);
  } catch (err: unknown) {
    await unlink(temp).catch(() => undefined);
    if (exclusive && errnoCode(err) === 'EEXIST') {
      throw new FerryError('ALREADY_EXISTS', `${path} already exists`, { cause: err });
    }
    throw new FerryError('UNAVAILABLE', `cannot write ${path}: ${errnoCode(err) ?? 'error'}; check the disk`, {
      cause: err,
    });
  }
}

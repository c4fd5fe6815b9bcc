import { randomBytes } from 'node:crypto';
import { close as closeCb, fstat as fstatCb, open as openCb, read as readCb } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { link, lstat, mkdir, open, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FerryError, isFerryError } from '../../common/index.js';
import { forEachLimit } from './concurrency.js';
import { errnoCode, translateFsError } from './directory-errors.js';
import { bodyBuffer, checkKey, checkPrefix, checkRange, compareKeys, pageSize, rangePastEnd } from './keys.js';
import type { CallOptions, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

/** Temp files carry a backslash, which keys cannot contain: they never collide with a key and never list. */
const TEMP_MARK = '\\tmp-';
const DELETE_CONCURRENCY = 16;

/**
 * The embedded default store: each key is a file under `root` ('a/b' is `root/a/b`). Puts are atomic (temp file in the
 * same directory, fsync, rename, fsync of the directory); create-only puts use link(2), which fails when the name
 * exists, so they are atomic too. A key cannot also be a prefix of other keys ('a' and 'a/b'): the file system cannot
 * hold a file and a directory of the same name, and such a put rejects with FAILED_PRECONDITION.
 */
export class DirectoryStore implements ObjectStore {
  readonly location: string;
  readonly conditionalCreate = true;
  private readonly root: string;
  /** The directory that must exist: the root, or the part of it given as `mustExist`. */
  private readonly base: string;

  /**
   * @param root the store's directory. Unless `mustExist` says otherwise it must exist, and is never created.
   * @param options.mustExist a directory containing `root` (a credential's `path/bucket` when `root` adds its
   *   prefix): only it must exist; the directories between it and `root` are made by the first put, and until then
   *   the store is empty. Default: `root` itself.
   */
  constructor(root: string, options: { mustExist?: string } = {}) {
    this.root = resolve(root);
    this.base = resolve(options.mustExist ?? root);
    if (this.root !== this.base && !this.root.startsWith(`${this.base}/`)) {
      throw new RangeError(`${this.root} is not inside ${this.base}`);
    }
    this.location = `file://${this.root}`;
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    checkKey(key);
    options.signal?.throwIfAborted();
    await this.checkRoot();
    const path = join(this.root, key);
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(dirname(path), { recursive: true });
        await this.writeAtomically(path, key, body, options);
        return;
      } catch (err: unknown) {
        // A concurrent delete may prune the parent directory between mkdir and the write: make it again.
        if (errnoCode(err) === 'ENOENT' && attempt < 3) continue;
        if (['ENOTDIR', 'EEXIST', 'EISDIR'].includes(errnoCode(err) ?? '')) throw conflict(key, err);
        throw fail(err, path, options.signal);
      }
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    checkKey(key);
    const range = checkRange(options);
    options.signal?.throwIfAborted();
    const path = join(this.root, key);
    if (range !== undefined) return this.getRange(key, path, range, options);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err: unknown) {
      if (isMissing(err)) throw await this.missingKey(key);
      throw translateFsError(err, path);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw await this.missingKey(key);
      const buf = bodyBuffer(st.size, options.into);
      let done = 0;
      while (done < buf.length) {
        options.signal?.throwIfAborted();
        const { bytesRead } = await fh.read(buf, done, buf.length - done, done);
        if (bytesRead === 0) throw new FerryError('INTERNAL', `${key} shrank while being read: retry`);
        done += bytesRead;
      }
      return buf;
    } catch (err: unknown) {
      throw fail(err, path, options.signal);
    } finally {
      await fh.close();
    }
  }

  /**
   * A ranged read, the restore's hot path: open, read, close with callbacks (no FileHandle, no fstat up front); the
   * size is looked up only when the file ends early, to tell a range past the end from a file that shrank.
   */
  private async getRange(
    key: string,
    path: string,
    range: { offset: number; length: number },
    options: GetOptions,
  ): Promise<Buffer> {
    let fd: number;
    try {
      fd = await fdOpen(path);
    } catch (err: unknown) {
      if (isMissing(err)) throw await this.missingKey(key);
      throw translateFsError(err, path);
    }
    try {
      const buf = bodyBuffer(range.length, options.into);
      let done = 0;
      while (done < buf.length) {
        options.signal?.throwIfAborted();
        const n = await fdRead(fd, buf, done, buf.length - done, range.offset + done);
        if (n === 0) {
          const size = await fdSize(fd);
          if (range.offset + range.length > size) throw rangePastEnd(key, range, size);
          throw new FerryError('INTERNAL', `${key} shrank while being read: retry`);
        }
        done += n;
      }
      return buf;
    } catch (err: unknown) {
      if (errnoCode(err) === 'EISDIR') throw await this.missingKey(key);
      throw fail(err, path, options.signal);
    } finally {
      await fdClose(fd);
    }
  }

  async head(key: string, options: CallOptions = {}): Promise<ObjectInfo | undefined> {
    checkKey(key);
    options.signal?.throwIfAborted();
    const path = join(this.root, key);
    try {
      const st = await stat(path);
      return st.isFile() ? { key, size: st.size, lastModified: st.mtime } : undefined;
    } catch (err: unknown) {
      if (!isMissing(err)) throw translateFsError(err, path);
      await this.checkRoot();
      return undefined;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    checkPrefix(prefix);
    const limit = pageSize(options.maxKeys);
    const after = options.continuationToken;
    if (after !== undefined) checkKey(after, 'continuation_token');
    options.signal?.throwIfAborted();
    await this.checkRoot();
    // Start at the deepest directory the prefix names: 'packs/ab' walks root/packs only.
    const startKey = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const objects: ObjectInfo[] = [];
    for await (const info of this.walk(startKey, prefix, after, options.signal)) {
      if (objects.length === limit) {
        return { objects, continuationToken: objects[objects.length - 1]?.key };
      }
      objects.push(info);
    }
    return { objects };
  }

  async delete(keys: readonly string[], options: CallOptions = {}): Promise<void> {
    for (const key of keys) checkKey(key);
    options.signal?.throwIfAborted();
    await this.checkRoot();
    await forEachLimit(
      keys,
      DELETE_CONCURRENCY,
      async (key) => {
        const path = join(this.root, key);
        try {
          await unlink(path);
        } catch (err: unknown) {
          if (isMissing(err) || errnoCode(err) === 'EISDIR' || errnoCode(err) === 'EPERM') {
            // EPERM is what unlink(2) returns for a directory on Linux: a directory is not an object.
            if (errnoCode(err) !== 'EPERM' || (await isDirectory(path))) return;
          }
          throw translateFsError(err, path);
        }
        await this.pruneEmptyParents(dirname(path));
      },
      options.signal,
    );
  }

  /** Yields the files under directory `dirKey` ('' or ending in '/') in key order, after `after`, under `prefix`. */
  private async *walk(
    dirKey: string,
    prefix: string,
    after: string | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ObjectInfo> {
    signal?.throwIfAborted();
    const dirPath = join(this.root, dirKey);
    let names: { key: string; dir: boolean }[];
    try {
      const entries = await readdir(dirPath, { withFileTypes: true });
      names = entries
        .filter((e) => !e.name.includes('\\') && (e.isFile() || e.isDirectory()))
        .map((e) => ({ key: `${dirKey}${e.name}${e.isDirectory() ? '/' : ''}`, dir: e.isDirectory() }));
    } catch (err: unknown) {
      if (isMissing(err)) return;
      throw translateFsError(err, dirPath);
    }
    // A directory sorts as 'name/' so that 'a-b' (0x2d) comes before 'a/c' (0x2f), as in S3.
    names.sort((a, b) => compareKeys(a.key, b.key));
    for (const { key, dir } of names) {
      if (dir) {
        if (!key.startsWith(prefix) && !prefix.startsWith(key)) continue;
        // Every key under 'd/' sorts before `after` when 'd/' does and `after` is not itself under 'd/'.
        if (after !== undefined && compareKeys(key, after) < 0 && !after.startsWith(key)) continue;
        yield* this.walk(key, prefix, after, signal);
      } else {
        if (!key.startsWith(prefix) || (after !== undefined && compareKeys(key, after) <= 0)) continue;
        try {
          const st = await stat(join(this.root, key));
          yield { key, size: st.size, lastModified: st.mtime };
        } catch (err: unknown) {
          if (!isMissing(err)) throw translateFsError(err, join(this.root, key));
        }
      }
    }
  }

  private async writeAtomically(path: string, key: string, body: Buffer, options: PutOptions): Promise<void> {
    const dir = dirname(path);
    const temp = join(dir, `${basename(path)}${TEMP_MARK}${randomBytes(6).toString('hex')}`);
    const fh = await open(temp, 'wx', 0o644);
    try {
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      options.signal?.throwIfAborted();
      if (options.ifNoneMatch) {
        try {
          await link(temp, path);
        } catch (err: unknown) {
          if (errnoCode(err) === 'EEXIST' && !(await isDirectory(path))) {
            throw new FerryError('ALREADY_EXISTS', `${key} already exists in ${this.location}: choose another key`, {
              cause: err,
            });
          }
          throw err;
        }
      } else {
        await rename(temp, path);
      }
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    await syncDirectory(dir);
  }

  private async pruneEmptyParents(dir: string): Promise<void> {
    while (dir.length > this.root.length && dir.startsWith(this.root)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or already gone): its ancestors are not empty either
      }
      dir = dirname(dir);
    }
  }

  private async checkRoot(): Promise<void> {
    if (this.root !== this.base) {
      // The root under the base may not be made yet (no put so far): an empty store, if the base is there.
      const made = await stat(this.root).then(
        (st) => st.isDirectory(),
        () => false,
      );
      if (made) return;
    }
    try {
      const st = await stat(this.base);
      if (!st.isDirectory()) {
        throw new FerryError('FAILED_PRECONDITION', `${this.base} is not a directory: point the store at a directory`);
      }
    } catch (err: unknown) {
      if (isFerryError(err)) throw err;
      if (isMissing(err)) {
        throw new FerryError('NOT_FOUND', `directory ${this.base} does not exist: create it or fix the path`, {
          cause: err,
        });
      }
      throw translateFsError(err, this.base);
    }
  }

  private async missingKey(key: string): Promise<FerryError> {
    await this.checkRoot();
    return new FerryError('NOT_FOUND', `${key} does not exist in ${this.location}`);
  }
}

/** An aborted call rejects with the signal's reason, as fetch does; anything else becomes a FerryError. */
function fail(err: unknown, path: string, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted && err === signal.reason) return err;
  return translateFsError(err, path);
}

function fdOpen(path: string): Promise<number> {
  return new Promise((resolve, reject) => openCb(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

function fdRead(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    readCb(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function fdSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fstatCb(fd, (err, st) => (err ? reject(err) : resolve(st.size))));
}

function fdClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) => closeCb(fd, (err) => (err ? reject(err) : resolve())));
}

function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function isDirectory(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isDirectory() ?? false;
}

async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function conflict(key: string, cause: unknown): FerryError {
  return new FerryError(
    'FAILED_PRECONDITION',
    `${key} conflicts with an existing key: a directory store cannot hold both 'a' and 'a/b'; use another key layout`,
    { cause },
  );
}

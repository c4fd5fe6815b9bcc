import { close, constants, fdatasync, open, read, readSync, write, writeSync } from 'node:fs';

/**
 * Small transfers are done synchronously: for page-cache hits the syscall takes a few microseconds, less than a
 * round trip through libuv's thread pool, and the event loop is the bottleneck of a busy node. Writes stop at a
 * smaller size than reads: a write can block behind write-back or a flush of the same file (measured: restores
 * spent a sixth of their main-thread time in 64 KiB writes while their volume was being flushed).
 */
const SYNC_LIMIT = 64 * 1024;
const SYNC_WRITE_LIMIT = 16 * 1024;

/** Thin promise wrappers over positional fd I/O (cheaper than FileHandle on the hot path). */
export function openFd(path: string, create: boolean): Promise<number> {
  const flags = constants.O_RDWR | (create ? constants.O_CREAT : 0);
  return new Promise((resolve, reject) => open(path, flags, 0o600, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** Reads exactly `length` bytes at `position` into `buf[offset..]`; bytes past the end of the file read as zeros. */
export function pread(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
  if (length <= SYNC_LIMIT) {
    try {
      let done = 0;
      while (done < length) {
        const n = readSync(fd, buf, offset + done, length - done, position + done);
        if (n === 0) {
          buf.fill(0, offset + done, offset + length);
          break;
        }
        done += n;
      }
      return Promise.resolve();
    } catch (err: unknown) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === length) {
        resolve();
        return;
      }
      read(fd, buf, offset + done, length - done, position + done, (err, n) => {
        if (err) {
          reject(err);
          return;
        }
        if (n === 0) {
          buf.fill(0, offset + done, offset + length);
          resolve();
          return;
        }
        step(done + n);
      });
    };
    step(0);
  });
}

/** Writes all of `buf[offset..offset+length)` at `position`. */
export function pwrite(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
  if (length <= SYNC_WRITE_LIMIT) {
    try {
      let done = 0;
      while (done < length) done += writeSync(fd, buf, offset + done, length - done, position + done);
      return Promise.resolve();
    } catch (err: unknown) {
      return Promise.reject(err);
    }
  }
  return pwriteAsync(fd, buf, offset, length, position);
}

/** `pwrite` always through libuv's thread pool (a direct write waits for the device, whatever its size). */
export function pwriteAsync(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === length) {
        resolve();
        return;
      }
      write(fd, buf, offset + done, length - done, position + done, (err, n) => {
        if (err) {
          reject(err);
          return;
        }
        step(done + n);
      });
    };
    step(0);
  });
}

/**
 * Opens an existing file for direct writes (O_DIRECT: past the page cache), or resolves undefined where the file
 * system does not offer them (tmpfs before Linux 6.6, for one, refuses the flag with EINVAL).
 */
export function openDirectFd(path: string): Promise<number | undefined> {
  return new Promise((resolve, reject) =>
    open(path, constants.O_WRONLY | constants.O_DIRECT, (err, fd) => {
      if (err === null) resolve(fd);
      else if (err.code === 'EINVAL' || err.code === 'EOPNOTSUPP') resolve(undefined);
      else reject(err);
    }),
  );
}

export function datasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => close(fd, (err) => (err ? reject(err) : resolve())));
}

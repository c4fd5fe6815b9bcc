/**
 * The cached fallback of uncached writes, with the file-system answers this machine does not give (its tmpfs and
 * ext4 both take O_DIRECT): a file system that refuses the flag at open, and a device that refuses a direct write.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';

const refuse = vi.hoisted(() => ({ open: false, write: false, opens: 0, directFds: new Set<number>() }));

vi.mock('./fileio.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./fileio.js')>();
  return {
    ...real,
    openDirectFd: async (path: string): Promise<number | undefined> => {
      refuse.opens++;
      if (refuse.open) return undefined;
      const fd = await real.openDirectFd(path);
      if (fd !== undefined) refuse.directFds.add(fd);
      return fd;
    },
    pwriteAsync: (fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<void> => {
      if (refuse.write && refuse.directFds.has(fd)) {
        return Promise.reject(Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' }));
      }
      return real.pwriteAsync(fd, buf, offset, length, position);
    },
  };
});

const { Layer, directBuffer } = await import('./layer.js');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-layer-fallback-'));
  refuse.open = false;
  refuse.write = false;
  refuse.opens = 0;
  refuse.directFds.clear();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('writes through the cache, asking once, where the file system refuses O_DIRECT', async () => {
  refuse.open = true;
  const layer = new Layer('l', dir, false);
  await layer.load();
  await layer.writeData(directBuffer(8192).fill(1), 0, 8192, 0, true);
  await layer.writeData(directBuffer(8192).fill(2), 0, 8192, 8192, true);
  expect(layer.directBytes).toBe(0);
  expect(refuse.opens).toBe(1);
  const out = Buffer.alloc(16384);
  await layer.readData(out, 0, out.length, 0);
  expect(out.equals(Buffer.concat([Buffer.alloc(8192, 1), Buffer.alloc(8192, 2)]))).toBe(true);
  await layer.close();
});

it('writes through the cache a direct write the device refuses (EINVAL), with the same bytes', async () => {
  refuse.write = true;
  const layer = new Layer('l', dir, false);
  await layer.load();
  await layer.writeData(directBuffer(65536).fill(3), 0, 65536, 65536, true);
  expect(layer.directBytes).toBe(0);
  const out = Buffer.alloc(65536);
  await layer.readData(out, 0, out.length, 65536);
  expect(out.equals(Buffer.alloc(65536, 3))).toBe(true);
  await layer.close();
});

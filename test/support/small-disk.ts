/**
 * A small file system for a node's data directory (issue 23's disk-full fault): an ext4 image file, loop-mounted
 * (needs root and loop devices, as test/full-disk.test.ts). `fill` takes every free block with filler files outside
 * the data directory (what another program might do), `free` removes them; `destroy` unmounts and removes it all.
 */
import { mkdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ok, run } from './run.js';

/** A mounted small file system. */
export interface SmallDisk {
  /** Where it is mounted. */
  mountPoint: string;
  /** Whether it is filled now. */
  readonly isFull: boolean;
  /** Takes every free block (writes there then fail with ENOSPC). */
  fill(): Promise<void>;
  /** Frees what `fill` took. */
  free(): Promise<void>;
  /** Unmounts it and removes the image; safe to call twice. */
  destroy(): Promise<void>;
}

/** Makes a `sizeMiB` ext4 file system in `dir` (image and mount point) and mounts it. */
export async function makeSmallDisk(dir: string, sizeMiB: number): Promise<SmallDisk> {
  const image = join(dir, 'disk.img');
  const mountPoint = join(dir, 'mnt');
  await mkdir(mountPoint, { recursive: true });
  await ok('truncate', ['-s', `${sizeMiB}M`, image]);
  await ok('mkfs.ext4', ['-q', '-m', '0', image]);
  await ok('mount', ['-o', 'loop', image, mountPoint]);
  let mounted = true;
  let isFull = false;
  const fillers = [join(mountPoint, 'filler-a'), join(mountPoint, 'filler-b')];
  return {
    mountPoint,
    get isFull() {
      return isFull;
    },
    fill: async () => {
      const s = await statfs(mountPoint);
      const free = s.bavail * s.bsize;
      // Most of it at once, then the rest block by block until ENOSPC.
      if (free > 1024 * 1024) await ok('fallocate', ['-l', String(free - 1024 * 1024), fillers[0] ?? '']);
      await run('dd', ['if=/dev/zero', `of=${fillers[1]}`, 'bs=4k']);
      isFull = true;
    },
    free: async () => {
      for (const f of fillers) await rm(f, { force: true });
      isFull = false;
    },
    destroy: async () => {
      if (mounted) {
        const result = await run('umount', [mountPoint]);
        if (result.code !== 0) await run('umount', ['-l', mountPoint]);
        mounted = false;
      }
      await rm(image, { force: true });
    },
  };
}

/**
 * The space guard and the engine on a small tmpfs mounted here (needs root): the reserve file, the `full` state and
 * what it refuses, the reserve released for work that frees space and made again when space returns, and start-up on
 * a full file system.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open as openFile, readdir, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ok } from '../../test/support/run.js';
import { openEngine } from './engine.js';
import { isNoSpace, SpaceGuard } from './space.js';

const MiB = 1024 * 1024;
let base: string;
let mnt: string;
let dataDir: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-space-'));
  mnt = join(base, 'mnt');
  await mkdir(mnt);
  await ok('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mnt]);
  dataDir = join(mnt, 'data');
  await mkdir(dataDir);
});

afterEach(async () => {
  await ok('umount', [mnt]);
  await rm(base, { recursive: true, force: true });
});

async function free(): Promise<number> {
  const s = await statfs(mnt);
  return s.bavail * s.bsize;
}

/** Writes a file outside the data directory until `leave` bytes are free (or none: ENOSPC ends it). */
async function fillUntil(name: string, leave: number): Promise<void> {
  const file = await openFile(join(mnt, name), 'w');
  const block = Buffer.alloc(256 * 1024, 1);
  try {
    while ((await free()) > leave) {
      const room = (await free()) - leave;
      await file.write(block, 0, Math.min(block.length, Math.max(4096, room)));
    }
  } catch (err: unknown) {
    if (!isNoSpace(err)) throw err;
  } finally {
    await file.close();
  }
}

const options = { reserveBytes: 4 * MiB, minFreeBytes: 4 * MiB };

describe('SpaceGuard', () => {
  it('keeps a reserve file, is full below the minimum free, and names the space when it refuses', async () => {
    const guard = await SpaceGuard.open({ dataDir, ...options });
    expect((await stat(join(dataDir, 'space.reserve'))).size).toBe(4 * MiB);
    expect(await guard.status()).toMatchObject({ state: 'ok', reserve_held: true, min_free_bytes: 4 * MiB });
    await fillUntil('filler', 2 * MiB);
    await guard.refresh(true);
    const status = await guard.status();
    expect(status).toMatchObject({ state: 'full', reason: 'fewer than 4.0 MiB are free' });
    const refused = await guard.checkRoom('volume a cannot be created').catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(String((refused as Error).message)).toMatch(
      /^volume a cannot be created: the data directory .* is full: \d\.\d MiB free of 48\.0 MiB \(9\d(\.\d)?% used; fewer than 4\.0 MiB are free\)/,
    );
  });

  it('releases the reserve for work that failed for want of space, retries it, and makes it again when space returns', async () => {
    const guard = await SpaceGuard.open({ dataDir, ...options });
    await fillUntil('filler', 0);
    let calls = 0;
    const result = await guard.withReserve(async () => {
      calls++;
      // Needs 1 MiB: fails until the reserve is given back.
      const f = await openFile(join(dataDir, 'metadata'), 'w');
      try {
        await f.write(randomBytes(MiB));
      } finally {
        await f.close();
      }
      return 'done';
    });
    expect([result, calls]).toEqual(['done', 2]);
    expect(await guard.status()).toMatchObject({ state: 'full', reserve_held: false });
    expect((await guard.status()).reason).toMatch(/metadata reserve of 4\.0 MiB is in use/);
    // Nothing left to release: a second failure is the caller's.
    const again = await guard
      .withReserve(async () => {
        throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
      })
      .catch((err: unknown) => err);
    expect(again).toMatchObject({ code: 'ENOSPC' });
    await rm(join(mnt, 'filler'));
    await guard.refresh(true);
    await guard.settled();
    expect(await guard.status()).toMatchObject({ state: 'ok', reserve_held: true });
    expect((await stat(join(dataDir, 'space.reserve'))).size).toBe(4 * MiB);
  });

  it('releases the reserve at start-up on a full file system, so what starts can write', async () => {
    await SpaceGuard.open({ dataDir, ...options });
    await fillUntil('filler', 0);
    const guard = await SpaceGuard.open({ dataDir, ...options });
    expect(await guard.status()).toMatchObject({ state: 'full', reserve_held: false });
    expect(await free()).toBeGreaterThanOrEqual(4 * MiB);
  });
});

describe('the engine on a full data directory', () => {
  it('refuses creates and writes that need new blocks, overwrites in place, and deletes give the space back', async () => {
    const space = await SpaceGuard.open({ dataDir, ...options, sampleMs: 0 });
    const engine = await openEngine({ dataDir, space });
    try {
      await engine.createVolume({ name: 'a', size: 64 * MiB });
      const dev = await engine.openExport('a');
      await dev.write(0, randomBytes(8 * MiB));
      await dev.flush();
      await engine.createSnapshot('a', { name: 's' });
      await dev.write(0, randomBytes(8 * MiB));
      await dev.flush();
      await fillUntil('filler', 2 * MiB);
      await space.refresh(true);
      // Data the top layer holds is overwritten in place; a granule it does not hold needs a block.
      await dev.write(4096, randomBytes(4096));
      const refused = await dev.write(16 * MiB, randomBytes(4096)).catch((err: unknown) => err);
      expect(refused).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
      expect(String((refused as Error).message)).toMatch(/cannot be stored: the data directory .* is full/);
      for (const create of [
        () => engine.createVolume({ name: 'b', size: MiB }),
        () => engine.createSnapshot('a', { name: 't' }),
        () => engine.cloneVolume({ name: 'c', parent_id: 'a@s' }),
      ]) {
        expect(await create().catch((err: unknown) => err)).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
      }
      await dev.close();
      const before = await free();
      await engine.deleteSnapshot('a@s');
      await engine.settled?.();
      expect(await free()).toBeGreaterThan(before + 7 * MiB);
      await engine.deleteVolume('a');
      expect(await free()).toBeGreaterThan(before + 15 * MiB);
    } finally {
      await engine.close();
    }
  });

  it('merges a deleted snapshot into its volume on a brim-full disk, freeing as it copies; the volume reads the same', async () => {
    const space = await SpaceGuard.open({ dataDir, reserveBytes: 8 * MiB, minFreeBytes: 4 * MiB, sampleMs: 0 });
    let engine = await openEngine({ dataDir, space });
    try {
      await engine.createVolume({ name: 'a', size: 32 * MiB });
      const older = randomBytes(16 * MiB);
      const newer = randomBytes(4 * MiB);
      let dev = await engine.openExport('a');
      await dev.write(0, older);
      await dev.flush();
      await engine.createSnapshot('a', { name: 's' });
      await dev.write(0, newer);
      await dev.close();
      const expected = Buffer.concat([newer, older.subarray(4 * MiB)]);
      await fillUntil('filler', 0);
      await space.refresh(true);
      const before = await free();
      // The snapshot's layer holds 12 MiB the volume does not: they are copied into it, 4 MiB at a time.
      await engine.deleteSnapshot('a@s');
      await engine.settled?.();
      expect(await readdir(join(dataDir, 'layers'))).toHaveLength(2);
      expect(await free()).toBeGreaterThan(before + 3 * MiB);
      dev = await engine.openExport('a');
      expect((await dev.read(0, 16 * MiB)).equals(expected)).toBe(true);
      await dev.close();
      await engine.close();
      engine = await openEngine({ dataDir, space });
      dev = await engine.openExport('a');
      expect((await dev.read(0, 16 * MiB)).equals(expected)).toBe(true);
      await dev.close();
    } finally {
      await engine.close();
    }
  });
});

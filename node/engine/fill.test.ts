import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VolumeCoordinator } from './coordinator.js';
import { DeviceReplica, firstDifference } from './device-replica.testing.js';
import { openEngine } from './engine.js';
import { allocatedBytes, type FillProgress, fillReplica } from './fill.js';
import type { VolumeEngine } from './types.js';

const MiB = 1024 * 1024;

describe('fillReplica', () => {
  let dir: string;
  let engine: VolumeEngine;
  const opened: DeviceReplica[] = [];

  /** Two volumes of one engine as the source and the (new, empty) target replica of one volume. */
  async function pair(size: number): Promise<{ source: DeviceReplica; target: DeviceReplica }> {
    await engine.createVolume({ name: 'src', size });
    await engine.createVolume({ name: 'dst', size });
    const source = await DeviceReplica.open('node-a', engine, 'src');
    const target = await DeviceReplica.open('node-b', engine, 'dst');
    opened.push(source, target);
    return { source, target };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-fill-'));
    engine = await openEngine({ dataDir: dir, nodeId: 'node-a' });
  });

  afterEach(async () => {
    for (const r of opened.splice(0)) await r.close();
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('ends bit-identical while a writer changes the volume during the fill (R14)', async () => {
    const size = 64 * MiB;
    const { source, target } = await pair(size);
    const coordinator = new VolumeCoordinator([source], { localNodeId: 'node-a' });
    for (let i = 0; i < 24; i++) {
      await coordinator.write(randomInt(0, size / 4096 - 64) * 4096, randomBytes(randomInt(1, 64) * 4096));
    }
    await coordinator.addFilling(target);
    // Every range the fill reads gets a live write at once, while the copy of that range is under way.
    const aimed = new Set<Promise<void>>();
    source.onRead = (offset, length) => {
      const at = offset + randomInt(0, Math.max(1, length - 8192));
      const w = coordinator.write(at, randomBytes(randomInt(1, 8192))).finally(() => aimed.delete(w));
      aimed.add(w);
    };
    let filling = true;
    let writes = 0;
    const writer = (async () => {
      while (filling || writes < 200) {
        const offset = randomInt(0, size - 70_000);
        const kind = randomInt(0, 10);
        if (kind === 0) await coordinator.trim(offset - (offset % 4096), 16 * 4096);
        else if (kind === 1) await coordinator.writeZeroes(offset, randomInt(1, 20_000));
        else await coordinator.write(offset, randomBytes(randomInt(1, 65_536)));
        writes++;
      }
    })();
    const reports: FillProgress[] = [];
    const result = await fillReplica({
      coordinator,
      source,
      target,
      size,
      stepBytes: 256 * 1024,
      depth: 4,
      flushBytes: 1 * MiB,
      onProgress: (p) => {
        reports.push(p);
      },
    }).finally(() => {
      filling = false;
    });
    await writer;
    source.onRead = undefined;
    await Promise.all(aimed);
    await coordinator.flush();
    expect(writes).toBeGreaterThanOrEqual(200);
    expect(result.cursor).toBe(size);
    expect(reports.at(-1)).toEqual(result);
    const cursors = reports.map((p) => p.cursor);
    expect(cursors).toEqual([...cursors].sort((x, y) => x - y));
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  it('copies only the allocated data: 10 MiB written on a 1 GiB volume copies 10 MiB', async () => {
    const size = 1024 * MiB;
    const { source, target } = await pair(size);
    const data = randomBytes(MiB);
    for (let i = 0; i < 10; i++) await source.write(i * 97 * MiB + 4096 * i, data);
    await source.flush();
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    source.readBytes = 0;
    const result = await fillReplica({ coordinator, source, target, size });
    expect(result).toEqual({ copied: 10 * MiB, total: 10 * MiB, cursor: size });
    expect(source.readBytes).toBe(10 * MiB);
    expect(target.wroteBytes).toBe(10 * MiB);
    // Past the target's page cache: nothing reads a copy back soon, and its flushes would wait for write-back.
    expect(target.uncachedBytes).toBe(10 * MiB);
    expect(target.trimmedBytes).toBe(0);
    expect(await allocatedBytes(target, size)).toBe(10 * MiB);
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  it('stops on abort with the target equal to the source below the cursor, and resumes from it', async () => {
    const size = 64 * MiB;
    const { source, target } = await pair(size);
    for (let i = 0; i < 32; i++) await source.write(i * 2 * MiB, randomBytes(MiB));
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    const abort = new AbortController();
    source.readBytes = 0;
    source.onRead = () => {
      if (source.readBytes >= 8 * MiB) abort.abort(new Error('stopped'));
    };
    const reports: FillProgress[] = [];
    await expect(
      fillReplica({
        coordinator,
        source,
        target,
        size,
        stepBytes: 512 * 1024,
        depth: 2,
        flushBytes: 2 * MiB,
        signal: abort.signal,
        onProgress: (p) => {
          reports.push(p);
        },
      }),
    ).rejects.toThrow('stopped');
    source.onRead = undefined;
    const cursor = (reports.at(-1) as FillProgress).cursor;
    expect(cursor).toBeGreaterThan(0);
    expect(cursor).toBeLessThan(60 * MiB);
    expect(await firstDifference(source, target, cursor)).toBeUndefined();
    // The target lacks data at and after the cursor: the fill did stop.
    expect(await firstDifference(source, target, size)).toBeDefined();

    const left = await allocatedBytes(source, size, cursor);
    target.wroteBytes = 0;
    const resumed = await fillReplica({ coordinator, source, target, size, startAt: cursor });
    expect(resumed).toEqual({ copied: left, total: left, cursor: size });
    expect(target.wroteBytes).toBe(left);
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  it('trims the target where the source has holes when the target is not new', async () => {
    const size = 32 * MiB;
    const { source, target } = await pair(size);
    await source.write(4 * MiB, randomBytes(3 * MiB));
    await source.write(20 * MiB + 8192, randomBytes(8192));
    // The target holds old data in the holes and in the extents.
    for (const at of [0, 5 * MiB, 10 * MiB, 20 * MiB, 31 * MiB]) await target.write(at, randomBytes(MiB));
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    const result = await fillReplica({ coordinator, source, target, size, targetIsNew: false, stepBytes: MiB });
    expect(result.copied).toBe(3 * MiB + 8192);
    expect(target.trimmedBytes).toBe(size - result.copied);
    expect(await firstDifference(source, target, size)).toBeUndefined();
    expect(await allocatedBytes(target, size)).toBe(3 * MiB + 8192);
  });
});

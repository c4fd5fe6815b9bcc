import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BucketClock, TokenBucket } from './bandwidth.js';
import { VolumeCoordinator } from './coordinator.js';
import { DeviceReplica, firstDifference } from './device-replica.testing.js';
import { openEngine } from './engine.js';
import type { FillProgress } from './fill.js';
import type { RangeTuple } from './records.js';
import { resyncBytes, resyncReplica } from './resync.js';
import type { VolumeEngine } from './types.js';

const MiB = 1024 * 1024;

/** A clock that advances only when slept on (no wall time in the assertions). */
class FakeClock implements BucketClock {
  ms = 0;
  now(): number {
    return this.ms;
  }
  async sleep(ms: number): Promise<void> {
    this.ms += ms;
  }
}

describe('resyncReplica', () => {
  let dir: string;
  let engine: VolumeEngine;
  const opened: DeviceReplica[] = [];

  /**
   * A source and a target holding the same data, then a hidden-like base snapshot of the source, then `changes`
   * written to the source only (what the target missed while away) and `stray` written to the target only (what it
   * holds that the others never got: the record's `extra`).
   */
  async function diverged(
    size: number,
    changes: RangeTuple[],
    stray: RangeTuple[],
  ): Promise<{ source: DeviceReplica; target: DeviceReplica; base: string }> {
    await engine.createVolume({ name: 'src', size });
    await engine.createVolume({ name: 'dst', size });
    const source = await DeviceReplica.open('node-a', engine, 'src');
    const target = await DeviceReplica.open('node-b', engine, 'dst');
    opened.push(source, target);
    for (let i = 0; i < 16; i++) {
      const data = randomBytes(randomInt(1, 64) * 4096);
      const at = randomInt(0, (size - data.length) / 4096) * 4096;
      await source.write(at, data);
      await target.write(at, data);
    }
    await source.flush();
    const base = (await engine.createSnapshot('src', { name: 'base' })).id;
    for (const [at, length] of changes) await source.write(at, randomBytes(length));
    for (const [at, length] of stray) await target.write(at, randomBytes(length));
    await source.flush();
    source.readBytes = 0;
    target.wroteBytes = 0;
    return { source, target, base };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-resync-'));
    engine = await openEngine({ dataDir: dir, nodeId: 'node-a' });
  });

  afterEach(async () => {
    for (const r of opened.splice(0)) await r.close();
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('copies exactly the blocks changed since the base plus the extra ranges, and nothing else', async () => {
    const size = 256 * MiB;
    const changes: RangeTuple[] = [
      [3 * MiB, MiB],
      [40 * MiB + 8192, 12_288],
      [100 * MiB, 5 * MiB],
      [255 * MiB, MiB],
    ];
    const stray: RangeTuple[] = [
      [10 * MiB, 65_536],
      [100 * MiB + 4 * MiB, 2 * MiB], // overlaps a change: counted once
    ];
    const { source, target, base } = await diverged(size, changes, stray);
    const resync = { kind: 'dirty' as const, base_snapshot_id: base, extra: stray };
    const changed = 6 * MiB + 12_288 + MiB + 65_536 + MiB; // the union
    expect(await resyncBytes(source, size, resync)).toBe(changed);
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    const result = await resyncReplica({ coordinator, source, target, size, resync, stepBytes: MiB });
    expect(result).toEqual({ copied: changed, total: changed, cursor: size });
    expect(source.readBytes).toBe(changed);
    expect(target.wroteBytes).toBe(changed);
    expect(target.trimmedBytes).toBe(0);
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  it('resumes from the cursor after an abort, sending at most 1.1x the changed bytes in all', async () => {
    const size = 128 * MiB;
    const changes: RangeTuple[] = [];
    for (let i = 0; i < 40; i++) changes.push([i * 3 * MiB + 4096 * i, 512 * 1024]);
    const { source, target, base } = await diverged(size, changes, [[127 * MiB, MiB]]);
    const resync = { kind: 'dirty' as const, base_snapshot_id: base, extra: [[127 * MiB, MiB] as RangeTuple] };
    const changed = await resyncBytes(source, size, resync);
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    const abort = new AbortController();
    source.onRead = () => {
      if (source.readBytes >= 8 * MiB) abort.abort(new Error('killed'));
    };
    const reports: FillProgress[] = [];
    await expect(
      resyncReplica({
        coordinator,
        source,
        target,
        size,
        resync,
        stepBytes: 256 * 1024,
        depth: 2,
        flushBytes: MiB,
        signal: abort.signal,
        onProgress: (p) => {
          reports.push(p);
        },
      }),
    ).rejects.toThrow('killed');
    source.onRead = undefined;
    let sent = target.wroteBytes;
    const cursor = (reports.at(-1) as FillProgress).cursor;
    expect(cursor).toBeGreaterThan(0);
    expect(await firstDifference(source, target, cursor)).toBeUndefined();
    expect(await firstDifference(source, target, size)).toBeDefined();
    // The set is recomputed from the record alike: the resumed copy takes the rest from the cursor.
    target.wroteBytes = 0;
    const resumed = await resyncReplica({ coordinator, source, target, size, resync, startAt: cursor });
    expect(resumed.cursor).toBe(size);
    sent += target.wroteBytes;
    expect(await firstDifference(source, target, size)).toBeUndefined();
    expect(sent).toBeLessThanOrEqual(1.1 * changed);
    expect(sent).toBeGreaterThanOrEqual(changed);
  });

  it('takes its bytes from the bandwidth cap: no token window lets more through than the rate', async () => {
    const size = 64 * MiB;
    const changes: RangeTuple[] = [];
    for (let i = 0; i < 16; i++) changes.push([i * 4 * MiB, MiB]);
    const { source, target, base } = await diverged(size, changes, []);
    const clock = new FakeClock();
    const rate = 2 * MiB;
    const bucket = new TokenBucket({ rate, clock, burstSeconds: 0.25 });
    const taken: { at: number; bytes: number }[] = [];
    const limiter = {
      take: async (bytes: number, signal?: AbortSignal) => {
        await bucket.take(bytes, signal);
        taken.push({ at: clock.now(), bytes });
      },
    };
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    const resync = { kind: 'dirty' as const, base_snapshot_id: base };
    const result = await resyncReplica({ coordinator, source, target, size, resync, stepBytes: 256 * 1024, limiter });
    expect(result.copied).toBe(16 * MiB);
    expect(taken.reduce((s, t) => s + t.bytes, 0)).toBe(16 * MiB);
    // 16 MiB at 2 MiB/s with a quarter second of burst: at least 7.875 s of (fake) time went by...
    expect(clock.now()).toBeGreaterThanOrEqual(((16 * MiB - rate * 0.25) / rate) * 1000 - 1);
    // ...and every one-second window let through at most a second of tokens plus the burst.
    for (const t of taken) {
      const inWindow = taken.filter((x) => x.at >= t.at && x.at < t.at + 1000).reduce((s, x) => s + x.bytes, 0);
      expect(inWindow).toBeLessThanOrEqual(rate + rate * 0.25 + 256 * 1024);
    }
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  it('a rate change applies to a copy waiting for tokens', async () => {
    const clock = new FakeClock();
    let slept = 0;
    const stuck: BucketClock = {
      now: () => clock.now(),
      sleep: (ms) => {
        slept++;
        // The first wait never ends by itself: only the rate change wakes it.
        return slept === 1 ? new Promise<void>(() => undefined) : clock.sleep(ms);
      },
    };
    const bucket = new TokenBucket({ rate: 1024, clock: stuck });
    await bucket.take(256);
    const waiting = bucket.take(MiB);
    bucket.setRate(0);
    await expect(waiting).resolves.toBeUndefined();
  });

  it('ends bit-identical while a writer hammers the ranges being copied (R14)', async () => {
    const size = 64 * MiB;
    const changes: RangeTuple[] = [];
    for (let i = 0; i < 24; i++) changes.push([randomInt(0, size / 4096 - 64) * 4096, randomInt(1, 64) * 4096]);
    const stray: RangeTuple[] = [[20 * MiB, 3 * MiB]];
    const { source, target, base } = await diverged(size, changes, stray);
    const coordinator = new VolumeCoordinator([source], { localNodeId: 'node-a' });
    await coordinator.addFilling(target);
    const aimed = new Set<Promise<void>>();
    source.onRead = (offset, length) => {
      const at = offset + randomInt(0, Math.max(1, length - 8192));
      const w = coordinator.write(at, randomBytes(randomInt(1, 8192))).finally(() => aimed.delete(w));
      aimed.add(w);
    };
    let copying = true;
    let writes = 0;
    const writer = (async () => {
      while (copying || writes < 200) {
        const offset = randomInt(0, size - 70_000);
        const kind = randomInt(0, 10);
        if (kind === 0) await coordinator.trim(offset - (offset % 4096), 16 * 4096);
        else if (kind === 1) await coordinator.writeZeroes(offset, randomInt(1, 20_000));
        else await coordinator.write(offset, randomBytes(randomInt(1, 65_536)));
        writes++;
      }
    })();
    const result = await resyncReplica({
      coordinator,
      source,
      target,
      size,
      resync: { kind: 'dirty', base_snapshot_id: base, extra: stray },
      stepBytes: 256 * 1024,
      depth: 4,
      flushBytes: MiB,
    }).finally(() => {
      copying = false;
    });
    await writer;
    source.onRead = undefined;
    await Promise.all(aimed);
    await coordinator.flush();
    expect(result.cursor).toBe(size);
    expect(writes).toBeGreaterThanOrEqual(200);
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  it('a fill-kind resync trims what the source does not hold', async () => {
    const size = 32 * MiB;
    const { source, target } = await diverged(size, [[MiB, MiB]], [[30 * MiB, MiB]]);
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    await resyncReplica({ coordinator, source, target, size, resync: { kind: 'fill' }, stepBytes: MiB });
    expect(target.trimmedBytes).toBeGreaterThan(0);
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  /** Bytes in the union of `ranges` clipped to [from, to). */
  function unionBytes(ranges: readonly RangeTuple[], from: number, to: number): number {
    const spans = ranges
      .map(([o, l]) => [Math.max(from, o), Math.min(to, o + l)] as const)
      .filter(([a, b]) => b > a)
      .sort((a, b) => a[0] - b[0]);
    let total = 0;
    let end = from;
    for (const [a, b] of spans) {
      if (b <= end) continue;
      total += b - Math.max(a, end);
      end = b;
    }
    return total;
  }

  it('with a low part, copies exactly the changes since the low base below it and the dirty set above it (R14a)', async () => {
    const size = 128 * MiB;
    const below = 64 * MiB;
    const changes: RangeTuple[] = [
      [2 * MiB, MiB],
      [30 * MiB, 4 * MiB],
      [63 * MiB, 2 * MiB], // across `below`
      [90 * MiB, 3 * MiB],
    ];
    const { source, target, base } = await diverged(size, changes, []);
    // The first copy got to `below`: the target holds the source's bytes there.
    for (const [at, length] of changes) {
      const end = Math.min(below, at + length);
      if (end > at) await target.write(at, await source.read(at, end - at));
    }
    // It failed: a later base frozen on the source, then writes that went on without it (some below `below`).
    const low = (await engine.createSnapshot('src', { name: 'low' })).id;
    const later: RangeTuple[] = [
      [5 * MiB, MiB],
      [30 * MiB + MiB, 8192],
      [100 * MiB, MiB],
    ];
    for (const [at, length] of later) await source.write(at, randomBytes(length));
    // In flight at the failure: the target may hold it differently.
    const lowExtra: RangeTuple[] = [[40 * MiB, 65_536]];
    await target.write(40 * MiB, randomBytes(65_536));
    await source.flush();
    source.readBytes = 0;
    target.wroteBytes = 0;
    const resync = {
      kind: 'dirty' as const,
      base_snapshot_id: base,
      low: { below, base_snapshot_id: low, extra: lowExtra },
    };
    const expected = unionBytes([...later, ...lowExtra], 0, below) + unionBytes([...changes, ...later], below, size);
    expect(await resyncBytes(source, size, resync)).toBe(expected);
    // Much less than the whole dirty set would be.
    expect(expected).toBeLessThan(unionBytes([...changes, ...later, ...lowExtra], 0, size) - 4 * MiB);
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    const result = await resyncReplica({ coordinator, source, target, size, resync, stepBytes: MiB });
    expect(result).toEqual({ copied: expected, total: expected, cursor: size });
    expect(source.readBytes).toBe(expected);
    expect(target.wroteBytes).toBe(expected);
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });

  it('a fill-kind resync with a low part trims holes above it only, and copies only the later changes below it', async () => {
    const size = 64 * MiB;
    const below = 32 * MiB;
    await engine.createVolume({ name: 'src', size });
    await engine.createVolume({ name: 'dst', size });
    const source = await DeviceReplica.open('node-a', engine, 'src');
    const target = await DeviceReplica.open('node-b', engine, 'dst');
    opened.push(source, target);
    for (const at of [MiB, 10 * MiB, 40 * MiB, 50 * MiB]) {
      const data = randomBytes(MiB);
      await source.write(at, data);
      if (at < below) await target.write(at, data);
    }
    // Stale data above `below` where the source has a hole: trimmed by the fill part.
    await target.write(45 * MiB, randomBytes(MiB));
    await source.flush();
    const low = (await engine.createSnapshot('src', { name: 'low' })).id;
    await source.write(10 * MiB, randomBytes(4096));
    await source.write(20 * MiB, randomBytes(8192));
    await source.flush();
    source.readBytes = 0;
    target.wroteBytes = 0;
    const resync = { kind: 'fill' as const, low: { below, base_snapshot_id: low } };
    const expected = 4096 + 8192 + 2 * MiB;
    expect(await resyncBytes(source, size, resync)).toBe(expected);
    const coordinator = new VolumeCoordinator([source]);
    await coordinator.addFilling(target);
    await resyncReplica({ coordinator, source, target, size, resync, stepBytes: MiB });
    expect(target.wroteBytes).toBe(expected);
    expect(target.trimmedBytes).toBeGreaterThanOrEqual(MiB);
    expect(target.trimmedBytes).toBeLessThanOrEqual(size - below);
    expect(await firstDifference(source, target, size)).toBeUndefined();
  });
});

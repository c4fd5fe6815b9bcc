/**
 * The `Replica` contract (replica.ts) as one vitest suite that every implementation passes: the engine's
 * `LocalReplica` and the replication layer's `RemoteReplica` over the wire. It registers vitest tests, so only test
 * files import it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Replica, ReplicaSnapshot } from './replica.js';

/** A replica to check, with the parts of its surroundings the contract involves. */
export interface ReplicaUnderTest {
  /** A writable replica of a new, empty volume. */
  replica: Replica;
  /** The volume's size in bytes (at least 8 MiB). */
  size: number;
  /**
   * The engine's part of a snapshot once a replica staged it: commits `staged.ops` with the catalog's record of
   * `snapshotId`, after which the replica knows the snapshot by that id. The suite then calls `staged.commit()`.
   */
  record(snapshotId: string, staged: ReplicaSnapshot): Promise<unknown>;
  /** A read-only view of a recorded snapshot of the same volume. */
  openSnapshot(snapshotId: string): Promise<Replica>;
  /** Releases everything (the suite has closed the replicas it used). */
  close(): Promise<void>;
}

const KiB = 1024;
const MiB = 1024 * KiB;

function pattern(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += 1) out[i] = (seed * 131 + i * 7 + (i >> 9)) & 0xff || 1;
  return out;
}

/** Registers the conformance suite for the replicas `make` gives (a new one for every test). */
export function replicaConformance(name: string, make: () => Promise<ReplicaUnderTest>): void {
  describe(`Replica conformance: ${name}`, () => {
    let under: ReplicaUnderTest;
    let replica: Replica;

    beforeEach(async () => {
      under = await make();
      replica = under.replica;
    });

    afterEach(async () => {
      await replica.close();
      await under.close();
    });

    it('reads what was written, at any alignment, into a given buffer too', async () => {
      expect(await replica.read(0, 8 * KiB)).toEqual(Buffer.alloc(8 * KiB));
      const a = pattern(1, 256 * KiB);
      await replica.write(4 * MiB, a);
      const b = pattern(2, 1000);
      await replica.write(4 * MiB + 5000, b);
      const expected = Buffer.from(a);
      b.copy(expected, 5000);
      expect((await replica.read(4 * MiB, a.length)).equals(expected)).toBe(true);
      const into = Buffer.alloc(16 * KiB, 0xee);
      const got = await replica.read(4 * MiB + 4000, 3000, into);
      expect(got.length).toBe(3000);
      expect(got.equals(expected.subarray(4000, 7000))).toBe(true);
      expect(into.subarray(0, 3000).equals(expected.subarray(4000, 7000))).toBe(true);
      expect(await replica.read(0, 0)).toHaveLength(0);
    });

    it('zeroes and trims make ranges read as zeros and leave the rest', async () => {
      const data = pattern(3, 256 * KiB);
      await replica.write(MiB, data);
      await replica.writeZeroes(MiB + 8 * KiB, 16 * KiB);
      await replica.writeZeroes(MiB + 100, 50);
      await replica.trim(MiB + 64 * KiB, 64 * KiB);
      await replica.trim(MiB + 200 * KiB + 10, 5000);
      const expected = Buffer.from(data);
      expected.fill(0, 8 * KiB, 24 * KiB);
      expected.fill(0, 100, 150);
      expected.fill(0, 64 * KiB, 128 * KiB);
      expected.fill(0, 200 * KiB + 10, 200 * KiB + 5010);
      expect((await replica.read(MiB, data.length)).equals(expected)).toBe(true);
    });

    it('FUA writes, zeroes and trims and flushes resolve, and what they carried reads back', async () => {
      const data = pattern(4, 64 * KiB);
      await replica.write(0, data, { fua: true });
      await replica.writeZeroes(4 * KiB, 4 * KiB, { fua: true });
      await replica.trim(8 * KiB, 4 * KiB, { fua: true });
      await replica.flush();
      const expected = Buffer.from(data);
      expected.fill(0, 4 * KiB, 12 * KiB);
      expect((await replica.read(0, data.length)).equals(expected)).toBe(true);
      await replica.flush();
    });

    it('blockStatus gives consecutive extents that cover the range, data where written', async () => {
      const empty = await replica.blockStatus(0, 4 * MiB);
      expect(empty).toEqual([{ length: 4 * MiB, state: 'zero' }]);
      await replica.write(MiB, pattern(5, 64 * KiB));
      expect(await replica.blockStatus(0, 4 * MiB)).toEqual([
        { length: MiB, state: 'zero' },
        { length: 64 * KiB, state: 'data' },
        { length: 3 * MiB - 64 * KiB, state: 'zero' },
      ]);
      await replica.trim(MiB, 64 * KiB);
      const trimmed = await replica.blockStatus(MiB - 4 * KiB, 128 * KiB);
      expect(trimmed.every((e) => e.state === 'zero')).toBe(true);
      expect(trimmed.reduce((sum, e) => sum + e.length, 0)).toBe(128 * KiB);
    });

    it('a committed snapshot keeps its point; changed blocks between it and the head are the later writes', async () => {
      const before = pattern(6, 64 * KiB);
      await replica.write(0, before);
      const staged = await replica.snapshot('snap-1', 'head-after-1');
      expect(typeof staged.point).toBe('string');
      expect(typeof staged.head).toBe('string');
      expect(staged.point).not.toBe(staged.head);
      expect(staged.ops.length).toBeGreaterThan(0);
      await under.record('snap-1', staged);
      staged.commit();

      await replica.write(2 * MiB, pattern(7, 8 * KiB));
      await replica.write(0, pattern(8, 4 * KiB));
      const page = await replica.changedBlocks({ base_snapshot_id: 'snap-1', size: under.size, offset: 0, limit: 100 });
      expect(page.block_size).toBe(4096);
      expect(page.size).toBe(under.size);
      expect(page.next_offset).toBeUndefined();
      expect(page.extents).toEqual([
        { offset: 0, length: 4 * KiB },
        { offset: 2 * MiB, length: 8 * KiB },
      ]);
      const allocated = await replica.changedBlocks({ size: under.size, offset: 0, limit: 1 });
      expect(allocated.extents).toEqual([{ offset: 0, length: 64 * KiB }]);
      expect(allocated.next_offset).toBe(2 * MiB);
      const toSnapshot = await replica.changedBlocks({
        target_snapshot_id: 'snap-1',
        size: under.size,
        offset: 0,
        limit: 100,
      });
      expect(toSnapshot.extents).toEqual([{ offset: 0, length: 64 * KiB }]);

      const view = await under.openSnapshot('snap-1');
      try {
        expect((await view.read(0, before.length)).equals(before)).toBe(true);
        expect(await view.read(2 * MiB, 8 * KiB)).toEqual(Buffer.alloc(8 * KiB));
      } finally {
        await view.close();
      }
      const head = await replica.read(0, 8 * KiB);
      expect(head.subarray(0, 4 * KiB).equals(pattern(8, 4 * KiB))).toBe(true);
      expect(head.subarray(4 * KiB).equals(before.subarray(4 * KiB, 8 * KiB))).toBe(true);
    });

    it('an abandoned snapshot leaves the head as it was', async () => {
      const data = pattern(9, 32 * KiB);
      await replica.write(0, data);
      const generation = replica.generation();
      const staged = await replica.snapshot('snap-gone');
      staged.abandon();
      await replica.write(MiB, pattern(10, 4 * KiB));
      expect((await replica.read(0, data.length)).equals(data)).toBe(true);
      expect((await replica.read(MiB, 4 * KiB)).equals(pattern(10, 4 * KiB))).toBe(true);
      expect(replica.generation()).toBeGreaterThan(generation);
      const allocated = await replica.changedBlocks({ size: under.size, offset: 0, limit: 100 });
      expect(allocated.extents).toEqual([
        { offset: 0, length: 32 * KiB },
        { offset: MiB, length: 4 * KiB },
      ]);
      await expect(
        replica.changedBlocks({ base_snapshot_id: 'snap-gone', size: under.size, offset: 0, limit: 100 }),
      ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('the generation grows with every change', async () => {
      let last = replica.generation();
      const grew = () => {
        const now = replica.generation();
        expect(now).toBeGreaterThan(last);
        last = now;
      };
      await replica.write(0, pattern(11, 4 * KiB));
      grew();
      await replica.writeZeroes(0, 4 * KiB);
      grew();
      await replica.trim(4 * KiB, 4 * KiB);
      grew();
      const staged = await replica.snapshot('snap-g');
      await under.record('snap-g', staged);
      staged.commit();
      await replica.flush();
      grew();
    });

    it('recent writes cover every change since the second-to-last flush, and a snapshot view has none', async () => {
      const covers = (ranges: readonly [number, number][], offset: number, length: number): boolean =>
        ranges.some(([o, l]) => o <= offset && offset + length <= o + l);
      await replica.write(1 * MiB, pattern(21, 8 * KiB));
      await replica.writeZeroes(3 * MiB, 64 * KiB);
      let recent = await replica.recentWrites();
      expect(recent.complete).toBe(true);
      expect(covers(recent.ranges, 1 * MiB, 8 * KiB)).toBe(true);
      expect(covers(recent.ranges, 3 * MiB, 64 * KiB)).toBe(true);
      expect(covers(recent.ranges, 5 * MiB, 4 * KiB)).toBe(false);
      await replica.flush();
      await replica.write(5 * MiB, pattern(22, 4 * KiB));
      recent = await replica.recentWrites();
      // One flush since: the writes before it are not known flushed on every replica yet.
      expect(covers(recent.ranges, 1 * MiB, 8 * KiB)).toBe(true);
      expect(covers(recent.ranges, 5 * MiB, 4 * KiB)).toBe(true);
      await replica.flush();
      recent = await replica.recentWrites();
      expect(covers(recent.ranges, 1 * MiB, 8 * KiB)).toBe(false);
      expect(covers(recent.ranges, 5 * MiB, 4 * KiB)).toBe(true);
      await replica.flush();
      expect((await replica.recentWrites()).ranges).toEqual([]);
      for (let i = 0; i < 40; i++) await replica.write(i * 2 * 4 * KiB, pattern(23 + i, 4 * KiB));
      recent = await replica.recentWrites();
      for (let i = 0; i < 40; i++) expect(covers(recent.ranges, i * 2 * 4 * KiB, 4 * KiB)).toBe(true);
      for (let i = 1; i < recent.ranges.length; i++) {
        const [o, l] = recent.ranges[i - 1] as [number, number];
        expect((recent.ranges[i] as [number, number])[0]).toBeGreaterThan(o + l);
      }
      const staged = await replica.snapshot('snap-recent');
      await under.record('snap-recent', staged);
      staged.commit();
      const view = await under.openSnapshot('snap-recent');
      expect(await view.recentWrites()).toEqual({ complete: true, ranges: [] });
      await view.close();
    });

    it('a closed replica refuses every call', async () => {
      await replica.write(0, pattern(12, 4 * KiB));
      await replica.close();
      await expect(replica.read(0, 4096)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
      await expect(replica.write(0, pattern(13, 4096))).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
      await expect(replica.flush()).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
      await expect(replica.snapshot('snap-closed')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
      await expect(replica.blockStatus(0, 4096)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    });
  });
}

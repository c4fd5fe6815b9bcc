import { describe, expect, it } from 'vitest';
import type { StoreOp } from '../cluster/types.js';
import { type InSyncFailure, VolumeCoordinator } from './coordinator.js';
import type { RecentWrites, Replica, ReplicaDiffRequest, ReplicaSnapshot } from './replica.js';
import type { ChangedBlocksPage, StatusExtent } from './types.js';

/** A replica held in a buffer: enough of one to see what the coordinator sends where. */
class BufferReplica implements Replica {
  readonly bytes = Buffer.alloc(64 * 1024);
  flushed = 0;
  closed = false;
  staged: string[] = [];
  committed: string[] = [];
  reads = 0;
  /** When set, writes wait for it (a write in flight). */
  stall: Promise<void> | undefined;
  /** When set, writes fail with it. */
  failWith: Error | undefined;
  heads: (string | undefined)[] = [];
  private changes = 0;

  constructor(
    readonly nodeId: string,
    private readonly failSnapshot = false,
  ) {}

  async recentWrites(): Promise<RecentWrites> {
    return { complete: false, ranges: [] };
  }
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.reads++;
    const out = into ?? Buffer.alloc(length);
    this.bytes.copy(out, 0, offset, offset + length);
    return out;
  }
  async write(offset: number, data: Buffer): Promise<void> {
    if (this.stall !== undefined) await this.stall;
    if (this.failWith !== undefined) throw this.failWith;
    data.copy(this.bytes, offset);
    this.changes++;
  }
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.bytes.fill(0, offset, offset + length);
    this.changes++;
  }
  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }
  async flush(): Promise<void> {
    if (this.failWith !== undefined) throw this.failWith;
    this.flushed++;
  }
  async blockStatus(_offset: number, length: number): Promise<StatusExtent[]> {
    return [{ length, state: 'data' }];
  }
  async snapshot(snapshotId: string, headId?: string): Promise<ReplicaSnapshot> {
    this.heads.push(headId);
    if (this.failSnapshot) throw new Error(`${this.nodeId} cannot snapshot`);
    this.staged.push(snapshotId);
    const ops: StoreOp[] = [{ op: 'put', key: `/ferry/local/${this.nodeId}/snap/${snapshotId}`, value: {} }];
    return {
      ops,
      point: `${this.nodeId}-point`,
      head: `${this.nodeId}-head`,
      commit: () => {
        this.committed.push(snapshotId);
        this.changes++;
      },
      abandon: () => {
        this.staged = this.staged.filter((id) => id !== snapshotId);
      },
    };
  }
  async changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    return { extents: [], block_size: 4096, size: request.size };
  }
  generation(): number {
    return this.changes;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('VolumeCoordinator', () => {
  it('sends every change and flush to all replicas, reads from the first, and reports the lowest generation', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const c = new VolumeCoordinator([a, b]);
    await c.write(4096, Buffer.alloc(4096, 5));
    await c.writeZeroes(4096, 512);
    await c.flush();
    for (const r of [a, b]) {
      expect(r.bytes.subarray(4096, 4608).every((x) => x === 0)).toBe(true);
      expect(r.bytes.subarray(4608, 8192).every((x) => x === 5)).toBe(true);
      expect(r.flushed).toBe(1);
    }
    b.bytes.fill(9, 0, 16);
    expect((await c.read(0, 16)).every((x) => x === 0)).toBe(true);
    await b.write(0, Buffer.alloc(1));
    expect([a.generation(), b.generation(), c.generation()]).toEqual([2, 3, 2]);
    await c.close();
    expect([a.closed, b.closed]).toEqual([true, true]);
  });

  it('stages a snapshot on every replica, and abandons all of them when one fails', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const staged = await new VolumeCoordinator([a, b]).snapshot('s1');
    expect(staged.ops.map((o) => o.key)).toEqual(['/ferry/local/a/snap/s1', '/ferry/local/b/snap/s1']);
    expect([staged.point, staged.head]).toEqual(['a-point', 'a-head']);
    staged.commit();
    expect([a.committed, b.committed]).toEqual([['s1'], ['s1']]);

    const c = new BufferReplica('c');
    const failing = new BufferReplica('d', true);
    await expect(new VolumeCoordinator([c, failing]).snapshot('s2')).rejects.toThrow('d cannot snapshot');
    expect(c.staged).toEqual([]);
    expect(c.committed).toEqual([]);
  });

  it('reads from the local replica when it holds one, else from the first in-sync one; never from a filling one', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    a.bytes.fill(1, 0, 16);
    b.bytes.fill(2, 0, 16);
    const local = new VolumeCoordinator([a, b], { localNodeId: 'b' });
    expect((await local.read(0, 16)).every((x) => x === 2)).toBe(true);
    expect([a.reads, b.reads]).toEqual([0, 1]);
    const remote = new VolumeCoordinator([a, b], { localNodeId: 'elsewhere' });
    expect((await remote.read(0, 16)).every((x) => x === 1)).toBe(true);
    // A filling replica on this node is not read until it is promoted.
    const c = new BufferReplica('c');
    c.bytes.fill(3, 0, 16);
    const filling = new VolumeCoordinator([a], { localNodeId: 'c' });
    await filling.addFilling(c);
    expect((await filling.read(0, 16)).every((x) => x === 1)).toBe(true);
    expect(c.reads).toBe(0);
    filling.promote('c');
    expect((await filling.read(0, 16)).every((x) => x === 3)).toBe(true);
    expect(filling.inSyncNodes()).toEqual(['a', 'c']);
  });

  it('sends changes, flushes and snapshots (with one head id) to filling replicas too, and removes replicas', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const c = new VolumeCoordinator([a]);
    await c.addFilling(b);
    await expect(c.addFilling(new BufferReplica('b'))).rejects.toThrow(/already holds/);
    expect(c.fillingNodes()).toEqual(['b']);
    await c.write(0, Buffer.alloc(4096, 7));
    await c.trim(1024, 1024);
    await c.flush();
    for (const r of [a, b]) {
      expect(r.bytes.subarray(0, 1024).every((x) => x === 7)).toBe(true);
      expect(r.bytes.subarray(1024, 2048).every((x) => x === 0)).toBe(true);
      expect(r.flushed).toBe(1);
    }
    const staged = await c.snapshot('s1', 'head-1');
    expect([a.heads, b.heads]).toEqual([['head-1'], ['head-1']]);
    expect(staged.point).toBe('a-point');
    staged.commit();
    await expect(c.removeReplica('a')).rejects.toThrow(/last in-sync/);
    await c.removeReplica('b');
    expect(b.closed).toBe(true);
    await c.write(0, Buffer.alloc(16, 9));
    expect(b.bytes[0]).toBe(7);
    expect(a.bytes[0]).toBe(9);
    expect(c.replicas.map((r) => r.nodeId)).toEqual(['a']);
  });

  it('holds a range: waits for overlapping writes in flight and holds back only new overlapping ones', async () => {
    const a = new BufferReplica('a');
    const c = new VolumeCoordinator([a]);
    let unstall!: () => void;
    a.stall = new Promise<void>((resolve) => {
      unstall = resolve;
    });
    let inFlightDone = false;
    const inFlight = c.write(4096, Buffer.alloc(4096, 1)).then(() => {
      inFlightDone = true;
    });
    let held = false;
    const holding = c.holdRange(0, 8192).then((release) => {
      held = true;
      return release;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(held).toBe(false);
    a.stall = undefined;
    unstall();
    const release = await holding;
    expect(inFlightDone).toBe(true);
    await inFlight;
    // An overlapping write waits for the release; one elsewhere goes on.
    let overlappingDone = false;
    const overlapping = c.write(8000, Buffer.alloc(1000, 2)).then(() => {
      overlappingDone = true;
    });
    await c.write(16384, Buffer.alloc(4096, 3));
    await c.writeZeroes(8192, 4096);
    expect(a.bytes[16384]).toBe(3);
    expect(overlappingDone).toBe(false);
    expect(a.bytes[8500]).toBe(0);
    release();
    await overlapping;
    expect(a.bytes[8500]).toBe(2);
    release();
  });

  it('sends overlapping changes one after the other, so that every replica ends with the later one', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const c = new VolumeCoordinator([a, b]);
    let unstall!: () => void;
    // b is slow with the first write only: sent at once, the second would land on b before the first.
    b.stall = new Promise<void>((resolve) => {
      unstall = resolve;
    });
    const first = c.write(0, Buffer.alloc(8192, 1));
    b.stall = undefined;
    let secondDone = false;
    const second = c.write(4096, Buffer.alloc(8192, 2)).then(() => {
      secondDone = true;
    });
    const elsewhere = c.write(32768, Buffer.alloc(4096, 3));
    await elsewhere;
    await new Promise((resolve) => setImmediate(resolve));
    expect(secondDone).toBe(false);
    expect(b.bytes[4096]).toBe(0);
    unstall();
    await Promise.all([first, second]);
    expect([a.bytes[4096], b.bytes[4096], a.bytes[0], b.bytes[0]]).toEqual([2, 2, 1, 1]);
    expect(b.bytes[32768]).toBe(3);
  });

  it('takes a filling replica that fails a write out of the fan-out, after its failure handler, before acknowledging', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const c = new VolumeCoordinator([a]);
    const seen: string[] = [];
    await c.addFilling(b, async (err) => {
      seen.push(String(err));
    });
    b.failWith = new Error('disk gone');
    await c.write(0, Buffer.alloc(16, 4));
    expect(seen).toEqual(['Error: disk gone']);
    expect(c.fillingNodes()).toEqual([]);
    b.failWith = undefined;
    await c.write(0, Buffer.alloc(16, 5));
    expect([a.bytes[0], b.bytes[0]]).toEqual([5, 0]);
    // Without a handler, the write fails; a handler that fails fails the write.
    const d = new BufferReplica('d');
    d.failWith = new Error('no');
    await c.addFilling(d);
    await expect(c.write(0, Buffer.alloc(16))).rejects.toThrow('no');
    await c.removeReplica('d');
    const e = new BufferReplica('e');
    e.failWith = new Error('no');
    await c.addFilling(e, async () => {
      throw new Error('store unreachable');
    });
    await expect(c.write(0, Buffer.alloc(16))).rejects.toThrow('store unreachable');
  });

  it('needs a replica', () => {
    expect(() => new VolumeCoordinator([])).toThrow(/at least one replica/);
  });
});

/** A promise and its resolver. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('VolumeCoordinator with in-sync replicas failing (R7, S2)', () => {
  it('acknowledges a write a replica failed only once the handler recorded it, and sends it nothing more', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const calls: InSyncFailure[][] = [];
    const recorded = deferred();
    const c = new VolumeCoordinator([a, b], {
      onInSyncFailure: async (failures) => {
        calls.push([...failures]);
        await recorded.promise;
      },
    });
    await c.write(0, Buffer.alloc(4096, 1));
    await c.flush();
    await c.write(65536 - 8192, Buffer.alloc(4096, 2));
    b.failWith = new Error('disk gone');
    let acked = false;
    const failing = c.write(8192, Buffer.alloc(4096, 3)).then(() => {
      acked = true;
    });
    await turn();
    // A later write is held too: not sent, not acknowledged.
    let laterAcked = false;
    const later = c.write(16384, Buffer.alloc(4096, 4)).then(() => {
      laterAcked = true;
    });
    await turn();
    expect(calls).toHaveLength(1);
    expect([acked, laterAcked]).toEqual([false, false]);
    expect(a.bytes[16384]).toBe(0);
    expect(c.inSyncNodes()).toEqual(['a']);
    expect(c.failingNodes()).toEqual(['b']);
    const [failure] = calls[0] as InSyncFailure[];
    expect(failure?.nodeId).toBe('b');
    expect(String(failure?.error)).toBe('Error: disk gone');
    // What b may lack besides what comes later: the unflushed write and the one in flight, not the flushed one.
    expect(failure?.extra).toEqual([
      [8192, 4096],
      [65536 - 8192, 4096],
    ]);
    recorded.resolve();
    await failing;
    await later;
    expect(a.bytes[16384]).toBe(4);
    b.failWith = undefined;
    await c.write(0, Buffer.alloc(16, 5));
    await c.flush();
    expect([a.bytes[0], b.bytes[0]]).toEqual([5, 1]);
    expect(b.flushed).toBe(1);
    expect(c.failingNodes()).toEqual([]);
    expect(calls).toHaveLength(1);
  });

  it('does not wait for a stalled replica once it failed another request; its late answer is ignored', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const c = new VolumeCoordinator([a, b], { onInSyncFailure: async () => undefined });
    const stall = deferred();
    b.stall = stall.promise;
    const stalled = c.write(0, Buffer.alloc(16, 1));
    await turn();
    // The stalled write reached a; b fails a flush: the write no longer waits for b.
    const flushing = (async () => {
      b.failWith = new Error('connection reset');
      await c.flush().catch(() => undefined);
    })();
    b.stall = undefined;
    await flushing;
    await stalled;
    expect(c.inSyncNodes()).toEqual(['a']);
    stall.resolve();
    await turn();
    expect(c.inSyncNodes()).toEqual(['a']);
  });

  it('fails the I/O when the handler fails, and keeps failing changes until a later call succeeds', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    let storeUp = false;
    const c = new VolumeCoordinator([a, b], {
      retryMs: 0,
      onInSyncFailure: async () => {
        if (!storeUp) throw new Error('store unreachable');
      },
    });
    b.failWith = new Error('disk gone');
    await expect(c.write(0, Buffer.alloc(16, 1))).rejects.toThrow(
      /on node b failed and could not be recorded.*store unreachable/,
    );
    await expect(c.flush()).rejects.toThrow(/store unreachable/);
    await expect(c.write(0, Buffer.alloc(16, 2))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(a.bytes[0]).toBe(1);
    storeUp = true;
    await c.write(0, Buffer.alloc(16, 3));
    expect(a.bytes[0]).toBe(3);
    expect(c.failingNodes()).toEqual([]);
  });

  it('fails I/O loudly when the last in-sync replica fails, naming the replicas, and acknowledges nothing', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b');
    const c = new VolumeCoordinator([a, b], { onInSyncFailure: async () => undefined });
    b.failWith = new Error('disk gone');
    await c.write(0, Buffer.alloc(16, 1));
    a.failWith = new Error('no space left on device');
    await expect(c.write(0, Buffer.alloc(16, 2))).rejects.toThrow(
      /no in-sync replica.*node b failed before.*node a, failed now \(no space left/,
    );
    await expect(c.flush()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(c.inSyncNodes()).toEqual(['a']);
    // It answers again (space freed): changes go on, on it alone.
    a.failWith = undefined;
    await c.write(0, Buffer.alloc(16, 3));
    expect((await c.read(0, 1))[0]).toBe(3);
    await c.close();
    expect([a.closed, b.closed]).toEqual([true, true]);
    // A volume of one replica fails with the replica's own error (a full disk stays RESOURCE_EXHAUSTED).
    const lone = new BufferReplica('x');
    const one = new VolumeCoordinator([lone], { onInSyncFailure: async () => undefined });
    lone.failWith = new Error('ENOSPC');
    await expect(one.write(0, Buffer.alloc(16))).rejects.toThrow(/^ENOSPC$/);
    lone.failWith = undefined;
    await one.write(0, Buffer.alloc(16, 4));
    expect(lone.bytes[0]).toBe(4);
  });

  it('records several replicas failing at once in one handler call', async () => {
    const [a, b, d] = [new BufferReplica('a'), new BufferReplica('b'), new BufferReplica('d')];
    const calls: string[][] = [];
    const c = new VolumeCoordinator([a, b, d], {
      onInSyncFailure: async (failures) => {
        calls.push(failures.map((f) => f.nodeId));
      },
    });
    b.failWith = new Error('gone');
    d.failWith = new Error('gone too');
    await c.write(0, Buffer.alloc(16, 1));
    expect(calls).toEqual([['b', 'd']]);
    expect(c.inSyncNodes()).toEqual(['a']);
  });

  it('goes on with a snapshot a replica failed to stage, and hands that replica over once it is committed', async () => {
    const a = new BufferReplica('a');
    const b = new BufferReplica('b', true);
    const calls: string[] = [];
    const c = new VolumeCoordinator([a, b], {
      onInSyncFailure: async (failures) => {
        calls.push(...failures.map((f) => f.nodeId));
      },
    });
    const staged = await c.snapshot('s1', 'h1');
    expect(staged.failed).toEqual(['b']);
    expect(staged.ops.map((o) => o.key)).toEqual(['/ferry/local/a/snap/s1']);
    expect(c.replicas.map((r) => r.nodeId)).toEqual(['a']);
    // Writes wait until the snapshot is committed and b recorded.
    let acked = false;
    const writing = c.write(0, Buffer.alloc(16, 1)).then(() => {
      acked = true;
    });
    await turn();
    expect([acked, calls]).toEqual([false, []]);
    staged.commit();
    await writing;
    expect(calls).toEqual(['b']);
    expect(a.committed).toEqual(['s1']);
    // When every in-sync replica fails to stage, it fails and abandons.
    const lone = new VolumeCoordinator([new BufferReplica('x', true), new BufferReplica('y', true)], {
      onInSyncFailure: async () => undefined,
    });
    await expect(lone.snapshot('s2')).rejects.toThrow(/cannot snapshot/);
  });
});

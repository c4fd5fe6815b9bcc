import { describe, expect, it } from 'vitest';
import type { StoreOp } from '../cluster/types.js';
import { VolumeCoordinator } from './coordinator.js';
import type { Replica, ReplicaDiffRequest, ReplicaSnapshot } from './replica.js';
import type { ChangedBlocksPage, StatusExtent } from './types.js';

/** A replica held in a buffer: enough of one to see what the coordinator sends where. */
class BufferReplica implements Replica {
  readonly bytes = Buffer.alloc(64 * 1024);
  flushed = 0;
  closed = false;
  staged: string[] = [];
  committed: string[] = [];
  private changes = 0;

  constructor(
    readonly nodeId: string,
    private readonly failSnapshot = false,
  ) {}

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const out = into ?? Buffer.alloc(length);
    this.bytes.copy(out, 0, offset, offset + length);
    return out;
  }
  async write(offset: number, data: Buffer): Promise<void> {
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
    this.flushed++;
  }
  async blockStatus(_offset: number, length: number): Promise<StatusExtent[]> {
    return [{ length, state: 'data' }];
  }
  async snapshot(snapshotId: string): Promise<ReplicaSnapshot> {
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

  it('needs a replica', () => {
    expect(() => new VolumeCoordinator([])).toThrow(/at least one replica/);
  });
});

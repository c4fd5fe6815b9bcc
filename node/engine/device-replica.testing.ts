/**
 * For tests (not used by the product). A volume of an engine seen as a `Replica` (node/engine/replica.ts): the
 * engine's own replica behind its device (its layer tree on disk), with the allocation map from `changedBlocks`,
 * counting the bytes read and written. Tests of the fill and of ha-update use two volumes of one engine as the
 * source and the target replica of one volume.
 */
import type { RecentWrites, Replica, ReplicaDiffRequest, ReplicaSnapshot } from './replica.js';
import type { BlockDevice, ChangedBlocksPage, StatusExtent, VolumeEngine, WriteOptions } from './types.js';

export class DeviceReplica implements Replica {
  readBytes = 0;
  wroteBytes = 0;
  /** Bytes of the writes asked to be uncached (past the page cache). */
  uncachedBytes = 0;
  trimmedBytes = 0;
  closed = false;
  /** Called at the start of every read (a test's writer aims at what is being copied). */
  onRead: ((offset: number, length: number) => void) | undefined;
  /** When set, writes fail with it (a replica whose disk went away). */
  failWith: Error | undefined;

  constructor(
    readonly nodeId: string,
    private readonly engine: VolumeEngine,
    private readonly device: BlockDevice,
  ) {}

  /** Opens volume `name` of `engine` as the replica of node `nodeId`. */
  static async open(nodeId: string, engine: VolumeEngine, name: string): Promise<DeviceReplica> {
    return new DeviceReplica(nodeId, engine, await engine.openExport(name));
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.readBytes += length;
    this.onRead?.(offset, length);
    return this.device.read(offset, length, into);
  }
  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    if (this.failWith !== undefined) throw this.failWith;
    this.wroteBytes += data.length;
    if (options?.uncached === true) this.uncachedBytes += data.length;
    return this.device.write(offset, data, options);
  }
  async writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    if (this.failWith !== undefined) throw this.failWith;
    return this.device.writeZeroes(offset, length, options);
  }
  async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    if (this.failWith !== undefined) throw this.failWith;
    this.trimmedBytes += length;
    return this.device.trim(offset, length, options);
  }
  flush(): Promise<void> {
    return this.device.flush();
  }
  /** Not tracked through a device: unknown. */
  async recentWrites(): Promise<RecentWrites> {
    return { complete: false, ranges: [] };
  }
  blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    return this.device.blockStatus(offset, length);
  }
  snapshot(_snapshotId: string, _headId?: string): Promise<ReplicaSnapshot> {
    throw new Error('a device replica takes no snapshots');
  }
  changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    return this.engine.changedBlocks(this.device.name, {
      offset: request.offset,
      limit: request.limit,
      ...(request.base_snapshot_id !== undefined && { base_snapshot_id: request.base_snapshot_id }),
    });
  }
  generation(): number {
    return 0;
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.device.close();
  }
}

/** Whether two replicas hold the same bytes over [0, size), compared in 16 MiB pieces; the first differing offset. */
export async function firstDifference(a: Replica, b: Replica, size: number, from = 0): Promise<number | undefined> {
  const piece = 16 * 1024 * 1024;
  const x = Buffer.alloc(piece);
  const y = Buffer.alloc(piece);
  for (let at = from; at < size; at += piece) {
    const n = Math.min(piece, size - at);
    await a.read(at, n, x);
    await b.read(at, n, y);
    if (!x.subarray(0, n).equals(y.subarray(0, n))) {
      for (let i = 0; i < n; i++) if (x[i] !== y[i]) return at + i;
    }
  }
  return undefined;
}

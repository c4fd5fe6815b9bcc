/**
 * The coordinator of an open volume: the one place its I/O goes through on the node where it is attached, above
 * its replicas. Reads are served by the first replica; every change (write, zeroes, trim) and every flush goes to all
 * of them and is acknowledged once all have acknowledged it; a snapshot is staged on all of them and committed in one
 * store transaction by the engine. Today a volume has one replica, on this node (node/engine/local-replica.ts).
 *
 * Replication (docs/ENGINE.md, "Catalog, replicas and coordinator") adds remote replicas to the list, with the
 * bookkeeping this class does not have yet: marking a replica that fails out of sync in the catalog instead of
 * failing the I/O, and the epoch that fences an older coordinator.
 */
import { FerryError } from '../../common/index.js';
import type { StoreOp } from '../cluster/types.js';
import type { Replica, ReplicaDiffRequest, ReplicaSnapshot } from './replica.js';
import type { ChangedBlocksPage, StatusExtent, WriteOptions } from './types.js';

/** Options of a VolumeCoordinator. */
export interface CoordinatorOptions {
  /** This node's id: reads come from the replica it holds, when it holds one (R4). Default: the first replica. */
  localNodeId?: string;
}

export class VolumeCoordinator {
  readonly replicas: readonly Replica[];
  private readonly readFrom: Replica;

  constructor(replicas: readonly Replica[], options: CoordinatorOptions = {}) {
    if (replicas.length === 0) throw new FerryError('INTERNAL', 'a volume coordinator needs at least one replica');
    this.replicas = [...replicas];
    this.readFrom = this.replicas.find((r) => r.nodeId === options.localNodeId) ?? (this.replicas[0] as Replica);
  }

  /** The replica reads come from: this node's when it holds one, else the first. */
  get primary(): Replica {
    return this.readFrom;
  }

  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.primary.read(offset, length, into);
  }

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.all((r) => r.write(offset, data, options));
  }

  writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.all((r) => r.writeZeroes(offset, length, options));
  }

  trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.all((r) => r.trim(offset, length, options));
  }

  /** Durable on every replica when it resolves (the contract of Replica.flush, on all of them). */
  flush(): Promise<void> {
    return this.all((r) => r.flush());
  }

  blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    return this.primary.blockStatus(offset, length);
  }

  changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    return this.primary.changedBlocks(request);
  }

  /** The lowest generation among the replicas: what every one of them has applied. */
  generation(): number {
    return Math.min(...this.replicas.map((r) => r.generation()));
  }

  /**
   * Stages snapshot `snapshotId` on every replica (the caller holds writes). The result's `ops` are every replica's;
   * `point` and `head` are the primary's. `headId` names the new head on every replica (one id everywhere). When staging fails on one, the others' are abandoned.
   */
  async snapshot(snapshotId: string, headId?: string): Promise<ReplicaSnapshot> {
    if (this.replicas.length === 1) return this.primary.snapshot(snapshotId, headId);
    const settled = await Promise.allSettled(this.replicas.map((r) => r.snapshot(snapshotId, headId)));
    const staged = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) {
      for (const s of staged) s.abandon();
      throw failed.reason;
    }
    const ops: StoreOp[] = staged.flatMap((s) => [...s.ops]);
    const primary = staged[0] as ReplicaSnapshot;
    return {
      ops,
      point: primary.point,
      head: primary.head,
      commit: () => {
        for (const s of staged) s.commit();
      },
      abandon: () => {
        for (const s of staged) s.abandon();
      },
    };
  }

  /** Releases every replica's resources for this open (flush first). */
  async close(): Promise<void> {
    await this.all((r) => r.close());
  }

  private async all(fn: (r: Replica) => Promise<void>): Promise<void> {
    if (this.replicas.length === 1) return fn(this.primary);
    await Promise.all(this.replicas.map(fn));
  }
}

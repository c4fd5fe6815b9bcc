/**
 * The coordinator of an open volume: the one place its I/O goes through on the node where it is attached, above
 * its replicas (docs/REPLICATION.md). Reads come from one in-sync replica, this node's own when it holds one (R4);
 * every change (write, zeroes, trim) and every flush goes to every in-sync and filling replica and is acknowledged
 * once all have acknowledged it; a snapshot is staged on all of them with one head id and committed in one store
 * transaction by the engine.
 *
 * A replica being filled (`addFilling`, node/engine/fill.ts) receives every write from then on but is never read;
 * the fill copies the source's data range by range under `holdRange` (R14), which makes overlapping writes wait and
 * waits for the overlapping writes in flight. A filling replica that fails a change is taken out of the fan-out and
 * its failure handler (the fill's owner, which records it `out-of-sync`) runs before the change is acknowledged
 * (R7). What this class does not have yet (issue 23): marking an in-sync replica that fails out of sync instead of
 * failing the I/O, and the epoch carried on every request.
 */
import { FerryError } from '../../common/index.js';
import type { StoreOp } from '../cluster/types.js';
import { unionRanges } from './recent-writes.js';
import type { RecentWrites, Replica, ReplicaDiffRequest, ReplicaSnapshot } from './replica.js';
import type { ChangedBlocksPage, StatusExtent, WriteOptions } from './types.js';

export interface CoordinatorOptions {
  /** This node's id: reads come from its replica when it holds an in-sync one. Default: the first replica's. */
  localNodeId?: string;
}

/** Called when a filling replica fails a change; the change is acknowledged once it resolves (fails if it rejects). */
export type FillingFailure = (err: unknown) => Promise<void>;

/** A byte range [start, end) of a write in flight or of a hold. */
interface Span {
  start: number;
  end: number;
}

interface Hold extends Span {
  released: Promise<void>;
}

interface Flight extends Span {
  done: Promise<void>;
}

interface Filling {
  replica: Replica;
  onFailure: FillingFailure | undefined;
  /** Set once it failed: the first failure's handler, which later changes in flight also wait for. */
  failed?: Promise<void>;
}

const overlaps = (a: Span, b: Span): boolean => a.start < b.end && b.start < a.end;

export class VolumeCoordinator {
  private inSync: Replica[];
  private filling: Filling[] = [];
  private readonly localNodeId: string | undefined;
  private readonly holds = new Set<Hold>();
  private readonly flights = new Set<Flight>();

  constructor(replicas: readonly Replica[], options: CoordinatorOptions = {}) {
    if (replicas.length === 0) throw new FerryError('INTERNAL', 'a volume coordinator needs at least one replica');
    this.inSync = [...replicas];
    this.localNodeId = options.localNodeId;
  }

  /** Every replica that receives changes: the in-sync ones, then the filling ones. */
  get replicas(): readonly Replica[] {
    return [...this.inSync, ...this.filling.map((f) => f.replica)];
  }

  /** The node ids of the in-sync replicas (the ones a snapshot taken now is complete on: SnapshotRecord.holders). */
  inSyncNodes(): string[] {
    return this.inSync.map((r) => r.nodeId);
  }

  /** The node ids of the replicas being filled. */
  fillingNodes(): string[] {
    return this.filling.map((f) => f.replica.nodeId);
  }

  /** The replica reads come from: this node's in-sync one when there is one, else the first in-sync one (R4). */
  get primary(): Replica {
    const local = this.localNodeId === undefined ? undefined : this.inSync.find((r) => r.nodeId === this.localNodeId);
    return local ?? (this.inSync[0] as Replica);
  }

  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.primary.read(offset, length, into);
  }

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.change(offset, data.length, (r) => r.write(offset, data, options));
  }

  writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.change(offset, length, (r) => r.writeZeroes(offset, length, options));
  }

  trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.change(offset, length, (r) => r.trim(offset, length, options));
  }

  /** Durable on every in-sync and filling replica when it resolves (the contract of Replica.flush, on all of them). */
  flush(): Promise<void> {
    return this.all((r) => r.flush());
  }

  blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    return this.primary.blockStatus(offset, length);
  }

  changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    return this.primary.changedBlocks(request);
  }

  /** The union of the in-sync replicas' recent writes (R12); complete only when every one's is. */
  async recentWrites(): Promise<RecentWrites> {
    const all = await Promise.all(this.inSync.map((r) => r.recentWrites()));
    return { complete: all.every((w) => w.complete), ranges: unionRanges(all.map((w) => w.ranges)) };
  }

  /** The lowest generation among the in-sync replicas: what every one of them has applied. */
  generation(): number {
    return Math.min(...this.inSync.map((r) => r.generation()));
  }

  /**
   * Stages snapshot `snapshotId` on every replica, in-sync and filling, with `headId` as every replica's new head
   * (the caller holds writes). A filling replica stages it too, so that its head keeps the volume's layer ids, but
   * its frozen point is incomplete: the snapshot's holders are `inSyncNodes()` only (S3). The result's `ops` are
   * every replica's; `point` and `head` are the primary's. When staging fails on one, the others' are abandoned.
   */
  async snapshot(snapshotId: string, headId?: string): Promise<ReplicaSnapshot> {
    const replicas = this.replicas;
    if (replicas.length === 1) return this.primary.snapshot(snapshotId, headId);
    const primary = this.primary;
    const settled = await Promise.allSettled(replicas.map((r) => r.snapshot(snapshotId, headId)));
    const staged = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) {
      for (const s of staged) s.abandon();
      throw failed.reason;
    }
    const ops: StoreOp[] = staged.flatMap((s) => [...s.ops]);
    const mine = staged[replicas.indexOf(primary)] as ReplicaSnapshot;
    return {
      ops,
      point: mine.point,
      head: mine.head,
      commit: () => {
        for (const s of staged) s.commit();
      },
      abandon: () => {
        for (const s of staged) s.abandon();
      },
    };
  }

  /**
   * Starts sending every later change and flush to `replica`, which is being filled: it is never read. When it fails
   * a change, it stops receiving them and `onFailure` runs before that change is acknowledged (R7); without one, the
   * change fails. Resolves once the changes in flight when it was called (sent before it, so not to `replica`) have
   * completed: a fill started after that finds them on its source (R14).
   */
  async addFilling(replica: Replica, onFailure?: FillingFailure): Promise<void> {
    if (this.replicas.some((r) => r.nodeId === replica.nodeId)) {
      throw new FerryError('FAILED_PRECONDITION', `node ${replica.nodeId} already holds a replica of this volume`);
    }
    this.filling.push({ replica, onFailure });
    await Promise.allSettled([...this.flights].map((f) => f.done));
  }

  /** A filling replica becomes in-sync: it may be read from now on (R15: the caller holds writes and has flushed it). */
  promote(nodeId: string): void {
    const i = this.filling.findIndex((f) => f.replica.nodeId === nodeId);
    if (i < 0) throw new FerryError('FAILED_PRECONDITION', `node ${nodeId} holds no replica being filled`);
    const [f] = this.filling.splice(i, 1);
    this.inSync.push((f as Filling).replica);
  }

  /**
   * Stops sending changes to node `nodeId`'s replica, waits for the changes in flight, and closes it. Never the last
   * in-sync replica. Resolves when it held none.
   */
  async removeReplica(nodeId: string): Promise<void> {
    let replica: Replica | undefined;
    const i = this.inSync.findIndex((r) => r.nodeId === nodeId);
    if (i >= 0) {
      if (this.inSync.length === 1) {
        throw new FerryError('FAILED_PRECONDITION', `node ${nodeId} holds the last in-sync replica; it cannot go`);
      }
      replica = this.inSync[i];
      this.inSync = this.inSync.filter((_, j) => j !== i);
    } else {
      const f = this.filling.find((x) => x.replica.nodeId === nodeId);
      this.filling = this.filling.filter((x) => x !== f);
      replica = f?.replica;
    }
    if (replica === undefined) return;
    await Promise.allSettled([...this.flights].map((f) => f.done));
    await replica.close();
  }

  /**
   * Holds the byte range [offset, offset+length) for a copy (R14): new changes overlapping it wait until the returned
   * release is called; resolves once the overlapping changes already in flight have completed. Other ranges go on.
   * Holds do not exclude each other (the fill's steps are disjoint).
   */
  async holdRange(offset: number, length: number): Promise<() => void> {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const hold: Hold = { start: offset, end: offset + length, released };
    this.holds.add(hold);
    const waiting = [...this.flights].filter((f) => overlaps(f, hold)).map((f) => f.done);
    if (waiting.length > 0) await Promise.allSettled(waiting);
    return () => {
      if (this.holds.delete(hold)) release();
    };
  }

  /** Releases every replica's resources for this open (flush first). */
  async close(): Promise<void> {
    await this.all((r) => r.close());
  }

  /** A change of [offset, offset+length): after the holds over it, tracked while in flight, sent to every replica. */
  private async change(offset: number, length: number, fn: (r: Replica) => Promise<void>): Promise<void> {
    const span: Span = { start: offset, end: offset + length };
    if (this.holds.size > 0) {
      for (;;) {
        const blocking = [...this.holds].find((h) => overlaps(h, span));
        if (blocking === undefined) break;
        await blocking.released;
      }
    }
    let done!: () => void;
    const flight: Flight = {
      ...span,
      done: new Promise<void>((resolve) => {
        done = resolve;
      }),
    };
    this.flights.add(flight);
    try {
      await this.all(fn);
    } finally {
      this.flights.delete(flight);
      done();
    }
  }

  private async all(fn: (r: Replica) => Promise<void>): Promise<void> {
    if (this.filling.length === 0) {
      if (this.inSync.length === 1) return fn(this.inSync[0] as Replica);
      await Promise.all(this.inSync.map(fn));
      return;
    }
    const filling = [...this.filling];
    await Promise.all([...this.inSync.map(fn), ...filling.map((f) => this.toFilling(f, fn))]);
  }

  /** Sends a change to a filling replica; its failure takes it out of the fan-out and runs its handler. */
  private async toFilling(f: Filling, fn: (r: Replica) => Promise<void>): Promise<void> {
    try {
      await fn(f.replica);
    } catch (err: unknown) {
      if (f.onFailure === undefined) throw err;
      if (f.failed === undefined) {
        this.filling = this.filling.filter((x) => x !== f);
        f.failed = f.onFailure(err);
      }
      await f.failed;
    }
  }
}

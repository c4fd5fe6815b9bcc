/**
 * A replica: one copy of a volume's blocks, on one node. Today a volume has one, its layer tree on the node that
 * holds it (`LocalReplica`, node/engine/local-replica.ts); replication adds replicas on other nodes behind the same
 * interface, reached over the replication port, and the volume's coordinator (node/engine/coordinator.ts) fans each
 * change out to all of them. Nothing here may assume files: a remote replica implements it over the network.
 */
import { FerryError } from '../../common/index.js';
import type { StoreOp } from '../cluster/types.js';
import type { RangeTuple } from './records.js';
import type { ChangedBlocksPage, StatusExtent, WriteOptions } from './types.js';

/**
 * A request refused because its epoch is not the one the replica holds (docs/REPLICATION.md, F3): lower (the sender
 * is no longer the volume's coordinator: FENCED) or never opened. `heldEpoch` is the replica's. The replication wire
 * carries it as the STALE_EPOCH reply flag (node/replication/frame.ts), so a remote replica's refusal is one too.
 */
export class StaleEpochError extends FerryError {
  constructor(
    readonly heldEpoch: number,
    message: string,
  ) {
    super('FAILED_PRECONDITION', message);
  }
}

/**
 * The ranges a replica changed recently (docs/REPLICATION.md, R12 and F5): every change since its second-to-last
 * completed flush, so they cover every change not known flushed on every replica. `complete` is false when the
 * replica cannot know them (its process restarted while the volume was attached somewhere): treat it as unknown.
 */
export interface RecentWrites {
  complete: boolean;
  /** Sorted, disjoint `[offset, length]` byte ranges; coalesced, so they may over-cover. */
  ranges: RangeTuple[];
}

/**
 * A snapshot staged on a replica: the replica has made every write acknowledged before `snapshot` was called
 * durable and prepared a frozen point; nothing is visible until the caller commits `ops` (in the same store
 * transaction as the catalog's snapshot record), then calls `commit`, or calls `abandon` when that transaction failed.
 */
export interface ReplicaSnapshot {
  /** Store changes that record the replica's side of the snapshot (its own keys only). */
  readonly ops: readonly StoreOp[];
  /** The replica's name for the frozen point (the catalog's snapshot record carries it as `layer`). */
  readonly point: string;
  /** The replica's name for its new writable head (the volume record carries it as `top`). */
  readonly head: string;
  /** The transaction committed: writes from now on go above the frozen point. */
  commit(): void;
  /** The transaction failed: the replica forgets what it staged and goes on as before. */
  abandon(): void;
  /**
   * Neither commit nor abandon will come (the coordinator's connection ended, S4): the replica learns from the
   * store whether the transaction committed, and commits or abandons accordingly. Absent: abandon.
   */
  lost?(): Promise<void>;
}

/** A page of the blocks changed between two of the replica's snapshots (or one and its live head). */
export interface ReplicaDiffRequest {
  /** Snapshot to diff from; absent: since the volume was empty (the allocation map). */
  base_snapshot_id?: string;
  /** Snapshot to diff to; absent: the live head. */
  target_snapshot_id?: string;
  /** Size in bytes of the target. */
  size: number;
  /** Resume after this byte offset. */
  offset: number;
  /** Maximum extents in the page. */
  limit: number;
}

/**
 * One copy of a volume (or a read-only view of one of its snapshots). Offsets and lengths are bytes, already checked
 * against the volume's size by the caller (the device above the coordinator).
 */
export interface Replica {
  /** The node that holds this replica. */
  readonly nodeId: string;
  /** The bytes at [offset, offset+length): in `into` (its first `length` bytes) when given, else a new buffer. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  /** Writes `data` at `offset`. Acknowledged means applied (reads see it); durable only after `flush` (or FUA). */
  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void>;
  /** Makes the range read as zeros, giving back the space it can. Same durability as `write`. */
  writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void>;
  /** Discards the range (it reads as zeros afterwards). Same durability as `write`. */
  trim(offset: number, length: number, options?: WriteOptions): Promise<void>;
  /**
   * Durability: when the promise resolves, every write, zero and trim this replica acknowledged before `flush` was
   * called survives a crash of the replica's node (power loss included), and reads after a restart return it. A
   * write acknowledged but not yet flushed may be lost by a crash, but then reads return the previous flushed
   * content of those blocks, never a mix of old map and new data. Rejects (the caller must treat the replica as
   * failed or out of sync) when that cannot be guaranteed.
   */
  flush(): Promise<void>;
  /** Consecutive extents covering [offset, offset+length) with their state. */
  blockStatus(offset: number, length: number): Promise<StatusExtent[]>;
  /**
   * Stages a snapshot named `snapshotId` (a catalog id): see ReplicaSnapshot. Callers hold writes while it runs.
   * `headId` names the new writable head: the coordinator passes one id to every replica, so that all replicas of a
   * volume use the same layer ids (default: the replica picks one).
   */
  snapshot(snapshotId: string, headId?: string): Promise<ReplicaSnapshot>;
  /** Blocks changed between two snapshots of this replica (or one and the live head), a page at a time. */
  changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage>;
  /**
   * A number that grows with every change this replica applies (writes, zeroes, trims, snapshots): two replicas of
   * a volume fed the same changes have the same generation, and the one behind is the one to resync. Kept in memory
   * for now (replication will persist it with the replica's epoch).
   */
  generation(): number;
  /** The ranges this replica changed since its second-to-last flush (R12): see RecentWrites. */
  recentWrites(): Promise<RecentWrites>;
  /** Releases what the replica holds for this open (e.g. an unwrapped key). Does not flush: flush first. */
  close(): Promise<void>;
}

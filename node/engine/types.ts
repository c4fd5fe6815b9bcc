/**
 * Public shapes of the block engine. Everything outside `node/engine` (NBD server, API, CloudSnap) talks to the
 * engine through these types only.
 */
import type { ReplicaHost } from './cluster-ports.js';
import type { VolumeStatus } from './records.js';
import type { SpaceStatus } from './space.js';

/** A byte range. */
export interface Extent {
  offset: number;
  length: number;
}

/** State of a byte range as NBD `base:allocation` sees it. */
export type BlockState = 'data' | 'zero';

export interface StatusExtent {
  length: number;
  /** 'data': holds written data; 'zero': never written, trimmed or zeroed (reads return zeros, holds no space). */
  state: BlockState;
}

export interface WriteOptions {
  /** Force unit access: the write is durable when the promise resolves. */
  fua?: boolean;
  /**
   * The data will not be read back soon (a restore's): the engine may write it past the page cache (direct I/O
   * where buffer, offset and length are 4 KiB-aligned), sparing the copy and the write-back. Durable only on flush,
   * as any write.
   */
  uncached?: boolean;
}

/**
 * A volume or snapshot opened for I/O. Offsets and lengths are bytes; any alignment is accepted (sub-4 KiB writes
 * are read-modify-write inside the engine). Out-of-range I/O rejects with INVALID_ARGUMENT; any write to a read-only
 * device rejects with PERMISSION_DENIED.
 */
export interface BlockDevice {
  /** Export name: `VOLUME` or `VOLUME@SNAPSHOT`. */
  readonly name: string;
  /** Size in bytes at open time. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Minimum I/O block the device prefers (bytes); smaller is accepted. */
  readonly blockSize: number;
  /** The bytes at [offset, offset+length): in `into` (its first `length` bytes) when given, else a new buffer. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void>;
  /** Makes the range read as zeros; frees the space where it can. */
  writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void>;
  /** Discards the range: afterwards it reads as zeros. */
  trim(offset: number, length: number, options?: WriteOptions): Promise<void>;
  /** Makes every write completed before this call durable. */
  flush(): Promise<void>;
  /** Consecutive extents covering [offset, offset+length) (the last may end early, never past the device). */
  blockStatus(offset: number, length: number): Promise<StatusExtent[]>;
  /** Flushes and releases the device (and the writer slot of its volume). */
  close(): Promise<void>;
}

/** Finds exports by name for the NBD server. */
export interface ExportProvider {
  /** Names of all exports (volumes, and `VOLUME@SNAPSHOT` for each snapshot). */
  listExports(): Promise<string[]>;
  /** Size and read-only flag of an export without opening it; NOT_FOUND when there is no such export. */
  describeExport(name: string): Promise<{ size: number; readOnly: boolean; blockSize: number }>;
  /**
   * Opens an export. A snapshot export is always read-only. A volume that is not shared accepts one writer at a
   * time: a second open for writing rejects with FAILED_PRECONDITION naming who holds it and since when.
   */
  openExport(name: string, options?: OpenExportOptions): Promise<BlockDevice>;
}

/** How a hold of a volume's writes ends: writes go on, or the volume moved away (held writes then fail). */
export type HoldOutcome = { state: 'up' } | { state: 'migrated'; to: string };

/** A hold of a volume's writes (VolumeEngine.holdWrites). */
export interface WriteHold {
  /** Ends the hold (once): the record changes first, then the held writes go on or fail. */
  end(outcome: HoldOutcome): Promise<void>;
}

export interface OpenExportOptions {
  /** Who opens it (an NBD client's address), recorded as the volume's holder while the device is open. */
  holder?: string;
}

/** Who holds a volume open as a writer. */
export interface VolumeHolder {
  /** The opener's description (an NBD client's `address:port`, or `restore` for a restore job). */
  client: string;
  /** ISO-8601 time it opened the volume. */
  since: string;
}

export interface VolumeInfo {
  id: string;
  name: string;
  size: number;
  ha_level: number;
  labels: Record<string, string>;
  /** ISO-8601 time of creation. */
  created: string;
  /** Number of user-visible snapshots. */
  snapshot_count: number;
  /**
   * 'up' when usable; 'restoring' while a restore (or a migration into it) is incomplete (never served as complete);
   * 'migrating' while a migration's cutover holds its writes; 'migrated' once it moved to another cluster (read-only).
   */
  status: VolumeStatus;
  /** Where a migrated volume went. */
  migrated_to?: string;
  /** True while an NBD writer (or another opener) holds the volume. */
  attached: boolean;
  /** Who holds the volume open as a writer, when anyone does. */
  attached_by?: VolumeHolder[];
  /** The node coordinating the volume's writes (where it is attached), when one does: cluster-wide. */
  attached_node?: string;
  /**
   * `resync`: `attached_node` attached the volume itself to bring its replicas back in sync (nobody else had it
   * attached; `attached` is false): any attach or operation elsewhere makes it give the volume up.
   */
  attached_for?: 'resync';
  /** Whether several writers may attach at once. */
  shared: boolean;
  /** The snapshot this volume was cloned from, if any. */
  parent_snapshot_id?: string;
  /** Bytes of data held by this volume's writable layer (not counting what it shares with snapshots). */
  bytes_used: number;
  /**
   * Bytes of data held by this volume's writable layer and its snapshots' layers: the space the volume takes with its
   * snapshots (data a clone shares with the snapshot it came from is not counted).
   */
  bytes_used_total: number;
  /** Whether the volume's data is encrypted at rest (AES-256-XTS under a per-volume key). */
  encrypted: boolean;
  /** For encrypted volumes: the KEK wrapping the volume's data key, and its key provider. */
  encryption?: { kek: string; key_provider: string };
  /** Why the volume cannot be opened at all (e.g. "KEK team-a destroyed"); absent when it can. */
  unavailable?: string;
  /**
   * The nodes holding a replica of the volume (one for now). A volume is opened, snapshotted and backed up on a node
   * holding it; other nodes list and inspect it from the cluster's catalog, where `attached` is false and the
   * `bytes_used` fields are 0 (only the holding node counts them).
   */
  replicas?: VolumeReplicaInfo[];
  /** Whether the node that answered holds a replica of the volume (and so can open it). */
  held_here?: boolean;
  /**
   * Replication health: `degraded` while some replica is not in-sync (OpenStorage VOLUME_STATUS_DEGRADED), `down`
   * when none is (I/O fails). Absent on single-replica volumes that are fine.
   */
  health?: 'healthy' | 'degraded' | 'down';
}

/** A node holding a replica of a volume. */
export interface VolumeReplicaInfo {
  /** The node's id (`ferry node list`). */
  node_id: string;
  /** `in-sync`, `filling` or `out-of-sync` (docs/REPLICATION.md). */
  state: 'in-sync' | 'filling' | 'out-of-sync';
  /** While filling or out-of-sync: bytes copied of the total, the rate and the ETA when known. */
  resync?: {
    kind: 'fill' | 'dirty';
    copied_bytes: number;
    total_bytes: number;
    bytes_per_second?: number;
    eta_seconds?: number;
  };
  /** RFC 3339: when it last left in-sync. */
  since?: string;
  /** Why it left in-sync. */
  reason?: string;
}

export interface SnapshotInfo {
  id: string;
  name: string;
  volume_id: string;
  volume_name: string;
  /** Size of the volume when the snapshot was taken. */
  size: number;
  labels: Record<string, string>;
  created: string;
}

export interface CreateVolumeRequest {
  name: string;
  size: number;
  /** Number of replicas, 1 to 3 (default 1, or the length of `replica_nodes`). */
  ha_level?: number;
  /** Nodes to hold the replicas, by id (`--nodes`); their number must not exceed `ha_level`. */
  replica_nodes?: string[];
  /** Only nodes labelled `rack=` one of these (`--racks`), one replica per rack while racks remain. */
  racks?: string[];
  /** Only nodes labelled `zone=` one of these (`--zones`). */
  zones?: string[];
  labels?: Record<string, string>;
  shared?: boolean;
  /** Create the volume in the 'restoring' state: not attachable until `completeRestore`. */
  restoring?: boolean;
  /**
   * Encrypt the volume's data at rest. Also asked by the label `ferry.io/encrypted=true`, which an encrypted volume
   * always carries (so a backup of it restores into an encrypted volume). The KEK is the label `ferry.io/kek` (default:
   * the key resolver's, the local keyring's `default`) of the provider in `ferry.io/key-provider` (default `local`):
   * the same labels that choose the KEK of the volume's backups. Default false.
   */
  encrypted?: boolean;
}

export interface UpdateVolumeRequest {
  /** New size in bytes; must not shrink. */
  size?: number;
  /** Labels to set (a value of '' removes the label). */
  labels?: Record<string, string>;
  /**
   * New number of replicas (`ferry volume ha-update --repl N`), one step up or down at a time: raising adds a
   * `filling` replica that is copied in the background; lowering drops one.
   */
  ha_level?: number;
  /** With `ha_level`: the node to add the replica on (raising) or to drop it from (lowering); default: placement. */
  replica_node?: string;
  /**
   * The volume's resync bandwidth cap, bytes per second (VolumeRecord.resync_bandwidth): 0 for none, null to follow
   * the cluster-wide one again.
   */
  resync_bandwidth?: number | null;
}

export interface ChangedBlocksRequest {
  /** Snapshot to diff from; absent means "since the volume was empty" (the allocation map). */
  base_snapshot_id?: string;
  /** Snapshot to diff to; absent means the live volume. */
  target_snapshot_id?: string;
  /** Resume after this byte offset (from `next_offset` of the previous page). */
  offset?: number;
  /** Maximum extents in this page (default 1000). */
  limit?: number;
}

export interface ChangedBlocksPage {
  /** Sorted, non-overlapping, merged extents. */
  extents: Extent[];
  /** Granularity of the map in bytes: every extent starts and ends on it (or at the volume end). */
  block_size: number;
  /** Offset to pass to get the next page; absent at the end. */
  next_offset?: number;
  /** Size in bytes of the target (snapshot or live volume). */
  size: number;
}

export interface CloneVolumeRequest {
  /** A volume id or name (a snapshot of it is taken first) or a snapshot id. */
  parent_id: string;
  name: string;
  labels?: Record<string, string>;
}

/** One snapshot of a group: the volume and the snapshot's name and labels. */
export interface GroupSnapshotRequest extends CreateSnapshotRequest {
  /** Volume id or name. */
  volume_id: string;
}

export interface CreateSnapshotRequest {
  /** Unique among the volume's snapshots; same rules as volume names. */
  name: string;
  labels?: Record<string, string>;
}

/**
 * The volume and snapshot operations of a node. Every method rejects with a FerryError: INVALID_ARGUMENT (with the
 * field), NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, RESOURCE_EXHAUSTED (65th snapshot), never anything else
 * for bad input, and changes nothing when it rejects.
 */
export interface VolumeEngine extends ExportProvider {
  /**
   * This node's replicas, served to other nodes' coordinators (the replication server calls it; a test's direct
   * connector too): `open` loads a volume created elsewhere on demand and makes the empty layer tree of a new replica.
   */
  readonly replicaHost: ReplicaHost;
  /** Idempotent by name: the same name and size returns the existing volume with `created: false`. */
  createVolume(request: CreateVolumeRequest): Promise<{ volume: VolumeInfo; created: boolean }>;
  listVolumes(): Promise<VolumeInfo[]>;
  /** By id or by name. */
  inspectVolume(idOrName: string): Promise<VolumeInfo>;
  updateVolume(idOrName: string, request: UpdateVolumeRequest): Promise<VolumeInfo>;
  /** Deletes the volume and its snapshots; clones made from them keep working. Refused while attached. */
  deleteVolume(idOrName: string): Promise<void>;
  cloneVolume(request: CloneVolumeRequest): Promise<VolumeInfo>;
  createSnapshot(volumeIdOrName: string, request: CreateSnapshotRequest): Promise<SnapshotInfo>;
  /**
   * Snapshots of several volumes at one point in time: writes to all of them are held while every snapshot is taken,
   * and all are committed in one store transaction (all or none). Volumes must be distinct. Optional: an engine
   * without it (e.g. a stand-in) cannot take group backups.
   */
  createSnapshots?(requests: readonly GroupSnapshotRequest[]): Promise<SnapshotInfo[]>;
  listSnapshots(volumeIdOrName: string): Promise<SnapshotInfo[]>;
  /** By snapshot id, or `VOLUME@SNAPSHOT`. */
  inspectSnapshot(idOrExport: string): Promise<SnapshotInfo>;
  /**
   * Deletes the snapshot's record: it is gone from lists and exports once this resolves. The space only it held is
   * reclaimed in the background (folding its layer into a neighbour's); `settled` waits for that.
   */
  deleteSnapshot(idOrExport: string): Promise<void>;
  /** Resolves once background work started so far (the space of deleted snapshots) has ended. Optional. */
  settled?(): Promise<void>;
  /**
   * Why the volume cannot be opened right now, apart from a writer holding it (`attached_by` says who): it is
   * restoring, or its data key cannot be unwrapped (e.g. its KEK was destroyed). Undefined when it can. Optional.
   */
  openProblem?(idOrName: string): Promise<string | undefined>;
  /** Makes the live volume equal to the snapshot. Refused (FAILED_PRECONDITION) while the volume is attached. */
  restoreSnapshot(volumeIdOrName: string, snapshotIdOrExport: string): Promise<void>;
  changedBlocks(volumeIdOrName: string, request: ChangedBlocksRequest): Promise<ChangedBlocksPage>;
  /** Opens a volume for writing even while it is 'restoring' (for the restore job that fills it). */
  openForRestore(idOrName: string): Promise<BlockDevice>;
  /** Marks a volume created with `restoring` complete: it becomes 'up' and attachable. */
  completeRestore(idOrName: string): Promise<VolumeInfo>;
  /**
   * Holds every write to an 'up' volume, for a migration's cutover: its record says 'migrating' (nobody attaches
   * it meanwhile) and writes through this node's attachment wait until the hold ends. RunsElsewhere when it is
   * attached on another node (the hold is taken there). Optional: an engine without it cannot be migrated from.
   */
  holdWrites?(idOrName: string): Promise<WriteHold>;
  /**
   * Ends the hold a node left when it stopped (the volume stays 'migrating' in the record): back to 'up', or
   * 'migrated'. Nothing when the volume is not 'migrating'.
   */
  endHold?(idOrName: string, outcome: HoldOutcome): Promise<VolumeInfo>;
  /**
   * The data directory's space: size, free bytes, thresholds and state (`ok`, `warn`, `full`: new data refused).
   * Optional: an engine without a data directory (a stand-in) has none.
   */
  spaceStatus?(): Promise<SpaceStatus>;
  /** Flushes everything and closes files. */
  close(): Promise<void>;
}

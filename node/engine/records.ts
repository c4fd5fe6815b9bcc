import type { VolumeEncryption } from './keys.js';

/**
 * A replica's state (docs/REPLICATION.md, section 2): `in-sync` replicas receive every write and are read; `filling`
 * ones receive every write and are being copied to, never read; `out-of-sync` ones receive nothing until a resync.
 */
export type ReplicaState = 'in-sync' | 'filling' | 'out-of-sync';

/** A byte range `[offset, length]` in a record (kept short: records are JSON in the cluster store). */
export type RangeTuple = [offset: number, length: number];

/**
 * What a replica lacks and the progress of copying it (docs/REPLICATION.md, R10-R17): `ha-update` filling a new
 * replica, a returning replica's resync, a replacement's fill.
 */
export interface ReplicaResync {
  /**
   * `fill`: a new replica or one of unknown history: copy the source's allocated data (and trim its holes on the
   * target). `dirty`: a returning replica: copy only the blocks changed since `base_snapshot_id` plus `extra`.
   */
  kind: 'fill' | 'dirty';
  /** Byte offset below which the copy is done and flushed on the target (resume from here). */
  cursor: number;
  copied_bytes: number;
  /** What the copy has to move in all (for `dirty`: the changed bytes; for `fill`: the allocated bytes). */
  total_bytes: number;
  /** RFC 3339: when the copy started (absent while a `dirty` replica waits to come back). */
  started: string;
  /**
   * `dirty`: the hidden snapshot (label RESYNC_SNAPSHOT_LABEL, holders: the replicas in-sync at that moment) frozen
   * when this replica went out of sync: what changed since it is what the replica lacks. Deleted when the resync
   * completes or the replica is dropped.
   */
  base_snapshot_id?: string;
  /**
   * `dirty`: ranges that may differ besides the changes since the base: writes in flight or not yet flushed on this
   * replica when it failed (it may have lost them, or hold writes the others never got). Coalesced; may over-cover.
   */
  extra?: RangeTuple[];
  /**
   * `dirty`, marked at a takeover: the replica may hold writes of the old coordinator that the others never got, so
   * its own recent writes (Replica.recentWrites) join what it lacks when it comes back; when it cannot tell them (it
   * restarted), it is filled instead.
   */
  own_writes?: boolean;
  /** Bytes per second over the last progress interval (for the ETA in inspect and /metrics). */
  rate?: number;
  /**
   * Set when the copy failed again after reaching offset `below` (docs/REPLICATION.md, R14a): below it the copy was
   * done, so there the replica lacks only what changed since the hidden snapshot `base_snapshot_id` (frozen on the
   * in-sync replicas when it failed) plus `extra` (writes in flight or recent then). The copy set is that below
   * `below`, and the set of `kind` at and above it, in one pass from `cursor`.
   */
  low?: ResyncLow;
}

/** The part of a resync below a copy that failed again (ReplicaResync.low). */
export interface ResyncLow {
  /** Offset below which the earlier copy was done. */
  below: number;
  /** Hidden snapshot (label RESYNC_SNAPSHOT_LABEL) frozen on the in-sync replicas when the copy failed. */
  base_snapshot_id: string;
  /** Ranges that may differ besides the changes since that base. */
  extra?: RangeTuple[];
}

/**
 * A node that holds a replica of a volume (its layer tree, under that node's keys: node/engine/local-layers.ts).
 * Every replica of a volume uses the same layer ids (the coordinator names new layers), so the record's `top` and
 * a snapshot's `layer` name a layer in every holder's tree.
 */
export interface ReplicaRecord {
  /** The holding node's id (`<dataDir>/node-id`). */
  node_id: string;
  /** Absent in records written before replication: `in-sync`. */
  state?: ReplicaState;
  /** While `filling`, and while `out-of-sync`: what it lacks and how far the copy got. */
  resync?: ReplicaResync;
  /** RFC 3339: when it last left `in-sync` (the replacement timeout counts from here). */
  since?: string;
  /** Why it left `in-sync` (the error that failed it, or "unreachable at takeover"), for inspect. */
  reason?: string;
}

/** Where a volume is attached for writing (docs/REPLICATION.md, F1-F2). */
export interface AttachRecord {
  node_id: string;
  /** RFC 3339. */
  since: string;
  /**
   * `resync`: no client attached it; the node did, to bring its replicas back in sync (docs/REPLICATION.md, R19),
   * and gives it up to any attach or operation asked of another node.
   */
  for?: 'resync';
}

/**
 * 'up': usable; 'restoring': a restore (or a migration) fills it, not attachable; 'migrating': a migration's cutover
 * holds its writes (not attachable for those seconds); 'migrated': it moved to another cluster, read-only here.
 */
export type VolumeStatus = 'up' | 'restoring' | 'migrating' | 'migrated';

/** What the catalog keeps about a volume (key `/ferry/volumes/<id>`, node/engine/catalog.ts). */
export interface VolumeRecord {
  id: string;
  name: string;
  size: number;
  ha_level: number;
  labels: Record<string, string>;
  created: string;
  shared: boolean;
  /** The writable layer on top of the volume's chain, in the tree of the node in `replicas`. */
  top: string;
  parent_snapshot_id?: string;
  status: VolumeStatus;
  /** Where a migrated volume went (status 'migrated'): the pair and the volume on the other cluster. */
  migrated_to?: string;
  /** Present on encrypted volumes: the wrapped data key of the volume's layer tree (docs/ENGINE.md, Encryption). */
  encryption?: VolumeEncryption;
  /**
   * The nodes holding a replica of the volume: one for now. Records written before the catalog existed lack it;
   * the node holding their layers adds it when it first starts (node/engine/local-layers.ts, upgradeLayout).
   */
  replicas?: ReplicaRecord[];
  /** The attach lock's create revision of the current (or last) coordinator's tenure (docs/REPLICATION.md, F1). */
  epoch?: number;
  /** Present while a node coordinates the volume's writes. */
  attached?: AttachRecord;
  /** Resync bandwidth cap of this volume, bytes per second (absent: the cluster-wide one; 0: none). */
  resync_bandwidth?: number;
}

/**
 * Cluster-wide replication settings (key REPLICATION_SETTINGS_KEY), read by watch so that a change applies at once.
 */
export interface ReplicationSettings {
  /** Resync bandwidth cap per node, bytes per second; absent or 0: none. */
  resync_bandwidth?: number;
  /** How long a replica may stay out of sync before a new one replaces it, seconds (default 600). */
  replica_timeout_seconds?: number;
}

/** What the catalog keeps about a snapshot (key `/ferry/snapshots/<id>`). */
export interface SnapshotRecord {
  id: string;
  name: string;
  volume_id: string;
  /** The frozen layer that holds the snapshot's view, in the tree of the node holding the volume. */
  layer: string;
  size: number;
  labels: Record<string, string>;
  created: string;
  /** Node ids of the replicas that hold the snapshot (docs/REPLICATION.md, S3). Absent: the volume's replicas. */
  holders?: string[];
}

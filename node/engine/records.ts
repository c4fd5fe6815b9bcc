import type { VolumeEncryption } from './keys.js';

/**
 * A replica's state (docs/REPLICATION.md, section 2): `in-sync` replicas receive every write and are read; `filling`
 * ones receive every write and are being copied to, never read; `out-of-sync` ones receive nothing until a resync.
 */
export type ReplicaState = 'in-sync' | 'filling' | 'out-of-sync';

/** Progress of copying data to a replica (`ha-update` filling a new one; a resync in issue 23). */
export interface ReplicaResync {
  /** `fill`: a new replica, copying the source's allocated data; `dirty`: a returning one (issue 23). */
  kind: 'fill' | 'dirty';
  /** Byte offset below which the copy is done and flushed on the target. */
  cursor: number;
  copied_bytes: number;
  total_bytes: number;
  /** RFC 3339: when the copy started. */
  started: string;
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
  /** While `filling` (and kept while out-of-sync after a failed fill). */
  resync?: ReplicaResync;
}

/** Where a volume is attached for writing (docs/REPLICATION.md, F1-F2). */
export interface AttachRecord {
  node_id: string;
  /** RFC 3339. */
  since: string;
}

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
  status: 'up' | 'restoring';
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

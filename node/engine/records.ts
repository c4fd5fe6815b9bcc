import type { VolumeEncryption } from './keys.js';

/** A node that holds a replica of a volume (its layer tree, under that node's keys: node/engine/local-layers.ts). */
export interface ReplicaRecord {
  /** The holding node's id (`<dataDir>/node-id`). */
  node_id: string;
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
}

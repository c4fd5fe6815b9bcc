import type { StoreOp } from '../cluster/types.js';
import type { VolumeEncryption } from './keys.js';
import type { LayerRecord } from './layer.js';

/** What the cluster store keeps about a volume. */
export interface VolumeRecord {
  id: string;
  name: string;
  size: number;
  ha_level: number;
  labels: Record<string, string>;
  created: string;
  shared: boolean;
  /** The writable layer on top of the volume's chain. */
  top: string;
  parent_snapshot_id?: string;
  status: 'up' | 'restoring';
  /** Present on encrypted volumes: the wrapped data key of the volume's layer tree (docs/ENGINE.md, Encryption). */
  encryption?: VolumeEncryption;
}

/** What the cluster store keeps about a snapshot. */
export interface SnapshotRecord {
  id: string;
  name: string;
  volume_id: string;
  /** The frozen layer that holds the snapshot's view. */
  layer: string;
  size: number;
  labels: Record<string, string>;
  created: string;
}

/** Key layout of the engine's records in the cluster store. */
export const keys = {
  volumes: '/ferry/volumes/',
  snapshots: '/ferry/snapshots/',
  layers: '/ferry/layers/',
  volume: (id: string) => `/ferry/volumes/${id}`,
  snapshot: (id: string) => `/ferry/snapshots/${id}`,
  layer: (id: string) => `/ferry/layers/${id}`,
};

export const put = {
  volume: (v: VolumeRecord): StoreOp => ({ op: 'put', key: keys.volume(v.id), value: v }),
  snapshot: (s: SnapshotRecord): StoreOp => ({ op: 'put', key: keys.snapshot(s.id), value: s }),
  layer: (l: LayerRecord): StoreOp => ({ op: 'put', key: keys.layer(l.id), value: l }),
};

export const del = {
  volume: (id: string): StoreOp => ({ op: 'delete', key: keys.volume(id) }),
  snapshot: (id: string): StoreOp => ({ op: 'delete', key: keys.snapshot(id) }),
  layer: (id: string): StoreOp => ({ op: 'delete', key: keys.layer(id) }),
};

/**
 * The cluster-wide catalog: every volume and snapshot of the cluster, whichever node holds it, in the cluster store.
 *
 *   /ferry/volumes/<volume id>     VolumeRecord: name, size, spec, labels, status, encryption, replicas [{ node_id }]
 *   /ferry/snapshots/<snapshot id> SnapshotRecord: name, volume_id, size, labels, created
 *   /ferry/volume-names/<name>     { id }: the volume of that name (names are the cluster's), written with the volume
 *
 * Which node holds a volume is its record's `replicas` field (one entry for now; replication adds more). A node
 * keeps its own volumes in memory and reads the catalog for the others (list, inspect, and to say where a volume
 * is when it is asked to open one it does not hold).
 */
import type { ClusterStore, StoreOp } from '../cluster/types.js';
import type { SnapshotRecord, VolumeRecord } from './records.js';

export const catalogKeys = {
  volumes: '/ferry/volumes/',
  snapshots: '/ferry/snapshots/',
  volume: (id: string) => `/ferry/volumes/${id}`,
  snapshot: (id: string) => `/ferry/snapshots/${id}`,
  names: '/ferry/volume-names/',
  name: (name: string) => `/ferry/volume-names/${name}`,
};

/** The value of a volume-name key. */
export interface VolumeNameRecord {
  id: string;
}

export const put = {
  volume: (v: VolumeRecord): StoreOp => ({ op: 'put', key: catalogKeys.volume(v.id), value: v }),
  snapshot: (s: SnapshotRecord): StoreOp => ({ op: 'put', key: catalogKeys.snapshot(s.id), value: s }),
  /** The name key of a new volume (commit it with the volume's record). */
  name: (v: VolumeRecord): StoreOp => ({ op: 'put', key: catalogKeys.name(v.name), value: { id: v.id } }),
};

export const del = {
  volume: (id: string): StoreOp => ({ op: 'delete', key: catalogKeys.volume(id) }),
  snapshot: (id: string): StoreOp => ({ op: 'delete', key: catalogKeys.snapshot(id) }),
  name: (name: string): StoreOp => ({ op: 'delete', key: catalogKeys.name(name) }),
};

/** Whether `nodeId` holds a replica of the volume. */
export function holds(record: VolumeRecord, nodeId: string): boolean {
  return record.replicas?.some((r) => r.node_id === nodeId) === true;
}

/** The nodes holding the volume, for messages: `node a1b2...` or `no node (its record names none)`. */
export function holdersOf(record: VolumeRecord): string {
  const ids = (record.replicas ?? []).map((r) => r.node_id);
  return ids.length === 0 ? 'no node (its record names none)' : `node ${ids.join(', node ')}`;
}

/** Reads the catalog. */
export class Catalog {
  constructor(private readonly store: ClusterStore) {}

  async volumes(): Promise<VolumeRecord[]> {
    return (await this.store.list<VolumeRecord>(catalogKeys.volumes)).map((kv) => kv.value);
  }

  async snapshots(): Promise<SnapshotRecord[]> {
    return (await this.store.list<SnapshotRecord>(catalogKeys.snapshots)).map((kv) => kv.value);
  }

  async volume(id: string): Promise<VolumeRecord | undefined> {
    return this.store.get<VolumeRecord>(catalogKeys.volume(id));
  }

  async snapshot(id: string): Promise<SnapshotRecord | undefined> {
    return this.store.get<SnapshotRecord>(catalogKeys.snapshot(id));
  }

  /** The volume named `name`, or undefined (two reads, whatever the number of volumes). */
  async named(name: string): Promise<VolumeRecord | undefined> {
    const entry = await this.store.get<VolumeNameRecord>(catalogKeys.name(name));
    if (entry === undefined) return undefined;
    const record = await this.volume(entry.id);
    return record?.name === name ? record : undefined;
  }

  /** A volume by id or name, or undefined. */
  async findVolume(idOrName: string): Promise<VolumeRecord | undefined> {
    return (await this.volume(idOrName)) ?? (await this.named(idOrName));
  }

  /** The snapshots of volume `volumeId`. */
  async snapshotsOf(volumeId: string): Promise<SnapshotRecord[]> {
    return (await this.snapshots()).filter((s) => s.volume_id === volumeId);
  }
}

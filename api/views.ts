/**
 * Engine records -> OpenStorage-shaped JSON. A volume becomes an SdkVolumeInspectResponse `{ volume, name, labels }`
 * whose `volume` follows OpenStorage's Volume message (id, source, readonly, locator, ctime, spec, usage, status,
 * state) plus Ferry extras (snapshot_count, attached, bytes_used, export_name). A snapshot is a read-only Volume
 * whose `source.parent` is its volume's id, as in OpenStorage.
 */
import type { SnapshotInfo, VolumeInfo, VolumeReplicaInfo } from '../node/index.js';

/** OpenStorage VolumeStatus names. */
export type VolumeStatusName = 'VOLUME_STATUS_UP' | 'VOLUME_STATUS_DEGRADED' | 'VOLUME_STATUS_DOWN';
/** OpenStorage VolumeState names. */
export type VolumeStateName = 'VOLUME_STATE_AVAILABLE' | 'VOLUME_STATE_ATTACHED' | 'VOLUME_STATE_RESTORE';

/** The `volume` object of an inspect response. */
export interface VolumeView {
  id: string;
  /** For clones: the snapshot they came from; for snapshots: their volume. Absent otherwise. */
  source?: { parent: string };
  readonly: boolean;
  locator: { name: string; volume_labels: Record<string, string> };
  /** Creation time, RFC 3339. */
  ctime: string;
  /** `encrypted` (OpenStorage VolumeSpec): data encrypted at rest on the node. */
  spec: { size: number; ha_level: number; shared: boolean; encrypted: boolean };
  /** Ferry: for encrypted volumes (and their snapshots), the KEK wrapping the data key and its provider. */
  encryption?: { kek: string; key_provider: string };
  /** Bytes held by this volume's own layer (OpenStorage `usage`; same as `bytes_used`). */
  usage: number;
  status: VolumeStatusName;
  state: VolumeStateName;
  /** Ferry: user-visible snapshots of this volume (0 for a snapshot). */
  snapshot_count: number;
  /** Ferry: whether an NBD client holds the volume. */
  attached: boolean;
  /** Ferry: who holds the volume as a writer (an NBD client's address, or `restore`) and since when. */
  attached_by?: { client: string; since: string }[];
  /** Ferry (inspect only): why the volume cannot be opened now (restoring, its KEK unusable), when it cannot. */
  open_problem?: string;
  /** Ferry: bytes of data held by the writable layer. */
  bytes_used: number;
  /** Ferry: bytes of data held by the writable layer and the volume's snapshots (0 for a snapshot). */
  bytes_used_total: number;
  /** Ferry: the NBD export name (`VOLUME` or `VOLUME@SNAPSHOT`). */
  export_name: string;
  /** OpenStorage `error`: why the volume is VOLUME_STATUS_DOWN (e.g. "KEK team-a destroyed"); absent when up. */
  error?: string;
  /** OpenStorage `replica_sets`: the nodes holding the volume's replicas (one set). */
  replica_sets?: { nodes: string[] }[];
  /** Ferry: each replica's node and state, and a filling replica's progress (docs/REPLICATION.md). */
  replicas?: ReplicaView[];
  /** OpenStorage `attached_on`: the node coordinating the volume's writes (where it is attached), when one does. */
  attached_on?: string;
  /** `resync`: `attached_on` attached the volume only to resync its replicas (nobody else has it attached). */
  attached_for?: 'resync';
  /** Ferry: where the volume was migrated to (cluster pair, volume); it is read-only here. */
  migrated_to?: string;
  /** Ferry: true while a migration's cutover holds the volume's writes (a few seconds). */
  cutover?: boolean;
}

/** Ferry: one replica of a volume. */
export interface ReplicaView {
  node_id: string;
  /** `in-sync`, `filling` or `out-of-sync`. */
  state: 'in-sync' | 'filling' | 'out-of-sync';
  /** While it is being filled (or resynced): bytes copied of the total, the rate and the ETA when known. */
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

/** SdkVolumeInspectResponse. */
export interface InspectView {
  volume: VolumeView;
  name: string;
  labels: Record<string, string>;
}

function stateOf(info: VolumeInfo): VolumeStateName {
  if (info.status === 'restoring') return 'VOLUME_STATE_RESTORE';
  return info.attached ? 'VOLUME_STATE_ATTACHED' : 'VOLUME_STATE_AVAILABLE';
}

function replicaView(replica: VolumeReplicaInfo): ReplicaView {
  const view: ReplicaView = { node_id: replica.node_id, state: replica.state };
  if (replica.resync !== undefined) view.resync = { ...replica.resync };
  if (replica.since !== undefined) view.since = replica.since;
  if (replica.reason !== undefined) view.reason = replica.reason;
  return view;
}

/**
 * OpenStorage status: DOWN while restoring, unusable (its key) or with no in-sync replica; DEGRADED while a replica
 * is not in-sync (docs/REPLICATION.md, R8); else UP.
 */
function statusOf(info: VolumeInfo): VolumeStatusName {
  if (info.status !== 'up' || info.unavailable !== undefined || info.health === 'down') return 'VOLUME_STATUS_DOWN';
  return info.health === 'degraded' ? 'VOLUME_STATUS_DEGRADED' : 'VOLUME_STATUS_UP';
}

/** Presents a live volume. */
export function volumeView(info: VolumeInfo): InspectView {
  const volume: VolumeView = {
    id: info.id,
    readonly: info.status === 'migrated',
    locator: { name: info.name, volume_labels: { ...info.labels } },
    ctime: info.created,
    spec: { size: info.size, ha_level: info.ha_level, shared: info.shared, encrypted: info.encrypted },
    usage: info.bytes_used,
    status: statusOf(info),
    state: stateOf(info),
    snapshot_count: info.snapshot_count,
    attached: info.attached,
    bytes_used: info.bytes_used,
    bytes_used_total: info.bytes_used_total,
    export_name: info.name,
  };
  if (info.parent_snapshot_id !== undefined) volume.source = { parent: info.parent_snapshot_id };
  if (info.encryption !== undefined) volume.encryption = { ...info.encryption };
  if (info.attached_by !== undefined) volume.attached_by = info.attached_by.map((holder) => ({ ...holder }));
  if (info.unavailable !== undefined) volume.error = info.unavailable;
  else if (info.health === 'down') volume.error = 'no replica is in sync: the volume cannot be used until one is back';
  if (info.replicas !== undefined) {
    volume.replica_sets = [{ nodes: info.replicas.map((r) => r.node_id) }];
    volume.replicas = info.replicas.map(replicaView);
  }
  if (info.attached_node !== undefined) volume.attached_on = info.attached_node;
  if (info.attached_for !== undefined) volume.attached_for = info.attached_for;
  if (info.migrated_to !== undefined) volume.migrated_to = info.migrated_to;
  if (info.status === 'migrating') volume.cutover = true;
  return { volume, name: info.name, labels: { ...info.labels } };
}

/** Presents a snapshot; `parent` (its volume), when known, supplies ha_level and shared. */
export function snapshotView(snap: SnapshotInfo, parent?: VolumeInfo): InspectView {
  const volume: VolumeView = {
    id: snap.id,
    source: { parent: snap.volume_id },
    readonly: true,
    locator: { name: snap.name, volume_labels: { ...snap.labels } },
    ctime: snap.created,
    spec: { size: snap.size, ha_level: parent?.ha_level ?? 1, shared: false, encrypted: parent?.encrypted ?? false },
    usage: 0,
    status: parent?.unavailable === undefined ? 'VOLUME_STATUS_UP' : 'VOLUME_STATUS_DOWN',
    state: 'VOLUME_STATE_AVAILABLE',
    snapshot_count: 0,
    attached: false,
    bytes_used: 0,
    bytes_used_total: 0,
    export_name: `${snap.volume_name}@${snap.name}`,
  };
  if (parent?.encryption !== undefined) volume.encryption = { ...parent.encryption };
  if (parent?.unavailable !== undefined) volume.error = parent.unavailable;
  return { volume, name: snap.name, labels: { ...snap.labels } };
}

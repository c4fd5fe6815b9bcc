/**
 * CloudSnap records -> OpenStorage-shaped JSON: a backup record becomes an SdkCloudBackupInfo (plus Ferry fields), a
 * catalog becomes an SdkCloudBackupCatalogResponse whose `contents` are the backup's data extents.
 */
import type { BackupCatalog, BackupRecord, DamagedBackup } from '../cloudsnap/index.js';

/**
 * SdkCloudBackupInfo plus Ferry's fields. Every listed backup is committed: `status` is `Done`, or `Failed` for one
 * whose record does not open (then `damage` says why, and the fields the record held are empty).
 */
export interface CloudBackupInfoView {
  id: string;
  src_volume_id: string;
  src_volume_name: string;
  /** When the backup was committed (RFC 3339). */
  timestamp: string;
  /** The backup's labels: the volume's labels plus the ones the request added. */
  metadata: Record<string, string>;
  status: 'Done' | 'Failed';
  /** Ferry: why the backup's record does not open (absent for a healthy backup). */
  damage?: string;
  /** Ferry: when the backup started (its snapshot's time, RFC 3339). */
  created: string;
  /** Ferry: volume size in bytes (what a restore creates). */
  size: number;
  /** Ferry: whether every allocated block was read (first backup of a volume, or `full` asked for). */
  full: boolean;
  /** Ferry: the backup this one was diffed against (informational: restores never need it). */
  base_backup?: string;
  /**
   * Ferry: bytes of volume data the backup holds (its non-zero chunks, before compression; what a restore writes),
   * whether this backup or an earlier one uploaded them.
   */
  bytes_stored: number;
  /** Ferry: bytes of volume data this backup added that the repository did not hold (before compression). */
  bytes_new: number;
  /** Ferry: bytes this backup added to the repository (compressed and encrypted). */
  bytes_uploaded: number;
}

export function cloudBackupInfoView(record: BackupRecord): CloudBackupInfoView {
  const view: CloudBackupInfoView = {
    id: record.id,
    src_volume_id: record.volume_id,
    src_volume_name: record.volume_name,
    timestamp: record.completed,
    metadata: { ...record.labels },
    status: 'Done',
    created: record.created,
    size: record.size,
    full: record.full,
    bytes_stored: Math.min(record.chunks_total * record.chunk_size, record.size),
    bytes_new: record.stats.bytes_new,
    bytes_uploaded: record.stats.bytes_uploaded,
  };
  if (record.base_backup !== undefined) view.base_backup = record.base_backup;
  return view;
}

/** A backup whose record does not open: listed as Failed, with the reason, so it hides no other backup. */
export function damagedBackupInfoView(damaged: DamagedBackup): CloudBackupInfoView {
  return {
    id: damaged.id,
    src_volume_id: '',
    src_volume_name: '',
    timestamp: '',
    metadata: {},
    status: 'Failed',
    damage: `${damaged.object}: ${damaged.reason}`,
    created: '',
    size: 0,
    full: false,
    bytes_stored: 0,
    bytes_new: 0,
    bytes_uploaded: 0,
  };
}

/**
 * SdkCloudBackupCatalogResponse: `contents` lists the byte ranges of the volume that hold data, each as
 * `OFFSET+LENGTH` in bytes, in offset order (the rest of the volume restores as zeros); Ferry's `summary` counts the
 * manifest leaves, chunks and bytes, and says whether `contents` was cut short.
 */
export interface CloudBackupCatalogView {
  contents: string[];
  summary: Omit<BackupCatalog, 'extents'>;
}

export function cloudBackupCatalogView(catalog: BackupCatalog): CloudBackupCatalogView {
  const { extents, ...summary } = catalog;
  return { contents: extents.map((e) => `${e.offset}+${e.length}`), summary };
}

/** Engine granule: the unit of allocation, copy-on-write and changed-block tracking. */
export const GRANULE = 4096;
/**
 * Alignment of direct (uncached) writes in memory, in the file and in length: a page, a multiple of any disk's
 * sector. Whoever hands the engine data to write uncached (a restore's decoded slabs) lays it out on this.
 */
export const DIRECT_ALIGN = 4096;
/** Granules per map chunk (one chunk covers 16 MiB of a volume). */
export const CHUNK_GRANULES = 4096;
/** User-visible snapshots a volume may have. */
export const MAX_SNAPSHOTS = 64;
/**
 * Label of the snapshots CloudSnap keeps as the base of each repository's next incremental backup. They do not count
 * against MAX_SNAPSHOTS (users should not lose snapshot slots to backups) but have their own bound.
 */
export const BACKUP_SNAPSHOT_LABEL = 'ferry.io/backup';
/** Backup snapshots a volume may have: one per repository it is backed up to, plus those of running backups. */
export const MAX_BACKUP_SNAPSHOTS = 16;
/** Largest volume: 64 TiB. */
export const MAX_VOLUME_SIZE = 64 * 1024 ** 4;
/** Volume sizes must be a multiple of this. */
export const SIZE_ALIGNMENT = 4096;
/** Longest volume or snapshot name. */
export const MAX_NAME_LENGTH = 128;
/** Most labels on a volume or snapshot. */
export const MAX_LABELS = 64;
/** Highest replication level (`ha_level`). */
export const MAX_HA_LEVEL = 3;
/** Longest label key and value. */
export const MAX_LABEL_KEY_LENGTH = 253;
export const MAX_LABEL_VALUE_LENGTH = 1024;
/**
 * Label of the hidden snapshots that mark where an out-of-sync replica left (docs/REPLICATION.md, R10); its value is
 * that replica's node id. Not listed, not counted against MAX_SNAPSHOTS, deleted when the resync completes.
 */
export const RESYNC_SNAPSHOT_LABEL = 'ferry.io/resync';
/** Store key of the cluster-wide replication settings (records.ts ReplicationSettings). */
export const REPLICATION_SETTINGS_KEY = '/ferry/settings/replication';
/** Default time a replica may stay out of sync before it is replaced (seconds). */
export const DEFAULT_REPLICA_TIMEOUT_SECONDS = 600;

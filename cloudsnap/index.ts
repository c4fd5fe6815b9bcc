/** CloudSnap: backups of volumes into a deduplicated, compressed, encrypted repository on an object store. */
export { type BackupContext, type BackupOptions, backupVolume } from './backup.js';
export { type BlockSource, NO_BLOCK_SOURCE_MESSAGE, type RestoreTarget, type SnapshotSource } from './ports.js';
export type { Progress } from './progress.js';
export { type RewrapResult, rewrapConfig } from './repo/config.js';
export { type BackupRecord, type KekRef, type RepoConfig, type RepoOptions, Repository } from './repo/repository.js';
export { type RestoreContext, type RestoreOptions, restoreBackup } from './restore.js';

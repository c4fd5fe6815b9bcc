/** Public face of CloudSnap's control surface: backup and restore jobs and the operations on repositories. */
export type { BackupCatalog, CatalogExtent } from '../catalog.js';
export type { GcResult } from '../repo/gc.js';
export type { BackupRecord, DamagedBackup, IndexRepairReport, ObjectDamage } from '../repo/repository.js';
export type { VerifyCounts, VerifyProblem, VerifyProblemKind, VerifyRange, VerifyResult } from '../repo/verify.js';
export {
  CloudBackups,
  type EnumerateFilters,
  type EnumeratePage,
  type HistoryItem,
  type RepairResult,
} from './cloud-backups.js';
export { jobKey } from './job-store.js';
export { KEK_LABEL, KEY_PROVIDER_LABEL, kekPrefix } from './kek-repos.js';
export {
  type DestroyKeyResult,
  KeyService,
  type KeyServiceOptions,
  type LocalKekAdmin,
  type RotatedRepository,
  type RotateKeyRequest,
  type RotateKeyResult,
} from './keys.js';
export {
  type BackupJobRequest,
  type GroupBackupRequest,
  type JobEndedListener,
  JobManager,
  type JobManagerOptions,
  type RestoreJobRequest,
  SHUTDOWN_MESSAGE,
  STOPPED_MESSAGE,
  type VerifyJobRequest,
} from './manager.js';
export {
  type CredentialOwners,
  REPOSITORIES_PREFIX,
  type RepositoryBinding,
  RepositoryBindings,
} from './repo-bindings.js';
export { KEY_CACHE_TTL_MS, type RepositoryLease, RepositoryPool, type RepositoryPoolOptions } from './repo-pool.js';
export type { RetryOptions } from './retry.js';
export {
  FINAL_STATUSES,
  isFinal,
  JOB_STATUSES,
  JOBS_PREFIX,
  type JobOpType,
  type JobStatus,
  type JobStatusType,
  REQUESTED_STATES,
  RESTART_MESSAGE,
  type RequestedState,
  type VerifyJobReport,
} from './types.js';

/**
 * CloudSnap: backups of volumes into a deduplicated, compressed, encrypted repository on an object store. This file
 * is the folder's public face: other folders import CloudSnap from here only (the index.ts files of its subfolders
 * are faces inside CloudSnap). Two things are deliberately not here, each behind a face of its own:
 * - cloudsnap/store/index.ts: every object store, with the S3 and Google Cloud Storage classes, which load the AWS
 *   SDK (tens of MiB) when imported; a node that backs up to a directory never loads it.
 * - cloudsnap/testing.ts: the object-store conformance suite, which registers vitest tests.
 */

// The pipeline: one backup of a volume into a repository, one restore of a backup into a new volume.
export { type BackupContext, type BackupOptions, backupVolume } from './backup.js';
// The repository, and the operations on one: its config, catalog, garbage collection, verify.
export type { BackupCatalog, CatalogExtent } from './catalog.js';
// Cloud credentials: where repositories live and under which key (credentials/).
export {
  CREDENTIAL_PROVIDERS,
  type CreateCredentialRequest,
  type CredentialInfo,
  type CredentialProvider,
  CredentialStore,
  type CredentialStoreOptions,
  DirectoryPolicy,
  directoryRoots,
  type ObjectStoreCredential,
  type OpenObjectStore,
} from './credentials/index.js';
// The node's cloud-backup service: backup, restore and verify jobs, the operations on a credential's repositories,
// and the KEK operations (jobs/).
export {
  type BackupJobRequest,
  CloudBackups,
  type CredentialOwners,
  type DestroyKeyResult,
  type EnumerateFilters,
  type EnumeratePage,
  type GroupBackupRequest,
  type HistoryItem,
  isFinal,
  JOB_STATUSES,
  JOBS_PREFIX,
  type JobEndedListener,
  JobManager,
  type JobManagerOptions,
  type JobOpType,
  type JobStatus,
  type JobStatusType,
  jobKey,
  KeyService,
  type KeyServiceOptions,
  REQUESTED_STATES,
  RESTART_MESSAGE,
  type RepairResult,
  type RequestedState,
  type RestoreJobRequest,
  type RetryOptions,
  type RotatedRepository,
  type RotateKeyRequest,
  type RotateKeyResult,
  SHUTDOWN_MESSAGE,
  STOPPED_MESSAGE,
  type VerifyJobReport,
  type VerifyJobRequest,
} from './jobs/index.js';
// What CloudSnap needs of the block engine: the ports a node's engine fills (ports.ts), and what a process without
// one answers.
export { type BlockSource, NO_BLOCK_SOURCE_MESSAGE, type RestoreTarget, type SnapshotSource } from './ports.js';
export type { Progress } from './progress.js';
// For tests and benchmarks only (nothing in api/ or cli/ uses these): the repository's object encodings, to plant
// damage or stale objects in a store; S3's direct GET path; the chunk workers' pool and its idle release, whose
// buffers the memory benchmark counts.
export { encodeIndex } from './repo/chunk-index.js';
export { type RewrapResult, rewrapConfig } from './repo/config.js';
export { sealJson, sealObject } from './repo/envelope.js';
export { collectGarbage, type GcOptions, type GcResult } from './repo/gc.js';
export { packKey } from './repo/layout.js';
export {
  type BackupRecord,
  type DamagedBackup,
  type IndexRepairReport,
  type KekRef,
  type ObjectDamage,
  type RepoConfig,
  type RepoOptions,
  Repository,
} from './repo/repository.js';
export {
  type VerifyCounts,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyProblemKind,
  type VerifyRange,
  type VerifyResult,
  verifyBackups,
} from './repo/verify.js';
export { type RestoreContext, type RestoreOptions, restoreBackup } from './restore.js';
// Retention: which backups a schedule keeps ("every hour, keep 24; every day, keep 7").
export { planRetention, type RetentionPlan, type RetentionRules } from './retention.js';
// Object stores: the contract, the directory and Azure Blob backends, opening a credential's store (a cloud SDK loads
// on first use), and the wrappers that prefix, count and meter requests (store/). The S3 and Google Cloud Storage
// classes load the AWS SDK when imported, so they are not here: cloudsnap/store/index.ts is their face.
export { AzureBlobStore, type AzureBlobStoreOptions } from './store/azure.js';
export { CountingStore, type RequestCounts } from './store/counting.js';
export { DirectoryStore } from './store/directory.js';
export { MeteredStore, type StoreObserver, type StoreOperation, type StoreRequest } from './store/metered.js';
export { openObjectStore, type StoreCredential, type StoreTuning, storeTuningFromEnv } from './store/open.js';
export { PrefixedStore } from './store/prefixed.js';
export { DirectGet } from './store/s3-direct-get.js';
export type {
  CallOptions,
  GetOptions,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PutOptions,
} from './store/types.js';
export { ChunkWorkers, IDLE_RELEASE_MS } from './workers/pool.js';

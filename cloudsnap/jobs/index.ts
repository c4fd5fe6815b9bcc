/** Public face of CloudSnap's control surface: backup and restore jobs and the operations on repositories. */
export type { BackupCatalog, CatalogExtent } from '../catalog.js';
export type { GcResult } from '../gc.js';
export type { BackupRecord } from '../repo/repository.js';
export type { VerifyProblem, VerifyResult } from '../verify.js';
export { CloudBackups, type EnumerateFilters, type EnumeratePage, type HistoryItem } from './cloud-backups.js';
export { jobKey } from './job-store.js';
export {
  type BackupJobRequest,
  JobManager,
  type JobManagerOptions,
  type RestoreJobRequest,
  SHUTDOWN_MESSAGE,
  STOPPED_MESSAGE,
} from './manager.js';
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
} from './types.js';

import type { VerifyResult } from '../repo/verify.js';

/**
 * Backup, restore and verify jobs in the shape of OpenStorage's SdkCloudBackupStatus (libopenstorage/openstorage
 * api/api.proto), with the status and op-type enums spelled by their short names (`Done`, `Backup`), as Ferry's API
 * does everywhere, and timestamps as RFC 3339 strings (the protobuf JSON form of google.protobuf.Timestamp).
 */

/** SdkCloudBackupStatusType without its prefix. */
export const JOB_STATUSES = [
  'NotStarted',
  'Queued',
  'Active',
  'Paused',
  'Stopped',
  'Done',
  'Failed',
  'Aborted',
] as const;
export type JobStatusType = (typeof JOB_STATUSES)[number];

/** Statuses a job never leaves. */
export const FINAL_STATUSES: ReadonlySet<JobStatusType> = new Set(['Done', 'Failed', 'Aborted', 'Stopped']);

/** SdkCloudBackupOpType without its prefix and `Op` suffix; `Verify` is Ferry's addition. */
export type JobOpType = 'Backup' | 'Restore' | 'Verify';

/** SdkCloudBackupRequestedState without its prefix. */
export const REQUESTED_STATES = ['Pause', 'Resume', 'Stop'] as const;
export type RequestedState = (typeof REQUESTED_STATES)[number];

/** Key prefix of job records in the cluster store: `/ferry/jobs/<task_id>`. */
export const JOBS_PREFIX = '/ferry/jobs/';

/** What `info` says of a job that a dead process left Active or Queued. */
export const RESTART_MESSAGE = 'interrupted by a node restart; run it again (uploaded data is reused)';

/**
 * The status of one backup or restore: SdkCloudBackupStatus plus `task_id` and a few Ferry fields. It is also the
 * record kept in the cluster store, so it survives a restart.
 */
export interface JobStatus {
  /** The idempotency key: the caller's `task_id`, or a generated UUID. */
  task_id: string;
  /** Backup: the new backup's id, set when it is Done. Restore: the backup being restored. */
  backup_id?: string;
  optype: JobOpType;
  status: JobStatusType;
  /** Bytes read and processed (backup) or written (restore) so far. */
  bytes_done: number;
  /** Bytes the job has to process; 0 until the job knows (after it has read the changed-block map or manifest). */
  bytes_total: number;
  /** Seconds left at the current rate; absent until the rate is known. */
  eta_seconds?: number;
  /** When the job became Active (RFC 3339). */
  start_time?: string;
  /** When it ended: Done, Failed or Aborted (RFC 3339). */
  completed_time?: string;
  /** Backup: the source volume's id. Restore: the new volume's id once it exists (its name until then). */
  src_volume_id: string;
  /** Why the job failed or was aborted (OpenStorage's `info`: repeated string). Empty otherwise. */
  info: string[];
  credential_id: string;
  /** Ferry: when the job was accepted (RFC 3339). */
  create_time: string;
  /** Ferry: the source volume's name (backup) or the new volume's name (restore). */
  volume_name: string;
  /**
   * Ferry: the node running the job (its `node-id`). Only that node's restart fails it as interrupted; records
   * without it (written before clusters) are failed by any node's restart.
   */
  node_id?: string;
  /** Ferry: the step the job is in while Active. */
  phase?: 'preparing' | 'transferring' | 'committing' | 'done';
  /** Ferry, backups only: a full read was asked for. */
  full?: boolean;
  /** Ferry, backups only: labels asked for (added to the volume's own). */
  labels?: Record<string, string>;
  /** Backups of a group (SdkCloudBackupStatus `group_id`): the group they belong to. */
  group_id?: string;
  /**
   * Ferry, verify jobs: what it has checked so far (packs, chunks, bytes), and once it is Done every problem found
   * (at most 200, with 20 ranges each, are kept in the record, which lives in the cluster store; `problems_total`
   * counts them all).
   */
  verify?: VerifyJobReport;
}

/** A verify job's report: its counts and problems, and how many problems there were in all. */
export interface VerifyJobReport extends VerifyResult {
  problems_total: number;
}

/** Whether a job has ended. */
export function isFinal(job: Pick<JobStatus, 'status'>): boolean {
  return FINAL_STATUSES.has(job.status);
}

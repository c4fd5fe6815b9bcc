/** What the scheduler needs from CloudSnap, as an interface (tests pass a fake), and the adapter to CloudBackups. */
import type { BackupJobRequest, CloudBackups, JobStatus } from '../../cloudsnap/index.js';
import { SCHEDULE_LABEL } from './types.js';

/** A committed backup as retention sees it. */
export interface ScheduledBackup {
  id: string;
  /** When it was taken (RFC 3339). */
  created: string;
  labels: Record<string, string>;
}

export interface ScheduledBackupRunner {
  /** Queues a backup job; resolves with its task id. */
  submit(request: BackupJobRequest): Promise<string>;
  /** Resolves with a job's final status. */
  wait(taskId: string): Promise<JobStatus>;
  /** The committed backups a schedule took of a volume (its SCHEDULE_LABEL). */
  list(credentialId: string, volumeId: string, scheduleId: string): Promise<ScheduledBackup[]>;
  /** Expires a backup through the safe delete path (its data goes at garbage collection). */
  delete(credentialId: string, backupId: string): Promise<void>;
}

/** The runner backed by the node's CloudBackups. */
export function cloudBackupsRunner(backups: CloudBackups): ScheduledBackupRunner {
  return {
    submit: async (request) => (await backups.jobs.submitBackup(request)).task_id,
    wait: (taskId) => backups.jobs.wait(taskId),
    list: async (credentialId, volumeId, scheduleId) => {
      const page = await backups.enumerate({
        credential_id: credentialId,
        src_volume_id: volumeId,
        metadata_filter: { [SCHEDULE_LABEL]: scheduleId },
      });
      return page.backups.map((b) => ({ id: b.id, created: b.created, labels: b.labels }));
    },
    delete: (credentialId, backupId) => backups.delete(credentialId, backupId),
  };
}

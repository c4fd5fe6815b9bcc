/**
 * Everything the OpenStorageCloudBackup API does on a node: jobs (create, restore, status, state change) through
 * the JobManager (verify is a job too), and the short operations on a credential's repository (enumerate, catalog,
 * history, delete, size, garbage collection).
 */
import { FerryError } from '../../common/index.js';
import { type BackupCatalog, catalogBackup } from '../catalog.js';
import type { Credential } from '../credentials/index.js';
import { collectGarbage, type GcResult } from '../gc.js';
import type { BackupRecord, KekRef, Repository } from '../repo/repository.js';
import { JobManager, type JobManagerOptions } from './manager.js';
import type { JobStatus, JobStatusType } from './types.js';

/** The filters of SdkCloudBackupEnumerateWithFiltersRequest that Ferry applies. */
export interface EnumerateFilters {
  credential_id: string;
  /** Volume id or name the backups were taken of. */
  src_volume_id?: string;
  /** Committed backups are all Done: any other status lists nothing. */
  status_filter?: JobStatusType;
  /** Labels every listed backup must carry. */
  metadata_filter?: Record<string, string>;
  /** Page size; default: everything. */
  max_backups?: number;
  /** The `continuation_token` of the previous page. */
  continuation_token?: string;
}

/** One page of backup records, oldest first. */
export interface EnumeratePage {
  backups: BackupRecord[];
  /** Present when more backups follow: pass it back to get them. */
  continuation_token?: string;
}

/** SdkCloudBackupHistoryItem. */
export interface HistoryItem {
  src_volume_id: string;
  /** When the backup ended (RFC 3339). */
  timestamp: string;
  status: JobStatusType;
}

export class CloudBackups {
  private constructor(readonly jobs: JobManager) {}

  /** Opens the job manager (failing jobs a dead process left behind) and returns the service. */
  static async open(options: JobManagerOptions): Promise<CloudBackups> {
    return new CloudBackups(await JobManager.open(options));
  }

  /** Statuses keyed by task id: one task, the tasks of a volume (id or name), or all. */
  async statuses(filter: { task_id?: string; volume_id?: string } = {}): Promise<Record<string, JobStatus>> {
    let list: JobStatus[];
    if (filter.task_id !== undefined) list = [await this.jobs.get(filter.task_id)];
    else {
      const ref = filter.volume_id;
      list = (await this.jobs.list()).filter(
        (j) => ref === undefined || j.src_volume_id === ref || j.volume_name === ref,
      );
    }
    return Object.fromEntries(list.map((j) => [j.task_id, j]));
  }

  /** Committed backups in a credential's repositories (its own and its KEK overrides'), filtered and paged. */
  async enumerate(filters: EnumerateFilters, signal?: AbortSignal): Promise<EnumeratePage> {
    if (filters.status_filter !== undefined && filters.status_filter !== 'Done') return { backups: [] };
    const lists = await this.eachRepository(filters.credential_id, (repo) => repo.listBackups(signal), signal);
    const all = lists.flat().sort((a, b) => a.id.localeCompare(b.id));
    const volume = filters.src_volume_id;
    const labels = Object.entries(filters.metadata_filter ?? {});
    const after = filters.continuation_token;
    const matching = all.filter(
      (r) =>
        (after === undefined || r.id > after) &&
        (volume === undefined || r.volume_id === volume || r.volume_name === volume) &&
        labels.every(([k, v]) => r.labels[k] === v),
    );
    const limit = filters.max_backups ?? matching.length;
    const backups = matching.slice(0, limit);
    const last = backups[backups.length - 1];
    return matching.length > backups.length && last !== undefined
      ? { backups, continuation_token: last.id }
      : { backups };
  }

  /** What a backup holds (from its manifest). */
  catalog(credentialId: string, backupId: string, signal?: AbortSignal): Promise<BackupCatalog> {
    return this.withBackup(credentialId, backupId, (repo) => catalogBackup(repo, backupId, { signal }), signal);
  }

  /** A backup's record. */
  inspect(credentialId: string, backupId: string, signal?: AbortSignal): Promise<BackupRecord> {
    return this.withBackup(credentialId, backupId, (repo) => repo.getBackup(backupId, signal), signal);
  }

  /** The backup jobs this node ran for a volume (id or name), oldest first. */
  async history(volumeRef: string): Promise<HistoryItem[]> {
    return (await this.jobs.list())
      .filter((j) => j.optype === 'Backup' && (j.src_volume_id === volumeRef || j.volume_name === volumeRef))
      .map((j) => ({ src_volume_id: j.src_volume_id, timestamp: j.completed_time ?? j.create_time, status: j.status }));
  }

  /**
   * Deletes a backup's record: it is no longer listed or restorable; its data goes at garbage collection.
   * FAILED_PRECONDITION while a restore of it is queued or running.
   */
  async delete(credentialId: string, backupId: string, signal?: AbortSignal): Promise<void> {
    if (this.jobs.restoring(backupId)) {
      throw new FerryError('FAILED_PRECONDITION', `backup ${backupId} is being restored; delete it when that ends`);
    }
    await this.withBackup(
      credentialId,
      backupId,
      async (repo, credential) => {
        await repo.deleteBackupRecord(backupId, signal);
        // Other open instances may still hold the record in their cache.
        this.jobs.repositories.invalidate(credential.credential_id);
      },
      signal,
    );
  }

  /** Deletes the records of every backup of a volume (id or name); returns how many. */
  async deleteAll(credentialId: string, volumeRef: string, signal?: AbortSignal): Promise<number> {
    const { backups } = await this.enumerate({ credential_id: credentialId, src_volume_id: volumeRef }, signal);
    for (const b of backups) await this.delete(credentialId, b.id, signal);
    return backups.length;
  }

  /** One run of two-phase garbage collection (docs/FORMAT.md); `graceMs` defaults to one hour. */
  async gc(credentialId: string, options: { graceMs?: number }, signal?: AbortSignal): Promise<GcResult> {
    const results = await this.eachRepository(
      credentialId,
      async (repo, credential) => {
        try {
          return await collectGarbage(repo, { ...options, ...(signal !== undefined && { signal }) });
        } finally {
          // Open instances may index packs this run deleted: never dedup against those.
          this.jobs.repositories.invalidate(credential.credential_id);
        }
      },
      signal,
    );
    return results.reduce((a, b) => ({
      live_chunks: a.live_chunks + b.live_chunks,
      packs: a.packs + b.packs,
      condemned: a.condemned + b.condemned,
      deleted: a.deleted + b.deleted,
      reprieved: a.reprieved + b.reprieved,
      bytes_deleted: a.bytes_deleted + b.bytes_deleted,
    }));
  }

  /** Runs `fn` on the credential's repository that holds `backupId` (its own, or a KEK override's). */
  private async withBackup<T>(
    credentialId: string,
    backupId: string,
    fn: (repo: Repository, credential: Credential) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const where = await this.jobs.repositories.locate(credentialId, backupId, signal);
    return this.jobs.repositories.use(credentialId, fn, signal, where);
  }

  /** Runs `fn` on each of the credential's repositories: its own first, then its KEK overrides', one at a time. */
  private async eachRepository<T>(
    credentialId: string,
    fn: (repo: Repository, credential: Credential) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<[T, ...T[]]> {
    const first = await this.jobs.repositories.use(credentialId, fn, signal);
    const rest: T[] = [];
    const overrides: KekRef[] = await this.jobs.repositories.overrides(credentialId, signal);
    for (const ref of overrides) rest.push(await this.jobs.repositories.use(credentialId, fn, signal, ref));
    return [first, ...rest];
  }

  /** Stops taking jobs and ends the running ones. */
  close(): Promise<void> {
    return this.jobs.close();
  }
}

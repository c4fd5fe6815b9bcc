/**
 * Everything the OpenStorageCloudBackup API does on a node: jobs (create, restore, status, state change) through
 * the JobManager (verify is a job too), and the short operations on a credential's repository (enumerate, catalog,
 * history, delete, size, garbage collection).
 */
import { FerryError } from '../../common/index.js';
import { type BackupCatalog, catalogBackup } from '../catalog.js';
import type { Credential } from '../credentials/index.js';
import { collectGarbage, type GcResult } from '../repo/gc.js';
import type { BackupRecord, DamagedBackup, IndexRepairReport, KekRef, Repository } from '../repo/repository.js';
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
  /**
   * Backups of the same page whose record does not open, with the reason (their volume and labels are unknown, so
   * they are listed only when no volume or label filter applies, and `status_filter` is absent or `Failed`).
   */
  damaged: DamagedBackup[];
  /** Present when more backups follow: pass it back to get them. */
  continuation_token?: string;
}

/** What `repair` found and did, per repository of the credential. */
export interface RepairResult {
  what: 'index';
  repositories: Array<IndexRepairReport & { repository: string }>;
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

  /**
   * Committed backups in a credential's repositories (its own and its KEK overrides'), filtered and paged. A record
   * that does not open hides only its own backup: it is listed apart in `damaged`.
   */
  async enumerate(filters: EnumerateFilters, signal?: AbortSignal): Promise<EnumeratePage> {
    const wanted = filters.status_filter;
    if (wanted !== undefined && wanted !== 'Done' && wanted !== 'Failed') return { backups: [], damaged: [] };
    const scans = await this.eachRepository(filters.credential_id, (repo) => repo.scanBackups(signal), signal);
    const volume = filters.src_volume_id;
    const labels = Object.entries(filters.metadata_filter ?? {});
    const after = filters.continuation_token;
    type Entry = { id: string; record?: BackupRecord; damage?: DamagedBackup };
    const entries: Entry[] = [];
    for (const scan of scans) {
      if (wanted !== 'Failed') {
        for (const r of scan.records) {
          if (
            (volume === undefined || r.volume_id === volume || r.volume_name === volume) &&
            labels.every(([k, v]) => r.labels[k] === v)
          ) {
            entries.push({ id: r.id, record: r });
          }
        }
      }
      if (wanted !== 'Done' && volume === undefined && labels.length === 0) {
        for (const d of scan.damaged) entries.push({ id: d.id, damage: d });
      }
    }
    const matching = entries
      .filter((e) => after === undefined || e.id > after)
      .sort((a, b) => a.id.localeCompare(b.id));
    const limit = filters.max_backups ?? matching.length;
    const page = matching.slice(0, limit);
    const out: EnumeratePage = {
      backups: page.flatMap((e) => (e.record === undefined ? [] : [e.record])),
      damaged: page.flatMap((e) => (e.damage === undefined ? [] : [e.damage])),
    };
    const last = page[page.length - 1];
    if (matching.length > page.length && last !== undefined) out.continuation_token = last.id;
    return out;
  }

  /**
   * Repairs what can be rebuilt in a credential's repositories (its own and its KEK overrides'): `index` rebuilds
   * damaged or missing index objects from the packs' own headers (docs/FORMAT.md, "Damage and repair").
   */
  async repair(credentialId: string, what: 'index', signal?: AbortSignal): Promise<RepairResult> {
    const reports = await this.eachRepository(
      credentialId,
      async (repo, credential) => {
        try {
          return { repository: repo.location, ...(await repo.repairIndex(signal)) };
        } finally {
          // Other open instances may index packs the repair found gone.
          this.jobs.repositories.invalidate(credential.credential_id);
        }
      },
      signal,
    );
    return { what, repositories: reports };
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
      damaged_backups: [...a.damaged_backups, ...b.damaged_backups],
      unreadable_packs: [...a.unreadable_packs, ...b.unreadable_packs],
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

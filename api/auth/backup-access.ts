/**
 * Ownership of cloud backups and their jobs. A backup lives in a credential's repository, so it is governed by the
 * credential and by the volume it was taken of: a caller sees a backup when it has Write on the credential, or Read
 * on the credential and Read on the source volume (so sharing a credential for Read does not show other tenants'
 * backups). Deleting backups and collecting garbage take Write on the credential. Creating a backup takes Read on the
 * volume and Read on the credential (as in OpenStorage); restoring takes a visible backup, and the caller owns the
 * new volume. Jobs (tasks) are owned by whoever submitted them; a backup job is also visible to readers of its volume.
 */
import type { Context } from 'hono';
import type { CredentialInfo, CredentialStore, JobStatus } from '../../cloudsnap/index.js';
import { FerryError, isFerryError } from '../../common/index.js';
import type { VolumeEngine, VolumeInfo } from '../../node/index.js';
import { requireEngine } from '../engine-required.js';
import type { ResourceAccess } from './access.js';
import type { AccessType, ResourceRef } from './ownership.js';
import { credentialRef, taskRef, volumeRef } from './refs.js';

/** What a backup record tells about where it came from. */
export interface BackupSource {
  volume_id: string;
}

function jobVolumeRef(job: JobStatus): ResourceRef {
  // A restore's volume is known by its name until it exists; a backup's by its id only.
  return job.optype === 'Restore'
    ? { kind: 'volume', id: job.src_volume_id, name: job.volume_name }
    : { kind: 'volume', id: job.src_volume_id };
}

/** The cloud-backup routes' ownership checks. */
export class BackupAccess {
  constructor(
    readonly access: ResourceAccess,
    private readonly engine: VolumeEngine | undefined,
    private readonly credentials: CredentialStore | undefined,
  ) {}

  /** The credential (id or name), after checking the caller has `need` on it. */
  async credential(c: Context, ref: string, need: AccessType): Promise<CredentialInfo> {
    if (this.credentials === undefined) {
      throw new FerryError('UNAVAILABLE', 'this node serves no credential store; start it with `ferry node start`');
    }
    const info = await this.credentials.inspect(ref);
    await this.access.require(c, credentialRef(info), need);
    return info;
  }

  /** Every credential the caller may read. */
  async readableCredentials(c: Context): Promise<CredentialInfo[]> {
    if (this.credentials === undefined) {
      throw new FerryError('UNAVAILABLE', 'this node serves no credential store; start it with `ferry node start`');
    }
    return this.access.filter(c, await this.credentials.list(), credentialRef);
  }

  /** The volume (id or name), after checking the caller has `need` on it. */
  async volume(c: Context, ref: string, need: AccessType): Promise<VolumeInfo> {
    const volume = await requireEngine(this.engine).inspectVolume(ref);
    await this.access.require(c, volumeRef(volume), need);
    return volume;
  }

  /** Whether the caller sees a backup of `credential` taken of `source.volume_id`. */
  async sees(c: Context, credential: CredentialInfo, source: BackupSource): Promise<boolean> {
    if (await this.access.allowed(c, credentialRef(credential), 'Write')) return true;
    return this.access.allowed(c, { kind: 'volume', id: source.volume_id }, 'Read');
  }

  /**
   * PERMISSION_DENIED unless the caller sees backup `backupId`; `load` reads its record, only when the credential
   * alone does not decide.
   */
  async requireBackup(
    c: Context,
    credential: CredentialInfo,
    backupId: string,
    load: () => Promise<BackupSource>,
  ): Promise<void> {
    if (await this.access.allowed(c, credentialRef(credential), 'Write')) return;
    if (await this.access.allowed(c, { kind: 'volume', id: (await load()).volume_id }, 'Read')) return;
    const who = this.access.principal(c)?.sub ?? 'the caller';
    throw new FerryError(
      'PERMISSION_DENIED',
      `${who} has no access to backup ${backupId}; ask the owner of its volume`,
    );
  }

  /** The backups the caller sees, in their order. */
  async filterBackups<T extends BackupSource>(c: Context, credential: CredentialInfo, backups: readonly T[]) {
    if (await this.access.allowed(c, credentialRef(credential), 'Write')) return [...backups];
    const keep = await Promise.all(backups.map((b) => this.sees(c, credential, b)));
    return backups.filter((_b, i) => keep[i]);
  }

  /** Whether the caller may see (Read) or change (Write) a job. */
  async allowedJob(c: Context, job: JobStatus, need: AccessType): Promise<boolean> {
    if (await this.access.allowed(c, taskRef(job.task_id), need)) return true;
    return need === 'Read' && job.optype === 'Backup' && this.access.allowed(c, jobVolumeRef(job), 'Read');
  }

  /** PERMISSION_DENIED unless the caller may use the job at `need`. */
  async requireJob(c: Context, job: JobStatus, need: AccessType): Promise<void> {
    if (await this.allowedJob(c, job, need)) return;
    const who = this.access.principal(c)?.sub ?? 'the caller';
    throw new FerryError('PERMISSION_DENIED', `${who} has no ${need} access to task ${job.task_id}`);
  }

  /** The jobs the caller may see. */
  async filterJobs(c: Context, jobs: readonly JobStatus[]): Promise<JobStatus[]> {
    const keep = await Promise.all(jobs.map((job) => this.allowedJob(c, job, 'Read')));
    return jobs.filter((_job, i) => keep[i]);
  }

  /**
   * After a submit: a task id seen before must be the caller's (the manager answers an existing task id with that
   * task); a new one is recorded as the caller's.
   */
  async ownTask(c: Context, job: JobStatus): Promise<void> {
    if ((await this.access.ownership(taskRef(job.task_id))) !== undefined) await this.requireJob(c, job, 'Write');
    else await this.access.own(c, taskRef(job.task_id));
  }

  /**
   * Before a restore into `name`: an existing volume of that name (an unfinished restore being resumed) needs Write;
   * returns whether the volume is new, so the caller is recorded as its owner once the job is accepted.
   */
  async restoreTarget(c: Context, name: string): Promise<boolean> {
    try {
      await this.volume(c, name, 'Write');
      return false;
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) return true;
      throw err;
    }
  }

  /** PERMISSION_DENIED unless the caller may read the volume of a history request (admins for deleted volumes). */
  async historyVolume(c: Context, ref: string): Promise<void> {
    try {
      await this.volume(c, ref, 'Read');
    } catch (err: unknown) {
      if (!isFerryError(err, 'NOT_FOUND')) throw err;
      this.access.requireAdmin(c);
    }
  }
}

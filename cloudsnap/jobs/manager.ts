/**
 * The node's backup and restore jobs: accepted at once with a task id, queued, run at most `concurrency` at a time
 * (and one at a time per volume), their status kept in the cluster store so it survives a restart, stoppable
 * through an AbortSignal. Jobs that a dead process left unfinished end Failed at the next start.
 */
import { randomUUID } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import type { KeyProvider, KeySource } from '../../kms/index.js';
import type { ClusterStore, SnapshotInfo, VolumeInfo } from '../../node/index.js';
import { backupVolume } from '../backup.js';
import type { CredentialStore, OpenObjectStore } from '../credentials/index.js';
import { type BlockSource, NO_BLOCK_SOURCE_MESSAGE } from '../ports.js';
import type { Progress } from '../progress.js';
import type { KekRef, RepoOptions, Repository } from '../repo/repository.js';
import { clearOwnStaleMarkers, type MarkerOwner, thisProcess } from '../repo/running-markers.js';
import { type VerifyResult, verifyBackups, verifyReport } from '../repo/verify.js';
import { restoreBackup } from '../restore.js';
import type { StoreObserver } from '../store/index.js';
import { jobBlockSource, PauseGate } from './job-engine.js';
import { JobStore } from './job-store.js';
import { kekFromLabels } from './kek-repos.js';
import { RepositoryBindings } from './repo-bindings.js';
import { RepositoryPool } from './repo-pool.js';
import { type RetryOptions, withRetry } from './retry.js';
import { KeyedScheduler } from './scheduler.js';
import { isFinal, type JobStatus, type RequestedState } from './types.js';

/** What `info` says of a job that the node's shutdown cut short. */
export const SHUTDOWN_MESSAGE = 'interrupted by a node shutdown; run it again (uploaded data is reused)';
/** What `info` says of a job stopped with StateChange Stop. */
export const STOPPED_MESSAGE = 'stopped by request';

export interface JobManagerOptions {
  /**
   * The node's volumes and snapshots: backups read from it, restores write into it. Default: none (the serverless
   * handler): backups and restores then fail UNAVAILABLE (NO_BLOCK_SOURCE_MESSAGE); verify and the operations on
   * repositories work.
   */
  blockSource?: BlockSource;
  /** The cluster store: job records live under `/ferry/jobs/`. */
  store: ClusterStore;
  credentials: CredentialStore;
  /** The node's local keyring. */
  keys: KeyProvider;
  /**
   * The node's key providers, by name: repositories are unwrapped by the provider their config names, created under
   * the credential's (or the volume's `ferry.io/kek`) KEK and provider. Default: `keys` alone.
   */
  providers?: KeySource;
  /** How long an unwrapped master secret stays cached with its open repository; default 15 minutes. */
  keyCacheTtlMs?: number;
  /**
   * Retries of a job whose repository cannot be opened because its key provider (or object store) is unreachable
   * (UNAVAILABLE): default 3 more attempts after waits of 1 s, 2 s, 4 s; then the job ends Failed with the error.
   */
  retry?: RetryOptions;
  /** Jobs Active at once on this node; default 2. The rest wait Queued. */
  concurrency?: number;
  /** Opens a credential's object store. Default: cloudsnap/store's `openObjectStore`. */
  openStore?: OpenObjectStore;
  /** Parameters of repositories this node creates. Default: the format's defaults. */
  repoOptions?: RepoOptions;
  /** Finished job records kept in the cluster store (the oldest go at start-up); default 1000. */
  keepFinished?: number;
  /** Least time between two writes of a running job's progress to the cluster store; default 1000 ms. */
  persistEveryMs?: number;
  /** Sees every object-store request of the node's repositories (for metrics). Default: none. */
  observeStore?: StoreObserver;
  /**
   * This node's id (its data directory's `node-id`), written into the `running/` markers of its backups: at open,
   * the manager clears the markers of this node's dead processes. Default: the host name.
   */
  nodeId?: string;
  /** Hears damage found and repaired in repositories (index objects rebuilt, markers cleared). Default: none. */
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

/** A job ended (Done, Failed or Aborted); `status` is its final status. Heard by `onJobEnded` listeners. */
export type JobEndedListener = (status: JobStatus) => void;

/** SdkCloudBackupCreateRequest (the fields Ferry uses). */
export interface BackupJobRequest {
  /** Volume id or name. */
  volume_id: string;
  /** Credential id or name. */
  credential_id: string;
  full?: boolean;
  task_id?: string;
  labels?: Record<string, string>;
}

/** SdkCloudBackupGroupCreateRequest (the fields Ferry uses). */
export interface GroupBackupRequest {
  /** The group's id; default a new UUID. Also the prefix of its task ids. */
  group_id?: string;
  /** Volume ids or names, each once. */
  volume_ids: string[];
  credential_id: string;
  full?: boolean;
  labels?: Record<string, string>;
}

/** Ferry's verify request: one backup or every backup of a credential's repositories. */
export interface VerifyJobRequest {
  credential_id: string;
  /** Only this backup; default every backup. */
  backup_id?: string;
  /** Share of the packs to read and check chunk by chunk (0-100); default 0 (metadata only). */
  data_percent?: number;
  task_id?: string;
}

/** SdkCloudBackupRestoreRequest (the fields Ferry uses). */
export interface RestoreJobRequest {
  backup_id: string;
  /** Name of the new volume; default `restore-<backup_id>`. */
  restore_volume_name?: string;
  credential_id: string;
  task_id?: string;
}

interface LiveJob {
  status: JobStatus;
  controller: AbortController;
  stopReason?: 'stop' | 'shutdown';
  /** Resolves when the job has ended and its final record is stored. */
  done: Promise<void>;
  /** Writes of the record, in order. */
  persisting: Promise<void>;
  lastPersist: number;
  /** Set when the job has taken a slot, or has been ended while it waited (then it never runs). */
  started: boolean;
  /** Marks the job ended and gone from the live set. */
  finish: () => void;
  /** Holds the job's block I/O while it is Paused. */
  gate: PauseGate;
  /** Group backups: the group's snapshot of the volume, used instead of a new one. */
  snapshot?: SnapshotInfo;
}

/** Which of the credential's repositories a job works on: undefined for its own, else a KEK override. */
type Where = (signal: AbortSignal) => Promise<KekRef | undefined>;

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A job's work, given its repository and its view of the block source (`blocks()`: paused I/O, a group's snapshot);
 * work that does no block I/O (verify) waits at `pause` while the job is paused.
 */
type Work = (
  repo: Repository,
  signal: AbortSignal,
  onProgress: (p: Progress) => void,
  blocks: () => BlockSource,
  pause: () => Promise<void>,
) => Promise<void>;

export class JobManager {
  readonly repositories: RepositoryPool;
  private readonly jobs: JobStore;
  private readonly scheduler: KeyedScheduler;
  private readonly live = new Map<string, LiveJob>();
  private readonly persistEveryMs: number;
  private submitting: Promise<unknown> = Promise.resolve();
  private closing = false;
  private readonly endedListeners = new Set<JobEndedListener>();
  /** Who this manager's backups say they are, in their `running/` markers. */
  readonly owner: MarkerOwner;
  /** Settles when the start-up clearing of this node's stale `running/` markers has run (the backup ids cleared). */
  markersCleared: Promise<string[]> = Promise.resolve([]);

  private constructor(private readonly options: JobManagerOptions) {
    this.owner = thisProcess(options.nodeId);
    this.jobs = new JobStore(options.store);
    this.scheduler = new KeyedScheduler(options.concurrency ?? 2);
    this.persistEveryMs = options.persistEveryMs ?? 1000;
    this.repositories = new RepositoryPool({
      credentials: options.credentials,
      keys: options.providers ?? options.keys,
      ...(options.keyCacheTtlMs !== undefined && { ttlMs: options.keyCacheTtlMs }),
      ...(options.openStore !== undefined && { openStore: options.openStore }),
      ...(options.repoOptions !== undefined && { repoOptions: options.repoOptions }),
      ...(options.observeStore !== undefined && { observeStore: options.observeStore }),
      ...(options.warn !== undefined && { warn: options.warn }),
      bindings: new RepositoryBindings(options.store),
    });
  }

  /** Calls `listener` with each job's final status when it ends; returns the unsubscribe function. */
  onJobEnded(listener: JobEndedListener): () => void {
    this.endedListeners.add(listener);
    return () => this.endedListeners.delete(listener);
  }

  /** Jobs waiting for a slot (Queued), running (Active) and paused (Paused) on this node, now. */
  liveCounts(): { queued: number; active: number; paused: number } {
    let queued = 0;
    let active = 0;
    let paused = 0;
    for (const job of this.live.values()) {
      if (job.status.status === 'Active') active++;
      else if (job.status.status === 'Queued') queued++;
      else if (job.status.status === 'Paused') paused++;
    }
    return { queued, active, paused };
  }

  /** Opens the manager: jobs left Active or Queued by a process that died end Failed (RESTART_MESSAGE). */
  static async open(options: JobManagerOptions): Promise<JobManager> {
    const manager = new JobManager(options);
    const failed = await manager.jobs.recover(options.keepFinished ?? 1000, manager.owner.node);
    // Backups a dead process of this node left: their markers go now, in the background (a repository whose key
    // provider is unreachable must not hold the start back), not after 24 hours.
    const credentials = [...new Set(failed.filter((j) => j.optype === 'Backup').map((j) => j.credential_id))];
    manager.markersCleared = manager.clearStaleMarkers(credentials);
    return manager;
  }

  /** Clears this node's stale `running/` markers in the credentials' repositories (their own and KEK overrides'). */
  private async clearStaleMarkers(credentialIds: readonly string[]): Promise<string[]> {
    const cleared: string[] = [];
    for (const credentialId of credentialIds) {
      try {
        const overrides = await this.repositories.overrides(credentialId);
        for (const where of [undefined, ...overrides]) {
          const ids = await this.repositories.use(
            credentialId,
            (repo) => clearOwnStaleMarkers(repo, this.owner),
            undefined,
            where,
          );
          cleared.push(...ids);
        }
      } catch (err: unknown) {
        this.options.warn?.('could not clear the running markers of backups this node left', {
          credential_id: credentialId,
          error: messageOf(err),
        });
      }
    }
    if (cleared.length > 0) {
      this.options.warn?.('cleared running markers of backups a dead process of this node left', { backups: cleared });
    }
    return cleared;
  }

  /**
   * Accepts a backup: checks that the volume and the credential exist, then queues the job and returns its status
   * (Queued). The same `task_id` again returns the existing job; used for another operation it is ALREADY_EXISTS.
   */
  submitBackup(request: BackupJobRequest): Promise<JobStatus> {
    return this.serialised(() => this.acceptBackup(request));
  }

  /** submitBackup's work (callers serialise); `group` makes it one backup of a group, from the group's snapshot. */
  private async acceptBackup(
    request: BackupJobRequest,
    group?: { id: string; snapshot: SnapshotInfo },
  ): Promise<JobStatus> {
    const existing = await this.existing(request.task_id, 'Backup', (job) =>
      [job.src_volume_id, job.volume_name].includes(request.volume_id),
    );
    if (existing !== undefined) return existing;
    const volume = await this.blocks().inspectVolume(request.volume_id);
    if (volume.status === 'restoring') {
      throw new FerryError('FAILED_PRECONDITION', `volume ${volume.name} is being restored; back it up when it is up`);
    }
    const credential = await this.options.credentials.inspect(request.credential_id);
    const override = kekFromLabels(volume.labels, credential.key_provider ?? 'local');
    const status = this.newStatus(request.task_id, 'Backup', credential.credential_id, volume.id, volume.name);
    status.full = request.full === true;
    if (request.labels !== undefined) status.labels = request.labels;
    if (group !== undefined) status.group_id = group.id;
    const work: Work = async (repo, signal, onProgress, blocks) => {
      const record = await backupVolume(
        { engine: blocks(), repo, store: this.options.store },
        {
          volume: volume.id,
          full: request.full === true,
          ...(request.labels !== undefined && { labels: request.labels }),
          signal,
          onProgress,
          owner: this.owner,
        },
      );
      status.backup_id = record.id;
    };
    return this.enqueue(status, [`volume/${volume.id}`], work, async () => override, group?.snapshot);
  }

  /**
   * SdkCloudBackupGroupCreateRequest: backs several volumes up from snapshots taken at one point in time (one
   * engine transaction), one job per volume (task ids `<group_id>:<volume name>`), all carrying `group_id` and the
   * label `ferry.io/group`. The same `group_id` again returns the group's existing jobs.
   */
  submitGroup(request: GroupBackupRequest): Promise<{ group_id: string; jobs: JobStatus[] }> {
    return this.serialised(async () => {
      const source = this.blocks();
      const groupId = request.group_id ?? randomUUID();
      const volumes: VolumeInfo[] = [];
      for (const ref of request.volume_ids) {
        const volume = await source.inspectVolume(ref);
        if (volumes.some((v) => v.id === volume.id)) {
          throw new FerryError('INVALID_ARGUMENT', `volume_ids: ${ref} is named twice`, { field: 'volume_ids' });
        }
        if (volume.status === 'restoring') {
          throw new FerryError(
            'FAILED_PRECONDITION',
            `volume ${volume.name} is being restored; back it up when it is up`,
          );
        }
        volumes.push(volume);
      }
      const taskId = (v: VolumeInfo): string => `${groupId}:${v.name}`;
      const earlier = await Promise.all(volumes.map((v) => this.existing(taskId(v), 'Backup', () => true)));
      if (earlier.every((j) => j !== undefined)) return { group_id: groupId, jobs: earlier as JobStatus[] };
      if (source.createSnapshots === undefined) {
        throw new FerryError('FAILED_PRECONDITION', 'this engine cannot snapshot several volumes at one point in time');
      }
      const credential = await this.options.credentials.inspect(request.credential_id);
      // Each snapshot is labelled with the repository its backup goes to, as backups label theirs: if the node dies
      // before a job takes its snapshot over, the next backup of that volume removes it as an orphan.
      const repositories: string[] = [];
      for (const v of volumes) {
        const lease = await this.repositories.acquire(
          credential.credential_id,
          undefined,
          kekFromLabels(v.labels, credential.key_provider ?? 'local'),
        );
        repositories.push(lease.repo.id);
        lease.release(true);
      }
      const snapshots = await source.createSnapshots(
        volumes.map((v, i) => ({
          volume_id: v.id,
          name: `cloudsnap-group-${groupId}`,
          labels: { 'ferry.io/group': groupId, 'ferry.io/repository': repositories[i] ?? '' },
        })),
      );
      const jobs: JobStatus[] = [];
      try {
        for (const [i, v] of volumes.entries()) {
          const snapshot = snapshots[i] as SnapshotInfo;
          const job = await this.acceptBackup(
            {
              volume_id: v.id,
              credential_id: credential.credential_id,
              task_id: taskId(v),
              ...(request.full === true && { full: true }),
              labels: { ...(request.labels ?? {}), 'ferry.io/group': groupId },
            },
            { id: groupId, snapshot },
          );
          jobs.push(job);
        }
      } catch (err: unknown) {
        for (const s of snapshots.slice(jobs.length)) await source.deleteSnapshot(s.id).catch(() => undefined);
        throw err;
      }
      return { group_id: groupId, jobs };
    });
  }

  /**
   * Accepts a restore into a new volume and returns its status (Queued). ALREADY_EXISTS when a volume of that name
   * exists, unless it is the unfinished restore of the same backup (then the restore resumes into it).
   */
  submitRestore(request: RestoreJobRequest): Promise<JobStatus> {
    return this.serialised(async () => {
      const existing = await this.existing(request.task_id, 'Restore', (job) => job.backup_id === request.backup_id);
      if (existing !== undefined) return existing;
      const name = request.restore_volume_name ?? `restore-${request.backup_id}`;
      const target = `name/${name}`;
      for (const job of this.live.values()) {
        if (job.status.optype === 'Restore' && job.status.volume_name === name) {
          throw new FerryError('ALREADY_EXISTS', `task ${job.status.task_id} is already restoring into ${name}`);
        }
      }
      let volumeId = name;
      try {
        const volume = await this.blocks().inspectVolume(name);
        if (volume.status !== 'restoring' || volume.labels['ferry.io/restored-from'] !== request.backup_id) {
          throw new FerryError('ALREADY_EXISTS', `volume ${name} already exists; restore into a new name`);
        }
        volumeId = volume.id;
      } catch (err: unknown) {
        if (!isFerryError(err, 'NOT_FOUND')) throw err;
      }
      const credential = await this.options.credentials.inspect(request.credential_id);
      const status = this.newStatus(request.task_id, 'Restore', credential.credential_id, volumeId, name);
      status.backup_id = request.backup_id;
      const work: Work = async (repo, signal, onProgress, blocks) => {
        const volume = await restoreBackup(
          { engine: blocks(), repo },
          { backupId: request.backup_id, volumeName: name, signal, onProgress },
        );
        status.src_volume_id = volume.id;
      };
      const where: Where = (signal) => this.repositories.locate(credential.credential_id, request.backup_id, signal);
      return this.enqueue(status, [target], work, where);
    });
  }

  /**
   * Accepts a verify of a credential's repositories (its own and its KEK overrides', or the one holding `backup_id`)
   * and returns its status (Queued). It reads everything from the store, not from the node's open repositories; it
   * ends Done whatever it finds, with the problems in `verify` (and their number in `info`).
   */
  submitVerify(request: VerifyJobRequest): Promise<JobStatus> {
    return this.serialised(async () => {
      const existing = await this.existing(request.task_id, 'Verify', () => true);
      if (existing !== undefined) return existing;
      const credential = await this.options.credentials.inspect(request.credential_id);
      const credentialId = credential.credential_id;
      const status = this.newStatus(request.task_id, 'Verify', credentialId, '', '');
      if (request.backup_id !== undefined) status.backup_id = request.backup_id;
      const backupId = request.backup_id;
      const work: Work = async (repo, signal, onProgress, _blocks, pause) => {
        const results: VerifyResult[] = [];
        const run = async (r: Repository): Promise<VerifyResult> => {
          const before = { done: status.bytes_done, total: status.bytes_total };
          const result = await verifyBackups(r, {
            ...(backupId !== undefined && { backupIds: [backupId] }),
            ...(request.data_percent !== undefined && { dataPercent: request.data_percent }),
            signal,
            pause,
            onProgress: (p, counts) => {
              onProgress({ ...p, bytes_done: before.done + p.bytes_done, bytes_total: before.total + p.bytes_total });
              status.verify = verifyReport([...results, { ...counts, data_percent: 0, problems: [] }]);
            },
          });
          results.push(result);
          return result;
        };
        await run(repo);
        if (backupId === undefined) {
          for (const ref of await this.repositories.overrides(credentialId, signal)) {
            await this.repositories.use(credentialId, run, signal, ref);
          }
        }
        status.verify = verifyReport(results);
        const found = status.verify.problems_total;
        status.info = found === 0 ? [] : [`verify found ${found} problem${found === 1 ? '' : 's'}`];
      };
      const where: Where = async (signal) =>
        backupId === undefined ? undefined : this.repositories.locate(credentialId, backupId, signal);
      return this.enqueue(status, [`verify/${credentialId}`], work, where);
    });
  }

  /** One job's status; NOT_FOUND for an unknown task id. */
  async get(taskId: string): Promise<JobStatus> {
    const live = this.live.get(taskId);
    if (live !== undefined) return { ...live.status };
    const stored = await this.jobs.get(taskId);
    if (stored === undefined) {
      throw new FerryError(
        'NOT_FOUND',
        `no backup or restore task ${taskId}; list them with POST /v1/cloudbackups/status`,
      );
    }
    return stored;
  }

  /** Every job this node knows (running, queued and finished), oldest first. */
  async list(): Promise<JobStatus[]> {
    const byId = new Map((await this.jobs.list()).map((j) => [j.task_id, j]));
    for (const [id, job] of this.live) byId.set(id, { ...job.status });
    return [...byId.values()].sort((a, b) => a.create_time.localeCompare(b.create_time));
  }

  /** Whether a restore of `backupId` is queued or running (deleting that backup is refused then). */
  restoring(backupId: string): boolean {
    return [...this.live.values()].some((j) => j.status.optype === 'Restore' && j.status.backup_id === backupId);
  }

  /**
   * StateChange. Stop aborts a queued, running or paused job (it ends Aborted). Pause holds the job's place (its
   * slot, or its place in the queue) and stops its block I/O at the next chunk batch; Resume continues it there.
   * Any change to a job that has ended, and Resume of a job that is not paused, is FAILED_PRECONDITION.
   */
  async stateChange(taskId: string, requested: RequestedState): Promise<void> {
    const job = await this.get(taskId);
    const live = this.live.get(taskId);
    if (live === undefined || isFinal(job)) {
      throw new FerryError('FAILED_PRECONDITION', `task ${taskId} has already ended (${job.status})`);
    }
    if (requested === 'Pause' || requested === 'Resume') {
      if (requested === 'Resume' && !live.gate.paused) {
        throw new FerryError('FAILED_PRECONDITION', `task ${taskId} is not paused (${job.status})`);
      }
      if (requested === 'Pause') live.gate.pause();
      else live.gate.resume();
      live.status.status = requested === 'Pause' ? 'Paused' : live.started ? 'Active' : 'Queued';
      await this.persist(live);
      return;
    }
    live.stopReason ??= 'stop';
    live.controller.abort(new Error(STOPPED_MESSAGE));
    await this.endQueued(live);
  }

  /** Resolves with a job's final status (for in-process callers; HTTP clients poll the status route). */
  async wait(taskId: string): Promise<JobStatus> {
    await this.live.get(taskId)?.done;
    return this.get(taskId);
  }

  /** Stops taking jobs, aborts the running and queued ones (they end Failed: SHUTDOWN_MESSAGE) and waits for them. */
  async close(): Promise<void> {
    this.closing = true;
    await this.submitting.catch(() => undefined);
    const jobs = [...this.live.values()];
    for (const job of jobs) {
      job.stopReason ??= 'shutdown';
      job.controller.abort(new Error(SHUTDOWN_MESSAGE));
    }
    await Promise.all(jobs.map((j) => this.endQueued(j)));
    await Promise.all(jobs.map((j) => j.done));
    this.repositories.close();
  }

  private async existing(
    taskId: string | undefined,
    optype: JobStatus['optype'],
    same: (job: JobStatus) => boolean,
  ): Promise<JobStatus | undefined> {
    if (this.closing) throw new FerryError('UNAVAILABLE', 'the node is shutting down; ask again when it is back');
    if (taskId === undefined) return undefined;
    const job = this.live.get(taskId)?.status ?? (await this.jobs.get(taskId));
    if (job === undefined) return undefined;
    if (job.optype !== optype || !same(job)) {
      throw new FerryError(
        'ALREADY_EXISTS',
        `task_id ${taskId} is already used by another ${job.optype.toLowerCase()}`,
        {
          field: 'task_id',
        },
      );
    }
    return { ...job };
  }

  private newStatus(
    taskId: string | undefined,
    optype: JobStatus['optype'],
    credentialId: string,
    volumeId: string,
    volumeName: string,
  ): JobStatus {
    return {
      task_id: taskId ?? randomUUID(),
      optype,
      status: 'Queued',
      bytes_done: 0,
      bytes_total: 0,
      src_volume_id: volumeId,
      info: [],
      credential_id: credentialId,
      create_time: new Date().toISOString(),
      volume_name: volumeName,
      node_id: this.owner.node,
    };
  }

  private async enqueue(
    status: JobStatus,
    keys: readonly string[],
    work: Work,
    where: Where,
    snapshot?: SnapshotInfo,
  ): Promise<JobStatus> {
    let resolveDone: () => void = () => undefined;
    const live: LiveJob = {
      status,
      controller: new AbortController(),
      done: new Promise((resolve) => {
        resolveDone = resolve;
      }),
      persisting: Promise.resolve(),
      lastPersist: 0,
      started: false,
      gate: new PauseGate(),
      ...(snapshot !== undefined && { snapshot }),
      finish: () => {
        this.live.delete(status.task_id);
        resolveDone();
      },
    };
    // Stored before it is accepted: a job the cluster store does not hold would be lost by a restart.
    await this.jobs.put(status);
    live.lastPersist = Date.now();
    this.live.set(status.task_id, live);
    this.scheduler.add(keys, async () => {
      if (live.started) return;
      live.started = true;
      try {
        await this.run(live, work, where);
      } finally {
        await live.persisting;
        live.finish();
      }
    });
    return { ...status };
  }

  /** A job stopped while it waits for a slot ends now, not when a slot frees. */
  private async endQueued(live: LiveJob): Promise<void> {
    if (live.started) return;
    live.started = true;
    await this.end(live, live.controller.signal.reason);
    live.finish();
  }

  private async run(live: LiveJob, work: Work, where: Where): Promise<void> {
    const { status, controller } = live;
    const signal = controller.signal;
    status.status = live.gate.paused ? 'Paused' : 'Active';
    status.start_time = new Date().toISOString();
    status.phase = 'preparing';
    void this.persist(live);
    const onProgress = (p: Progress): void => {
      status.bytes_done = p.bytes_done;
      status.bytes_total = p.bytes_total;
      status.phase = p.phase;
      if (p.eta_seconds === undefined) delete status.eta_seconds;
      else status.eta_seconds = p.eta_seconds;
      if (Date.now() - live.lastPersist >= this.persistEveryMs) void this.persist(live);
    };
    let lease: Awaited<ReturnType<RepositoryPool['acquire']>> | undefined;
    try {
      lease = await withRetry(
        async () => this.repositories.acquire(status.credential_id, signal, await where(signal)),
        this.options.retry ?? {},
        {
          signal,
          onRetry: (err, attempt, delayMs) => {
            status.info = [`attempt ${attempt} failed, retrying in ${delayMs} ms: ${messageOf(err)}`];
            void this.persist(live);
          },
        },
      );
      status.info = [];
      let source: BlockSource | undefined;
      const blocks = (): BlockSource =>
        (source ??= jobBlockSource(this.blocks(), {
          gate: live.gate,
          signal,
          ...(live.snapshot !== undefined && { snapshot: live.snapshot }),
        }));
      await work(lease.repo, signal, onProgress, blocks, () => live.gate.wait(signal));
      const notices = lease.repo.takeNotices();
      lease.release(true);
      // Restore totals are whole chunks; the last chunk of a volume may be shorter: at the end all of it is done.
      status.bytes_done = status.bytes_total;
      await this.end(live, undefined, notices);
    } catch (err: unknown) {
      const notices = lease?.repo.takeNotices() ?? [];
      lease?.release(false);
      await this.end(live, err, notices);
    }
  }

  /**
   * Records how a job ended: `err` undefined means its work completed. `notices` (damage the repository found and
   * repaired on the way) are added to the status's `info`.
   */
  private async end(live: LiveJob, err: unknown, notices: readonly string[] = []): Promise<void> {
    const { status } = live;
    delete status.eta_seconds;
    delete status.phase;
    status.completed_time = new Date().toISOString();
    // A job whose work completed is Done even if a Stop arrived meanwhile: its backup is committed.
    if (err === undefined) {
      status.status = 'Done';
    } else if (live.stopReason === 'stop') {
      status.status = 'Aborted';
      status.info = [STOPPED_MESSAGE];
      if (status.optype === 'Restore') await this.dropPartialRestore(status);
    } else if (live.stopReason === 'shutdown') {
      status.status = 'Failed';
      status.info = [SHUTDOWN_MESSAGE];
    } else {
      status.status = 'Failed';
      status.info = [messageOf(err)];
    }
    status.info.push(...notices);
    for (const notice of notices) this.options.warn?.(notice, { task_id: status.task_id });
    await this.persist(live);
    for (const listener of this.endedListeners) {
      try {
        listener({ ...status, info: [...status.info] });
      } catch {
        // A listener (metrics) never changes how a job ends.
      }
    }
  }

  /** A stopped restore leaves no half-written volume behind (a failed one stays, so that a retry resumes). */
  private async dropPartialRestore(status: JobStatus): Promise<void> {
    try {
      const blocks = this.blocks();
      const volume = await blocks.inspectVolume(status.volume_name);
      if (volume.status === 'restoring' && volume.labels['ferry.io/restored-from'] === status.backup_id) {
        await blocks.deleteVolume(volume.id);
      }
    } catch (err: unknown) {
      if (!isFerryError(err, 'NOT_FOUND')) status.info.push(`the partial volume could not be deleted: ${String(err)}`);
    }
  }

  /** The block source; UNAVAILABLE in a process that has none (the one place that says so). */
  private blocks(): BlockSource {
    const source = this.options.blockSource;
    if (source === undefined) throw new FerryError('UNAVAILABLE', NO_BLOCK_SOURCE_MESSAGE);
    return source;
  }

  private persist(live: LiveJob): Promise<void> {
    live.lastPersist = Date.now();
    const snapshot = { ...live.status, info: [...live.status.info] };
    // Writes are chained so that a late progress write never lands after the final one.
    live.persisting = live.persisting.then(() => this.jobs.put(snapshot)).catch(() => undefined);
    return live.persisting;
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const result = this.submitting.then(task, task);
    this.submitting = result.catch(() => undefined);
    return result;
  }
}

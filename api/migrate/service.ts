/**
 * Migrations of this cluster's volumes to paired clusters: start (one task per volume), status, cancel, manual
 * cutover, and at node start the recovery of the ones this node was running when it stopped (none is left
 * "in progress": each ends Done, Failed or Aborted, saying why).
 */
import { randomUUID } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import { type ClusterStore, RunsElsewhere, type VolumeEngine, type VolumeInfo } from '../../node/index.js';
import type { PairService } from '../pairs/service.js';
import { EncodePool } from './encode-pool.js';
import { dropMigrationSnapshots, Migration, remotePath } from './migration.js';
import { ended, listMigrations, type MigrationRecord, migrationKey } from './records.js';

/** How often recovery tries again when the other cluster cannot say whether a cutover completed. */
const RECOVERY_RETRY_MS = 10_000;
/** How often destination volumes left behind by ended migrations are removed again. */
const CLEANUP_EVERY_MS = 5_000;
/** How often a running migration looks for a cancel asked on another node. */
const CANCEL_CHECK_MS = 1000;

export interface MigrationServiceOptions {
  store: ClusterStore;
  engine: VolumeEngine;
  pairs: PairService;
  /** This node's id (the runner recorded in each migration). */
  nodeId: string;
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

/** What a start asks. */
export interface StartRequest {
  /** The pair, by name or id. */
  pair: string;
  /** Volumes by name or id. */
  volumes: string[];
  /** `auto` (default): cut over once a pass changes little; `manual`: wait for `cutover`. */
  cutover?: 'auto' | 'manual';
  /** The task id of the first volume's migration (a retry with the same id answers the same). */
  task_id?: string;
  /** Snapshots of the volume (names or ids) to carry over; one volume only. Default none. */
  snapshots?: string[];
}

/** The reason a stop aborts the running migrations with (not a cancel). */
class NodeStopping extends Error {}

export class MigrationService {
  private readonly running = new Map<string, { control: AbortController; done: Promise<MigrationRecord> }>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private closed = false;
  private cleaner: NodeJS.Timeout | undefined;
  /** Frame encoders shared by the migrations this node runs. */
  private readonly pool = new EncodePool();

  private constructor(private readonly options: MigrationServiceOptions) {}

  /** Opens the service and settles the migrations this node left unfinished. */
  static async open(options: MigrationServiceOptions): Promise<MigrationService> {
    const service = new MigrationService(options);
    for (const record of await listMigrations(options.store)) {
      if (record.node_id === options.nodeId && !ended(record)) await service.recover(record);
    }
    service.cleaner = setInterval(() => {
      void service
        .cleanUp()
        .catch((err: unknown) => options.warn?.('migration clean-up failed', { error: String(err) }));
    }, CLEANUP_EVERY_MS);
    service.cleaner.unref();
    return service;
  }

  async list(taskId?: string): Promise<MigrationRecord[]> {
    const all = await listMigrations(this.options.store);
    if (taskId === undefined) return all;
    const found = all.filter((m) => m.task_id === taskId);
    if (found.length === 0)
      throw new FerryError('NOT_FOUND', `no migration ${taskId}; ferry migrate status lists them`);
    return found;
  }

  async start(request: StartRequest): Promise<MigrationRecord[]> {
    const { engine, pairs, nodeId, store } = this.options;
    if (request.task_id !== undefined) {
      const existing = await store.get<MigrationRecord>(migrationKey(request.task_id));
      if (existing !== undefined) return [existing];
    }
    if (request.volumes.length === 0) {
      throw new FerryError('INVALID_ARGUMENT', 'volumes: name at least one volume', { field: 'volumes' });
    }
    const pair = await pairs.pair(request.pair);
    const active = (await listMigrations(store)).filter((m) => !ended(m));
    const volumes: VolumeInfo[] = [];
    for (const ref of request.volumes) {
      const volume = await engine.inspectVolume(ref);
      if (volume.status !== 'up') {
        throw new FerryError(
          'FAILED_PRECONDITION',
          `volume ${volume.name} is ${volume.status}: only an up volume migrates`,
        );
      }
      if (active.some((m) => m.volume_id === volume.id)) {
        throw new FerryError(
          'ALREADY_EXISTS',
          `volume ${volume.name} is being migrated already; see ferry migrate status`,
        );
      }
      if (volumes.some((v) => v.id === volume.id)) {
        throw new FerryError('INVALID_ARGUMENT', `volumes: ${volume.name} is named twice`, { field: 'volumes' });
      }
      // The cutover holds writes where the volume is attached: the migration runs there.
      const at = volume.attached_for === 'resync' ? undefined : volume.attached_node;
      if (at !== undefined && at !== nodeId) {
        throw new RunsElsewhere(at, `volume ${volume.name} is attached on node ${at}: its migration runs there`);
      }
      volumes.push(volume);
    }
    const snapshots = await this.chosenSnapshots(volumes, request.snapshots);
    if (engine.holdWrites === undefined) {
      throw new FerryError('FAILED_PRECONDITION', "this node cannot hold a volume's writes, so it cannot migrate one");
    }
    // Checked once more so that a start is refused before anything is made (Degraded is enough: a migration's calls
    // go from here to there).
    const status = await pairs.status(pair);
    if (status.status === 'Error') {
      throw new FerryError('UNAVAILABLE', `cluster pair ${pair.name} is not ready: ${status.reason ?? status.status}`);
    }
    const now = new Date().toISOString();
    const records: MigrationRecord[] = volumes.map((v, i) => ({
      task_id: i === 0 && request.task_id !== undefined ? request.task_id : randomUUID(),
      ...(snapshots.length > 0 && { snapshots, snapshots_done: 0 }),
      volume_id: v.id,
      volume_name: v.name,
      pair_id: pair.id,
      pair_name: pair.name,
      node_id: nodeId,
      cutover: request.cutover ?? 'auto',
      stage: 'InitialCopy',
      status: 'Queued',
      pass: 0,
      bytes_total: 0,
      bytes_done: 0,
      bytes_sent: 0,
      wire_bytes: 0,
      start_time: now,
      update_time: now,
    }));
    for (const r of records) await store.put(migrationKey(r.task_id), r);
    for (const r of records) this.launch(r);
    return records;
  }

  /** The snapshots a start names, oldest first; INVALID_ARGUMENT or NOT_FOUND before anything is made. */
  private async chosenSnapshots(
    volumes: readonly VolumeInfo[],
    refs: readonly string[] | undefined,
  ): Promise<{ id: string; name: string }[]> {
    if (refs === undefined || refs.length === 0) return [];
    const [volume] = volumes;
    if (volume === undefined || volumes.length > 1) {
      throw new FerryError('INVALID_ARGUMENT', 'snapshots: name them for one volume at a time', { field: 'snapshots' });
    }
    const all = await this.options.engine.listSnapshots(volume.id);
    const chosen = refs.map((ref) => {
      const found = all.find((s) => s.name === ref || s.id === ref || `${volume.name}@${s.name}` === ref);
      if (found === undefined) {
        throw new FerryError(
          'NOT_FOUND',
          `volume ${volume.name} has no snapshot ${ref}; ferry volume snapshot list ${volume.name}`,
        );
      }
      return found;
    });
    if (new Set(chosen.map((s) => s.id)).size !== chosen.length) {
      throw new FerryError('INVALID_ARGUMENT', 'snapshots: a snapshot is named twice', { field: 'snapshots' });
    }
    return chosen.sort((a, b) => a.created.localeCompare(b.created)).map((s) => ({ id: s.id, name: s.name }));
  }

  /** Asks the migration to stop; it undoes what it made (the source stays as it was) and ends Aborted. */
  async cancel(taskId: string): Promise<MigrationRecord> {
    const [record] = await this.list(taskId);
    if (record === undefined || ended(record)) return record as MigrationRecord;
    if (record.stage === 'Cutover') {
      throw new FerryError('FAILED_PRECONDITION', `migration ${taskId} is cutting over; it cannot be cancelled now`);
    }
    const next = { ...record, cancel_requested: true };
    await this.options.store.put(migrationKey(taskId), next);
    this.running.get(taskId)?.control.abort();
    return next;
  }

  /** Asks a migration started with `cutover: manual` to cut over. */
  async cutover(taskId: string): Promise<MigrationRecord> {
    const [record] = await this.list(taskId);
    if (record === undefined || ended(record)) {
      throw new FerryError('FAILED_PRECONDITION', `migration ${taskId} has ended (${record?.status})`);
    }
    if (record.cutover !== 'manual') {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `migration ${taskId} cuts over by itself (started without --cutover manual)`,
      );
    }
    const next = { ...record, cutover_requested: true };
    await this.options.store.put(migrationKey(taskId), next);
    return next;
  }

  /** How migration `taskId` stands, for the destination of pair `pairId` (NOT_FOUND when it is not that pair's). */
  async peerStatus(pairId: string, taskId: string): Promise<{ status: MigrationRecord['status']; stage: string }> {
    const record = await this.options.store.get<MigrationRecord>(migrationKey(taskId));
    if (record === undefined || record.pair_id !== pairId) {
      throw new FerryError('NOT_FOUND', `no migration ${taskId} to this cluster`);
    }
    return { status: record.status, stage: record.stage };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.cleaner !== undefined) clearInterval(this.cleaner);
    for (const t of this.retries) clearTimeout(t);
    for (const { control } of this.running.values()) control.abort(new NodeStopping('the node stopped'));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await this.pool.close();
  }

  private launch(record: MigrationRecord): void {
    const { store, engine, pairs } = this.options;
    const control = new AbortController();
    const done = (async () => {
      const pair = await pairs.pair(record.pair_id);
      const migration = new Migration(record, {
        engine,
        pair,
        link: pairs.link(pair),
        reload: async () => (await store.get<MigrationRecord>(migrationKey(record.task_id))) ?? record,
        save: async (r) => void (await store.put(migrationKey(r.task_id), r)),
        noteRate: (rate) => pairs.noteRate(pair.id, rate),
        encode: (offset, data) => this.pool.encode(offset, data),
        signal: control.signal,
      });
      const result = await migration.run();
      if (control.signal.reason instanceof NodeStopping && result.status !== 'Done') {
        const stopped = {
          ...result,
          status: 'Failed' as const,
          error_reason: 'the node stopped; start the migration again',
        };
        await store.put(migrationKey(record.task_id), stopped).catch(() => undefined);
        return stopped;
      }
      return result;
    })().catch(async (err: unknown) => {
      const failed: MigrationRecord = {
        ...record,
        status: 'Failed',
        error_reason: err instanceof Error ? err.message : String(err),
        completed_time: new Date().toISOString(),
      };
      await store.put(migrationKey(record.task_id), failed).catch(() => undefined);
      return failed;
    });
    // A cancel asked on another node is a flag in the record: seen within a second, even in the middle of a pass.
    const watcher = setInterval(() => {
      void store.get<MigrationRecord>(migrationKey(record.task_id)).then(
        (now) => {
          if (now?.cancel_requested === true) control.abort();
        },
        () => undefined,
      );
    }, CANCEL_CHECK_MS);
    watcher.unref();
    this.running.set(record.task_id, { control, done });
    void done.finally(() => {
      clearInterval(watcher);
      this.running.delete(record.task_id);
    });
  }

  /** Settles a migration this node was running when it stopped. */
  private async recover(record: MigrationRecord): Promise<void> {
    const { store, engine, pairs } = this.options;
    const save = (change: Partial<MigrationRecord>): Promise<number> =>
      store.put(migrationKey(record.task_id), {
        ...record,
        ...change,
        update_time: new Date().toISOString(),
        ...((change.status === 'Failed' || change.status === 'Done') && { completed_time: new Date().toISOString() }),
      });
    let link: ReturnType<PairService['link']> | undefined;
    try {
      link = pairs.link(await pairs.pair(record.pair_id));
    } catch {
      link = undefined;
    }
    if (record.stage === 'Cutover' && record.remote_volume_id !== undefined) {
      // Did the destination become the volume before the stop? Only the other cluster knows.
      let remote: string;
      try {
        if (link === undefined) throw new FerryError('UNAVAILABLE', 'the pair is gone');
        remote = (await link.call<{ status: string }>('GET', remotePath(record, ''))).status;
      } catch (err: unknown) {
        await save({
          error_reason: `the node restarted during the cutover and the other cluster cannot say whether it completed (${err instanceof Error ? err.message : String(err)}); trying again every ${RECOVERY_RETRY_MS / 1000} s; the volume takes no writes meanwhile`,
        });
        if (!this.closed) {
          const timer = setTimeout(() => {
            this.retries.delete(timer);
            void this.recover(record);
          }, RECOVERY_RETRY_MS);
          timer.unref();
          this.retries.add(timer);
        }
        return;
      }
      if (remote === 'up') {
        await engine.endHold?.(record.volume_id, {
          state: 'migrated',
          to: `${record.pair_name}/${record.volume_name}`,
        });
        await dropMigrationSnapshots(engine, record).catch(() => undefined);
        await save({
          status: 'Done',
          stage: 'Done',
          error_reason: 'the node restarted during the cutover, which had completed',
        });
        return;
      }
    }
    const problems: string[] = [];
    let cleanup: MigrationRecord['remote_cleanup'];
    if (record.remote_volume_id !== undefined) {
      try {
        if (link === undefined) throw new FerryError('UNAVAILABLE', 'the pair is gone');
        await link.call('DELETE', remotePath(record, ''));
      } catch (err: unknown) {
        if (!isFerryError(err, 'NOT_FOUND')) {
          cleanup = 'pending';
          problems.push(`the destination volume is not removed yet (${String(err)}); this node tries again`);
        }
      }
    }
    await engine.endHold?.(record.volume_id, { state: 'up' }).catch((err: unknown) => problems.push(String(err)));
    await dropMigrationSnapshots(engine, record).catch((err: unknown) => problems.push(String(err)));
    await save({
      status: 'Failed',
      error_reason: [
        `the node restarted during ${record.stage}; the source volume is as it was; start the migration again`,
        ...problems,
      ].join('; '),
      ...(cleanup !== undefined && { remote_cleanup: cleanup }),
    });
  }

  /** Removes the destination volumes of this node's ended migrations that could not be removed when they ended. */
  async cleanUp(): Promise<void> {
    const { store, pairs, nodeId } = this.options;
    for (const record of await listMigrations(store)) {
      if (record.node_id !== nodeId || record.remote_cleanup !== 'pending' || !ended(record)) continue;
      try {
        const link = pairs.link(await pairs.pair(record.pair_id));
        await link.call('DELETE', remotePath(record, '')).catch((err: unknown) => {
          if (!isFerryError(err, 'NOT_FOUND')) throw err;
        });
      } catch (err: unknown) {
        // The pair is gone: nothing can reach that volume from here any more (its cluster's sweep removes it).
        if (!isFerryError(err, 'NOT_FOUND')) continue;
      }
      const fresh = await store.get<MigrationRecord>(migrationKey(record.task_id));
      if (fresh !== undefined) await store.put(migrationKey(record.task_id), { ...fresh, remote_cleanup: 'done' });
    }
  }
}

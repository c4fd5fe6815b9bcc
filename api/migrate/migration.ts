/**
 * One volume's migration, run on the node that started it: the first copy of the allocated data, incremental passes
 * of changed blocks while the application writes, then the cutover (writes held, the last delta, the destination
 * made 'up', the source marked migrated). Every step is recorded in the cluster store before the next, so a restart
 * knows where it stopped (service.ts `recover`).
 */
import { FerryError, isFerryError } from '../../common/index.js';
import { failpoint, type SnapshotInfo, type VolumeEngine, type WriteHold } from '../../node/index.js';
import type { PeerClient } from '../pairs/channel.js';
import type { PairRecord } from '../pairs/records.js';
import { MIGRATION_LABEL, type ReceiveRequest } from './receiver.js';
import type { MigrationRecord } from './records.js';
import { type Delta, deltaBytes, shipDelta } from './sender.js';

/** A pass that changed fewer bytes than this ends the incremental passes (auto cutover). */
export const SMALL_DELTA_BYTES = 64 << 20;
/** Incremental passes at most before an automatic cutover, however much changes. */
export const MAX_PASSES = 12;
/** While a manual cutover is awaited, a pass every this many ms keeps the delta small. */
const AWAIT_PASS_MS = 5000;
/** Progress is written to the store at most this often. */
const SAVE_EVERY_MS = 1000;

/** What a migration reads and writes. */
export interface MigrationContext {
  engine: VolumeEngine;
  pair: PairRecord;
  link: PeerClient;
  /** Reads the record again (a cancel or cutover flag set on another node). */
  reload(): Promise<MigrationRecord>;
  /** Writes the record. */
  save(record: MigrationRecord): Promise<void>;
  /** Encodes frames off the event loop; default: on it. */
  encode?: (offset: number, data: Buffer) => Promise<Buffer>;
  /** The rate the link carried, bytes a second (pair status shows it). */
  noteRate(bytesPerSecond: number): void;
  signal: AbortSignal;
}

/** Peer paths of a migration's destination volume. */
export function remotePath(record: MigrationRecord, what: '' | '/data' | '/complete' | '/snapshots'): string {
  return `/peer/v1/migrations/${record.task_id}/volumes/${encodeURIComponent(record.remote_volume_id ?? '')}${what}`;
}

/** Names of the snapshots a migration takes on the source (labelled MIGRATION_LABEL). */
function snapshotName(record: MigrationRecord, pass: number): string {
  return `migrate-${record.task_id.slice(0, 8)}-${pass}`;
}

export class Migration {
  private record: MigrationRecord;
  private savedAt = 0;
  private hold: WriteHold | undefined;

  constructor(
    record: MigrationRecord,
    private readonly ctx: MigrationContext,
  ) {
    this.record = { ...record };
  }

  /** Runs it to the end; the record says how it ended (it never rejects). */
  async run(): Promise<MigrationRecord> {
    try {
      await this.update({ status: 'Active' }, true);
      await this.makeRemote();
      let base = await this.pass(await this.carrySnapshots(), 'InitialCopy');
      for (;;) {
        const now = await this.checkFlags();
        if (now.cutover === 'auto' && (this.record.pass > MAX_PASSES || this.lastDelta < SMALL_DELTA_BYTES)) break;
        if (now.cutover === 'manual') {
          if (now.cutover_requested === true) break;
          if (this.record.stage !== 'AwaitingCutover' && this.lastDelta < SMALL_DELTA_BYTES) {
            await this.update({ stage: 'AwaitingCutover' }, true);
          }
          if (this.record.stage === 'AwaitingCutover') await this.waitForCutover();
          if ((await this.checkFlags()).cutover_requested === true) break;
        }
        base = await this.pass(base, this.record.stage === 'AwaitingCutover' ? 'AwaitingCutover' : 'Incremental');
      }
      await this.cutover(base);
      await this.update({ stage: 'Done', status: 'Done', completed_time: new Date().toISOString() }, true);
    } catch (err: unknown) {
      await this.fail(err);
    }
    return this.record;
  }

  private lastDelta = Number.POSITIVE_INFINITY;
  /** The destination volume was made 'up': nothing is undone after that. */
  private remoteComplete = false;

  /** The destination volume, made once (a retry finds it again). */
  private async makeRemote(): Promise<void> {
    const volume = await this.ctx.engine.inspectVolume(this.record.volume_id);
    const request: ReceiveRequest = {
      migration_id: this.record.task_id,
      name: volume.name,
      size: volume.size,
      ha_level: volume.ha_level,
      labels: volume.labels,
      encrypted: volume.encrypted,
    };
    const made = await this.ctx.link.call<{ volume_id: string }>(
      'POST',
      '/peer/v1/migrations/volumes',
      { json: request },
      this.ctx.signal,
    );
    await this.update({ remote_volume_id: made.volume_id }, true);
  }

  /**
   * The snapshots chosen at start, oldest first: each one's delta from the one before, then the same snapshot taken
   * on the destination (nothing else writes there, so it holds exactly that point). Resolves with the last (the
   * first pass's base), or undefined when none was chosen.
   */
  private async carrySnapshots(): Promise<SnapshotInfo | undefined> {
    let base: SnapshotInfo | undefined;
    for (const [i, chosen] of (this.record.snapshots ?? []).entries()) {
      const snap = await this.ctx.engine.inspectSnapshot(chosen.id);
      if (i >= (this.record.snapshots_done ?? 0)) {
        await this.ship(base, snap, 'InitialCopy');
        await this.ctx.link.call(
          'POST',
          remotePath(this.record, '/snapshots'),
          { json: { name: snap.name, labels: snap.labels } },
          this.ctx.signal,
        );
        await this.update({ snapshots_done: i + 1 }, true);
      }
      base = snap;
    }
    return base;
  }

  /** One pass: a snapshot, its delta from `base` shipped; resolves with the snapshot (the next base). */
  private async pass(base: SnapshotInfo | undefined, stage: MigrationRecord['stage']): Promise<SnapshotInfo> {
    const pass = this.record.pass + 1;
    const snap = await this.ctx.engine.createSnapshot(this.record.volume_id, {
      name: snapshotName(this.record, pass),
      labels: { [MIGRATION_LABEL]: this.record.task_id },
    });
    try {
      await this.ship(base, snap, stage);
    } catch (err: unknown) {
      await this.dropSnapshot(snap);
      throw err;
    }
    // The base goes once the destination holds the next point (a snapshot the user chose stays).
    if (base !== undefined && base.labels[MIGRATION_LABEL] === this.record.task_id) await this.dropSnapshot(base);
    await this.update({ pass, last_snapshot_id: snap.id }, true);
    return snap;
  }

  private async ship(
    base: SnapshotInfo | undefined,
    target: SnapshotInfo,
    stage: MigrationRecord['stage'],
  ): Promise<void> {
    const delta: Delta = {
      volumeId: this.record.volume_id,
      exportName: `${this.record.volume_name}@${target.name}`,
      ...(base !== undefined && { baseSnapshotId: base.id }),
      targetSnapshotId: target.id,
    };
    const total = await deltaBytes(this.ctx.engine, delta);
    await this.update({ stage, bytes_total: total, bytes_done: 0 }, true);
    const started = performance.now();
    const sentBefore = this.record.bytes_sent;
    const wireBefore = this.record.wire_bytes;
    const shipped = await shipDelta(
      this.ctx.engine,
      delta,
      this.ctx.link,
      remotePath(this.record, '/data'),
      this.ctx.signal,
      (bytes, wire) => {
        const seconds = (performance.now() - started) / 1000;
        const rate = seconds > 0 ? bytes / seconds : 0;
        if (rate > 0) this.ctx.noteRate(wire / seconds);
        void this.update(
          {
            bytes_done: bytes,
            bytes_sent: sentBefore + bytes,
            wire_bytes: wireBefore + wire,
            ...(rate > 0 && { eta_seconds: Math.round((total - bytes) / rate) }),
          },
          false,
        ).catch(() => undefined);
      },
      this.ctx.encode,
    );
    this.lastDelta = shipped.bytes;
    await this.update(
      { bytes_done: shipped.bytes, bytes_sent: sentBefore + shipped.bytes, wire_bytes: wireBefore + shipped.wire },
      true,
    );
  }

  /** Writes held, the last delta, the destination made 'up', then the source marked migrated. */
  private async cutover(base: SnapshotInfo): Promise<void> {
    await this.update({ stage: 'Cutover' }, true);
    const hold = await this.ctx.engine.holdWrites?.(this.record.volume_id);
    if (hold === undefined) throw new FerryError('FAILED_PRECONDITION', "this node cannot hold a volume's writes");
    this.hold = hold;
    const heldAt = performance.now();
    const last = await this.pass(base, 'Cutover');
    failpoint('migrate.before-complete');
    await this.ctx.link.call('POST', remotePath(this.record, '/complete'), { json: {} }, this.ctx.signal);
    failpoint('migrate.after-complete');
    // From here the destination is the volume: the source never takes another write (held writes fail even when
    // the record cannot be changed now; a restart's recovery changes it).
    this.remoteComplete = true;
    this.hold = undefined;
    let problem: string | undefined;
    try {
      await hold.end({ state: 'migrated', to: `${this.ctx.pair.name}/${this.record.volume_name}` });
    } catch (err: unknown) {
      problem = `the source volume could not be marked migrated (${message(err)}); it takes no writes on this node`;
    }
    await this.update(
      {
        writes_held_ms: Math.round(performance.now() - heldAt),
        ...(problem !== undefined && { error_reason: problem }),
      },
      true,
    );
    await this.dropSnapshot(last).catch(() => undefined);
  }

  /** Undoes what a failed or cancelled migration made, and records how it ended. */
  private async fail(err: unknown): Promise<void> {
    const cancelled = this.ctx.signal.aborted || (await this.checkFlagsQuietly())?.cancel_requested === true;
    const hold = this.hold;
    this.hold = undefined;
    const problems: string[] = [];
    let cleanup: MigrationRecord['remote_cleanup'];
    if (this.remoteComplete) {
      await this.update(
        { status: 'Done', stage: 'Done', error_reason: message(err), completed_time: new Date().toISOString() },
        true,
      ).catch(() => undefined);
      return;
    }
    if (this.record.remote_volume_id !== undefined) {
      try {
        await this.ctx.link.call('DELETE', remotePath(this.record, ''));
      } catch (failed: unknown) {
        cleanup = 'pending';
        problems.push(`the destination volume is not removed yet (${message(failed)}); this node tries again`);
      }
    }
    if (hold !== undefined) await hold.end({ state: 'up' }).catch((e: unknown) => problems.push(message(e)));
    await dropMigrationSnapshots(this.ctx.engine, this.record).catch((e: unknown) => problems.push(message(e)));
    const reason = cancelled ? 'cancelled' : message(err);
    await this.update(
      {
        status: cancelled ? 'Aborted' : 'Failed',
        error_reason: [reason, ...problems].join('; '),
        completed_time: new Date().toISOString(),
        ...(cleanup !== undefined && { remote_cleanup: cleanup }),
      },
      true,
    ).catch(() => undefined);
  }

  private async dropSnapshot(snap: SnapshotInfo): Promise<void> {
    await this.ctx.engine.deleteSnapshot(snap.id).catch((err: unknown) => {
      if (!isFerryError(err, 'NOT_FOUND')) throw err;
    });
  }

  /** The flags set from elsewhere; a cancel ends the run here. */
  private async checkFlags(): Promise<MigrationRecord> {
    this.ctx.signal.throwIfAborted();
    const now = await this.ctx.reload();
    if (now.cancel_requested === true) throw new FerryError('FAILED_PRECONDITION', 'cancelled');
    this.record = { ...this.record, cutover_requested: now.cutover_requested === true };
    return this.record;
  }

  private async checkFlagsQuietly(): Promise<MigrationRecord | undefined> {
    try {
      return await this.ctx.reload();
    } catch {
      return undefined;
    }
  }

  private async waitForCutover(): Promise<void> {
    const until = Date.now() + AWAIT_PASS_MS;
    while (Date.now() < until) {
      if ((await this.checkFlags()).cutover_requested === true) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private async update(change: Partial<MigrationRecord>, force: boolean): Promise<void> {
    this.record = { ...this.record, ...change, update_time: new Date().toISOString() };
    const now = Date.now();
    if (!force && now - this.savedAt < SAVE_EVERY_MS) return;
    this.savedAt = now;
    await this.ctx.save(this.record);
  }
}

/** Deletes the snapshots migration `record` took on the source. */
export async function dropMigrationSnapshots(engine: VolumeEngine, record: MigrationRecord): Promise<void> {
  let snaps: SnapshotInfo[];
  try {
    snaps = await engine.listSnapshots(record.volume_id);
  } catch (err: unknown) {
    if (isFerryError(err, 'NOT_FOUND')) return;
    throw err;
  }
  for (const s of snaps) {
    if (s.labels[MIGRATION_LABEL] !== record.task_id) continue;
    await engine.deleteSnapshot(s.id).catch((err: unknown) => {
      if (!isFerryError(err, 'NOT_FOUND')) throw err;
    });
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

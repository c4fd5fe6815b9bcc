/**
 * The destination's side of a migration: the volume it fills (created 'restoring', so nothing attaches it before
 * the cutover), the frames written into it, and the cutover that makes it 'up'. Each call names the migration; a
 * volume made for one migration is touched only by that migration's calls (the label MIGRATION_LABEL says which).
 */
import { FerryError, isFerryError } from '../../common/index.js';
import {
  type BlockDevice,
  ENCRYPTED_LABEL,
  failpoint,
  KEK_LABEL,
  KEY_PROVIDER_LABEL,
  type VolumeEngine,
  type VolumeInfo,
} from '../../node/index.js';
import { decodeFrames } from './frames.js';

/** Carried by a volume a migration is filling: the migration's task id. */
export const MIGRATION_LABEL = 'ferry.io/migration';
/** And the pair it comes through. */
export const MIGRATION_PAIR_LABEL = 'ferry.io/migration-pair';

/** How often volumes left filling by a migration that ended on the source are looked for. */
const SWEEP_EVERY_MS = 60_000;
/** Frames of one data call written at once. */
const WRITES_AT_ONCE = 8;
/** The first look, soon after the node starts (it may have been down when a migration to it ended). */
const FIRST_SWEEP_MS = 2000;

/** A device left open between a migration's calls is closed after this long without one. */
const IDLE_CLOSE_MS = 2 * 60_000;

/** What the source asks the destination to make. */
export interface ReceiveRequest {
  migration_id: string;
  name: string;
  size: number;
  ha_level: number;
  labels: Record<string, string>;
  encrypted: boolean;
}

interface OpenTarget {
  device: BlockDevice;
  timer: NodeJS.Timeout;
}

export class MigrationReceiver {
  private readonly targets = new Map<string, OpenTarget>();
  private readonly queues = new Map<string, Promise<unknown>>();

  private sweeper: NodeJS.Timeout | undefined;

  /**
   * `askSource`: how the source of pair `pairId` says migration `taskId` stands (its status; NOT_FOUND when it does
   * not know it), used to remove volumes a migration left filling when it ended while this node could not be told.
   */
  constructor(
    private readonly engine: VolumeEngine,
    private readonly askSource?: (pairId: string, taskId: string) => Promise<{ status: string }>,
  ) {
    if (askSource !== undefined) {
      const first = setTimeout(() => void this.sweep().catch(() => undefined), FIRST_SWEEP_MS);
      first.unref();
      this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), SWEEP_EVERY_MS);
      this.sweeper.unref();
    }
  }

  /**
   * Removes the volumes migrations left filling here whose source says they ended without a cutover (or no longer
   * knows them); a source that cannot be reached is asked again later. Returns the names removed.
   */
  async sweep(): Promise<string[]> {
    const ask = this.askSource;
    if (ask === undefined) return [];
    const removed: string[] = [];
    for (const v of await this.engine.listVolumes()) {
      const task = v.labels[MIGRATION_LABEL];
      const pair = v.labels[MIGRATION_PAIR_LABEL];
      if (v.status !== 'restoring' || task === undefined || pair === undefined || this.targets.has(v.id)) continue;
      let ended: boolean;
      try {
        const { status } = await ask(pair, task);
        ended = status === 'Failed' || status === 'Aborted';
      } catch (err: unknown) {
        ended = isFerryError(err, 'NOT_FOUND') || isFerryError(err, 'PERMISSION_DENIED');
      }
      if (!ended) continue;
      await this.abandon(task, v.id).then(
        () => removed.push(v.name),
        () => undefined,
      );
    }
    return removed;
  }

  /** Makes (or finds again, for a retry) the volume a migration through pair `pairId` fills. */
  async create(pairId: string, request: ReceiveRequest): Promise<{ volume_id: string; created: boolean }> {
    const labels: Record<string, string> = {
      ...request.labels,
      [MIGRATION_LABEL]: request.migration_id,
      [MIGRATION_PAIR_LABEL]: pairId,
    };
    // The source's KEK names a key of the source's providers: this cluster encrypts under its own default.
    delete labels[KEK_LABEL];
    delete labels[KEY_PROVIDER_LABEL];
    if (!request.encrypted) delete labels[ENCRYPTED_LABEL];
    const existing = await this.find(request.name);
    if (existing !== undefined) {
      if (existing.labels[MIGRATION_LABEL] === request.migration_id && existing.status === 'restoring') {
        return { volume_id: existing.id, created: false };
      }
      throw new FerryError(
        'ALREADY_EXISTS',
        `a volume named ${request.name} already exists on the destination cluster; delete or rename it there first`,
      );
    }
    const { volume } = await this.engine.createVolume({
      name: request.name,
      size: request.size,
      ha_level: request.ha_level,
      labels,
      encrypted: request.encrypted,
      restoring: true,
    });
    return { volume_id: volume.id, created: true };
  }

  /**
   * Writes a data call's frames into the volume, several at a time (a call's ranges never overlap, and calls running
   * at once carry different ranges of one pass); resolves once they are durable.
   */
  async write(migrationId: string, volumeId: string, body: AsyncIterable<Uint8Array>): Promise<{ bytes: number }> {
    const device = await this.serially(volumeId, () => this.device(migrationId, volumeId));
    let bytes = 0;
    const inflight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    const note = (err: unknown): void => {
      failure ??= { err };
    };
    try {
      for await (const frame of decodeFrames(body)) {
        if (failure !== undefined) break;
        if (frame.offset + frame.length > device.size) {
          throw new FerryError(
            'INVALID_ARGUMENT',
            `a frame at ${frame.offset}+${frame.length} is past the volume's end`,
          );
        }
        const started =
          frame.data === undefined
            ? device.writeZeroes(frame.offset, frame.length)
            : device.write(frame.offset, frame.data);
        const written: Promise<void> = started.catch(note).finally(() => inflight.delete(written));
        inflight.add(written);
        bytes += frame.length;
        failpoint('migrate.receive');
        if (inflight.size >= WRITES_AT_ONCE) await Promise.race(inflight);
      }
    } finally {
      // Nothing of this call is still being written when it answers, whatever the answer.
      await Promise.all(inflight);
    }
    if (failure !== undefined) throw (failure as { err: unknown }).err;
    await device.flush();
    return { bytes };
  }

  /**
   * The snapshot a migration carries over, taken of what the calls so far wrote (idempotent: a retry finds it by
   * name).
   */
  snapshot(
    migrationId: string,
    volumeId: string,
    name: string,
    labels: Record<string, string>,
  ): Promise<{ snapshot_id: string }> {
    return this.serially(volumeId, async () => {
      const device = await this.device(migrationId, volumeId);
      await device.flush();
      const existing = (await this.engine.listSnapshots(volumeId)).find((s) => s.name === name);
      if (existing !== undefined) return { snapshot_id: existing.id };
      const snap = await this.engine.createSnapshot(volumeId, { name, labels });
      return { snapshot_id: snap.id };
    });
  }

  /** The cutover's last step here: the volume becomes 'up' (idempotent: a retry after it did answers the same). */
  complete(migrationId: string, volumeId: string): Promise<{ status: string }> {
    return this.serially(volumeId, async () => {
      const volume = await this.engine.inspectVolume(volumeId);
      if (volume.labels[MIGRATION_LABEL] !== migrationId) throw notOurs(volume, migrationId);
      if (volume.status === 'restoring') {
        await this.closeTarget(volumeId);
        await this.engine.completeRestore(volumeId);
      }
      await this.engine.updateVolume(volumeId, { labels: { [MIGRATION_LABEL]: '', [MIGRATION_PAIR_LABEL]: '' } });
      return { status: 'up' };
    });
  }

  /** Removes what the migration made (cancel, failure): only while it is still filling. */
  abandon(migrationId: string, volumeId: string): Promise<{ deleted: boolean }> {
    return this.serially(volumeId, async () => {
      let volume: VolumeInfo;
      try {
        volume = await this.engine.inspectVolume(volumeId);
      } catch (err: unknown) {
        if (isFerryError(err, 'NOT_FOUND')) return { deleted: false };
        throw err;
      }
      if (volume.labels[MIGRATION_LABEL] !== migrationId || volume.status !== 'restoring') {
        throw new FerryError(
          'FAILED_PRECONDITION',
          `volume ${volume.name} is ${volume.status} on the destination and no longer this migration's: it is kept`,
        );
      }
      await this.closeTarget(volumeId);
      await this.engine.deleteVolume(volumeId);
      return { deleted: true };
    });
  }

  /** The state of the volume a migration fills (`up` once cut over). */
  async state(migrationId: string, volumeId: string): Promise<{ status: string; ours: boolean }> {
    try {
      const volume = await this.engine.inspectVolume(volumeId);
      const ours = volume.labels[MIGRATION_LABEL] === migrationId || volume.status === 'up';
      return { status: volume.status, ours };
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) return { status: 'absent', ours: false };
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    for (const id of [...this.targets.keys()]) await this.closeTarget(id).catch(() => undefined);
  }

  private async find(name: string): Promise<VolumeInfo | undefined> {
    try {
      return await this.engine.inspectVolume(name);
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) return undefined;
      throw err;
    }
  }

  private async device(migrationId: string, volumeId: string): Promise<BlockDevice> {
    const open = this.targets.get(volumeId);
    if (open !== undefined) {
      open.timer.refresh();
      return open.device;
    }
    const volume = await this.engine.inspectVolume(volumeId);
    if (volume.labels[MIGRATION_LABEL] !== migrationId || volume.status !== 'restoring') {
      throw notOurs(volume, migrationId);
    }
    const device = await this.engine.openForRestore(volumeId);
    const timer = setTimeout(() => void this.closeTarget(volumeId).catch(() => undefined), IDLE_CLOSE_MS);
    timer.unref();
    this.targets.set(volumeId, { device, timer });
    return device;
  }

  private async closeTarget(volumeId: string): Promise<void> {
    const open = this.targets.get(volumeId);
    if (open === undefined) return;
    this.targets.delete(volumeId);
    clearTimeout(open.timer);
    await open.device.close();
  }

  /** Runs the calls on one volume one at a time. */
  private serially<T>(volumeId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(volumeId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.queues.set(volumeId, tail);
    void tail.then(() => {
      if (this.queues.get(volumeId) === tail) this.queues.delete(volumeId);
    });
    return run;
  }
}

function notOurs(volume: VolumeInfo, migrationId: string): FerryError {
  return new FerryError(
    'FAILED_PRECONDITION',
    `volume ${volume.name} on the destination is not being filled by migration ${migrationId}`,
  );
}

/**
 * Space of the data directory's file system, and the reserve that keeps a full disk fixable.
 *
 * The node keeps `<dataDir>/space.reserve`, a file of `reserveBytes` written out (real blocks, not a hole). New data
 * (allocating writes, creates) is taken only while the reserve is held and at least `minFreeBytes` are free beside
 * it; below that the node is `full`. Metadata work that gives space back (deletes, the garbage rule, start-up) may
 * use the reserve: when it fails for want of space, the reserve is released and the work retried once. The reserve
 * is made again once `reserveBytes + minFreeBytes` are free. Start-up releases it at once when the disk is full, so
 * the cluster store can open and the node can serve the deletes that fix the disk.
 */
import { statfs } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';
import { fsyncDir } from './fsutil.js';

/** `ok`, `warn` (used at or above the warn threshold) or `full` (new data refused). */
export type SpaceState = 'ok' | 'warn' | 'full';

/** The data directory's file system as the node sees it. */
export interface SpaceStatus {
  state: SpaceState;
  /** The data directory. */
  path: string;
  /** Size of its file system. */
  size_bytes: number;
  /** Bytes free for the node (statfs f_bavail); the reserve counts as used. */
  free_bytes: number;
  /** Percentage of the file system in use (0-100). */
  used_percent: number;
  /** Threshold of `warn`: percentage used. */
  warn_percent: number;
  /** Threshold of `full`: fewer free bytes than this (beside the reserve). */
  min_free_bytes: number;
  /** Size of the metadata reserve the node keeps. */
  reserve_bytes: number;
  /** Whether the reserve is held now (false: released for metadata, or not made yet for want of space). */
  reserve_held: boolean;
  /** Why the node is `full` (absent otherwise). */
  reason?: string;
}

export interface SpaceOptions {
  /** The data directory. */
  dataDir: string;
  /** Warn at or above this percentage used. Default 90. */
  warnPercent?: number;
  /** Size of the reserve file. Default 16 MiB; 0 keeps none. */
  reserveBytes?: number;
  /** `full` below this many free bytes (beside the reserve). Default 1% of the file system, 16 MiB to 1 GiB. */
  minFreeBytes?: number;
  /** How long a sample of the file system is reused, in ms. Default 1000. */
  sampleMs?: number;
}

const MiB = 1024 * 1024;
const RESERVE_FILE = 'space.reserve';
const WRITE_STEP = MiB;

interface Sample {
  size: number;
  free: number;
  at: number;
}

function statfsOf(path: string): Promise<Sample> {
  return new Promise((resolve, reject) =>
    statfs(path, (err, s) => {
      if (err !== null) reject(err);
      else resolve({ size: s.blocks * s.bsize, free: s.bavail * s.bsize, at: Date.now() });
    }),
  );
}

/** Whether `err` (or an error it wraps) says the file system has no space: ENOSPC, EDQUOT, SQLITE_FULL. */
export function isNoSpace(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (typeof e === 'object' && 'code' in e) {
      const code = (e as { code: unknown }).code;
      if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return true;
    }
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** A byte count for people: `12.5 MiB`. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Watches the data directory's file system and keeps the metadata reserve. */
export class SpaceGuard {
  readonly dataDir: string;
  readonly warnPercent: number;
  private readonly sampleMs: number;
  private reserveBytes: number;
  private minFreeBytes: number;
  private readonly explicitMinFree: boolean;
  private sample: Sample | undefined;
  private sampling: Promise<Sample> | undefined;
  /** Whether the reserve file is in place (true until `open` has looked, so no sample starts making one). */
  private held = true;
  private remaking: Promise<void> | undefined;

  private constructor(options: SpaceOptions) {
    this.dataDir = options.dataDir;
    this.warnPercent = options.warnPercent ?? 90;
    this.sampleMs = options.sampleMs ?? 1000;
    this.explicitMinFree = options.minFreeBytes !== undefined;
    this.reserveBytes = options.reserveBytes ?? 16 * MiB;
    this.minFreeBytes = options.minFreeBytes ?? 16 * MiB;
  }

  /**
   * Opens the guard of a data directory (which must exist): samples its file system, releases the reserve when the
   * disk is full (start-up must be able to write), else makes it when missing.
   */
  static async open(options: SpaceOptions): Promise<SpaceGuard> {
    if (options.warnPercent !== undefined && !(options.warnPercent > 0 && options.warnPercent <= 100)) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        `the warn threshold must be a percentage in (0, 100], not ${options.warnPercent}`,
      );
    }
    for (const [name, v] of [
      ['reserve size', options.reserveBytes],
      ['minimum free space', options.minFreeBytes],
    ] as const) {
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) {
        throw new FerryError('INVALID_ARGUMENT', `the ${name} must be a whole number of bytes, not ${v}`);
      }
    }
    const guard = new SpaceGuard(options);
    const s = await guard.refresh(true);
    if (!guard.explicitMinFree) guard.minFreeBytes = Math.min(1024 * MiB, Math.max(16 * MiB, Math.floor(s.size / 100)));
    const existing = await guard.reserveFileSize();
    guard.held = existing >= guard.reserveBytes;
    if (guard.held && s.free < guard.minFreeBytes) await guard.release();
    else if (!guard.held) await guard.maybeRemake();
    return guard;
  }

  private get reservePath(): string {
    return join(this.dataDir, RESERVE_FILE);
  }

  private async reserveFileSize(): Promise<number> {
    try {
      return (await stat(this.reservePath)).size;
    } catch {
      return 0;
    }
  }

  /** Samples the file system now (or reuses a sample younger than `sampleMs` unless `force`). */
  async refresh(force = false): Promise<Sample> {
    const s = this.sample;
    if (!force && s !== undefined && Date.now() - s.at < this.sampleMs) return s;
    this.sampling ??= statfsOf(this.dataDir).finally(() => {
      this.sampling = undefined;
    });
    const sample = await this.sampling;
    this.sample = sample;
    // Space came back (a delete elsewhere, a file removed by hand): make the reserve again.
    if (
      !this.held &&
      this.reserveBytes > 0 &&
      this.remaking === undefined &&
      sample.free >= this.reserveBytes + this.minFreeBytes
    ) {
      void this.maybeRemake();
    }
    return sample;
  }

  /** The state as of the last sample (sync: the write path asks it); starts a new sample when that one is old. */
  get full(): boolean {
    const s = this.sample;
    if (s === undefined || Date.now() - s.at >= this.sampleMs) void this.refresh().catch(() => undefined);
    return s === undefined ? false : this.fullReason(s) !== undefined;
  }

  /** Whether space is short (`warn` or `full` as of the last sample): the garbage rule then frees as it copies. */
  get tight(): boolean {
    const s = this.sample;
    if (s === undefined) return false;
    return this.fullReason(s) !== undefined || (s.size > 0 && ((s.size - s.free) / s.size) * 100 >= this.warnPercent);
  }

  private fullReason(s: Sample): string | undefined {
    if (this.reserveBytes > 0 && !this.held) {
      return `its metadata reserve of ${humanBytes(this.reserveBytes)} is in use and is made again once ${humanBytes(this.reserveBytes + this.minFreeBytes)} are free`;
    }
    if (s.free < this.minFreeBytes) return `fewer than ${humanBytes(this.minFreeBytes)} are free`;
    return undefined;
  }

  /** The state now (samples the file system when the last sample is old). */
  async status(): Promise<SpaceStatus> {
    const s = await this.refresh();
    const used = s.size === 0 ? 0 : ((s.size - s.free) / s.size) * 100;
    const reason = this.fullReason(s);
    const state: SpaceState = reason !== undefined ? 'full' : used >= this.warnPercent ? 'warn' : 'ok';
    return {
      state,
      path: this.dataDir,
      size_bytes: s.size,
      free_bytes: s.free,
      used_percent: Math.round(used * 10) / 10,
      warn_percent: this.warnPercent,
      min_free_bytes: this.minFreeBytes,
      reserve_bytes: this.reserveBytes,
      reserve_held: this.held || this.reserveBytes === 0,
      ...(reason !== undefined && { reason }),
    };
  }

  /** RESOURCE_EXHAUSTED for `what` (e.g. `volume db cannot be created`) naming the space, when the node is full. */
  async checkRoom(what: string): Promise<void> {
    const status = await this.status();
    if (status.state === 'full') throw this.exhausted(what, status);
  }

  /** The RESOURCE_EXHAUSTED error of a refusal for want of space, naming how much is free of how much. */
  exhausted(what: string, status: SpaceStatus, cause?: unknown): FerryError {
    return new FerryError(
      'RESOURCE_EXHAUSTED',
      `${what}: the data directory ${status.path} is full: ${humanBytes(status.free_bytes)} free of ${humanBytes(status.size_bytes)} (${status.used_percent}% used; ${status.reason ?? 'no space left'}); delete snapshots or volumes you no longer need, or grow the file system`,
      cause === undefined ? {} : { cause },
    );
  }

  /** The same as `exhausted` from a fresh sample, for a write that just failed with ENOSPC. */
  async exhaustedNow(what: string, cause: unknown): Promise<FerryError> {
    await this.refresh(true).catch(() => undefined);
    const status = await this.status();
    return this.exhausted(what, { ...status, reason: status.reason ?? 'no space left on the device' }, cause);
  }

  /**
   * Runs `fn`, which gives space back or must not fail for want of it (a delete, the garbage rule); when it fails with
   * ENOSPC or SQLITE_FULL, releases the reserve and runs it once more. `fn` must be safe to run again after a failure.
   */
  async withReserve<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err: unknown) {
      if (!isNoSpace(err) || !(await this.release())) throw err;
      process.emitWarning(
        `the data directory is full: released the metadata reserve (${humanBytes(this.reserveBytes)}) to finish a change that frees space`,
        'FerrySpaceWarning',
      );
      return fn();
    }
  }

  /** Gives the reserve's blocks back to the file system; resolves whether there was one to give. */
  async release(): Promise<boolean> {
    await this.remaking?.catch(() => undefined);
    if (!this.held && (await this.reserveFileSize()) === 0) return false;
    this.held = false;
    await unlink(this.reservePath).catch(() => undefined);
    await unlink(`${this.reservePath}.tmp`).catch(() => undefined);
    await this.refresh(true);
    return true;
  }

  /** Makes the reserve again when it is missing and there is room for it and the minimum free beside it. */
  maybeRemake(): Promise<void> {
    this.remaking ??= this.remake()
      .catch((err: unknown) => {
        process.emitWarning(`making the metadata reserve failed: ${String(err)}`, 'FerrySpaceWarning');
      })
      .finally(() => {
        this.remaking = undefined;
      });
    return this.remaking;
  }

  private async remake(): Promise<void> {
    if (this.held || this.reserveBytes === 0) {
      this.held = true;
      return;
    }
    const s = await this.refresh(true);
    const have = await this.reserveFileSize();
    if (s.free + have < this.reserveBytes + this.minFreeBytes) return;
    const tmp = `${this.reservePath}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      const zeros = Buffer.alloc(WRITE_STEP);
      for (let at = 0; at < this.reserveBytes; at += WRITE_STEP) {
        await file.write(zeros, 0, Math.min(WRITE_STEP, this.reserveBytes - at), at);
      }
      await file.sync();
    } catch (err: unknown) {
      await file.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      if (isNoSpace(err)) return;
      throw err;
    }
    await file.close();
    await rename(tmp, this.reservePath);
    await fsyncDir(this.reservePath);
    this.held = true;
    await this.refresh(true);
  }

  /** Waits for a reserve being made. */
  async settled(): Promise<void> {
    await this.remaking;
  }
}

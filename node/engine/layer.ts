import { access, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../../common/native/index.js';
import { DIRECT_ALIGN, GRANULE } from './constants.js';
import { closeFd, datasyncFd, openDirectFd, openFd, pread, pwrite, pwriteAsync } from './fileio.js';
import { fsyncDir } from './fsutil.js';
import { GranuleMap, type GranuleState, type Run } from './granule-map.js';
import { MapLog } from './map-log.js';
import { punchHole } from './punch.js';

/** What the cluster store keeps about a layer. */
export interface LayerRecord {
  id: string;
  /** The layer below this one, or null for a base layer. */
  parent: string | null;
  /** A frozen layer never changes content again (it backs a snapshot or a clone). */
  frozen: boolean;
}

/**
 * One copy-on-write layer: a sparse data file addressed by volume offset, plus the map of which granules this
 * layer holds (DATA), hides as zero (ZERO), or leaves to the layers below (ABSENT). Files are created on the first
 * write, so an empty layer (every snapshot of an idle volume) costs nothing on disk.
 *
 * Write ordering for durability: data goes to the data file in place; the map changes of completed writes are
 * queued and, on flush, appended to the map log only after the data file is synced. A crash before that leaves
 * the layer as of the previous flush.
 */
export class Layer {
  parent: Layer | undefined;
  frozen: boolean;
  readonly children = new Set<Layer>();
  private map: GranuleMap | undefined;
  private log: MapLog | undefined;
  private fd: number | undefined;
  /** The data file opened for direct writes (undefined where they are not offered), once first asked for. */
  private directFd: Promise<number | undefined> | undefined;
  /** Bytes written past the page cache (uncached writes that were aligned, on a file system that allows it). */
  directBytes = 0;
  private pending: Run[] = [];
  private dataDirty = false;
  private flushing: Promise<void> | undefined;
  private loading: Promise<void> | undefined;
  private creating: Promise<void> | undefined;

  constructor(
    readonly id: string,
    private readonly dir: string,
    frozen: boolean,
  ) {
    this.frozen = frozen;
  }

  get record(): LayerRecord {
    return { id: this.id, parent: this.parent?.id ?? null, frozen: this.frozen };
  }

  private get dataPath(): string {
    return join(this.dir, `${this.id}.data`);
  }

  private get mapPath(): string {
    return join(this.dir, `${this.id}.map`);
  }

  /** The loaded map; call `load()` first. */
  get granules(): GranuleMap {
    if (this.map === undefined) throw new Error(`layer ${this.id} used before load()`);
    return this.map;
  }

  get loaded(): boolean {
    return this.map !== undefined;
  }

  /** Loads the map (replaying its log) once. */
  load(): Promise<void> {
    if (this.map !== undefined) return Promise.resolve();
    this.loading ??= this.doLoad();
    return this.loading;
  }

  private async doLoad(): Promise<void> {
    try {
      const exists = await access(this.mapPath).then(
        () => true,
        () => false,
      );
      if (!exists) {
        this.map = new GranuleMap();
        return;
      }
      const { log, map } = await MapLog.open(this.mapPath, GRANULE);
      this.log = log;
      this.map = map;
      if (await this.dataFileExists()) this.fd = await openFd(this.dataPath, false);
    } finally {
      this.loading = undefined;
    }
  }

  private dataFileExists(): Promise<boolean> {
    return access(this.dataPath).then(
      () => true,
      () => false,
    );
  }

  /** Creates the layer's files if this is its first write. */
  async ensureFiles(): Promise<void> {
    if (this.fd !== undefined && this.log !== undefined) return;
    this.creating ??= this.createFiles().finally(() => {
      this.creating = undefined;
    });
    await this.creating;
  }

  private async createFiles(): Promise<void> {
    await this.load();
    if (this.fd === undefined) this.fd = await openFd(this.dataPath, true);
    if (this.log === undefined) this.log = (await MapLog.open(this.mapPath, GRANULE)).log;
    await fsyncDir(this.dataPath);
  }

  /** Reads bytes of this layer's data file (only meaningful where the map says DATA). */
  async readData(buf: Buffer, bufOffset: number, length: number, position: number): Promise<void> {
    if (this.fd === undefined) {
      buf.fill(0, bufOffset, bufOffset + length);
      return;
    }
    await pread(this.fd, buf, bufOffset, length, position);
  }

  /**
   * Writes bytes into the data file; the caller marks the map afterwards with `mark`. `uncached` (data not read back
   * soon, as a restore's) writes past the page cache where the buffer, the position and the length are aligned to
   * DIRECT_ALIGN and the file system offers direct I/O: no copy into the cache and no write-back to follow.
   */
  async writeData(buf: Buffer, bufOffset: number, length: number, position: number, uncached = false): Promise<void> {
    if (this.fd === undefined || this.log === undefined) await this.ensureFiles();
    this.dataDirty = true;
    if (uncached && directAligned(buf, bufOffset, length, position)) {
      this.directFd ??= openDirectFd(this.dataPath);
      const direct = await this.directFd;
      if (direct !== undefined) {
        try {
          await pwriteAsync(direct, buf, bufOffset, length, position);
          this.directBytes += length;
          return;
        } catch (err: unknown) {
          // A device with a larger sector than DIRECT_ALIGN refuses the write: it goes through the cache instead.
          if (!(err instanceof Error && 'code' in err && err.code === 'EINVAL')) throw err;
        }
      }
    }
    await pwrite(this.fd as number, buf, bufOffset, length, position);
  }

  /** Frees the disk space of granules this layer no longer holds data for (after `mark` moved them off DATA). */
  async release(start: number, count: number): Promise<void> {
    if (this.fd === undefined || count <= 0) return;
    await punchHole(this.fd, start * GRANULE, count * GRANULE);
  }

  /** Records a state change of granules (in memory now, durable at the next flush). */
  mark(start: number, count: number, state: GranuleState): void {
    if (count <= 0) return;
    this.granules.set(start, count, state);
    const last = this.pending[this.pending.length - 1];
    if (last !== undefined && last.state === state && last.start + last.count === start) last.count += count;
    else this.pending.push({ start, count, state });
  }

  get hasUnflushed(): boolean {
    return this.pending.length > 0 || this.dataDirty;
  }

  /** Makes every write and mark completed before this call durable. */
  async flush(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
    if (!this.hasUnflushed) return;
    const runs = this.pending;
    const syncData = this.dataDirty;
    this.pending = [];
    this.dataDirty = false;
    this.flushing = (async () => {
      try {
        if (runs.length > 0) await this.ensureFiles();
        if (syncData && this.fd !== undefined) await datasyncFd(this.fd);
        if (this.log !== undefined) {
          await this.log.append(runs);
          // A rewrite of the log reads the map as it is by then, with marks of writes that completed since this
          // flush began: their data is made durable before the new log counts.
          await this.log.maybeCompact(this.granules, async () => {
            if (this.fd !== undefined) await datasyncFd(this.fd);
          });
        }
      } catch (err: unknown) {
        this.pending = runs.concat(this.pending);
        this.dataDirty ||= syncData;
        throw err;
      }
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = undefined;
    }
  }

  /** Bytes of data this layer holds. */
  get bytesUsed(): number {
    return this.map === undefined ? 0 : this.map.dataCount * GRANULE;
  }

  /** Closes the files (after a flush). */
  async close(): Promise<void> {
    await this.flush();
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await closeFd(fd);
    const direct = await this.directFd?.catch(() => undefined);
    this.directFd = undefined;
    if (direct !== undefined) await closeFd(direct);
    await this.log?.close();
    this.log = undefined;
    this.map = undefined;
  }

  /** Closes and removes the files. */
  async destroy(): Promise<void> {
    this.pending = [];
    this.dataDirty = false;
    await this.close();
    await removeLayerFiles(this.dir, this.id);
  }
}

/** A new buffer of `length` bytes whose memory starts on a DIRECT_ALIGN boundary, so it can be written uncached. */
export function directBuffer(length: number): Buffer {
  const raw = Buffer.allocUnsafeSlow(length + DIRECT_ALIGN);
  const gap = native.alignmentGap(raw, DIRECT_ALIGN);
  return raw.subarray(gap, gap + length);
}

function directAligned(buf: Buffer, bufOffset: number, length: number, position: number): boolean {
  return (
    length > 0 &&
    length % DIRECT_ALIGN === 0 &&
    position % DIRECT_ALIGN === 0 &&
    native.alignmentGap(buf.subarray(bufOffset, bufOffset + length), DIRECT_ALIGN) === 0
  );
}

/** Removes a layer's files (those present). */
export async function removeLayerFiles(dir: string, id: string): Promise<void> {
  for (const suffix of ['.data', '.map', '.map.tmp']) {
    await unlink(join(dir, `${id}${suffix}`)).catch((err: unknown) => {
      if (!(err instanceof Error && 'code' in err && err.code === 'ENOENT')) throw err;
    });
  }
}

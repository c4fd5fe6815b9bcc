/**
 * The repository's write path for one backup: compressed chunks are sealed into packs (pack.ts), finished packs go
 * up through a bounded set of uploads, an index object is written every `indexEvery` stored packs (a checkpoint: a
 * crash re-uploads at most those), and the backup's `running/` marker (running-markers.ts) is written first and
 * removed last, so that garbage collection never deletes a pack this backup may still reuse (docs/FORMAT.md).
 */
import PQueue from 'p-queue';
import { FerryError } from '../../common/index.js';
import { type IndexedPack, indexedPack } from './chunk-index.js';
import { packKey, runningKey } from './layout.js';
import { PackBuilder } from './pack.js';
import type { Repository } from './repository.js';
import { type MarkerOwner, runningMarker, thisProcess } from './running-markers.js';

export interface PackWriterOptions {
  /** The backup's id (its `running/` marker's name). */
  backupId: string;
  /** The volume backed up (written into the marker). */
  volumeId: string;
  /** When the backup started (written into the marker). */
  started: Date;
  /** Who runs the backup (written into the marker); default this host's name and this process. */
  owner?: MarkerOwner;
  /** Pack uploads in flight; default 2. Memory is bounded by this (plus the pack being built) times the pack size. */
  uploadConcurrency?: number;
  /** Stored packs between index checkpoints (a crash re-uploads at most these); default 8. */
  indexEvery?: number;
  signal?: AbortSignal;
}

/** What the writer uploaded (the backup record's stats). */
export interface PackStats {
  packs: number;
  bytes_uploaded: number;
}

/** Packs checked with one HEAD each up to this many; more are checked against one listing of `packs/`. */
const HEAD_CHECKS = 32;

/**
 * Packs and uploads one backup's new chunks. Call `start` first (marker, index, condemned packs), `stored`/`has` to
 * dedup, `add` for each new chunk in order, then `finish` and `confirmReused` before the commit, and `close` after it;
 * `abort` then `close` on failure.
 */
export class PackWriter {
  readonly stats: PackStats = { packs: 0, bytes_uploaded: 0 };
  private readonly signal: AbortSignal | undefined;
  private readonly marker: string;
  private readonly queue: PQueue;
  private readonly indexEvery: number;
  /** A pack closes once it reaches packSize, so it never holds more than that plus one chunk and its header. */
  private readonly packCapacity: number;
  /** Buffers of stored packs are reused: a backup allocates (concurrency + 1) packs' worth, not one per pack. */
  private readonly spareBuffers: Buffer[] = [];
  /** The pack being built: made at the first chunk, after the job's setup (its garbage is collected before). */
  private pack: PackBuilder | undefined;
  /** Packs this backup uploaded, and packs of earlier backups whose chunks it reuses (checked before commit). */
  private readonly own = new Set<string>();
  private readonly reused = new Set<string>();
  /**
   * Packs shipped and not yet stored, and stored packs no index object names yet (only those: a backup's new packs
   * are in the repository's on-disk index, so memory does not grow with the backup).
   */
  private readonly inFlight = new Set<string>();
  private unindexed: IndexedPack[] = [];
  /** Packs condemned by garbage collection may be deleted by it: never dedup against them. */
  private condemned = new Map<string, Date>();
  private failure: unknown;

  constructor(
    private readonly repo: Repository,
    private readonly options: PackWriterOptions,
  ) {
    this.signal = options.signal;
    this.marker = runningKey(options.backupId);
    this.queue = new PQueue({ concurrency: options.uploadConcurrency ?? 2 });
    this.indexEvery = options.indexEvery ?? 8;
    this.packCapacity = repo.packSize + repo.chunkSize + 64 * 1024;
  }

  /** Writes the backup's `running/` marker and loads the index and the condemned packs, all at once. */
  async start(): Promise<void> {
    const { backupId, volumeId, started, owner } = this.options;
    const [, , condemned] = await Promise.all([
      this.repo.putSealedJson(
        this.marker,
        runningMarker(backupId, volumeId, started, owner ?? thisProcess()),
        this.signal,
      ),
      this.repo.refreshIndex(this.signal),
      this.repo.condemned(this.signal),
    ]);
    this.condemned = condemned;
  }

  /**
   * Whether the repository already holds the chunk in a pack a backup may reuse (not condemned, not missing); the
   * pack is then checked before the commit (`confirmReused`).
   */
  stored(chunkId: Buffer): boolean {
    const loc = this.repo.index.get(chunkId);
    if (loc === undefined || this.condemned.has(loc.pack.id) || this.repo.missingPacks.has(loc.pack.id)) return false;
    this.reused.add(loc.pack.id);
    return true;
  }

  /** Whether the pack being built holds the chunk. */
  has(chunkId: Buffer): boolean {
    return this.pack?.has(chunkId) === true;
  }

  /** The first upload or checkpoint failure, thrown. */
  throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Seals a chunk compressed by a worker (`codec | payload`) into the pack being built; a full pack is shipped and
   * the next one starts once it is queued, in the buffer of an upload that has finished.
   */
  async add(chunkId: Buffer, body: Buffer): Promise<void> {
    this.pack ??= this.newPack();
    this.pack.addEncoded(chunkId, body);
    if (this.pack.size < this.repo.packSize) return;
    await this.ship(this.pack);
    this.pack = this.newPack();
  }

  /** Ships the last pack, waits for every upload and writes the last checkpoint. */
  async finish(): Promise<void> {
    if (this.pack !== undefined) await this.ship(this.pack);
    await this.queue.onIdle();
    this.throwIfFailed();
    await this.checkpoint();
  }

  /**
   * Never Done with a chunk in a pack that is gone or that no stored index object names: the index is loaded again
   * (an index object lost meanwhile is rebuilt from the packs' headers), and the packs of earlier backups whose
   * chunks this one reuses must exist. FAILED_PRECONDITION otherwise, and those packs are marked missing, so a new
   * attempt uploads their chunks again.
   */
  async confirmReused(): Promise<void> {
    const { signal } = this;
    await this.repo.refreshIndex(signal);
    const packIds = [...this.reused].filter((p) => !this.own.has(p));
    let missing: string[];
    if (packIds.length > HEAD_CHECKS) {
      const present = await this.repo.packIds(signal);
      missing = packIds.filter((p) => !present.has(p) || !this.repo.index.hasPack(p));
    } else {
      const exist = await Promise.all(packIds.map((p) => this.repo.packExists(p, signal)));
      missing = packIds.filter((p, i) => !exist[i] || !this.repo.index.hasPack(p));
    }
    if (missing.length === 0) return;
    for (const p of missing) this.repo.missingPacks.add(p);
    throw new FerryError(
      'FAILED_PRECONDITION',
      `backup ${this.options.backupId} was not committed: ${missing.length} pack(s) holding chunks it reuses no longer exist ` +
        `(${missing.slice(0, 3).map(packKey).join(', ')}); run the backup again: it uploads those chunks anew`,
    );
  }

  /**
   * Waits for the uploads still in flight (after a failure, those already started), then removes the backup's marker
   * (after the commit, or after a failure); never fails. Nothing reaches the store for this backup afterwards.
   */
  async close(): Promise<void> {
    await this.queue.onIdle().catch(() => undefined);
    await this.repo.deleteObjects([this.marker]).catch(() => undefined);
  }

  /** After a failure: packs not stored leave the index (a restore must never look for them). Then `close`. */
  abort(): void {
    this.repo.index.dropPacks(this.inFlight);
  }

  private newPack(): PackBuilder {
    return new PackBuilder(this.repo.keys, this.spareBuffers.pop() ?? this.packCapacity);
  }

  private async ship(builder: PackBuilder): Promise<void> {
    if (builder.count === 0) return;
    const indexed = indexedPack(builder.ref, builder.entries);
    this.own.add(indexed.ref.id);
    // New copies win over condemned ones, so restores of this backup never read a pack about to be deleted.
    this.repo.index.add(indexed, true);
    this.inFlight.add(indexed.ref.id);
    const body = builder.finish();
    this.stats.packs++;
    this.stats.bytes_uploaded += body.length;
    const queue = this.queue;
    // At most `concurrency` packs uploading, plus the one being built: the builder waits here for a free slot.
    while (queue.size + queue.pending >= queue.concurrency) await new Promise((r) => queue.once('next', r));
    this.throwIfFailed();
    queue
      .add(async () => {
        await this.repo.putPack(builder.ref.id, body, this.signal);
        this.spareBuffers.push(builder.buffer);
        this.inFlight.delete(indexed.ref.id);
        this.unindexed.push(indexed);
        if (this.unindexed.length >= this.indexEvery) await this.checkpoint();
      })
      .catch((err: unknown) => {
        this.failure ??= err;
      });
  }

  private async checkpoint(): Promise<void> {
    const batch = this.unindexed;
    this.unindexed = [];
    await this.repo.writeIndex(batch, this.signal);
  }
}

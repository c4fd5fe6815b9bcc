import { FerryError } from '../common/index.js';
import type { BlockDevice, ClusterStore, SnapshotInfo } from '../node/index.js';
import { commitBackup } from './backup/commit.js';
import { compressFresh, InOrder } from './backup/compress.js';
import { type ChunkStats, dedupBatch } from './backup/dedup.js';
import { batchesOf, chunkRuns, type DiffSource, surveyDiff } from './backup/diff.js';
import { HashAhead } from './backup/hash.js';
import { ManifestBuilder } from './backup/manifest.js';
import { type BackupPlan, planBackup, takeSnapshot } from './backup/plan.js';
import { sealBatch } from './backup/seal.js';
import type { SnapshotSource } from './ports.js';
import { type Progress, ProgressTracker } from './progress.js';
import type { PackWriter } from './repo/pack-writer.js';
import type { BackupRecord, Repository } from './repo/repository.js';
import type { MarkerOwner } from './repo/running-markers.js';
import { JobMemory, type MemoryPolicy } from './workers/memory-policy.js';
import { ChunkWorkers } from './workers/pool.js';

export interface BackupContext {
  engine: SnapshotSource;
  repo: Repository;
  /** The node's cluster store: remembers each volume's last successful backup (and its snapshot) per repository. */
  store: ClusterStore;
}

export interface BackupOptions {
  /** Volume id or name. */
  volume: string;
  /** Re-read every allocated block instead of only the changes (uploads only what the repository lacks). */
  full?: boolean;
  labels?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Pack uploads in flight; default 2. Memory is bounded by this (plus the pack being built) times the pack size. */
  uploadConcurrency?: number;
  /** Packs between index checkpoints (a crash re-uploads at most these); default 8. */
  indexEvery?: number;
  /**
   * Who runs the backup, written into its `running/` marker so that the node can clear the markers of its own dead
   * processes at start (repo/running-markers.ts). Default: this host's name and this process.
   */
  owner?: MarkerOwner;
  /** When the job collects its heap and trims the allocator (workers/memory-policy.ts); default DEFAULT_MEMORY_POLICY. */
  memory?: MemoryPolicy;
}

/** Bytes read from the snapshot per request. */
const READ_SIZE = 2 * 1024 * 1024;

/**
 * Backs a volume up, as a sequence of stages (docs/ARCHITECTURE.md): plan (backup/plan.ts: snapshot, base, changed
 * blocks since the last backup's snapshot or the allocation map), read and hash (backup/read.ts, hash.ts: chunks and
 * keyed ids, by the chunk workers), dedup against the repository (backup/dedup.ts), compress (backup/compress.ts:
 * zstd), seal and pack (backup/seal.ts, repo/pack-writer.ts: AES-GCM into packs uploaded with bounded concurrency,
 * index checkpoints, the running marker), then commit (backup/commit.ts: manifest pages for what changed, the backup
 * record, the last backup). Only after the commit is the previous backup snapshot released.
 */
export async function backupVolume(ctx: BackupContext, options: BackupOptions): Promise<BackupRecord> {
  const { engine, repo, store } = ctx;
  const signal = options.signal;
  const progress = new ProgressTracker(options.onProgress);
  progress.phase('preparing');
  const plan = await planBackup({
    engine,
    repo,
    store,
    volume: options.volume,
    full: options.full === true,
    started: new Date(),
    ...(signal !== undefined && { signal }),
  });
  const snapshot = await takeSnapshot(engine, repo, plan);
  const writer = repo.packWriter({
    backupId: plan.id,
    volumeId: plan.volume.id,
    started: plan.started,
    ...(options.owner !== undefined && { owner: options.owner }),
    ...(options.uploadConcurrency !== undefined && { uploadConcurrency: options.uploadConcurrency }),
    ...(options.indexEvery !== undefined && { indexEvery: options.indexEvery }),
    ...(signal !== undefined && { signal }),
  });
  const run = new BackupRun(ctx, options, plan, snapshot, writer, progress);
  try {
    const record = await run.run();
    progress.phase('done');
    return record;
  } catch (err: unknown) {
    await run.abort();
    await engine.deleteSnapshot(snapshot.id).catch(() => undefined);
    await writer.close();
    if (err instanceof FerryError) throw err;
    const what = `backup ${plan.id} of ${plan.volume.name}`;
    if (signal?.aborted) throw new FerryError('FAILED_PRECONDITION', `${what} was stopped`, { cause: err });
    throw new FerryError('INTERNAL', `${what} failed: ${String(err)}`, { cause: err });
  }
}

/** One backup between its plan and its commit: the stages wired together, and what a failure must release. */
class BackupRun {
  private readonly workers = ChunkWorkers.shared();
  private readonly memory: JobMemory;
  private readonly io: { device: BlockDevice | undefined } = { device: undefined };
  private readonly appends = new InOrder();
  private hashing: HashAhead | undefined;
  private readonly stats: ChunkStats = { bytes_scanned: 0, bytes_new: 0, chunks: 0, chunks_new: 0, chunks_zero: 0 };
  /** Ids being compressed, not yet in a pack: later batches must not add them again. */
  private readonly compressing = new Set<string>();

  constructor(
    private readonly ctx: BackupContext,
    private readonly options: BackupOptions,
    private readonly plan: BackupPlan,
    private readonly snapshot: SnapshotInfo,
    private readonly writer: PackWriter,
    private readonly progress: ProgressTracker,
  ) {
    // Batches, compressed bodies and packs live in reused buffers: the policy's full collections (every 256 MiB read
    // by default) keep the heap flat and hand malloc's free memory back, as in restores (workers/memory-policy.ts).
    this.memory = new JobMemory(options.memory, this.workers);
  }

  async run(): Promise<BackupRecord> {
    const { repo } = this.ctx;
    const { base } = this.plan;
    const signal = this.options.signal;
    // Independent requests at the start go out together: a remote store's latency is paid once, not four times.
    const [, basePage] = await Promise.all([
      this.writer.start(),
      base === undefined ? undefined : repo.getPage(Buffer.from(base.record.root, 'hex'), signal),
    ]);
    const diff: DiffSource = {
      engine: this.ctx.engine,
      volumeId: this.plan.volume.id,
      baseSnapshotId: base?.snapshotId,
      targetSnapshotId: this.snapshot.id,
    };
    const size = this.snapshot.size;
    const shape = { chunkSize: repo.chunkSize, leafChunks: repo.leafChunks, size };
    // A first pass over the diff for the total and the leaves it touches; the reads then stream from a second one.
    const { bytes: totalBytes, leaves: touched } = await surveyDiff(diff, shape);
    this.progress.setTotal(totalBytes);
    const manifest = new ManifestBuilder({
      repo,
      base: base === undefined || basePage === undefined ? undefined : { id: base.record.id, rootPage: basePage },
      baseChunks: base?.record.chunks_total ?? 0,
      touched,
      size,
      ...(signal !== undefined && { signal }),
    });
    // The base leaves this backup changes are fetched ahead, a few at a time, while earlier leaves are processed.
    manifest.prefetch();
    // Loading the index and the survey (a pass over the whole volume's diff) left dead objects and freed temporaries
    // in the heap and malloc's arenas: both go before the data buffers come (the first base leaves are being fetched
    // meanwhile). Collected before the survey, its garbage stayed until the data phase's first collection.
    this.memory.afterSetup();
    this.io.device = await this.ctx.engine.openExport(`${this.plan.volume.name}@${this.snapshot.name}`);
    // Batches of whole chunks, never crossing a leaf, pulled from the diff as the backup goes.
    const batches = batchesOf(chunkRuns(diff, repo.chunkSize), { ...shape, readSize: READ_SIZE });
    this.hashing = new HashAhead(this.workers, repo.keys.idKeyBytes, repo.chunkSize, this.io.device, batches);
    await this.hashing.fill();
    await this.consume(this.hashing, manifest);
    await this.appends.done();
    await manifest.finishLeaf();
    await this.writer.finish();
    this.progress.phase('committing');
    return commitBackup({
      ...this.ctx,
      plan: this.plan,
      snapshot: this.snapshot,
      io: this.io,
      writer: this.writer,
      manifest,
      stats: this.stats,
      labels: this.options.labels,
      ...(signal !== undefined && { signal }),
    });
  }

  /** Decides each hashed batch in order, and queues its new chunks for compression and sealing. */
  private async consume(hashing: HashAhead, manifest: ManifestBuilder): Promise<void> {
    const { repo } = this.ctx;
    const dedupShape = { chunkSize: repo.chunkSize, leafChunks: repo.leafChunks };
    while (hashing.pending) {
      this.options.signal?.throwIfAborted();
      this.throwIfFailed();
      const { batch, hashed } = await hashing.next();
      await manifest.enter(batch.leaf);
      const fresh = dedupBatch(batch, hashed, manifest.leaf, this.writer, this.compressing, this.stats, dedupShape);
      // Compression runs in the workers while the next batches are hashed and decided; packs are appended in order.
      const bodies = compressFresh(this.workers, hashed, fresh.fresh);
      const input = { ...fresh, length: batch.length, chunkSize: repo.chunkSize };
      await this.appends.push(() => sealBatch(this.writer, bodies, input, this.compressing, this.stats, this.memory));
      this.progress.add(batch.length);
    }
  }

  private throwIfFailed(): void {
    if (this.appends.failure !== undefined) throw this.appends.failure;
    this.writer.throwIfFailed();
  }

  /**
   * After a failure: appends settle, packs not stored leave the index, batches read ahead go back to the workers,
   * the device closes.
   */
  async abort(): Promise<void> {
    await this.appends.settled();
    this.writer.abort();
    await this.hashing?.release();
    await this.io.device?.close().catch(() => undefined);
  }
}

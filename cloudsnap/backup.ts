import { randomBytes } from 'node:crypto';
import PQueue from 'p-queue';
import { FerryError, isFerryError } from '../common/errors.js';
import type { BlockDevice, ClusterStore } from '../node/index.js';
import { type Batch, batchesOf, chunkRuns, type DiffSource, type Piece, surveyDiff } from './backup-plan.js';
import type { SnapshotSource } from './ports.js';
import { type Progress, ProgressTracker } from './progress.js';
import { type IndexedPack, indexedPack } from './repo/chunk-index.js';
import { sealJson } from './repo/envelope.js';
import { newBackupId, packKey, runningKey } from './repo/layout.js';
import { decodeLeaf, decodeRoot, encodeLeaf, encodeRoot, type Leaf, type Root } from './repo/manifest.js';
import { PackBuilder } from './repo/pack.js';
import type { BackupRecord, Repository } from './repo/repository.js';
import { type MarkerOwner, runningMarker, thisProcess } from './repo/running-markers.js';
import { type LastBackup, lastBackupKey } from './state.js';
import { ChunkWorkers, type HashedBatch } from './workers/pool.js';
import { collectAndTrim } from './workers/reclaim.js';

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
   * processes at start (running-markers.ts). Default: this host's name and this process.
   */
  owner?: MarkerOwner;
}

/** Bytes read from the snapshot per request. */
const READ_SIZE = 2 * 1024 * 1024;
/** Batches read and hashed ahead of the one being packed. */
const LOOKAHEAD = 4;
/** Batches being compressed while later ones are decided. */
const COMPRESS_AHEAD = 3;
/** Base leaf pages fetched ahead of the leaf being processed. */
const LEAF_PREFETCH = 4;
/** Leaf page uploads in flight. */
const LEAF_PUTS = 8;
const PREFIX = 'cloudsnap-';

/**
 * Backs a volume up: snapshot, changed blocks since the last backup's snapshot (or the allocation map), chunks,
 * keyed ids, dedup against the repository, zstd, AES-GCM, packs uploaded with bounded concurrency, index
 * checkpoints, manifest pages for what changed, then the backup record (the commit). Only after the commit is the
 * previous backup snapshot released.
 */
export async function backupVolume(ctx: BackupContext, options: BackupOptions): Promise<BackupRecord> {
  const { engine, repo, store } = ctx;
  const signal = options.signal;
  const started = new Date();
  const progress = new ProgressTracker(options.onProgress);
  progress.phase('preparing');
  const volume = await engine.inspectVolume(options.volume);
  const id = newBackupId(started, randomBytes(4).toString('hex'));
  const lastKey = lastBackupKey(repo.id, volume.id);
  const last = await store.get<LastBackup>(lastKey);
  await removeOrphanSnapshots(engine, volume.id, repo.id, last?.snapshot_id);

  let base: { record: BackupRecord; snapshotId: string } | undefined;
  if (options.full !== true && last !== undefined) {
    try {
      const record = await repo.getBackup(last.backup_id, signal);
      await engine.inspectSnapshot(last.snapshot_id);
      if (record.chunk_size === repo.chunkSize && record.size <= volume.size)
        base = { record, snapshotId: last.snapshot_id };
    } catch (err: unknown) {
      // A damaged base record hides only that backup: this one reads every allocated block instead.
      if (!isFerryError(err, 'NOT_FOUND') && !isFerryError(err, 'DATA_CORRUPTION')) throw err;
    }
  }

  const snapshot = await engine.createSnapshot(volume.id, {
    name: `${PREFIX}${id}`,
    labels: { 'ferry.io/backup': id, 'ferry.io/repository': repo.id },
  });
  const marker = runningKey(id);
  let device: BlockDevice | undefined;
  const workers = ChunkWorkers.shared();
  // Batches, compressed bodies and packs live in reused buffers: a full collection every 256 MiB read keeps the heap
  // flat, and hands malloc's free memory back, as in restores. No forced young collections, for the same reason as
  // there (restore.ts): they moved every batch's objects in flight to the old generation.
  const reclaimer = workers.jobReclaimer();
  const ahead: Array<Promise<{ batch: Batch; hashed: HashedBatch }>> = [];
  /** The in-order chain that appends compressed chunks to packs. */
  let appendTail: Promise<void> = Promise.resolve();
  /** Packs shipped and not yet stored, and stored packs no index object names yet (only those: a backup's new packs
   * are in the repository's on-disk index, so memory does not grow with the backup). */
  const inFlight = new Set<string>();
  let unindexed: IndexedPack[] = [];
  try {
    // Independent requests at the start go out together: a remote store's latency is paid once, not four times.
    const [, , condemned, basePage] = await Promise.all([
      repo.store.put(
        marker,
        sealJson(repo.keys, marker, runningMarker(id, volume.id, started, options.owner ?? thisProcess())),
        { signal },
      ),
      repo.refreshIndex(signal),
      // Condemned packs may be deleted by garbage collection: never dedup against them.
      repo.condemned(signal),
      base === undefined ? undefined : repo.getPage(Buffer.from(base.record.root, 'hex'), signal),
    ]);
    /** Packs this backup uploaded, and packs of earlier backups whose chunks it reuses (checked before commit). */
    const ownPacks = new Set<string>();
    const reused = new Set<string>();
    const stored = (chunkId: Buffer): boolean => {
      const loc = repo.index.get(chunkId);
      if (loc === undefined || condemned.has(loc.pack.id) || repo.missingPacks.has(loc.pack.id)) return false;
      reused.add(loc.pack.id);
      return true;
    };
    const C = repo.chunkSize;
    const L = repo.leafChunks;
    const diff: DiffSource = {
      engine,
      volumeId: volume.id,
      baseSnapshotId: base?.snapshotId,
      targetSnapshotId: snapshot.id,
    };
    const size = snapshot.size;
    const totalChunks = Math.ceil(size / C);
    // A first pass over the diff for the total and the leaves it touches; the reads then stream from a second one.
    const { bytes: totalBytes, leaves: touched } = await surveyDiff(diff, { chunkSize: C, leafChunks: L, size });
    progress.setTotal(totalBytes);

    const baseRoot: Root | undefined =
      base !== undefined && basePage !== undefined
        ? decodeRoot(basePage, `root of backup ${base.record.id}`)
        : undefined;
    // The base leaves this backup changes are fetched ahead, a few at a time, while earlier leaves are processed.
    const leafFetches = new Map<number, Promise<Leaf>>();
    let fetchedUpTo = 0;
    const prefetchLeaves = (): void => {
      while (fetchedUpTo < touched.length && leafFetches.size < LEAF_PREFETCH) {
        const n = touched[fetchedUpTo++] as number;
        const pageId = baseRoot?.leaves.get(n);
        if (pageId === undefined || base === undefined) continue;
        const p = repo
          .getPage(pageId, signal)
          .then((page) => decodeLeaf(page, `leaf ${n} of backup ${base.record.id}`));
        p.catch(() => undefined);
        leafFetches.set(n, p);
      }
    };
    prefetchLeaves();
    // Loading the index and the survey (a pass over the whole volume's diff) left dead objects and freed temporaries
    // in the heap and malloc's arenas: both go before the data buffers come. Collected before the survey, its garbage
    // stayed until the data phase's first collection (after 256 MiB), around when a job's memory peaks, and only a
    // large volume's survey makes much of it. The first base leaves are being fetched meanwhile.
    collectAndTrim();
    /** Leaf pages being uploaded; the root is written once they all are. */
    const leafPuts: Promise<void>[] = [];
    const root: Root = { size, chunkSize: C, leafChunks: L, leaves: new Map(baseRoot?.leaves ?? []) };
    for (const leafNo of [...root.leaves.keys()]) if (leafNo * L >= totalChunks) root.leaves.delete(leafNo);
    let chunksTotal = base?.record.chunks_total ?? 0;

    const queue = new PQueue({ concurrency: options.uploadConcurrency ?? 2 });
    const indexEvery = options.indexEvery ?? 8;
    let failure: unknown;
    // A pack closes once it reaches packSize, so it never holds more than that plus one chunk and its header.
    const packCapacity = repo.packSize + repo.chunkSize + 64 * 1024;
    // Buffers of stored packs are reused: a backup allocates (concurrency + 1) packs' worth, not one per pack.
    const spareBuffers: Buffer[] = [];
    const newPack = (): PackBuilder => new PackBuilder(repo.keys, spareBuffers.pop() ?? packCapacity);
    let pack = newPack();
    const stats = {
      bytes_scanned: 0,
      bytes_new: 0,
      bytes_uploaded: 0,
      chunks: 0,
      chunks_new: 0,
      chunks_zero: 0,
      packs: 0,
    };

    const ship = async (builder: PackBuilder): Promise<void> => {
      if (builder.count === 0) return;
      const indexed = indexedPack(builder.ref, builder.entries);
      ownPacks.add(indexed.ref.id);
      // New copies win over condemned ones, so restores of this backup never read a pack about to be deleted.
      repo.index.add(indexed, true);
      inFlight.add(indexed.ref.id);
      const body = builder.finish();
      stats.packs++;
      stats.bytes_uploaded += body.length;
      // At most `concurrency` packs uploading, plus the one being built: the builder waits here for a free slot.
      while (queue.size + queue.pending >= queue.concurrency) await new Promise((r) => queue.once('next', r));
      if (failure !== undefined) throw failure;
      queue
        .add(async () => {
          await repo.store.put(packKey(builder.ref.id), body, { signal });
          spareBuffers.push(builder.buffer);
          inFlight.delete(indexed.ref.id);
          unindexed.push(indexed);
          if (unindexed.length >= indexEvery) await checkpoint();
        })
        .catch((err: unknown) => {
          failure ??= err;
        });
    };
    const checkpoint = async (): Promise<void> => {
      const batch = unindexed;
      unindexed = [];
      await repo.writeIndex(batch, signal);
    };

    let leafNo = -1;
    let leaf: Leaf = new Map();
    let baseLeafSize = 0;
    const finishLeaf = async (): Promise<void> => {
      if (leafNo < 0) return;
      chunksTotal += leaf.size - baseLeafSize;
      if (leaf.size === 0) {
        root.leaves.delete(leafNo);
        return;
      }
      const n = leafNo;
      const put = repo.putPage(encodeLeaf(leaf), signal).then((pageId) => {
        root.leaves.set(n, pageId);
      });
      put.catch(() => undefined);
      leafPuts.push(put);
      if (leafPuts.length >= LEAF_PUTS) await leafPuts.shift();
    };
    const enterLeaf = async (n: number): Promise<void> => {
      if (n === leafNo) return;
      await finishLeaf();
      leafNo = n;
      leaf = new Map();
      baseLeafSize = 0;
      const fetched = leafFetches.get(n);
      if (fetched !== undefined) {
        leafFetches.delete(n);
        leaf = await fetched;
        baseLeafSize = leaf.size;
      }
      prefetchLeaves();
    };

    device = await engine.openExport(`${volume.name}@${snapshot.name}`);
    const source = device;
    // Batches of whole chunks, never crossing a leaf, read and hashed ahead of the consumer (bounded lookahead),
    // pulled from the diff as the backup goes.
    const batches = batchesOf(chunkRuns(diff, C), { chunkSize: C, leafChunks: L, readSize: READ_SIZE, size });
    let exhausted = false;
    const launch = (batch: Batch): void => {
      const p = (async () => {
        // The snapshot is read straight into the shared buffer the batch is hashed and compressed from.
        const hashed = await workers.readAndHash(repo.keys.idKeyBytes, batch.length, C, (into) =>
          readPieces(source, batch.pieces, into),
        );
        return { batch, hashed };
      })();
      p.catch(() => undefined);
      ahead.push(p);
    };
    const readAhead = async (): Promise<void> => {
      while (!exhausted && ahead.length < LOOKAHEAD) {
        const next = await batches.next();
        if (next.done === true) exhausted = true;
        else launch(next.value);
      }
    };
    await readAhead();
    /** Ids being compressed, not yet in a pack: later batches must not add them again. */
    const compressing = new Set<string>();
    const appends: Promise<void>[] = [];
    while (ahead.length > 0) {
      signal?.throwIfAborted();
      if (failure !== undefined) throw failure;
      const { batch, hashed } = await (ahead.shift() as (typeof ahead)[number]);
      const length = batch.length;
      await readAhead();
      await enterLeaf(batch.leaf);
      const fresh: number[] = [];
      const freshIds: Buffer[] = [];
      // Chunk i of the batch's buffer is chunk c of the volume, piece after piece.
      let i = 0;
      for (const piece of batch.pieces) {
        for (let c = piece.c; c * C < piece.to; c++, i++) {
          const pos = c % L;
          stats.chunks++;
          stats.bytes_scanned += Math.min(C, length - i * C);
          if (hashed.zero[i] === 1) {
            leaf.delete(pos);
            stats.chunks_zero++;
            continue;
          }
          const chunkId = Buffer.from(hashed.ids.subarray(i * 32, i * 32 + 32));
          leaf.set(pos, chunkId);
          const hex = chunkId.toString('hex');
          if (stored(chunkId) || pack.has(chunkId) || compressing.has(hex)) continue;
          compressing.add(hex);
          fresh.push(i);
          freshIds.push(chunkId);
        }
      }
      // Compression runs in the workers while the next batches are hashed and decided; packs are appended in order.
      const bodies = workers.compress(hashed, fresh);
      bodies.catch(() => undefined);
      appendTail = appendTail.then(async () => {
        const done = await bodies;
        try {
          for (let f = 0; f < fresh.length; f++) {
            const chunkId = freshIds[f] as Buffer;
            pack.addEncoded(chunkId, done.bodies[f] as Buffer);
            reclaimer.processed((done.bodies[f] as Buffer).length);
            compressing.delete(chunkId.toString('hex'));
            stats.chunks_new++;
            stats.bytes_new += Math.min(C, length - (fresh[f] as number) * C);
            if (pack.size >= repo.packSize) {
              // The next pack starts once this one is queued, in the buffer of an upload that has finished.
              await ship(pack);
              pack = newPack();
            }
          }
        } finally {
          done.release();
        }
      });
      appendTail.catch((err: unknown) => {
        failure ??= err;
      });
      appends.push(appendTail);
      if (appends.length > COMPRESS_AHEAD) await appends.shift();
      progress.add(length);
    }
    await appendTail;
    await finishLeaf();
    await ship(pack);
    await queue.onIdle();
    if (failure !== undefined) throw failure;
    await checkpoint();
    progress.phase('committing');
    // Never Done with a chunk in a pack that is gone or that no stored index object names: the index is loaded
    // again (an index object lost meanwhile is rebuilt from the packs' headers), and the reused packs must exist.
    await repo.refreshIndex(signal);
    await assertPacksExist(
      repo,
      [...reused].filter((p) => !ownPacks.has(p)),
      id,
      signal,
    );
    await Promise.all(leafPuts);
    const rootId = await repo.putPage(encodeRoot(root), signal);
    const record: BackupRecord = {
      id,
      volume_id: volume.id,
      volume_name: volume.name,
      size,
      labels: { ...volume.labels, ...(options.labels ?? {}) },
      created: started.toISOString(),
      completed: new Date().toISOString(),
      root: rootId.toString('hex'),
      chunk_size: C,
      full: base === undefined,
      stats: { ...stats, duration_ms: Date.now() - started.getTime() },
      chunks_total: chunksTotal,
    };
    if (base !== undefined) record.base_backup = base.record.id;
    await repo.putBackup(record, signal);
    await store.commit([{ op: 'put', key: lastKey, value: { backup_id: id, snapshot_id: snapshot.id } }]);
    await device.close();
    device = undefined;
    await Promise.all([
      last === undefined ? undefined : engine.deleteSnapshot(last.snapshot_id).catch(ignoreNotFound),
      repo.store.delete([marker]).catch(() => undefined),
    ]);
    progress.phase('done');
    return record;
  } catch (err: unknown) {
    await appendTail.catch(() => undefined);
    repo.index.dropPacks(inFlight);
    // Batches read ahead are still held by the workers: release them.
    for (const p of ahead.splice(0)) {
      await p.then(({ hashed }) => workers.compress(hashed, [])).catch(() => undefined);
    }
    await device?.close().catch(() => undefined);
    await engine.deleteSnapshot(snapshot.id).catch(() => undefined);
    await repo.store.delete([marker]).catch(() => undefined);
    if (err instanceof FerryError) throw err;
    if (signal?.aborted)
      throw new FerryError('FAILED_PRECONDITION', `backup ${id} of ${volume.name} was stopped`, { cause: err });
    throw new FerryError('INTERNAL', `backup ${id} of ${volume.name} failed: ${String(err)}`, { cause: err });
  }
}

/**
 * Reads a batch's pieces back to back into `into`, all at once. Every read has ended when this settles, failed or not:
 * the buffer goes back to the pool on failure, and no read may still be writing into it then.
 */
async function readPieces(source: BlockDevice, pieces: readonly Piece[], into: Buffer): Promise<void> {
  const reads: Promise<void>[] = [];
  let at = 0;
  for (const piece of pieces) {
    const length = piece.to - piece.from;
    reads.push(readInto(source, piece.from, into.subarray(at, at + length)));
    at += length;
  }
  for (const r of await Promise.allSettled(reads)) if (r.status === 'rejected') throw r.reason;
}

async function readInto(source: BlockDevice, from: number, into: Buffer): Promise<void> {
  const got = await source.read(from, into.length, into);
  // `into` is optional for a BlockDevice: one that returns the bytes elsewhere has them copied in.
  if (got.buffer !== into.buffer || got.byteOffset !== into.byteOffset) got.copy(into, 0, 0, into.length);
}

/** Packs checked with one HEAD each up to this many; more are checked against one listing of `packs/`. */
const HEAD_CHECKS = 32;

/**
 * FAILED_PRECONDITION unless every pack in `packIds` exists and is indexed: a backup whose chunks are in a pack that
 * is gone must not commit. The packs are marked missing, so a new attempt uploads those chunks again.
 */
async function assertPacksExist(
  repo: Repository,
  packIds: readonly string[],
  backupId: string,
  signal?: AbortSignal,
): Promise<void> {
  let missing: string[];
  if (packIds.length > HEAD_CHECKS) {
    const present = new Set<string>();
    for await (const key of repo.keysUnder('packs/', signal)) present.add(key.slice(key.lastIndexOf('/') + 1));
    missing = packIds.filter((p) => !present.has(p) || !repo.index.hasPack(p));
  } else {
    const heads = await Promise.all(packIds.map((p) => repo.store.head(packKey(p), { signal })));
    missing = packIds.filter((p, i) => heads[i] === undefined || !repo.index.hasPack(p));
  }
  if (missing.length === 0) return;
  for (const p of missing) repo.missingPacks.add(p);
  throw new FerryError(
    'FAILED_PRECONDITION',
    `backup ${backupId} was not committed: ${missing.length} pack(s) holding chunks it reuses no longer exist ` +
      `(${missing.slice(0, 3).map(packKey).join(', ')}); run the backup again: it uploads those chunks anew`,
  );
}

function ignoreNotFound(err: unknown): void {
  if (!isFerryError(err, 'NOT_FOUND')) throw err;
}

/** Snapshots left by backups to this repository that never committed (a crash): all of them but the last one. */
async function removeOrphanSnapshots(
  engine: SnapshotSource,
  volumeId: string,
  repositoryId: string,
  keep: string | undefined,
): Promise<void> {
  for (const s of await engine.listSnapshots(volumeId)) {
    // Only this repository's: another repository's last backup snapshot is the base of its next incremental.
    const mine = s.labels['ferry.io/repository'] === repositoryId;
    if (s.name.startsWith(PREFIX) && mine && s.id !== keep) await engine.deleteSnapshot(s.id).catch(ignoreNotFound);
  }
}

import PQueue from 'p-queue';
import { FerryError, isFerryError } from '../common/index.js';
import type { BlockDevice, VolumeInfo } from '../node/index.js';
import type { RestoreTarget } from './ports.js';
import { type Progress, ProgressTracker } from './progress.js';
import type { ChunkLocation } from './repo/chunk-index.js';
import { packKey } from './repo/layout.js';
import { decodeRoot, leafEntries, type Root } from './repo/manifest.js';
import type { BackupRecord, Repository } from './repo/repository.js';
import { JobMemory, type MemoryPolicy } from './workers/memory-policy.js';
import { ChunkWorkers, type DecodedBlobs } from './workers/pool.js';

export interface RestoreContext {
  engine: RestoreTarget;
  repo: Repository;
}

export interface RestoreOptions {
  backupId: string;
  /** Name of the new volume. */
  volumeName: string;
  labels?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Ranged reads in flight; default 6. Memory is bounded by about this times MAX_RANGE and MAX_PLAIN. */
  concurrency?: number;
  /** When the job collects its heap and trims the allocator (workers/memory-policy.ts); default DEFAULT_MEMORY_POLICY. */
  memory?: MemoryPolicy;
}

/**
 * Largest ranged read: neighbouring blobs of one pack are fetched together up to this size. 4 MiB rather than 2 made
 * restores about 12% faster from a Ceph RGW and 8% from a directory (half the requests, each of which costs the
 * gateway and this node a fixed share of CPU), for about 45 MiB more buffers (MAX_PLAIN's slabs with it).
 */
const MAX_RANGE = 4 * 1024 * 1024;
/** Largest plaintext of one ranged read (what a worker decodes into one shared buffer). */
const MAX_PLAIN = 8 * 1024 * 1024;
/** Largest stretch of unneeded blobs a ranged read reads over rather than splitting in two. */
const MAX_GAP = 256 * 1024;
/** Packs with a group of pieces being gathered at once. */
const MAX_OPEN_GROUPS = 8;
/**
 * Decoded reads waiting for or in their write to the new volume. A read's slot frees once its write is queued, so the
 * network stays busy while the disk is slow (a background flush stalls writes); each holds up to MAX_PLAIN.
 */
const WRITES_AHEAD = 2;
/** Bytes written between background flushes of the new volume. */
const FLUSH_EVERY = 64 * 1024 * 1024;

interface Piece {
  chunk: number;
  id: Buffer;
  loc: ChunkLocation;
}

/**
 * Restores a backup into a new volume: manifest -> chunk locations -> ranged reads of packs in parallel -> verify
 * (AES-GCM and keyed hash), decrypt, decompress -> write. The volume stays 'restoring' (never attachable) until
 * every chunk is written and flushed. Holes stay holes: chunks the backup does not list are never written.
 */
export async function restoreBackup(ctx: RestoreContext, options: RestoreOptions): Promise<VolumeInfo> {
  const { engine, repo } = ctx;
  const signal = options.signal;
  const progress = new ProgressTracker(options.onProgress);
  progress.phase('preparing');
  const { record, root } = await loadBackup(repo, options.backupId, signal);
  // Reads and plaintexts live in reused buffers: the policy's full collections keep the heap flat, and V8's own young
  // collections take the small objects left (workers/memory-policy.ts).
  const memory = new JobMemory(options.memory, ChunkWorkers.shared());
  // Loading the index left dead objects and freed temporaries into malloc's arenas: both go before the data buffers
  // come (measured: a 16 GiB backup's restore peaked in its first second, its index garbage still there).
  memory.afterSetup();
  const labels = { ...record.labels, ...(options.labels ?? {}), 'ferry.io/restored-from': record.id };
  const { volume } = await openTarget(engine, options.volumeName, record, labels);
  const device = await engine.openForRestore(volume.id);
  const run = new RestoreRun(repo, record, root, device, progress, memory, options);
  try {
    progress.setTotal(record.chunks_total * root.chunkSize);
    await run.readLeaves();
    await run.drain();
    progress.phase('committing');
    await device.flush();
    await device.close();
    const done = await engine.completeRestore(volume.id);
    progress.phase('done');
    return done;
  } catch (err: unknown) {
    await run.abort();
    await device.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Stage "plan" of a restore: the backup's record and root page, read and checked, while the index is brought up to
 * date. Independent round trips go out together: on a remote store each costs a few tens of ms. The volume is created
 * only once these have been read.
 */
async function loadBackup(
  repo: Repository,
  backupId: string,
  signal: AbortSignal | undefined,
): Promise<{ record: BackupRecord; root: Root }> {
  const [loaded] = await Promise.all([
    repo.getBackup(backupId, signal).then(async (r) => ({
      record: r,
      root: decodeRoot(await repo.getPage(Buffer.from(r.root, 'hex'), signal), `root of backup ${r.id}`),
    })),
    repo.refreshIndex(signal),
  ]);
  return loaded;
}

/**
 * One restore's data path: leaf pages in order, their chunks grouped into ranged reads (launchLeaf), `concurrency`
 * reads fetched and decoded by the workers at once (fetchAndDecode), WRITES_AHEAD decoded reads written to the new
 * volume (writePieces), which is flushed in the background as data lands.
 */
class RestoreRun {
  private readonly queue: PQueue;
  private readonly writes = new PQueue({ concurrency: WRITES_AHEAD });
  /** Flushes in the background as data lands, so the disk writes while the cores decode and the last flush is short. */
  private flushing: Promise<void> | undefined;
  private unflushed = 0;
  private failure: unknown;
  private readonly signal: AbortSignal | undefined;
  private readonly fail = (err: unknown): void => {
    this.failure ??= err;
  };
  private readonly written = (bytes: number): void => {
    this.progress.add(bytes);
    this.memory.processed(bytes);
    this.unflushed += bytes;
    if (this.unflushed < FLUSH_EVERY || this.flushing !== undefined) return;
    this.unflushed = 0;
    this.flushing = this.device.flush().finally(() => {
      this.flushing = undefined;
    });
    this.flushing.catch(this.fail);
  };
  private readonly launch = async (group: Piece[]): Promise<void> => {
    const queue = this.queue;
    while (queue.size + queue.pending >= queue.concurrency) await new Promise((r) => queue.once('next', r));
    if (this.failure !== undefined) throw this.failure;
    this.run(group);
  };

  constructor(
    private readonly repo: Repository,
    private readonly record: BackupRecord,
    private readonly root: Root,
    private readonly device: BlockDevice,
    private readonly progress: ProgressTracker,
    private readonly memory: JobMemory,
    options: RestoreOptions,
  ) {
    this.queue = new PQueue({ concurrency: options.concurrency ?? 6 });
    this.signal = options.signal;
  }

  /** Goes through the leaf pages in order; the next one is fetched while this one's reads go out. */
  async readLeaves(): Promise<void> {
    const { repo, record, root, signal } = this;
    const leaves = [...root.leaves.entries()].sort((a, b) => a[0] - b[0]);
    const fetchLeaf = (k: number): Promise<Buffer> | undefined => {
      const entry = leaves[k];
      if (entry === undefined) return undefined;
      const p = repo.getPage(entry[1], signal);
      p.catch(() => undefined);
      return p;
    };
    let nextLeaf = fetchLeaf(0);
    for (const [k, [leafNo]] of leaves.entries()) {
      signal?.throwIfAborted();
      const page = await (nextLeaf as Promise<Buffer>);
      nextLeaf = fetchLeaf(k + 1);
      await launchLeaf(repo, record.id, page, leafNo, root.leafChunks, root.chunkSize, this.launch);
    }
  }

  /** Waits for every read and write and the background flush; throws the first failure. */
  async drain(): Promise<void> {
    await this.queue.onIdle();
    await this.writes.onIdle();
    await this.flushing?.catch(() => undefined);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Reads still queued never start; those running finish (their errors are moot) before the device closes. */
  async abort(): Promise<void> {
    this.queue.clear();
    await this.queue.onIdle().catch(() => undefined);
    this.writes.clear();
    await this.writes.onIdle().catch(() => undefined);
    await this.flushing?.catch(() => undefined);
  }

  private run(pieces: Piece[]): void {
    const { repo, record, root, signal, writes } = this;
    this.queue
      .add(async () => {
        const decoded = await fetchAndDecode(repo, record, root.chunkSize, root.size, pieces, signal);
        while (writes.size + writes.pending >= WRITES_AHEAD) await new Promise((r) => writes.once('next', r));
        writes
          .add(() =>
            writePieces(
              this.device,
              pieces,
              decoded,
              root.chunkSize,
              root.size,
              this.written,
              `of backup ${record.id}`,
            ),
          )
          .catch(this.fail);
      })
      .catch(this.fail);
  }
}

/**
 * Groups the chunks of one leaf page into ranged reads (see `joins`) and hands each group to `launch`, in the order
 * they close. A function of its own, too large for TurboFan to inline: the job's main loop and this one are compiled
 * apart, so neither compilation is as large as both together (each is a burst of compiler memory), and this one's
 * rarely taken branches cost a recompilation of this alone.
 */
async function launchLeaf(
  repo: Repository,
  backupId: string,
  page: Buffer,
  leafNo: number,
  leafChunks: number,
  chunkSize: number,
  launch: (group: Piece[]) => Promise<void>,
): Promise<void> {
  const leaf = leafEntries(page, `leaf ${leafNo} of backup ${backupId}`);
  // One group being gathered per pack: an incremental's chunks from new packs interleave with runs of an old pack,
  // and the old pack's run continues past them (over the few old blobs it no longer needs) in one read.
  const open = new Map<string, Piece[]>();
  // A leaf's entries come in position order (leafEntries checks it).
  for (let e = 0; e < leaf.count; e++) {
    const id = leaf.id(e);
    const loc = repo.index.get(id);
    if (loc === undefined) {
      throw new FerryError(
        'DATA_CORRUPTION',
        `backup ${backupId} needs chunk ${id.toString('hex')} that no pack in ${repo.location} holds`,
      );
    }
    const piece = { chunk: leafNo * leafChunks + leaf.position(e), id, loc };
    const group = open.get(loc.pack.id);
    if (group !== undefined && joins(group, loc, chunkSize)) {
      group.push(piece);
      continue;
    }
    if (group !== undefined) {
      open.delete(loc.pack.id);
      await launch(group);
    }
    open.set(loc.pack.id, [piece]);
    if (open.size > MAX_OPEN_GROUPS) {
      const [oldest, pieces] = open.entries().next().value as [string, Piece[]];
      open.delete(oldest);
      await launch(pieces);
    }
  }
  for (const group of open.values()) await launch(group);
}

/** The new volume in the 'restoring' state; a restore that was interrupted is resumed into the same volume. */
async function openTarget(
  engine: RestoreTarget,
  name: string,
  record: BackupRecord,
  labels: Record<string, string>,
): Promise<{ volume: VolumeInfo }> {
  try {
    const existing = await engine.inspectVolume(name);
    if (existing.status === 'restoring' && existing.labels['ferry.io/restored-from'] === record.id) {
      return { volume: existing };
    }
    throw new FerryError('ALREADY_EXISTS', `volume ${name} already exists; restore into a new name`);
  } catch (err: unknown) {
    if (!isFerryError(err, 'NOT_FOUND')) throw err;
  }
  const { volume } = await engine.createVolume({ name, size: record.size, labels, restoring: true });
  return { volume };
}

/** One ranged read of a pack, decoded by a worker: the pieces' plaintexts, to be written and released. */
async function fetchAndDecode(
  repo: Repository,
  record: BackupRecord,
  chunkSize: number,
  size: number,
  pieces: readonly Piece[],
  signal: AbortSignal | undefined,
): Promise<DecodedBlobs> {
  const first = pieces[0] as Piece;
  const lastPiece = pieces[pieces.length - 1] as Piece;
  const start = first.loc.offset;
  const key = packKey(first.loc.pack.id);
  const length = lastPiece.loc.offset + lastPiece.loc.length - start;
  const workers = ChunkWorkers.shared();
  // The range lands in a reused shared buffer a worker decodes in place: no buffer per read for the GC to find.
  const buffer = workers.borrow(length);
  try {
    let body: Buffer;
    try {
      body = await repo.getOrCorrupt(
        key,
        `pack (needed by backup ${record.id})`,
        signal,
        { offset: start, length },
        buffer,
      );
    } catch (err: unknown) {
      // The index places these blobs past the pack's end: the pack was cut short, which is damage, not a bad request.
      if (!isFerryError(err, 'INVALID_ARGUMENT')) throw err;
      throw new FerryError(
        'DATA_CORRUPTION',
        `pack ${key} in ${repo.location} is truncated: backup ${record.id} needs bytes ${start}..${start + length} of it; run \`ferry cloudsnap verify\` to see what it affects`,
        { cause: err },
      );
    }
    return await decode(repo, workers, first, pieces, body, record.id, key, chunkSize, size);
  } finally {
    workers.giveBack(buffer);
  }
}

async function decode(
  repo: Repository,
  workers: ChunkWorkers,
  first: Piece,
  pieces: readonly Piece[],
  body: Buffer,
  backupId: string,
  key: string,
  chunkSize: number,
  size: number,
): Promise<DecodedBlobs> {
  const start = first.loc.offset;
  // Two typed arrays and one string per read, not an object per blob: they cross to the worker by structured clone.
  const spans = new Uint32Array(pieces.length * 3);
  const ids = new Uint8Array(pieces.length * 32);
  // Plain loops here and in writePieces, not callbacks: a closure made per read loses its optimized code at every
  // full collection that finds none of its instances alive, and was compiled again after each (about 20 times in a
  // 16 GiB restore).
  let capacity = 0;
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i] as Piece;
    spans[i * 3] = p.loc.offset - start;
    spans[i * 3 + 1] = p.loc.length;
    spans[i * 3 + 2] = p.loc.nonce;
    ids.set(p.id, i * 32);
    capacity += chunkLength(p.chunk, chunkSize, size);
  }
  return workers.decode(
    repo.keys.idKeyBytes,
    repo.keys.objectKey(first.loc.pack.salt),
    body,
    { spans, ids, where: `of backup ${backupId} in ${key}` },
    capacity,
  );
}

/** Bytes of chunk `chunk` of a volume of `size` bytes: `chunkSize`, less for a last chunk cut short. */
function chunkLength(chunk: number, chunkSize: number, size: number): number {
  return Math.min(chunkSize, size - chunk * chunkSize);
}

/** Writes decoded chunks, consecutive ones in one write, after checking each has its expected length. */
async function writePieces(
  device: BlockDevice,
  pieces: readonly Piece[],
  decoded: DecodedBlobs,
  chunkSize: number,
  size: number,
  written: (bytes: number) => void,
  place: string,
): Promise<void> {
  try {
    const { chunks } = decoded;
    // Consecutive chunks of the volume go down in one write.
    let runStart = 0;
    for (let i = 1; i <= pieces.length; i++) {
      const prev = pieces[i - 1] as Piece;
      if (i < pieces.length && (pieces[i] as Piece).chunk === prev.chunk + 1) continue;
      const offset = (pieces[runStart] as Piece).chunk * chunkSize;
      for (let k = runStart; k < i; k++) {
        const expected = chunkLength((pieces[k] as Piece).chunk, chunkSize, size);
        if ((chunks[k] as Buffer).length !== expected) {
          throw new FerryError(
            'DATA_CORRUPTION',
            `chunk ${(pieces[k] as Piece).id.toString('hex').slice(0, 16)} ${place} has ${(chunks[k] as Buffer).length} bytes, expected ${expected}`,
          );
        }
      }
      const data = joined(chunks.slice(runStart, i));
      // Restored data is not read back soon: past the page cache where the engine can (see WriteOptions).
      await device.write(offset, data, { uncached: true });
      written(data.length);
      runStart = i;
    }
  } finally {
    decoded.release();
  }
}

/**
 * Whether a chunk at `loc` extends `group`: same pack, further on, within MAX_GAP and MAX_RANGE, and the group's
 * plaintext stays within MAX_PLAIN (chunks of `chunkSize` at most).
 */
function joins(group: readonly Piece[], loc: ChunkLocation, chunkSize: number): boolean {
  const first = group[0] as Piece;
  const last = group[group.length - 1] as Piece;
  const end = last.loc.offset + last.loc.length;
  return (
    (group.length + 1) * chunkSize <= MAX_PLAIN &&
    loc.offset >= end &&
    loc.offset - end <= MAX_GAP &&
    loc.offset + loc.length - first.loc.offset <= MAX_RANGE
  );
}

/** The chunks as one buffer: a view when they already lie end to end in one buffer (a worker's reply), else a copy. */
function joined(chunks: readonly Buffer[]): Buffer {
  const first = chunks[0] as Buffer;
  let end = first.byteOffset + first.length;
  for (let k = 1; k < chunks.length; k++) {
    const c = chunks[k] as Buffer;
    if (c.buffer !== first.buffer || c.byteOffset !== end) return Buffer.concat(chunks);
    end += c.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FerryError } from '../../common/index.js';
import { native } from '../../common/native/index.js';
import { DIRECT_ALIGN } from '../../node/index.js';
import { collectAndTrim, type MemoryPolicy, resolveMemoryPolicy } from './memory-policy.js';
import {
  type CompressReply,
  type CompressRequest,
  type DecodeReply,
  type DecodeRequest,
  type HashReply,
  ownReply,
  type WorkerReply,
  type WorkerRequest,
} from './protocol.js';

/**
 * A worker's JS heap stays small (its data lives in ArrayBuffers); a small young generation also means its dropped
 * buffers are found sooner. V8's default would let each worker's young generation alone reach tens of MiB.
 */
const LIMITS = { maxYoungGenerationSizeMb: 4 };

/** Starts a chunk worker: the compiled .js in dist; the .ts source (tests, tsx) through tsx's loader. */
function startWorker(): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./chunk-worker.js', self), { resourceLimits: LIMITS });
  const source = new URL('./chunk-worker.ts', self).href;
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(boot, { eval: true, resourceLimits: LIMITS });
}

/**
 * An ArrayBuffer holding exactly `buf` that may be transferred: the buffer's own when it has one to itself, else a
 * copy (never Node's shared pool, which small Buffers live in).
 */
function transferable(buf: Buffer): ArrayBuffer {
  if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.length && buf.buffer instanceof ArrayBuffer)
    return buf.buffer;
  const ab = new ArrayBuffer(buf.length);
  new Uint8Array(ab).set(buf);
  return ab;
}

interface Slot {
  worker: Worker;
  busy: number;
  waiting: Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>;
}

/** A batch hashed by a worker; its data waits in a shared buffer for `compress`, which any worker may do. */
export interface HashedBatch {
  batch: number;
  shared: SharedArrayBuffer;
  length: number;
  chunkSize: number;
  zero: Uint8Array;
  ids: Buffer;
}

/** Compressed bodies of a batch, views of a shared buffer: call `release` once they are consumed. */
export interface CompressedBatch {
  bodies: Buffer[];
  release(): void;
}

/** Plaintexts of a restore's blobs, views of a shared buffer: call `release` once they are written. */
export interface DecodedBlobs {
  chunks: Buffer[];
  release(): void;
}

/**
 * Sizes of the reused shared buffers: a backup's read batch (2 MiB) or its compressed bodies (a byte more per chunk)
 * fit the small one; a restore's plaintexts of one ranged read (at most MAX_PLAIN of restore.ts, 8 MiB) the large one.
 */
export const SLABS = [2 * 1024 * 1024 + 64 * 1024, 8 * 1024 * 1024 + 64 * 1024] as const;
const LARGE_SLAB = SLABS[1];
/** Size of a restore's reused read buffers: a ranged read is at most MAX_RANGE of restore.ts, 4 MiB. */
const READ_BUFFER = 4 * 1024 * 1024;
/**
 * A new reusable buffer with all its pages in memory (written once). The kernel gives a buffer's pages only when
 * first written, and how much of each one a job writes depends on its data (text decodes to twice the bytes of
 * random data): left to that, a long job's buffers would fill in over minutes and its memory creep up to where a
 * short job's never gets. Touched at creation, the buffers cost their full size from the start, however long the job.
 */
function resident(shared: SharedArrayBuffer): SharedArrayBuffer {
  new Uint8Array(shared).fill(0);
  return shared;
}

/** The smallest slab size that holds `length` bytes, if any (a loop: no closure per call, see `compress`). */
function slabFor(length: number): number | undefined {
  for (const size of SLABS) if (size >= length) return size;
  return undefined;
}

/** Slabs of each size kept for reuse: enough for a backup's or a restore's buffers in flight. */
const SPARE_SLABS = 12;
/**
 * The reusable buffers kept for the next job are dropped once the pool has had nothing to do for this long, and every
 * thread collects, so an idle node does not keep the buffers of its last backup or restore (100 MiB and more).
 */
export const IDLE_RELEASE_MS = 5000;
/** A compress request is split over the workers when it has at least this many chunks. */
const SPLIT_MIN = 8;

/**
 * Worker threads for the CPU work of a backup (keyed hashing, zstd) and a restore (decrypt, decompress, re-hash), so
 * the main thread only reads, dedups, encrypts and does I/O, and every core works. Requests go to the least busy
 * worker. A batch's data waits for phase 2 in a shared buffer (reused: a backup does not allocate one per batch),
 * so its compression is split over all workers instead of queueing behind the one that hashed it.
 */
export class ChunkWorkers {
  private readonly slots: Slot[] = [];
  private next = 0;

  private static instance: ChunkWorkers | undefined;

  /** The process's pool (created on first use; its threads do not keep the process alive). */
  static shared(): ChunkWorkers {
    ChunkWorkers.instance ??= new ChunkWorkers();
    return ChunkWorkers.instance;
  }

  /**
   * @param count Worker threads.
   * @param idleMs Quiet time after which the buffers kept for reuse are dropped (IDLE_RELEASE_MS).
   * @param memory The pool's part of the memory policy (`trimWhenIdle`).
   */
  constructor(
    count = Math.max(1, Math.min(2, availableParallelism())),
    private readonly idleMs = IDLE_RELEASE_MS,
    private readonly memory: MemoryPolicy = {},
  ) {
    for (let i = 0; i < count; i++) {
      const slot: Slot = { worker: startWorker(), busy: 0, waiting: new Map() };
      this.slots.push(slot);
      this.attach(slot);
    }
  }

  private closing = false;

  /** Wires a slot's worker; one that dies fails what it owed and is replaced, so later requests still get answers. */
  private attach(slot: Slot): void {
    const { worker } = slot;
    // Every request has its own number, so replies are matched by it.
    worker.on('message', (raw: WorkerReply) => {
      const msg = ownReply(raw);
      const waiter = slot.waiting.get(msg.batch);
      slot.waiting.delete(msg.batch);
      if (msg.type === 'error') {
        waiter?.reject(
          msg.corrupt
            ? new FerryError('DATA_CORRUPTION', msg.message)
            : new FerryError('INTERNAL', `chunk worker failed: ${msg.message}`),
        );
      }
      if (msg.type !== 'error') waiter?.resolve(msg);
    });
    const died = (why: string, cause?: Error): void => {
      if (slot.worker !== worker) return;
      for (const p of slot.waiting.values())
        p.reject(new FerryError('INTERNAL', `chunk worker died: ${why}`, { cause }));
      slot.waiting.clear();
      slot.busy = 0;
      if (this.closing) return;
      slot.worker = startWorker();
      this.attach(slot);
    };
    worker.on('error', (err: Error) => died(err.message, err));
    worker.on('exit', (code) => died(`exited with ${code}`));
    // After the listeners (adding a 'message' listener re-refs the worker's port); `call` refs it while busy.
    worker.unref();
  }

  /** The worker owing the fewest replies; ties go round-robin so equal load spreads over all of them. */
  private leastBusy(): number {
    const n = this.slots.length;
    const start = this.turn++ % n;
    let best = start;
    for (let k = 1; k < n; k++) {
      const i = (start + k) % n;
      if ((this.slots[i] as Slot).busy < (this.slots[best] as Slot).busy) best = i;
    }
    return best;
  }

  private turn = 0;

  private call<T extends WorkerReply>(slotIndex: number, msg: WorkerRequest, transfer: ArrayBuffer[]): Promise<T> {
    const slot = this.slots[slotIndex] as Slot;
    // Referenced only while it owes a reply: an idle pool never keeps the process alive, a busy one always does.
    if (slot.busy++ === 0) slot.worker.ref();
    return new Promise<T>((resolve, reject) => {
      const batch = 'batch' in msg ? msg.batch : -1;
      slot.waiting.set(batch, {
        resolve: (r) => {
          if (--slot.busy === 0) slot.worker.unref();
          resolve(r as T);
        },
        reject: (e) => {
          if (--slot.busy === 0) slot.worker.unref();
          reject(e);
        },
      });
      slot.worker.postMessage(msg, transfer);
    });
  }

  private readonly spare = new Map<number, SharedArrayBuffer[]>(SLABS.map((size) => [size, []]));
  /** Reusable buffers made so far: slabs by size, and read buffers (what bounds a job's buffer memory). */
  readonly created: { slabs: Record<number, number>; reads: number } = { slabs: {}, reads: 0 };

  /**
   * A shared buffer of at least `length` bytes: up to the largest slab size, a slab of the smallest size that fits,
   * reused. A buffer dropped instead waits for a collection of the main thread's heap; over a long backup those add up.
   */
  private sharedBuffer(length: number): SharedArrayBuffer {
    this.active();
    const size = slabFor(length);
    if (size === undefined) return new SharedArrayBuffer(length);
    const reused = this.spare.get(size)?.pop();
    if (reused !== undefined) return reused;
    this.created.slabs[size] = (this.created.slabs[size] ?? 0) + 1;
    return resident(new SharedArrayBuffer(size));
  }

  /** When the pool last handed out or took back a buffer. */
  private lastActive = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  /** Notes activity; the idle check runs idleMs after the last of it (one timer, re-armed only when it fires). */
  private active(): void {
    this.lastActive = performance.now();
    if (this.idleTimer !== undefined || this.closing) return;
    const check = (): void => {
      const quiet = performance.now() - this.lastActive;
      if (quiet < this.idleMs) {
        this.idleTimer = setTimeout(check, this.idleMs - quiet).unref();
        return;
      }
      this.idleTimer = undefined;
      this.dropSpares();
    };
    this.idleTimer = setTimeout(check, this.idleMs).unref();
  }

  /** Bytes of buffers kept for reuse (dropped when the pool has been idle for idleMs). */
  get spareBytes(): number {
    let bytes = 0;
    for (const list of this.spare.values()) for (const b of list) bytes += b.byteLength;
    for (const b of this.spareReads) bytes += b.byteLength;
    return bytes;
  }

  /**
   * Drops the buffers kept for reuse and has every thread collect, so their memory goes back to the kernel (a shared
   * buffer is freed once no thread's heap holds it). Buffers lent out now are still taken back later.
   */
  private dropSpares(): void {
    if (this.spareBytes === 0) return;
    for (const list of this.spare.values()) list.length = 0;
    this.spareReads.length = 0;
    this.collect();
    if (resolveMemoryPolicy(this.memory).trimWhenIdle) collectAndTrim();
  }

  /**
   * Has every worker run a full collection (no reply). A job's main thread has them do it with each of its own
   * (MemoryPolicy.workersCollectWithJob): a worker's own reclaimer collects its whole heap only once it has grown by
   * its headroom, so without this a worker's old generation kept what a long job promoted into it (1.5 MiB each over
   * a 16 GiB restore), and a long job ended higher than a short one.
   */
  collect(): void {
    for (const slot of this.slots) slot.worker.postMessage({ type: 'collect' } satisfies WorkerRequest);
  }

  private release(shared: SharedArrayBuffer): void {
    this.active();
    const spare = this.spare.get(shared.byteLength);
    if (spare !== undefined && spare.length < SPARE_SLABS) spare.push(shared);
  }

  private readonly spareReads: SharedArrayBuffer[] = [];
  private readonly lent = new WeakSet<SharedArrayBuffer>();

  /**
   * A buffer of `length` bytes for a restore's ranged read: up to READ_BUFFER a reused shared one, which `decode`
   * has a worker read in place. (Not an ArrayBuffer moved to the worker and back: each move counts as a new external
   * allocation, and V8 answers every 64 MiB of those with a full collection, a dozen per GiB restored.) Pass it to
   * `giveBack` once it is decoded or given up.
   */
  borrow(length: number): Buffer {
    this.active();
    if (length > READ_BUFFER) return Buffer.allocUnsafe(length);
    let sab = this.spareReads.pop();
    if (sab === undefined) {
      sab = resident(new SharedArrayBuffer(READ_BUFFER));
      this.created.reads++;
    }
    this.lent.add(sab);
    return Buffer.from(sab, 0, length);
  }

  /** Takes back a borrowed buffer (once; anything else is ignored). */
  giveBack(buf: Buffer): void {
    this.active();
    const sab = buf.buffer;
    if (!(sab instanceof SharedArrayBuffer) || !this.lent.delete(sab)) return;
    if (this.spareReads.length < SPARE_SLABS) this.spareReads.push(sab);
  }

  /** Zero flags and keyed ids of the chunks of `data` (copied into a shared buffer: `data` stays the caller's). */
  hash(idKey: Buffer, data: Buffer, chunkSize: number): Promise<HashedBatch> {
    return this.readAndHash(idKey, data.length, chunkSize, async (into) => {
      data.copy(into);
    });
  }

  /**
   * A batch of `length` bytes that `read` writes straight into a reused shared buffer (a backup reads the snapshot
   * into it: no buffer per batch), then its zero flags and keyed ids from a worker. The batch waits in that buffer
   * for `compress`.
   */
  async readAndHash(
    idKey: Buffer,
    length: number,
    chunkSize: number,
    read: (into: Buffer) => Promise<void>,
  ): Promise<HashedBatch> {
    const shared = this.sharedBuffer(length);
    try {
      await read(Buffer.from(shared, 0, length));
      const batch = this.next++;
      const reply = await this.call<HashReply>(
        this.leastBusy(),
        { type: 'hash', batch, idKey: new Uint8Array(idKey), length, chunkSize, shared },
        [],
      );
      const ids = Buffer.from(reply.ids.buffer, reply.ids.byteOffset, reply.ids.length);
      return { batch, shared, length, chunkSize, zero: reply.zero, ids };
    } catch (err: unknown) {
      this.release(shared);
      throw err;
    }
  }

  /**
   * Compressed bodies (codec byte first) of the chosen chunks, in order; the work is split over the workers. Frees
   * the batch's shared buffer: call it exactly once per hashed batch (with no chunks to just free it), and release
   * the result once its bodies are used.
   */
  async compress(hashed: HashedBatch, chunks: number[]): Promise<CompressedBatch> {
    if (chunks.length === 0) {
      this.release(hashed.shared);
      return { bodies: [], release: () => undefined };
    }
    const out = this.sharedBuffer(chunks.length * (hashed.chunkSize + 1));
    try {
      const parts = chunks.length >= SPLIT_MIN ? this.slots.length : 1;
      const per = Math.ceil(chunks.length / parts);
      // Loops, not callbacks per batch (Array.from, map, forEach): a closure made per call loses its optimized code at
      // every full collection, and a 16 GiB backup compiled each again some 30 times.
      const calls: Promise<CompressReply>[] = [];
      for (let k = 0; k < parts; k++) {
        const msg: CompressRequest = {
          type: 'compress',
          batch: this.next++,
          shared: hashed.shared,
          length: hashed.length,
          chunkSize: hashed.chunkSize,
          chunks: chunks.slice(k * per, (k + 1) * per),
          out,
          outOffset: k * per * (hashed.chunkSize + 1),
        };
        calls.push(this.call<CompressReply>(this.leastBusy(), msg, []));
      }
      // Settled, not raced: a part still running when another fails must not have its buffers handed out again.
      const settled = await Promise.allSettled(calls);
      const bodies: Buffer[] = [];
      for (let k = 0; k < settled.length; k++) {
        const r = settled[k] as PromiseSettledResult<CompressReply>;
        if (r.status === 'rejected') throw r.reason;
        let o = k * per * (hashed.chunkSize + 1);
        for (const len of r.value.lengths) {
          bodies.push(Buffer.from(out, o, len));
          o += len;
        }
      }
      return { bodies, release: () => this.release(out) };
    } catch (err: unknown) {
      this.release(out);
      throw err;
    } finally {
      this.release(hashed.shared);
    }
  }

  /**
   * Verified plaintexts of blobs within `body` (a ranged read of one pack), in order, as views of a shared buffer of
   * `capacity` bytes (a plaintext longer than its share is DATA_CORRUPTION): call `release` once they are consumed.
   */
  async decode(
    idKey: Buffer,
    key: Buffer,
    body: Buffer,
    blobs: Pick<DecodeRequest, 'spans' | 'ids' | 'where'>,
    capacity: number,
  ): Promise<DecodedBlobs> {
    const slot = this.leastBusy();
    // A borrowed buffer is read in place; any other body is handed over (its own buffer, or a copy of its bytes).
    const borrowed = body.buffer instanceof SharedArrayBuffer && this.lent.has(body.buffer);
    const data = borrowed ? (body.buffer as SharedArrayBuffer) : transferable(body);
    // Always a large slab, even for a short read: a restore then keeps one set of slabs (as many as its reads and
    // writes in flight), which it reaches in its first seconds, instead of two sets whose mix drifts with its length.
    // The plaintexts start on the engine's DIRECT_ALIGN boundary (a page), so it can write them with direct I/O.
    const out = this.sharedBuffer(Math.max(capacity + DIRECT_ALIGN, LARGE_SLAB));
    const outOffset = native.alignmentGap(new Uint8Array(out), DIRECT_ALIGN);
    // Every field named in the literal: a spread adds its fields by transitions that die like a reply's (ownReply).
    const msg: DecodeRequest = {
      type: 'decode',
      batch: this.next++,
      idKey: new Uint8Array(idKey),
      key: new Uint8Array(key),
      data,
      dataOffset: borrowed ? body.byteOffset : 0,
      dataLength: body.length,
      spans: blobs.spans,
      ids: blobs.ids,
      where: blobs.where,
      out,
      outOffset,
      capacity,
    };
    try {
      const reply = await this.call<DecodeReply>(slot, msg, data instanceof ArrayBuffer ? [data] : []);
      const chunks: Buffer[] = [];
      let o = outOffset;
      for (const len of reply.lengths) {
        chunks.push(Buffer.from(out, o, len));
        o += len;
      }
      return { chunks, release: () => this.release(out) };
    } catch (err: unknown) {
      this.release(out);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FerryError } from '../../common/errors.js';
import type { CompressReply, DecodeReply, DecodeRequest, HashReply, WorkerReply, WorkerRequest } from './protocol.js';

/** Starts a chunk worker: the compiled .js in dist; the .ts source (tests, tsx) through tsx's loader. */
function startWorker(): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./chunk-worker.js', self));
  const source = new URL('./chunk-worker.ts', self).href;
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(boot, { eval: true });
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

/** A batch hashed by a worker, which still holds its data for `compress`. */
export interface HashedBatch {
  slot: number;
  batch: number;
  zero: Uint8Array;
  ids: Buffer;
}

/**
 * Worker threads for the CPU work of a backup (keyed hashing, zstd), so the main thread only reads, dedups,
 * encrypts and uploads, and both cores work. Batches go to the least busy worker; phase 2 of a batch goes back to
 * the worker that holds its data.
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

  constructor(count = Math.max(1, Math.min(2, availableParallelism()))) {
    for (let i = 0; i < count; i++) {
      const worker = startWorker();
      const slot: Slot = { worker, busy: 0, waiting: new Map() };
      // A batch has at most one request outstanding (hash, then compress), so replies are matched by batch.
      worker.on('message', (msg: WorkerReply) => {
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
      worker.on('error', (err: Error) => {
        for (const p of slot.waiting.values())
          p.reject(new FerryError('INTERNAL', `chunk worker died: ${err.message}`, { cause: err }));
        slot.waiting.clear();
      });
      // After the listeners (adding a 'message' listener re-refs the worker's port); `call` refs it while busy.
      worker.unref();
      this.slots.push(slot);
    }
  }

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

  /** Zero flags and keyed ids of the chunks of `data` (which is handed over to the worker: do not reuse it). */
  async hash(idKey: Buffer, data: Buffer, chunkSize: number): Promise<HashedBatch> {
    let slot = 0;
    for (let i = 1; i < this.slots.length; i++)
      if ((this.slots[i] as Slot).busy < (this.slots[slot] as Slot).busy) slot = i;
    const batch = this.next++;
    const ab = transferable(data);
    const reply = await this.call<HashReply>(
      slot,
      { type: 'hash', batch, idKey: new Uint8Array(idKey), data: ab, length: data.length, chunkSize },
      [ab],
    );
    return {
      slot,
      batch,
      zero: reply.zero,
      ids: Buffer.from(reply.ids.buffer, reply.ids.byteOffset, reply.ids.length),
    };
  }

  /** Compressed bodies (codec byte first) of the chosen chunks; releases the batch in the worker. */
  async compress(batch: HashedBatch, chunks: number[]): Promise<Buffer[]> {
    const reply = await this.call<CompressReply>(batch.slot, { type: 'compress', batch: batch.batch, chunks }, []);
    const all = Buffer.from(reply.data);
    const out: Buffer[] = [];
    let o = 0;
    for (const len of reply.lengths) {
      out.push(all.subarray(o, o + len));
      o += len;
    }
    return out;
  }

  /** Verified plaintexts of blobs within `body` (a ranged read of one pack), in order. */
  async decode(idKey: Buffer, key: Buffer, body: Buffer, blobs: DecodeRequest['blobs']): Promise<Buffer[]> {
    let slot = 0;
    for (let i = 1; i < this.slots.length; i++)
      if ((this.slots[i] as Slot).busy < (this.slots[slot] as Slot).busy) slot = i;
    const batch = this.next++;
    const ab = transferable(body);
    const msg: DecodeRequest = {
      type: 'decode',
      batch,
      idKey: new Uint8Array(idKey),
      key: new Uint8Array(key),
      data: ab,
      blobs,
    };
    const reply = await this.call<DecodeReply>(slot, msg, [ab]);
    const all = Buffer.from(reply.data);
    const out: Buffer[] = [];
    let o = 0;
    for (const len of reply.lengths) {
      out.push(all.subarray(o, o + len));
      o += len;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

/** A chunk worker: keyed hashing and zstd off the main thread (see protocol.ts). */
import { createHmac } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
// The low-level binding (CommonJS, no named exports for ESM): contexts that write into a caller's buffer.
import zstd from 'zstd-napi/binding.js';
import { isFerryError } from '../../common/errors.js';
import { compressInto, decodeChunkInto } from '../repo/chunk-codec.js';
import type { DecodeRequest, WorkerReply, WorkerRequest } from './protocol.js';
import { collectAll, Reclaimer } from './reclaim.js';

/**
 * One compression context for the thread's life (zstd reuses its tables instead of allocating them per chunk); it
 * compresses straight into the shared output buffer.
 */
const cctx = new zstd.CCtx();
/** One decompression context likewise; it decompresses straight into the shared output buffer. */
const dctx = new zstd.DCtx();

/** Where a blob is decrypted before it is decompressed into the output; grown to the largest blob seen. */
let scratch = Buffer.allocUnsafe(64 * 1024 + 64);

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(message, transfer);
}

/**
 * Young collections every 8 MiB of data, and a full one only when the heap outgrows the last one's live objects by
 * the headroom, not also every 256 MiB as on the main thread. A worker's garbage dies young (its handler returns
 * before the next collection), and each full collection threw away the optimized code of its hot paths (compiled
 * against objects of messages since gone), to be compiled again: a 16 GiB backup recompiled them some 230 times,
 * each compilation a burst of malloc memory and new code space, so a long job peaked higher than a short one.
 */
const reclaimer = new Reclaimer(undefined, Number.POSITIVE_INFINITY);
/** All zeros, as long as the longest chunk hashed so far: what a chunk is compared with to find it is all zero. */
let zeros = Buffer.alloc(64 * 1024);

parentPort?.on('message', (msg: WorkerRequest) => {
  // The pool dropped its spare buffers: this heap's handles on them go now, not at some later collection.
  if (msg.type === 'collect') {
    collectAll();
    return;
  }
  try {
    if (msg.type === 'hash') {
      const data = Buffer.from(msg.shared, 0, msg.length);
      const n = Math.ceil(msg.length / msg.chunkSize);
      const zero = new Uint8Array(n);
      const ids = Buffer.alloc(n * 32);
      if (zeros.length < msg.chunkSize) zeros = Buffer.alloc(msg.chunkSize);
      for (let i = 0; i < n; i++) {
        const chunk = data.subarray(i * msg.chunkSize, Math.min((i + 1) * msg.chunkSize, msg.length));
        if (chunk.equals(zeros.subarray(0, chunk.length))) {
          zero[i] = 1;
          continue;
        }
        createHmac('sha256', msg.idKey)
          .update(chunk)
          .digest()
          .copy(ids, i * 32);
      }
      reply({ type: 'hashed', batch: msg.batch, zero, ids });
      return;
    }
    if (msg.type === 'decode') {
      decode(msg);
      return;
    }
    const data = Buffer.from(msg.shared, 0, msg.length);
    const out = Buffer.from(msg.out);
    let at = msg.outOffset;
    const lengths: number[] = [];
    for (const i of msg.chunks) {
      const chunk = data.subarray(i * msg.chunkSize, Math.min((i + 1) * msg.chunkSize, msg.length));
      const length = 1 + compressInto(cctx, chunk, out.subarray(at));
      lengths.push(length);
      at += length;
    }
    reply({ type: 'compressed', batch: msg.batch, lengths });
  } catch (err: unknown) {
    reply({
      type: 'error',
      batch: msg.batch,
      message: err instanceof Error ? err.message : String(err),
      corrupt: isFerryError(err, 'DATA_CORRUPTION'),
    });
  } finally {
    // After the handler returns, when the request's buffers are garbage.
    const bytes =
      msg.type === 'compress' ? msg.chunks.length * msg.chunkSize : msg.type === 'hash' ? msg.length : msg.dataLength;
    setImmediate(() => reclaimer.processed(bytes));
  }
});

function decode(msg: DecodeRequest): void {
  const body = Buffer.from(msg.data, msg.dataOffset, msg.dataLength);
  const key = Buffer.from(msg.key);
  const idKey = Buffer.from(msg.idKey);
  const hasher = { id: (data: Buffer): Buffer => createHmac('sha256', idKey).update(data).digest() };
  const out = Buffer.from(msg.out, msg.outOffset, msg.capacity);
  const ids = Buffer.from(msg.ids.buffer, msg.ids.byteOffset, msg.ids.length);
  let at = 0;
  const lengths: number[] = [];
  for (let i = 0; i < msg.spans.length / 3; i++) {
    const offset = msg.spans[i * 3] as number;
    const sealed = body.subarray(offset, offset + (msg.spans[i * 3 + 1] as number));
    if (scratch.length < sealed.length) scratch = Buffer.allocUnsafe(sealed.length);
    const id = ids.subarray(i * 32, i * 32 + 32);
    const where = (): string => `chunk ${id.toString('hex', 0, 8)} ${msg.where}`;
    const nonce = msg.spans[i * 3 + 2] as number;
    const length = decodeChunkInto(hasher, dctx, key, nonce, id, sealed, where, out.subarray(at), scratch);
    at += length;
    lengths.push(length);
  }
  reply({ type: 'decoded', batch: msg.batch, lengths });
}

/** A chunk worker: keyed hashing and zstd off the main thread (see protocol.ts). */
import { createHmac, createSecretKey, type Hmac, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
// The low-level binding (CommonJS, no named exports for ESM): contexts that write into a caller's buffer.
import zstd from 'zstd-napi/binding.js';
import { isFerryError } from '../../common/index.js';
import { compressInto, decodeChunkInto } from '../repo/chunk-codec.js';
import { type DecodeRequest, ownRequest, type WorkerReply, type WorkerRequest } from './protocol.js';
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
 * Young collections every 8 MiB of data; a full one when the heap outgrows the last one's live objects by the
 * headroom, and whenever the job's main thread runs its own (MemoryPolicy.workersCollectWithJob, every 256 MiB), so what a
 * long job promotes here does not stay. A full collection costs no compilations: requests get object-literal shapes
 * (ownRequest) and the hashing keeps its hidden classes alive (IdHasher), so the code compiled for them stays valid.
 */
const reclaimer = new Reclaimer(undefined, Number.POSITIVE_INFINITY);
/**
 * Keyed chunk ids under one repository's id key: made once per key (a job uses one), not a closure per request, whose
 * optimized code a full collection would throw away with it.
 */
class IdHasher {
  private readonly key: KeyObject;
  /**
   * An Hmac that has been through a whole use, and its digest, kept alive. Node builds an Hmac by adding properties to
   * it, and gives a digest made in C++ the Buffer prototype after the fact; V8 keeps the hidden classes those steps
   * make only while some object has them. At each full collection between two chunks every one had died, and the
   * code compiled against them (hashing, and Buffer's copy with all that inlines it, compressInto among them) was
   * thrown away and compiled again: 90 deoptimizations per worker in a 16 GiB backup.
   */
  readonly kept: { hmac: Hmac; digest: Buffer };

  constructor(readonly bytes: Buffer) {
    this.key = createSecretKey(bytes);
    const hmac = createHmac('sha256', this.key);
    this.kept = { hmac, digest: hmac.update(Buffer.alloc(0)).digest() };
  }

  id(data: Buffer): Buffer {
    return createHmac('sha256', this.key).update(data).digest();
  }
}

let lastHasher: IdHasher | undefined;

function hasherFor(idKey: Uint8Array): IdHasher {
  if (lastHasher === undefined || !lastHasher.bytes.equals(idKey)) lastHasher = new IdHasher(Buffer.from(idKey));
  return lastHasher;
}

/** All zeros, as long as the longest chunk hashed so far: what a chunk is compared with to find it is all zero. */
let zeros = Buffer.alloc(64 * 1024);

/** Bytes of requests handled since the last countSettled (one function for the thread, not a closure per request). */
let settled = 0;

function countSettled(): void {
  const bytes = settled;
  settled = 0;
  reclaimer.processed(bytes);
}

parentPort?.on('message', (raw: WorkerRequest) => {
  const msg = ownRequest(raw);
  // The pool dropped its spare buffers (this heap's handles on them go now, not at some later collection), or the
  // job's main thread ran a full collection.
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
      const hasher = hasherFor(msg.idKey);
      for (let i = 0; i < n; i++) {
        const chunk = data.subarray(i * msg.chunkSize, Math.min((i + 1) * msg.chunkSize, msg.length));
        if (chunk.equals(zeros.subarray(0, chunk.length))) {
          zero[i] = 1;
          continue;
        }
        hasher.id(chunk).copy(ids, i * 32);
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
    settled += bytes;
    if (settled === bytes) setImmediate(countSettled);
  }
});

function decode(msg: DecodeRequest): void {
  const body = Buffer.from(msg.data, msg.dataOffset, msg.dataLength);
  const key = Buffer.from(msg.key);
  const hasher = hasherFor(msg.idKey);
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

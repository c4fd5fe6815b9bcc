/** A chunk worker: keyed hashing and zstd off the main thread (see protocol.ts). */
import { createHmac } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { compress } from 'zstd-napi';
import { isFerryError } from '../../common/errors.js';
import { decodeChunk } from '../repo/chunk-codec.js';
import type { DecodeRequest, WorkerReply, WorkerRequest } from './protocol.js';

const RAW = 0;
const ZSTD = 1;
/** zstd level: 3 is zstd's default, a good balance of speed and ratio for block data. */
const LEVEL = 3;
const batches = new Map<number, { data: Buffer; chunkSize: number }>();

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(message, transfer);
}

parentPort?.on('message', (msg: WorkerRequest) => {
  try {
    if (msg.type === 'hash') {
      const data = Buffer.from(msg.data, 0, msg.length);
      const n = Math.ceil(msg.length / msg.chunkSize);
      const zero = new Uint8Array(n);
      const ids = Buffer.alloc(n * 32);
      const zeros = Buffer.alloc(msg.chunkSize);
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
      batches.set(msg.batch, { data, chunkSize: msg.chunkSize });
      reply({ type: 'hashed', batch: msg.batch, zero, ids });
      return;
    }
    if (msg.type === 'decode') {
      decode(msg);
      return;
    }
    const held = batches.get(msg.batch);
    batches.delete(msg.batch);
    if (held === undefined) throw new Error(`unknown batch ${msg.batch}`);
    const parts: Buffer[] = [];
    const lengths: number[] = [];
    for (const i of msg.chunks) {
      const chunk = held.data.subarray(i * held.chunkSize, Math.min((i + 1) * held.chunkSize, held.data.length));
      const z = compress(chunk, { compressionLevel: LEVEL });
      const body =
        z.length < chunk.length ? Buffer.concat([Buffer.of(ZSTD), z]) : Buffer.concat([Buffer.of(RAW), chunk]);
      parts.push(body);
      lengths.push(body.length);
    }
    const out = Buffer.concat(parts);
    const ab = out.buffer.slice(out.byteOffset, out.byteOffset + out.length) as ArrayBuffer;
    reply({ type: 'compressed', batch: msg.batch, data: ab, lengths }, [ab]);
  } catch (err: unknown) {
    reply({
      type: 'error',
      batch: msg.batch,
      message: err instanceof Error ? err.message : String(err),
      corrupt: isFerryError(err, 'DATA_CORRUPTION'),
    });
  }
});

function decode(msg: DecodeRequest): void {
  const body = Buffer.from(msg.data);
  const key = Buffer.from(msg.key);
  const idKey = Buffer.from(msg.idKey);
  const hasher = { id: (data: Buffer): Buffer => createHmac('sha256', idKey).update(data).digest() };
  const parts: Buffer[] = [];
  const lengths: number[] = [];
  for (const b of msg.blobs) {
    const sealed = body.subarray(b.offset, b.offset + b.length);
    const data = decodeChunk(hasher, key, b.nonce, Buffer.from(b.id), sealed, b.where);
    parts.push(data);
    lengths.push(data.length);
  }
  const out = Buffer.concat(parts);
  const ab = out.buffer.slice(out.byteOffset, out.byteOffset + out.length) as ArrayBuffer;
  reply({ type: 'decoded', batch: msg.batch, data: ab, lengths }, [ab]);
}

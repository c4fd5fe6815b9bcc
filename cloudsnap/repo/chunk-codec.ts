/**
 * One chunk inside a pack: AES-256-GCM(K_pack, nonce = the blob's number in its pack, aad = chunk id) of
 * codec byte (0 raw, 1 zstd) | payload. Compression is kept only where it shrinks the chunk.
 */
// The low-level binding (CommonJS, no named exports for ESM): contexts that write into a caller's buffer.
import zstd, { type CCtx, type DCtx } from 'zstd-napi/binding.js';
import { FerryError } from '../../common/index.js';
import { openChunk, type RepoKeys, seal } from './crypto.js';

/** Codec bytes: the payload as is, or zstd-compressed. */
export const RAW = 0;
export const ZSTD = 1;

/**
 * zstd level 2: on 64 KiB chunks of text-like data about 15% faster than level 3 (zstd's default) for under 1% more
 * bytes; compression is most of a backup's CPU.
 */
export const LEVEL = 2;

/**
 * Writes codec byte | payload of `chunk` at the start of `out` (room for the chunk and a byte) and returns the
 * payload's length: zstd when it shrinks the chunk (zstd is given room for one byte less than the chunk, and fails
 * when it needs more), else raw. The one place that decides how a chunk is stored.
 */
export function compressInto(cctx: CCtx, chunk: Buffer, out: Buffer): number {
  let n = 0;
  try {
    n = cctx.compress(out.subarray(1, chunk.length), chunk, LEVEL);
  } catch {
    n = 0;
  }
  if (n > 0) {
    out[0] = ZSTD;
    return n;
  }
  out[0] = RAW;
  chunk.copy(out, 1);
  return chunk.length;
}

let ownCctx: CCtx | undefined;

/** A chunk compressed where that helps and sealed (a single chunk's path, outside the workers). */
export function encodeChunk(key: Buffer, counter: number, id: Buffer, plaintext: Buffer): Buffer {
  ownCctx ??= new zstd.CCtx();
  const body = Buffer.allocUnsafe(plaintext.length + 1);
  const n = compressInto(ownCctx, plaintext, body);
  return sealBody(key, counter, id, body.subarray(0, n + 1));
}

/** Seals a body already in `codec | payload` form (compressed by a worker). */
export function sealBody(key: Buffer, counter: number, id: Buffer, body: Buffer): Buffer {
  return seal(key, counter, body, id);
}

/**
 * Decrypts, decompresses and checks the keyed hash of a blob, writing the chunk into `out` (a chunk longer than `out`
 * is DATA_CORRUPTION) and returning its length; any failure is DATA_CORRUPTION naming the blob by `where` (called
 * only then). Nothing is allocated or copied: a raw chunk is decrypted straight into `out`; a compressed one into
 * `scratch` (room for the sealed length less the tag, that is a chunk and its codec byte) and zstd decompresses from
 * there straight into `out` with the caller's context.
 */
export function decodeChunkInto(
  keys: Pick<RepoKeys, 'id'>,
  dctx: DCtx,
  key: Buffer,
  counter: number,
  id: Buffer,
  sealed: Buffer,
  where: () => string,
  out: Buffer,
  scratch: Buffer,
): number {
  const opened = openChunk(key, counter, sealed, id, out, scratch, where);
  const codec = opened % 256;
  const payload = (opened - codec) / 256;
  let length: number;
  if (codec === RAW) length = payload;
  else if (codec === ZSTD) {
    try {
      length = dctx.decompress(out, scratch.subarray(0, payload));
    } catch (err: unknown) {
      throw new FerryError('DATA_CORRUPTION', `${where()} does not decompress into a chunk`, { cause: err });
    }
  } else throw new FerryError('DATA_CORRUPTION', `${where()} has an unknown codec ${codec}`);
  if (!keys.id(out.subarray(0, length)).equals(id)) {
    throw new FerryError('DATA_CORRUPTION', `${where()} does not match its chunk id`);
  }
  return length;
}

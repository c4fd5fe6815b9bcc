/**
 * One chunk inside a pack: AES-256-GCM(K_pack, nonce = the blob's number in its pack, aad = chunk id) of
 * codec byte (0 raw, 1 zstd) | payload. Compression is kept only where it shrinks the chunk.
 */
import { compress } from 'zstd-napi';
import type { DCtx } from 'zstd-napi/binding.js';
import { FerryError } from '../../common/errors.js';
import { openChunk, type RepoKeys, seal } from './crypto.js';

/** Codec bytes: the payload as is, or zstd-compressed. */
export const RAW = 0;
export const ZSTD = 1;

export function encodeChunk(key: Buffer, counter: number, id: Buffer, plaintext: Buffer): Buffer {
  const z = compress(plaintext, { compressionLevel: 3 });
  const body =
    z.length < plaintext.length ? Buffer.concat([Buffer.of(ZSTD), z]) : Buffer.concat([Buffer.of(RAW), plaintext]);
  return sealBody(key, counter, id, body);
}

/** Seals a body already in `codec | payload` form (compressed by a worker). */
export function sealBody(key: Buffer, counter: number, id: Buffer, body: Buffer): Buffer {
  return seal(key, counter, body, id);
}

/**
 * Decrypts, decompresses and checks the keyed hash of a blob, writing the chunk into `out` (a chunk longer than `out`
 * is DATA_CORRUPTION) and returning its length; any failure is DATA_CORRUPTION naming the blob by `where` (called
 * only then). Nothing is allocated or copied: a raw chunk is
 * decrypted straight into `out`; a compressed one into `scratch` (room for the sealed length less the tag, that
 * is a chunk and its codec byte) and zstd decompresses from there straight into `out` with the caller's context.
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

/**
 * One chunk inside a pack: AES-256-GCM(K_pack, nonce = the blob's number in its pack, aad = chunk id) of
 * codec byte (0 raw, 1 zstd) | payload. Compression is kept only where it shrinks the chunk.
 */
import { compress, decompress } from 'zstd-napi';
import type { DCtx } from 'zstd-napi/binding.js';
import { FerryError } from '../../common/errors.js';
import { open, openInto, type RepoKeys, seal } from './crypto.js';

const RAW = 0;
const ZSTD = 1;

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

/** Decrypts, decompresses and checks the keyed hash: returns the chunk or throws DATA_CORRUPTION naming `where`. */
export function decodeChunk(
  keys: Pick<RepoKeys, 'id'>,
  key: Buffer,
  counter: number,
  id: Buffer,
  sealed: Buffer,
  where: string,
): Buffer {
  const body = open(key, counter, sealed, id, where);
  let data: Buffer;
  if (body[0] === RAW) data = body.subarray(1);
  else if (body[0] === ZSTD) {
    try {
      data = decompress(body.subarray(1));
    } catch (err: unknown) {
      throw new FerryError('DATA_CORRUPTION', `${where} does not decompress`, { cause: err });
    }
  } else throw new FerryError('DATA_CORRUPTION', `${where} has an unknown codec ${body[0]}`);
  if (!keys.id(data).equals(id)) throw new FerryError('DATA_CORRUPTION', `${where} does not match its chunk id`);
  return data;
}

/**
 * As `decodeChunk`, writing the chunk into `out` (a chunk longer than `out` is DATA_CORRUPTION) and returning its
 * length (`where` names the blob in errors; it is called only then). Nothing is allocated: the blob is decrypted into
 * `scratch` (room for the sealed length less the tag, that
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
  const body = scratch.subarray(0, openInto(key, counter, sealed, id, scratch, where));
  let length: number;
  if (body[0] === RAW) {
    length = body.length - 1;
    if (length > out.length) throw new FerryError('DATA_CORRUPTION', `${where()} is longer than a chunk`);
    body.copy(out, 0, 1);
  } else if (body[0] === ZSTD) {
    try {
      length = dctx.decompress(out, body.subarray(1));
    } catch (err: unknown) {
      throw new FerryError('DATA_CORRUPTION', `${where()} does not decompress into a chunk`, { cause: err });
    }
  } else throw new FerryError('DATA_CORRUPTION', `${where()} has an unknown codec ${body[0]}`);
  if (!keys.id(out.subarray(0, length)).equals(id)) {
    throw new FerryError('DATA_CORRUPTION', `${where()} does not match its chunk id`);
  }
  return length;
}

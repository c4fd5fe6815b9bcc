/**
 * Reads a stored pack's own header with ranged reads (its first 40 bytes and its tail), without reading its blobs:
 * what the pack holds, as the pack says it (pack.ts for the layout). Index rebuilds and garbage collection use it,
 * because pack headers, not index objects, are the truth of what a repository holds.
 */
import { FerryError, isFerryError } from '../../common/index.js';
import type { ObjectStore } from '../store/types.js';
import type { IndexedPack } from './chunk-index.js';
import type { RepoKeys } from './crypto.js';
import { packKey } from './layout.js';
import { encodeEntries, readPackHeader } from './pack.js';

/** Bytes read from a pack's end at first: a 16 MiB pack of 64 KiB chunks has a header of about 11 KiB. */
const TAIL_GUESS = 64 * 1024;
const HEAD = 40;
const TRAILER = 12;

export interface PackHeaderOptions {
  /** The pack's size when a listing gave it (saves a HEAD request). */
  size?: number;
  signal?: AbortSignal;
}

/**
 * The blob entries of stored pack `packId`, authenticated with the repository's keys, in index form. NOT_FOUND when
 * the pack does not exist; DATA_CORRUPTION naming the object when it is truncated, altered or not a pack.
 */
export async function readStoredPackHeader(
  store: ObjectStore,
  keys: RepoKeys,
  packId: string,
  options: PackHeaderOptions = {},
): Promise<IndexedPack> {
  const { signal } = options;
  const key = packKey(packId);
  const what = `pack ${key}`;
  const size = options.size ?? (await store.head(key, { signal }))?.size;
  if (size === undefined) throw new FerryError('NOT_FOUND', `${what} does not exist in ${store.location}`);
  if (size < HEAD + TRAILER + 16) throw new FerryError('DATA_CORRUPTION', `${what} is truncated (${size} bytes)`);
  const ranged = async (offset: number, length: number): Promise<Buffer> => {
    try {
      return await store.get(key, { signal, range: { offset, length } });
    } catch (err: unknown) {
      // The size the listing gave no longer holds: the object was replaced or cut short since.
      if (isFerryError(err, 'INVALID_ARGUMENT')) {
        throw new FerryError('DATA_CORRUPTION', `${what} is shorter than its listed ${size} bytes`, { cause: err });
      }
      throw err;
    }
  };
  const tailLength = Math.min(size - HEAD, TAIL_GUESS);
  const [head, firstTail] = await Promise.all([ranged(0, HEAD), ranged(size - tailLength, tailLength)]);
  let tail = firstTail;
  const headerLength = tail.length >= TRAILER ? tail.readUInt32LE(tail.length - TRAILER) : 0;
  if (headerLength + TRAILER > size - HEAD) {
    throw new FerryError('DATA_CORRUPTION', `${what} has a bad header length (${headerLength} of ${size} bytes)`);
  }
  if (headerLength + TRAILER > tail.length) tail = await ranged(size - headerLength - TRAILER, headerLength + TRAILER);
  // readPackHeader checks magic, trailer and the sealed header on a buffer shaped like a whole pack.
  const shaped = Buffer.concat([head, tail.subarray(tail.length - headerLength - TRAILER)]);
  const { salt, entries } = readPackHeader(keys, shaped, what);
  const dataEnd = size - headerLength - TRAILER;
  for (const e of entries) {
    if (e.offset < HEAD || e.offset + e.length > dataEnd) {
      throw new FerryError('DATA_CORRUPTION', `${what} names a blob outside its data (offset ${e.offset})`);
    }
  }
  return { ref: { id: packId, salt }, blobs: encodeEntries(entries) };
}

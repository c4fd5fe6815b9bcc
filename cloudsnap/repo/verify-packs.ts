/**
 * Reading a pack for verify: the whole object in a few large ranged reads (docs/FORMAT.md, "Packs"), each read once,
 * its head (magic and salt) and trailing header checked against what the index says, and every blob it is to check
 * authenticated, decompressed and re-hashed by the chunk workers (as a restore does). A range that fails is checked
 * again blob by blob, so each damaged chunk is named, not only the first.
 */
import zstd from 'zstd-napi/binding.js';
import { FerryError, isFerryError } from '../../common/index.js';
import type { GetOptions } from '../store/types.js';
import { ChunkWorkers } from '../workers/pool.js';
import { decodeChunkInto } from './chunk-codec.js';
import { ENTRY } from './chunk-index.js';
import { open, type RepoKeys, SALT_SIZE, TAG_SIZE } from './crypto.js';
import { packKey } from './layout.js';
import type { ProblemBook } from './verify-report.js';
import type { PlannedPack } from './verify-scan.js';

const MAGIC = Buffer.from('FRYPACK1', 'ascii');
const END = Buffer.from('FRYPACKE', 'ascii');
/** Magic and salt. */
export const PACK_HEAD = MAGIC.length + SALT_SIZE;
/** Header length u32 and end magic. */
const TRAILER_FIXED = 4 + END.length;
/** Largest ranged read (the restore's MAX_RANGE): a 16 MiB pack is read in four or five. */
const MAX_RANGE = 4 * 1024 * 1024;
/** Largest number of blobs decoded from one read (their plaintexts share one 8 MiB buffer of the workers). */
const MAX_PLAIN = 8 * 1024 * 1024;

/** Offset, length and nonce of blob `i` of encoded entries. */
function blobAt(blobs: Buffer, i: number): { id: Buffer; offset: number; length: number; nonce: number } {
  const o = i * ENTRY;
  return {
    id: blobs.subarray(o, o + 32),
    offset: blobs.readUInt32LE(o + 32),
    length: blobs.readUInt32LE(o + 36),
    nonce: blobs.readUInt32LE(o + 40),
  };
}

/** End of the last blob: where the sealed header starts. */
function blobsEnd(blobs: Buffer): number {
  let end = PACK_HEAD;
  for (let i = 0; i < blobs.length / ENTRY; i++) {
    const b = blobAt(blobs, i);
    end = Math.max(end, b.offset + b.length);
  }
  return end;
}

/** The size a pack with these blob entries has: blobs, sealed header (an entry per blob and a tag), trailer. */
export function expectedPackSize(blobs: Buffer): number {
  return blobsEnd(blobs) + blobs.length + TAG_SIZE + TRAILER_FIXED;
}

/**
 * Opens a pack's trailing header from `tail` (the last bytes of the pack, at least the header and trailer) and
 * returns its entries, encoded. Throws DATA_CORRUPTION naming `what`.
 */
export function openTrailer(keys: RepoKeys, salt: Buffer, tail: Buffer, what: string): Buffer {
  const bad = (why: string): FerryError => new FerryError('DATA_CORRUPTION', `${what}: ${why}`);
  if (tail.length < TRAILER_FIXED + TAG_SIZE || !tail.subarray(-END.length).equals(END)) {
    throw bad('its trailer does not end with the pack end marker');
  }
  const len = tail.readUInt32LE(tail.length - TRAILER_FIXED);
  if (len + TRAILER_FIXED > tail.length) throw bad(`its trailer gives a header length of ${len}, past its start`);
  const sealed = tail.subarray(tail.length - TRAILER_FIXED - len, tail.length - TRAILER_FIXED);
  return open(keys.objectKey(salt), 0, sealed, Buffer.concat([MAGIC, salt]), `the trailing header of ${what}`);
}

/** A planned ranged read of a pack: bytes `[offset, offset + length)` and the blobs (positions) to decode in it. */
interface PackRange {
  offset: number;
  length: number;
  pieces: number[];
  /** The range starts at byte 0 (magic and salt are checked). */
  head: boolean;
  /** The range runs to the end of the pack (its trailing header is checked). */
  tail: boolean;
}

export interface PackCheckerOptions {
  /** Reads (a range of) an object as the store holds it now (Repository.getObject). */
  read: (key: string, options: GetOptions) => Promise<Buffer>;
  keys: RepoKeys;
  book: ProblemBook;
  chunkSize: number;
  /** Called with the bytes of each range once it is checked, and the chunks checked in it. */
  onRange: (bytes: number, chunks: number) => void;
  /** Waits while the job is paused. */
  pause?: () => Promise<void>;
  signal?: AbortSignal;
}

/** Reads and checks packs (see the file comment). */
export class PackChecker {
  private readonly workers = ChunkWorkers.shared();
  private readonly dctx = new zstd.DCtx();
  private scratch = Buffer.allocUnsafe(0);
  private out = Buffer.allocUnsafe(0);

  constructor(private readonly options: PackCheckerOptions) {}

  /** The ranged reads that cover `size` bytes of a pack (its known blobs, and the trailer when `whole`). */
  plan(pack: PlannedPack, size: number, whole: boolean): PackRange[] {
    const count = pack.blobs.length / ENTRY;
    const wanted = new Set(pack.needed);
    const trailer = whole ? size - blobsEnd(pack.blobs) : 0;
    const ranges: PackRange[] = [];
    let current: PackRange = { offset: 0, length: PACK_HEAD, pieces: [], head: true, tail: false };
    for (let i = 0; i < count; i++) {
      const b = blobAt(pack.blobs, i);
      if (b.offset + b.length > size) continue;
      const end = b.offset + b.length;
      const full =
        end - current.offset > MAX_RANGE - (i === count - 1 ? trailer : 0) ||
        (wanted.has(i) && (current.pieces.length + 1) * this.options.chunkSize > MAX_PLAIN);
      if (full && current.length > 0 && b.offset > current.offset) {
        current.length = b.offset - current.offset;
        ranges.push(current);
        current = { offset: b.offset, length: 0, pieces: [], head: false, tail: false };
      }
      current.length = end - current.offset;
      if (wanted.has(i)) current.pieces.push(i);
    }
    if (whole) {
      current.length = size - current.offset;
      current.tail = true;
    }
    ranges.push(current);
    return ranges;
  }

  /**
   * Reads `pack` (of `size` bytes in the store; `whole` when that is the size its entries give) and checks it:
   * problems go to the book. Rejects only for reasons that are not the pack's (the store unreachable, a stop).
   */
  async check(pack: PlannedPack, size: number, whole: boolean): Promise<void> {
    for (const range of this.plan(pack, size, whole)) {
      await this.options.pause?.();
      this.options.signal?.throwIfAborted();
      await this.checkRange(pack, range);
      this.options.onRange(range.length, range.pieces.length);
    }
  }

  private async checkRange(pack: PlannedPack, range: PackRange): Promise<void> {
    const { read, book, signal } = this.options;
    const key = packKey(pack.id);
    const buffer = this.workers.borrow(range.length);
    try {
      let body: Buffer;
      try {
        body = await read(key, {
          range: { offset: range.offset, length: range.length },
          into: buffer,
          ...(signal !== undefined && { signal }),
        });
      } catch (err: unknown) {
        if (!isFerryError(err, 'NOT_FOUND') && !isFerryError(err, 'INVALID_ARGUMENT')) throw err;
        // Gone or shortened since it was listed.
        const n = book.add('pack', key, `pack changed while it was verified: ${err.message}; verify again`);
        for (const i of range.pieces) book.concern(n, blobAt(pack.blobs, i).id);
        return;
      }
      if (range.head) this.checkHead(pack, body, key);
      if (range.tail) this.checkTail(pack, body, key);
      await this.decodePieces(pack, range, body, key);
    } finally {
      this.workers.giveBack(buffer);
    }
  }

  private checkHead(pack: PlannedPack, body: Buffer, key: string): void {
    if (body.subarray(0, MAGIC.length).equals(MAGIC) && body.subarray(MAGIC.length, PACK_HEAD).equals(pack.salt)) {
      return;
    }
    const { book } = this.options;
    const n = book.add(
      'pack',
      key,
      'the pack’s head (magic and salt) is damaged: its chunks no longer decrypt with the salt the index gives',
    );
    for (const i of pack.needed) book.concern(n, blobAt(pack.blobs, i).id);
  }

  private checkTail(pack: PlannedPack, body: Buffer, key: string): void {
    const { book, keys } = this.options;
    const tail = body.subarray(Math.max(0, body.length - (pack.blobs.length + TAG_SIZE + TRAILER_FIXED)));
    let problem: string | undefined;
    try {
      const entries = openTrailer(keys, pack.salt, tail, `pack ${key}`);
      if (!entries.equals(pack.blobs)) {
        problem =
          pack.source === undefined
            ? 'the pack’s trailing header changed while it was verified'
            : `the pack’s trailing header lists other blobs than index object ${pack.source} does`;
      }
    } catch (err: unknown) {
      problem = `the pack’s trailing header is damaged (${err instanceof Error ? err.message : String(err)})`;
    }
    if (problem === undefined) return;
    const n = book.add(
      'pack',
      key,
      `${problem}: restores still find its chunks through the index, but an index rebuild cannot read this pack`,
    );
    for (const i of pack.needed) book.concern(n, blobAt(pack.blobs, i).id);
  }

  /** Decodes a range's blobs in a worker; when that fails, again one by one here, to name every damaged chunk. */
  private async decodePieces(pack: PlannedPack, range: PackRange, body: Buffer, key: string): Promise<void> {
    if (range.pieces.length === 0) return;
    const { keys, chunkSize } = this.options;
    const spans = new Uint32Array(range.pieces.length * 3);
    const ids = new Uint8Array(range.pieces.length * 32);
    for (let k = 0; k < range.pieces.length; k++) {
      const b = blobAt(pack.blobs, range.pieces[k] as number);
      spans[k * 3] = b.offset - range.offset;
      spans[k * 3 + 1] = b.length;
      spans[k * 3 + 2] = b.nonce;
      ids.set(b.id, k * 32);
    }
    const objectKey = keys.objectKey(pack.salt);
    try {
      const decoded = await this.workers.decode(
        keys.idKeyBytes,
        objectKey,
        body,
        { spans, ids, where: `in ${key}` },
        range.pieces.length * chunkSize,
      );
      decoded.release();
      return;
    } catch (err: unknown) {
      if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
    }
    this.decodeEach(pack, range, body, key, objectKey);
  }

  private decodeEach(pack: PlannedPack, range: PackRange, body: Buffer, key: string, objectKey: Buffer): void {
    const { book, keys, chunkSize } = this.options;
    if (this.out.length < chunkSize) this.out = Buffer.allocUnsafe(chunkSize);
    const ids: Buffer[] = [];
    for (const i of range.pieces) {
      const b = blobAt(pack.blobs, i);
      const sealed = body.subarray(b.offset - range.offset, b.offset - range.offset + b.length);
      if (this.scratch.length < sealed.length) this.scratch = Buffer.allocUnsafe(sealed.length);
      try {
        const where = (): string => `chunk ${b.id.toString('hex', 0, 8)} in ${key}`;
        decodeChunkInto(keys, this.dctx, objectKey, b.nonce, b.id, sealed, where, this.out, this.scratch);
      } catch (err: unknown) {
        if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
        ids.push(b.id);
      }
    }
    if (ids.length === 0) return;
    const n = book.add(
      'pack',
      key,
      'chunks in this pack failed authentication, decompression or their keyed hash check: they were altered',
    );
    for (const id of ids) book.concern(n, id);
  }
}

/**
 * Pack objects: many chunks in one object, so a backup costs few requests.
 *
 * Layout: "FRYPACK1" (8) | salt (32) | blob 1 | blob 2 | ... | sealed header | header length u32 LE | "FRYPACKE" (8)
 * Blob i is a chunk sealed with K_obj(salt) and nonce i (chunk-codec.ts). The header (nonce 0, aad = magic | salt)
 * lists, per blob: chunk id (32) | offset u32 | length u32 | nonce u32, so a pack can be read back on its own (verify,
 * index rebuild). Index objects repeat the same entries so a restore needs only ranged reads of blobs.
 */
import { randomBytes } from 'node:crypto';
import { FerryError } from '../../common/index.js';
import { encodeChunk } from './chunk-codec.js';
import { newSalt, open, type RepoKeys, SALT_SIZE, seal, sealInto, TAG_SIZE } from './crypto.js';

const MAGIC = Buffer.from('FRYPACK1', 'ascii');
const END = Buffer.from('FRYPACKE', 'ascii');
const ENTRY = 44;

export interface PackRef {
  id: string;
  salt: Buffer;
}

export interface BlobEntry {
  id: Buffer;
  offset: number;
  length: number;
  nonce: number;
}

export class PackBuilder {
  readonly ref: PackRef = { id: randomBytes(32).toString('hex'), salt: newSalt() };
  readonly entries: BlobEntry[] = [];
  /** The pack being written: blobs are sealed straight into it, so finishing copies nothing but the header. */
  private buf: Buffer;
  private bytes: number;
  private readonly key: Buffer;
  private readonly ids = new Set<string>();

  /**
   * @param space Bytes to reserve up front, or a buffer to write into (one a finished pack no longer needs: see
   *   `buffer`); the pack grows past it when needed. Default 1 MiB.
   */
  constructor(keys: RepoKeys, space: number | Buffer = 1024 * 1024) {
    this.buf = typeof space === 'number' ? Buffer.allocUnsafe(Math.max(space, 1024)) : space;
    MAGIC.copy(this.buf, 0);
    this.ref.salt.copy(this.buf, MAGIC.length);
    this.bytes = MAGIC.length + this.ref.salt.length;
    this.key = keys.objectKey(this.ref.salt);
  }

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.length;
  }

  /** The buffer the pack is written in, for reuse by a later pack once this one's object is stored. */
  get buffer(): Buffer {
    return this.buf;
  }

  /** Whether this pack already holds the chunk. */
  has(id: Buffer): boolean {
    return this.ids.has(id.toString('hex'));
  }

  /** Compresses (where it helps), encrypts and appends a chunk. */
  add(id: Buffer, plaintext: Buffer): BlobEntry {
    return this.append(id, encodeChunk(this.key, this.entries.length + 1, id, plaintext));
  }

  /** Encrypts and appends a chunk already compressed by a worker (`codec | payload`), sealing it in place. */
  addEncoded(id: Buffer, body: Buffer): BlobEntry {
    const nonce = this.entries.length + 1;
    this.reserve(body.length + TAG_SIZE);
    const length = sealInto(this.key, nonce, body, id, this.buf, this.bytes);
    return this.record(id, length);
  }

  private reserve(more: number): void {
    if (this.bytes + more <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.bytes + more));
    this.buf.copy(grown, 0, 0, this.bytes);
    this.buf = grown;
  }

  private append(id: Buffer, blob: Buffer): BlobEntry {
    this.reserve(blob.length);
    blob.copy(this.buf, this.bytes);
    return this.record(id, blob.length);
  }

  /** Books the blob of `length` bytes just written at the end. */
  private record(id: Buffer, length: number): BlobEntry {
    const entry = { id, offset: this.bytes, length, nonce: this.entries.length + 1 };
    this.bytes += length;
    this.entries.push(entry);
    this.ids.add(id.toString('hex'));
    return entry;
  }

  /** The whole pack object (a view of the builder's buffer: add nothing after this). */
  finish(): Buffer {
    const header = encodeEntries(this.entries);
    const sealed = seal(this.key, 0, header, this.buf.subarray(0, MAGIC.length + SALT_SIZE));
    this.reserve(sealed.length + 4 + END.length);
    sealed.copy(this.buf, this.bytes);
    this.bytes += sealed.length;
    this.buf.writeUInt32LE(sealed.length, this.bytes);
    END.copy(this.buf, this.bytes + 4);
    this.bytes += 4 + END.length;
    return this.buf.subarray(0, this.bytes);
  }
}

export function encodeEntries(entries: readonly BlobEntry[]): Buffer {
  const b = Buffer.alloc(entries.length * ENTRY);
  // A loop, not a callback: a closure made per call loses its optimized code at every full collection (restore.ts).
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as BlobEntry;
    const o = i * ENTRY;
    e.id.copy(b, o);
    b.writeUInt32LE(e.offset, o + 32);
    b.writeUInt32LE(e.length, o + 36);
    b.writeUInt32LE(e.nonce, o + 40);
  }
  return b;
}

export function decodeEntries(b: Buffer, what: string): BlobEntry[] {
  if (b.length % ENTRY !== 0) throw new FerryError('DATA_CORRUPTION', `${what} has a malformed blob list`);
  const out: BlobEntry[] = [];
  for (let o = 0; o < b.length; o += ENTRY) {
    out.push({
      id: Buffer.from(b.subarray(o, o + 32)),
      offset: b.readUInt32LE(o + 32),
      length: b.readUInt32LE(o + 36),
      nonce: b.readUInt32LE(o + 40),
    });
  }
  return out;
}

/** Reads a whole pack's header (for verify and index rebuild). */
export function readPackHeader(keys: RepoKeys, pack: Buffer, what: string): { salt: Buffer; entries: BlobEntry[] } {
  if (pack.length < MAGIC.length + 32 + 12 || !pack.subarray(0, 8).equals(MAGIC) || !pack.subarray(-8).equals(END)) {
    throw new FerryError('DATA_CORRUPTION', `${what} is not a complete pack (bad header or trailer, or truncated)`);
  }
  const salt = pack.subarray(8, 40);
  const len = pack.readUInt32LE(pack.length - 12);
  const start = pack.length - 12 - len;
  if (start < 40) throw new FerryError('DATA_CORRUPTION', `${what} has a bad header length`);
  const header = open(
    keys.objectKey(salt),
    0,
    pack.subarray(start, pack.length - 12),
    Buffer.concat([MAGIC, salt]),
    what,
  );
  return { salt: Buffer.from(salt), entries: decodeEntries(header, what) };
}

/**
 * Where every chunk of a repository lives. Index objects (`index/<id>`, sealed) each describe some packs:
 *   per pack: pack id (32) | salt (32) | blob count u32 LE | blob entries (pack.ts, 44 bytes each)
 * A backup writes one every few packs, so a crash loses track of at most those packs.
 *
 * In memory the chunk locations sit in one open-addressing hash table in a Buffer, 48 bytes a slot:
 *   chunk id (32) | pack number u32 | offset u32 | length u32 | nonce u32      (pack number 0 = empty slot)
 * and each pack keeps its blob list in the encoded form, so a chunk costs about 110 bytes, not a JS object or two.
 */
import { FerryError } from '../../common/errors.js';
import { type BlobEntry, encodeEntries, type PackRef } from './pack.js';

/** Bytes of one blob entry in an index object or a pack header. */
export const ENTRY = 44;
const SLOT = 48;
const INITIAL_SLOTS = 1024;
/** The table grows when more than this share of its slots is used. */
const MAX_LOAD = 0.7;

export interface ChunkLocation {
  pack: PackRef;
  offset: number;
  length: number;
  nonce: number;
}

/** A pack as an index object describes it: its reference and its blob entries, encoded (ENTRY bytes each). */
export interface IndexedPack {
  ref: PackRef;
  blobs: Buffer;
}

/** The index form of a pack whose entries are objects (a pack just built). */
export function indexedPack(ref: PackRef, entries: readonly BlobEntry[]): IndexedPack {
  return { ref, blobs: encodeEntries(entries) };
}

/** Chunk ids (hex) of a pack's blobs. */
export function packChunkIds(pack: IndexedPack): string[] {
  const ids: string[] = [];
  for (let o = 0; o < pack.blobs.length; o += ENTRY) ids.push(pack.blobs.toString('hex', o, o + 32));
  return ids;
}

export class ChunkIndex {
  private table = Buffer.alloc(INITIAL_SLOTS * SLOT);
  private used = 0;
  /** Packs by number (number 0 is never used: it marks an empty slot); undefined once dropped. */
  private readonly byNumber: Array<PackRef | undefined> = [undefined];
  private readonly numbers = new Map<string, number>();
  readonly packs = new Map<string, PackRef>();
  /** Index objects already merged in, with the packs each describes. */
  readonly loaded = new Map<string, IndexedPack[]>();

  get size(): number {
    return this.used;
  }

  private get slots(): number {
    return this.table.length / SLOT;
  }

  /** The slot holding `id` (found) or the empty slot where it would go. */
  private find(id: Buffer, idOffset = 0): { slot: number; found: boolean } {
    const mask = this.slots - 1;
    let slot = id.readUInt32LE(idOffset) & mask;
    for (;;) {
      const at = slot * SLOT;
      if (this.table.readUInt32LE(at + 32) === 0) return { slot, found: false };
      if (this.table.compare(id, idOffset, idOffset + 32, at, at + 32) === 0) return { slot, found: true };
      slot = (slot + 1) & mask;
    }
  }

  has(id: Buffer): boolean {
    return this.find(id).found;
  }

  get(id: Buffer): ChunkLocation | undefined {
    const { slot, found } = this.find(id);
    if (!found) return undefined;
    const at = slot * SLOT;
    const pack = this.byNumber[this.table.readUInt32LE(at + 32)];
    if (pack === undefined) return undefined;
    return {
      pack,
      offset: this.table.readUInt32LE(at + 36),
      length: this.table.readUInt32LE(at + 40),
      nonce: this.table.readUInt32LE(at + 44),
    };
  }

  /** Adds a pack's chunks; a chunk already indexed elsewhere keeps its location unless `prefer` is set. */
  add(pack: IndexedPack, prefer = false): void {
    if (pack.blobs.length % ENTRY !== 0) throw new FerryError('INTERNAL', `pack ${pack.ref.id} has a bad blob list`);
    let number = this.numbers.get(pack.ref.id);
    if (number === undefined) {
      number = this.byNumber.length;
      this.byNumber.push(pack.ref);
      this.numbers.set(pack.ref.id, number);
    }
    this.packs.set(pack.ref.id, pack.ref);
    for (let o = 0; o < pack.blobs.length; o += ENTRY) this.put(pack.blobs, o, number, prefer);
  }

  private put(blobs: Buffer, o: number, number: number, prefer: boolean): void {
    if ((this.used + 1) / this.slots > MAX_LOAD) this.grow();
    const { slot, found } = this.find(blobs, o);
    if (found && !prefer) return;
    const at = slot * SLOT;
    blobs.copy(this.table, at, o, o + 32);
    this.table.writeUInt32LE(number, at + 32);
    blobs.copy(this.table, at + 36, o + 32, o + ENTRY);
    if (!found) this.used++;
  }

  /** Rehashes every live slot into a table of `slots` slots, leaving out packs no longer known. */
  private rebuild(slots: number): void {
    const old = this.table;
    this.table = Buffer.alloc(slots * SLOT);
    this.used = 0;
    for (let at = 0; at < old.length; at += SLOT) {
      const number = old.readUInt32LE(at + 32);
      if (number === 0 || this.byNumber[number] === undefined) continue;
      const { slot } = this.find(old, at);
      old.copy(this.table, slot * SLOT, at, at + SLOT);
      this.used++;
    }
  }

  private grow(): void {
    this.rebuild(this.slots * 2);
  }

  /** Forgets packs (garbage collection or condemned packs): their chunks count as absent. */
  dropPacks(ids: ReadonlySet<string>): void {
    let dropped = false;
    for (const id of ids) {
      const number = this.numbers.get(id);
      if (number !== undefined) {
        this.byNumber[number] = undefined;
        this.numbers.delete(id);
        dropped = true;
      }
      this.packs.delete(id);
    }
    if (dropped) this.rebuild(this.slots);
  }
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of packs) {
    const head = Buffer.alloc(68);
    Buffer.from(p.ref.id, 'hex').copy(head, 0);
    p.ref.salt.copy(head, 32);
    head.writeUInt32LE(p.blobs.length / ENTRY, 64);
    parts.push(head, p.blobs);
  }
  return Buffer.concat(parts);
}

export function decodeIndex(b: Buffer, what: string): IndexedPack[] {
  const out: IndexedPack[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 68 > b.length) throw new FerryError('DATA_CORRUPTION', `${what} is truncated`);
    const ref = { id: b.subarray(o, o + 32).toString('hex'), salt: Buffer.from(b.subarray(o + 32, o + 64)) };
    const n = b.readUInt32LE(o + 64);
    o += 68;
    if (o + n * ENTRY > b.length) throw new FerryError('DATA_CORRUPTION', `${what} is truncated`);
    out.push({ ref, blobs: b.subarray(o, o + n * ENTRY) });
    o += n * ENTRY;
  }
  return out;
}

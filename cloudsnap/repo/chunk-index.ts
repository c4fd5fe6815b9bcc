/**
 * Where every chunk of a repository lives. Index objects (`index/<id>`, sealed) each describe some packs:
 *   per pack: pack id (32) | salt (32) | blob count u32 LE | blob entries (pack.ts)
 * A backup writes one every few packs, so a crash loses track of at most those packs.
 */
import { FerryError } from '../../common/errors.js';
import { type BlobEntry, decodeEntries, encodeEntries, type PackRef } from './pack.js';

const ENTRY = 44;

export interface ChunkLocation {
  pack: PackRef;
  offset: number;
  length: number;
  nonce: number;
}

export interface IndexedPack {
  ref: PackRef;
  entries: readonly BlobEntry[];
}

export class ChunkIndex {
  private readonly chunks = new Map<string, ChunkLocation>();
  readonly packs = new Map<string, PackRef>();
  /** Index objects already merged in, with the packs each describes. */
  readonly loaded = new Map<string, IndexedPack[]>();

  get size(): number {
    return this.chunks.size;
  }

  has(id: Buffer): boolean {
    return this.chunks.has(id.toString('hex'));
  }

  get(id: Buffer): ChunkLocation | undefined {
    return this.chunks.get(id.toString('hex'));
  }

  /** Adds a pack's chunks; a chunk already indexed elsewhere keeps its location unless `prefer` is set. */
  add(pack: IndexedPack, prefer = false): void {
    this.packs.set(pack.ref.id, pack.ref);
    for (const e of pack.entries) {
      const k = e.id.toString('hex');
      if (prefer || !this.chunks.has(k)) {
        this.chunks.set(k, { pack: pack.ref, offset: e.offset, length: e.length, nonce: e.nonce });
      }
    }
  }

  /** Forgets packs (garbage collection or condemned packs): their chunks count as absent. */
  dropPacks(ids: ReadonlySet<string>): void {
    for (const [k, loc] of this.chunks) if (ids.has(loc.pack.id)) this.chunks.delete(k);
    for (const id of ids) this.packs.delete(id);
  }

  *entries(): Generator<[string, ChunkLocation]> {
    yield* this.chunks;
  }
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of packs) {
    const head = Buffer.alloc(68);
    Buffer.from(p.ref.id, 'hex').copy(head, 0);
    p.ref.salt.copy(head, 32);
    head.writeUInt32LE(p.entries.length, 64);
    parts.push(head, encodeEntries(p.entries));
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
    out.push({ ref, entries: decodeEntries(b.subarray(o, o + n * ENTRY), what) });
    o += n * ENTRY;
  }
  return out;
}

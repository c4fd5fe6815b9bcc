import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChunkIndex, decodeIndex, encodeIndex, type IndexedPack, indexedPack } from './chunk-index.js';
import type { BlobEntry } from './pack.js';

function pack(count: number, ids: Buffer[] = []): { p: IndexedPack; entries: BlobEntry[] } {
  const entries: BlobEntry[] = [];
  for (let i = 0; i < count; i++) {
    entries.push({ id: ids[i] ?? randomBytes(32), offset: 40 + i * 1000, length: 900 + i, nonce: i + 1 });
  }
  return { p: indexedPack({ id: randomBytes(32).toString('hex'), salt: randomBytes(32) }, entries), entries };
}

describe('ChunkIndex', () => {
  it('finds every chunk of many packs', () => {
    const index = new ChunkIndex();
    const packs = Array.from({ length: 50 }, () => pack(1000));
    for (const { p } of packs) index.add(p);
    expect(index.size).toBe(50_000);
    for (const { p, entries } of packs) {
      for (const e of entries) {
        expect(index.get(e.id)).toEqual({ pack: p.ref, offset: e.offset, length: e.length, nonce: e.nonce });
      }
    }
    expect(index.get(randomBytes(32))).toBeUndefined();
    expect(index.has(randomBytes(32))).toBe(false);
  });

  it('finds chunks of more packs than it caches references of, in any order', () => {
    const index = new ChunkIndex();
    const packs = Array.from({ length: 200 }, () => pack(4));
    for (const { p } of packs) index.add(p);
    // Packs k and k + 64 (and k + 128...) share a slot of the reference cache: alternate between them.
    for (let round = 0; round < 2; round++) {
      for (let k = 0; k < 64; k++) {
        for (let j = k; j < packs.length; j += 64) {
          const { p, entries } = packs[j] as { p: IndexedPack; entries: BlobEntry[] };
          for (const e of entries) expect(index.get(e.id)?.pack).toEqual(p.ref);
        }
      }
    }
    const dropped = packs[70] as { p: IndexedPack; entries: BlobEntry[] };
    index.dropPacks(new Set([dropped.p.ref.id]));
    for (const e of dropped.entries) expect(index.get(e.id)).toBeUndefined();
    const kept = packs[6] as { p: IndexedPack; entries: BlobEntry[] };
    for (const e of kept.entries) expect(index.get(e.id)?.pack).toEqual(kept.p.ref);
  });

  it('keeps the first location of a chunk unless the new one is preferred', () => {
    const index = new ChunkIndex();
    const shared = randomBytes(32);
    const a = pack(3, [shared]);
    const b = pack(2, [shared]);
    const c = pack(1, [shared]);
    index.add(a.p);
    index.add(b.p);
    expect(index.get(shared)?.pack.id).toBe(a.p.ref.id);
    index.add(c.p, true);
    expect(index.get(shared)?.pack.id).toBe(c.p.ref.id);
    expect(index.size).toBe(4);
  });

  it('forgets dropped packs and keeps the rest', () => {
    const index = new ChunkIndex();
    const a = pack(2000);
    const b = pack(2000);
    index.add(a.p);
    index.add(b.p);
    index.dropPacks(new Set([a.p.ref.id]));
    expect(index.size).toBe(2000);
    expect(index.hasPack(a.p.ref.id)).toBe(false);
    expect(index.hasPack(b.p.ref.id)).toBe(true);
    for (const e of a.entries) expect(index.get(e.id)).toBeUndefined();
    for (const e of b.entries) expect(index.get(e.id)?.offset).toBe(e.offset);
  });

  it("gives back a pack's blob entries from its on-disk copy until the pack is dropped", () => {
    const index = new ChunkIndex();
    const a = pack(300);
    const b = pack(5);
    index.add(a.p);
    index.add(b.p);
    expect(index.pack(a.p.ref.id)?.blobs.equals(a.p.blobs)).toBe(true);
    expect(index.pack(b.p.ref.id)?.ref).toEqual(b.p.ref);
    index.dropPacks(new Set([a.p.ref.id]));
    expect(index.pack(a.p.ref.id)).toBeUndefined();
    expect(index.pack(b.p.ref.id)?.blobs.equals(b.p.blobs)).toBe(true);
  });

  it('is empty after close and usable again', () => {
    const index = new ChunkIndex();
    const a = pack(10);
    index.add(a.p);
    index.loaded.set('index/x', [a.p.ref.id]);
    index.close();
    expect(index.size).toBe(0);
    expect(index.loaded.size).toBe(0);
    expect(index.get(a.entries[0]?.id as Buffer)).toBeUndefined();
    index.add(a.p);
    expect(index.get(a.entries[3]?.id as Buffer)?.offset).toBe(a.entries[3]?.offset);
    index.close();
  });

  it('finds the right pack for chunks of more packs than it keeps references of in memory', () => {
    const index = new ChunkIndex();
    const packs = Array.from({ length: 600 }, () => pack(3));
    for (const { p } of packs) index.add(p);
    // Back and forth over all of them, so references leave the cache and come back from disk.
    for (const k of [0, 599, 1, 300, 598, 0, 257, 2]) {
      const { p, entries } = packs[k] as { p: IndexedPack; entries: BlobEntry[] };
      expect(index.get(entries[2]?.id as Buffer)).toEqual({
        pack: p.ref,
        offset: entries[2]?.offset,
        length: entries[2]?.length,
        nonce: entries[2]?.nonce,
      });
    }
    index.dropPacks(new Set([(packs[0] as { p: IndexedPack }).p.ref.id]));
    expect(index.get((packs[0] as { entries: BlobEntry[] }).entries[0]?.id as Buffer)).toBeUndefined();
    index.close();
  });

  it('records which index objects are merged in, with their packs in order, on disk', () => {
    const index = new ChunkIndex();
    const [a, b, c] = [pack(1).p.ref.id, pack(1).p.ref.id, pack(1).p.ref.id];
    index.loaded.set('index/2', [c, a]);
    index.loaded.set('index/1', [b]);
    expect(index.loaded.size).toBe(2);
    expect(index.loaded.has('index/1')).toBe(true);
    expect(index.loaded.has('index/3')).toBe(false);
    expect(index.loaded.entries()).toEqual([
      ['index/1', [b]],
      ['index/2', [c, a]],
    ]);
    index.loaded.set('index/2', [a]);
    expect(index.loaded.values()).toEqual([[b], [a]]);
    expect(index.loaded.delete('index/1')).toBe(true);
    expect(index.loaded.delete('index/1')).toBe(false);
    expect(index.loaded.entries()).toEqual([['index/2', [a]]]);
    // One that describes no pack still counts as merged in.
    index.loaded.set('index/0', []);
    expect(index.loaded.has('index/0')).toBe(true);
    expect(index.loaded.entries()).toEqual([
      ['index/0', []],
      ['index/2', [a]],
    ]);
    index.close();
  });

  it('round-trips packs through an index object', () => {
    const packs = [pack(3).p, pack(0).p, pack(5).p];
    const decoded = decodeIndex(encodeIndex(packs), 'index object x');
    expect(decoded.map((p) => p.ref.id)).toEqual(packs.map((p) => p.ref.id));
    expect(decoded.map((p) => p.blobs)).toEqual(packs.map((p) => p.blobs));
    expect(() => decodeIndex(encodeIndex(packs).subarray(0, 100), 'index object x')).toThrow(/truncated/);
  });
});

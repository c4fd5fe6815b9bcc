import { createHmac } from 'node:crypto';
import { expect, it } from 'vitest';
import type { Leaf } from '../repo/manifest.js';
import type { HashedBatch } from '../workers/pool.js';
import { type ChunkStats, dedupBatch, type KnownChunks } from './dedup.js';
import type { Batch } from './diff.js';

const C = 4096;

/** A hashed batch of the given chunks (undefined: a zero chunk), shaped as a worker returns it. */
function hashedOf(chunks: Array<string | undefined>, length: number): HashedBatch {
  const ids = Buffer.alloc(chunks.length * 32);
  const zero = new Uint8Array(chunks.length);
  chunks.forEach((c, i) => {
    if (c === undefined) zero[i] = 1;
    else
      createHmac('sha256', 'k')
        .update(c)
        .digest()
        .copy(ids, i * 32);
  });
  return { batch: 0, shared: new SharedArrayBuffer(0), length, chunkSize: C, zero, ids };
}

function idOf(c: string): Buffer {
  return createHmac('sha256', 'k').update(c).digest();
}

function stats(): ChunkStats {
  return { bytes_scanned: 0, bytes_new: 0, chunks: 0, chunks_new: 0, chunks_zero: 0 };
}

it('places every chunk in the leaf, clears zero chunks, and keeps only new ones, once each', () => {
  // Chunks 8..11 of the volume, then 14..15 (the last one short): two pieces of one leaf of 16 chunks.
  const batch: Batch = {
    leaf: 0,
    pieces: [
      { c: 8, from: 8 * C, to: 12 * C },
      { c: 14, from: 14 * C, to: 15 * C + 100 },
    ],
    length: 5 * C + 100,
  };
  const hashed = hashedOf(['a', undefined, 'stored', 'a', 'pack', 'b'], batch.length);
  const leaf: Leaf = new Map([[9, Buffer.alloc(32, 1)]]);
  const known: KnownChunks = {
    stored: (id) => id.equals(idOf('stored')),
    has: (id) => id.equals(idOf('pack')),
  };
  const compressing = new Set<string>([idOf('b').toString('hex')]);
  const s = stats();
  const { fresh, freshIds } = dedupBatch(batch, hashed, leaf, known, compressing, s, { chunkSize: C, leafChunks: 16 });
  expect(fresh).toEqual([0]);
  expect(freshIds.map((id) => id.toString('hex'))).toEqual([idOf('a').toString('hex')]);
  expect(compressing.has(idOf('a').toString('hex'))).toBe(true);
  expect([...leaf.keys()].sort((x, y) => x - y)).toEqual([8, 10, 11, 14, 15]);
  expect(leaf.get(11)?.equals(idOf('a'))).toBe(true);
  expect(leaf.has(9)).toBe(false);
  expect(s).toEqual({ bytes_scanned: 5 * C + 100, bytes_new: 0, chunks: 6, chunks_new: 0, chunks_zero: 1 });
});

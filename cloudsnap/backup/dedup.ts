/**
 * Stage "dedup": for each chunk of a hashed batch, its place in the manifest leaf (or none: zero chunks are holes),
 * and whether it is new: not in the repository (a pack a backup may reuse), not in the pack being built, not being
 * compressed for an earlier batch. Only new chunks go on to compression.
 */

import type { Leaf } from '../repo/manifest.js';
import type { HashedBatch } from '../workers/pool.js';
import type { Batch } from './diff.js';

/** Counts of a backup's chunks (the backup record's stats). */
export interface ChunkStats {
  bytes_scanned: number;
  bytes_new: number;
  chunks: number;
  chunks_new: number;
  chunks_zero: number;
}

/** Where chunks already are: the repository and the pack being built (the pack writer). */
export interface KnownChunks {
  stored(chunkId: Buffer): boolean;
  has(chunkId: Buffer): boolean;
}

/** A batch's new chunks: their indexes in the batch and their ids. */
export interface Fresh {
  fresh: number[];
  freshIds: Buffer[];
}

export interface DedupShape {
  chunkSize: number;
  leafChunks: number;
}

/**
 * Decides a batch (see the file comment): sets or clears its chunks in `leaf`, counts them in `stats`, and adds the
 * new ones' ids to `compressing` (the caller removes each once it is in a pack).
 */
export function dedupBatch(
  batch: Batch,
  hashed: HashedBatch,
  leaf: Leaf,
  known: KnownChunks,
  compressing: Set<string>,
  stats: ChunkStats,
  shape: DedupShape,
): Fresh {
  const { chunkSize: C, leafChunks: L } = shape;
  const length = batch.length;
  const fresh: number[] = [];
  const freshIds: Buffer[] = [];
  // Chunk i of the batch's buffer is chunk c of the volume, piece after piece.
  let i = 0;
  for (const piece of batch.pieces) {
    for (let c = piece.c; c * C < piece.to; c++, i++) {
      const pos = c % L;
      stats.chunks++;
      stats.bytes_scanned += Math.min(C, length - i * C);
      if (hashed.zero[i] === 1) {
        leaf.delete(pos);
        stats.chunks_zero++;
        continue;
      }
      const chunkId = Buffer.from(hashed.ids.subarray(i * 32, i * 32 + 32));
      leaf.set(pos, chunkId);
      const hex = chunkId.toString('hex');
      if (known.stored(chunkId) || known.has(chunkId) || compressing.has(hex)) continue;
      compressing.add(hex);
      fresh.push(i);
      freshIds.push(chunkId);
    }
  }
  return { fresh, freshIds };
}

/**
 * Stage "compress": a batch's new chunks compressed (zstd, where it helps) by the chunk workers, split over all of
 * them, while the next batches are hashed and decided. What comes out is sealed into packs strictly in order
 * (`InOrder`), a bounded number of batches behind.
 */
import type { ChunkWorkers, CompressedBatch, HashedBatch } from '../workers/pool.js';

/** Batches being compressed while later ones are decided. */
export const COMPRESS_AHEAD = 3;

/** Starts compressing chunks `fresh` of a hashed batch (its shared buffer is released by the result's `release`). */
export function compressFresh(workers: ChunkWorkers, hashed: HashedBatch, fresh: number[]): Promise<CompressedBatch> {
  const bodies = workers.compress(hashed, fresh);
  bodies.catch(() => undefined);
  return bodies;
}

/**
 * Steps run one after the other in the order they are pushed; `push` waits once more than `ahead` are unfinished.
 * The first failure is kept (`failure`) and every later step is skipped.
 */
export class InOrder {
  failure: unknown;
  private tail: Promise<void> = Promise.resolve();
  private readonly window: Promise<void>[] = [];

  constructor(private readonly ahead = COMPRESS_AHEAD) {}

  async push(step: () => Promise<void>): Promise<void> {
    this.tail = this.tail.then(step);
    this.tail.catch((err: unknown) => {
      this.failure ??= err;
    });
    this.window.push(this.tail);
    if (this.window.length > this.ahead) await this.window.shift();
  }

  /** Every step pushed, done (rejects with the first failure). */
  done(): Promise<void> {
    return this.tail;
  }

  /** Every step pushed, settled, failed or not. */
  settled(): Promise<void> {
    return this.tail.catch(() => undefined);
  }
}

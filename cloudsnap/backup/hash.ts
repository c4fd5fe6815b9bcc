/**
 * Stage "hash": batches read (read.ts) and hashed by the chunk workers (zero flags and keyed chunk ids) ahead of the
 * one being decided, a bounded number at a time, pulled from the diff as the backup goes.
 */
import type { BlockDevice } from '../../node/index.js';
import type { ChunkWorkers, HashedBatch } from '../workers/pool.js';
import type { Batch } from './diff.js';
import { readPieces } from './read.js';

/** Batches read and hashed ahead of the one being packed. */
export const LOOKAHEAD = 4;

/** A batch and its hashes; its data waits in a worker's shared buffer for compression (or release). */
export interface Hashed {
  batch: Batch;
  hashed: HashedBatch;
}

export class HashAhead {
  private readonly ahead: Array<Promise<Hashed>> = [];
  private exhausted = false;

  constructor(
    private readonly workers: ChunkWorkers,
    private readonly idKey: Buffer,
    private readonly chunkSize: number,
    private readonly source: BlockDevice,
    private readonly batches: AsyncIterator<Batch>,
    private readonly lookahead = LOOKAHEAD,
  ) {}

  /** Whether a batch is read or being read. */
  get pending(): boolean {
    return this.ahead.length > 0;
  }

  /** Starts reads until `lookahead` batches are in flight or the diff is done. */
  async fill(): Promise<void> {
    while (!this.exhausted && this.ahead.length < this.lookahead) {
      const next = await this.batches.next();
      if (next.done === true) this.exhausted = true;
      else this.launch(next.value);
    }
  }

  /** The oldest batch, hashed; later ones are started to keep the window full. Call only while `pending`. */
  async next(): Promise<Hashed> {
    const got = await (this.ahead.shift() as Promise<Hashed>);
    await this.fill();
    return got;
  }

  /** After a failure: batches read ahead are still held by the workers, and are released. */
  async release(): Promise<void> {
    for (const p of this.ahead.splice(0)) {
      await p.then(({ hashed }) => this.workers.compress(hashed, [])).catch(() => undefined);
    }
  }

  private launch(batch: Batch): void {
    const p = (async () => {
      // The snapshot is read straight into the shared buffer the batch is hashed and compressed from.
      const hashed = await this.workers.readAndHash(this.idKey, batch.length, this.chunkSize, (into) =>
        readPieces(this.source, batch.pieces, into),
      );
      return { batch, hashed };
    })();
    p.catch(() => undefined);
    this.ahead.push(p);
  }
}

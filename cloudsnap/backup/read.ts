/** Stage "read": a batch's pieces of the snapshot read straight into the buffer the batch is hashed from. */
import type { BlockDevice } from '../../node/index.js';
import type { Piece } from './diff.js';

/**
 * Reads a batch's pieces back to back into `into`, all at once. Every read has ended when this settles, failed or not:
 * the buffer goes back to the pool on failure, and no read may still be writing into it then.
 */
export async function readPieces(source: BlockDevice, pieces: readonly Piece[], into: Buffer): Promise<void> {
  const reads: Promise<void>[] = [];
  let at = 0;
  for (const piece of pieces) {
    const length = piece.to - piece.from;
    reads.push(readInto(source, piece.from, into.subarray(at, at + length)));
    at += length;
  }
  for (const r of await Promise.allSettled(reads)) if (r.status === 'rejected') throw r.reason;
}

async function readInto(source: BlockDevice, from: number, into: Buffer): Promise<void> {
  const got = await source.read(from, into.length, into);
  // `into` is optional for a BlockDevice: one that returns the bytes elsewhere has them copied in.
  if (got.buffer !== into.buffer || got.byteOffset !== into.byteOffset) got.copy(into, 0, 0, into.length);
}

/**
 * What a backup reads, as streams: the chunk runs the changed-block diff covers and the read batches they make,
 * pulled page by page from the engine as the backup goes. Nothing here holds a list as long as the volume, so a
 * backup's memory does not grow with the size of what it reads (a 1 TiB volume's batches alone were tens of MiB).
 */
import type { SnapshotSource } from '../ports.js';

/**
 * Extents asked of the engine per page of the diff. A page is held while its chunk runs are read: pages of 10,000
 * extents held a 16 GiB volume's whole diff at once (3,900 extents in the bench, 0.5 MiB of objects), ten times a
 * 1 GiB volume's.
 */
const PAGE_EXTENTS = 256;

/** Where a backup's diff comes from: a volume, its new snapshot, and the last backup's snapshot if any. */
export interface DiffSource {
  engine: Pick<SnapshotSource, 'changedBlocks'>;
  volumeId: string;
  baseSnapshotId: string | undefined;
  targetSnapshotId: string;
}

/** Chunk-aligned runs [start, end) of chunk numbers covering the diff's extents, in order, touching runs merged. */
export async function* chunkRuns(source: DiffSource, chunkSize: number): AsyncGenerator<[number, number]> {
  let offset: number | undefined = 0;
  let pending: [number, number] | undefined;
  while (offset !== undefined) {
    const page = await source.engine.changedBlocks(source.volumeId, {
      base_snapshot_id: source.baseSnapshotId,
      target_snapshot_id: source.targetSnapshotId,
      offset,
      limit: PAGE_EXTENTS,
    });
    for (const e of page.extents) {
      const s = Math.floor(e.offset / chunkSize);
      const t = Math.ceil((e.offset + e.length) / chunkSize);
      if (pending !== undefined && s <= pending[1]) {
        pending[1] = Math.max(pending[1], t);
        continue;
      }
      if (pending !== undefined) yield pending;
      pending = [s, t];
    }
    offset = page.next_offset;
  }
  if (pending !== undefined) yield pending;
}

/** Chunks [c, ...) of one run that a batch reads: bytes [from, to) of the volume, whole chunks but the volume's last. */
export interface Piece {
  c: number;
  from: number;
  to: number;
}

/**
 * One read buffer's worth of chunks of one leaf: the pieces of the diff it covers, read back to back into the buffer,
 * so a diff of scattered small changes makes a few batches (one hash and one compression request each), not one per
 * changed chunk. Only the batch's last chunk may be short (the volume's end).
 */
export interface Batch {
  leaf: number;
  pieces: Piece[];
  /** Bytes of all the pieces. */
  length: number;
}

/** The shape of a backup's reads: chunk and leaf sizes, the size of a read, the volume's size. */
export interface BatchShape {
  chunkSize: number;
  leafChunks: number;
  readSize: number;
  size: number;
}

/** The batches that cover `runs`, in order: at most `readSize` (but at least one chunk) each, never across a leaf. */
export async function* batchesOf(runs: AsyncIterable<[number, number]>, shape: BatchShape): AsyncGenerator<Batch> {
  const { chunkSize: C, leafChunks: L, size } = shape;
  const perRead = Math.max(1, Math.floor(shape.readSize / C));
  let open: Batch | undefined;
  let chunks = 0;
  for await (const [s, t] of runs) {
    for (let c = s; c < t && c * C < size; ) {
      const leaf = Math.floor(c / L);
      if (open !== undefined && (open.leaf !== leaf || chunks === perRead)) {
        yield open;
        open = undefined;
      }
      if (open === undefined) {
        open = { leaf, pieces: [], length: 0 };
        chunks = 0;
      }
      const n = Math.min(t - c, perRead - chunks, L - (c % L));
      const piece = { c, from: c * C, to: Math.min((c + n) * C, size) };
      open.pieces.push(piece);
      open.length += piece.to - piece.from;
      chunks += n;
      c += n;
    }
  }
  if (open !== undefined) yield open;
}

/**
 * A first pass over the diff: the bytes it covers (the backup's progress total) and the leaves it touches in order
 * (whose base pages are fetched ahead). Leaves are one per leafChunks chunks, a few thousand for a 1 TiB volume.
 */
export async function surveyDiff(
  source: DiffSource,
  shape: Pick<BatchShape, 'chunkSize' | 'leafChunks' | 'size'>,
): Promise<{ bytes: number; leaves: number[] }> {
  const { chunkSize: C, leafChunks: L, size } = shape;
  let bytes = 0;
  const leaves: number[] = [];
  for await (const [s, t] of chunkRuns(source, C)) {
    bytes += Math.max(0, Math.min(t * C, size) - s * C);
    for (let n = Math.floor(s / L); n <= Math.floor((t - 1) / L); n++) {
      if (leaves[leaves.length - 1] !== n) leaves.push(n);
    }
  }
  return { bytes, leaves };
}

import { expect, it } from 'vitest';
import type { ChangedBlocksPage, ChangedBlocksRequest, Extent, VolumeEngine } from '../../node/index.js';
import { type Batch, batchesOf, chunkRuns, type DiffSource, surveyDiff } from './diff.js';

/** An engine whose diff is `extents`, served two extents a page (as a long diff is served 10,000 a page). */
function diffOf(extents: Extent[], size: number): DiffSource & { calls: number } {
  const source = {
    calls: 0,
    volumeId: 'v',
    baseSnapshotId: undefined,
    targetSnapshotId: 's',
    engine: {
      changedBlocks: async (_id: string, req: ChangedBlocksRequest): Promise<ChangedBlocksPage> => {
        source.calls++;
        const from = extents.findIndex((e) => e.offset >= (req.offset ?? 0));
        const page = from < 0 ? [] : extents.slice(from, from + 2);
        const rest = from < 0 ? undefined : extents[from + 2];
        return { extents: page, block_size: 4096, next_offset: rest?.offset, size };
      },
    } as unknown as VolumeEngine,
  };
  return source;
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const KiB = 1024;
const extents: Extent[] = [
  { offset: 0, length: 4 * KiB },
  { offset: 60 * KiB, length: 8 * KiB }, // touches chunk 0's end and chunk 1: merges with the first
  { offset: 256 * KiB, length: 64 * KiB },
  { offset: 320 * KiB, length: 1 }, // next page, runs on from the previous run
  { offset: 1024 * KiB, length: 700 * KiB },
];

it('streams chunk-aligned runs, merging those that touch, across pages of the diff', async () => {
  const source = diffOf(extents, 4096 * KiB);
  expect(await all(chunkRuns(source, 64 * KiB))).toEqual([
    [0, 2],
    [4, 6],
    [16, 27],
  ]);
  expect(source.calls).toBe(3);
});

/** A batch as [leaf, length KiB, ...pieces as [chunk, from KiB, to KiB]]. */
const shown = (b: Batch): unknown[] => [
  b.leaf,
  b.length / KiB,
  ...b.pieces.map((p) => [p.c, p.from / KiB, p.to / KiB]),
];

it('gathers runs into batches of at most readSize that never cross a leaf or the end of the volume', async () => {
  const shape = { chunkSize: 64 * KiB, leafChunks: 8, readSize: 256 * KiB, size: 1500 * KiB };
  const batches = await all(batchesOf(chunkRuns(diffOf(extents, shape.size), shape.chunkSize), shape));
  expect(batches.map(shown)).toEqual([
    [0, 256, [0, 0, 128], [4, 256, 384]], // two runs of leaf 0, read back to back into one buffer
    [2, 256, [16, 1024, 1280]],
    [2, 220, [20, 1280, 1500]], // leaf 2 ends at chunk 24, the volume at 1500 KiB
  ]);
  const survey = await surveyDiff(diffOf(extents, shape.size), shape);
  expect(survey.bytes).toBe((128 + 128 + 476) * KiB);
  expect(survey.leaves).toEqual([0, 2, 3]);
});

it('makes one batch of scattered single chunks of a leaf, and starts another at the next leaf or a full buffer', async () => {
  // Chunks 1, 3, 5, 6 and 7 of leaf 0 (eight chunks a leaf), then chunk 9 of leaf 1.
  const scattered: Extent[] = [1, 3, 5, 6, 7, 9].map((c) => ({ offset: c * 64 * KiB + 4 * KiB, length: 4 * KiB }));
  const shape = { chunkSize: 64 * KiB, leafChunks: 8, readSize: 192 * KiB, size: 1024 * KiB };
  const batches = await all(batchesOf(chunkRuns(diffOf(scattered, shape.size), shape.chunkSize), shape));
  expect(batches.map(shown)).toEqual([
    [0, 192, [1, 64, 128], [3, 192, 256], [5, 320, 384]], // three chunks fill the 192 KiB buffer
    [0, 128, [6, 384, 512]], // chunks 6 and 7: one run, in a buffer of its own
    [1, 64, [9, 576, 640]],
  ]);
});

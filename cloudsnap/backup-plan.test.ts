import { expect, it } from 'vitest';
import type { ChangedBlocksPage, ChangedBlocksRequest, Extent, VolumeEngine } from '../node/index.js';
import { batchesOf, chunkRuns, type DiffSource, surveyDiff } from './backup-plan.js';

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

it('cuts runs into reads of at most readSize that never cross a leaf or the end of the volume', async () => {
  const shape = { chunkSize: 64 * KiB, leafChunks: 8, readSize: 256 * KiB, size: 1500 * KiB };
  const batches = await all(batchesOf(chunkRuns(diffOf(extents, shape.size), shape.chunkSize), shape));
  expect(batches.map((b) => [b.c, b.from / KiB, b.to / KiB])).toEqual([
    [0, 0, 128],
    [4, 256, 384],
    [16, 1024, 1280],
    [20, 1280, 1500], // leaf 2 ends at chunk 24, the volume at 1500 KiB
  ]);
  const survey = await surveyDiff(diffOf(extents, shape.size), shape);
  expect(survey.bytes).toBe((128 + 128 + 476) * KiB);
  expect(survey.leaves).toEqual([0, 2, 3]);
});

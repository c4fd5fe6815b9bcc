import { expect, it } from 'vitest';
import { JobMemory } from '../workers/memory-policy.js';
import type { CompressedBatch } from '../workers/pool.js';
import type { ChunkStats } from './dedup.js';
import { type ChunkSink, sealBatch } from './seal.js';

const C = 4096;
const memory = new JobMemory({ collectEvery: Number.POSITIVE_INFINITY }, { collect: () => undefined });

function batchOf(bodies: Buffer[]): { batch: CompressedBatch; released: () => boolean } {
  let released = false;
  return {
    batch: {
      bodies,
      release: () => {
        released = true;
      },
    },
    released: () => released,
  };
}

function stats(): ChunkStats {
  return { bytes_scanned: 0, bytes_new: 0, chunks: 0, chunks_new: 0, chunks_zero: 0 };
}

it('hands the bodies to the sink in order, counts them, takes them off `compressing` and releases the batch', async () => {
  const got: string[] = [];
  const sink: ChunkSink = {
    add: async (id, body) => {
      got.push(`${id.toString('hex')}:${body.toString()}`);
    },
  };
  const ids = [Buffer.from('aa', 'hex'), Buffer.from('bb', 'hex')];
  const compressing = new Set(ids.map((id) => id.toString('hex')));
  const { batch, released } = batchOf([Buffer.from('one'), Buffer.from('two')]);
  const s = stats();
  // Chunks 0 and 2 of a batch of 2 chunks and 100 bytes: the second is the short last one.
  await sealBatch(
    sink,
    Promise.resolve(batch),
    { fresh: [0, 2], freshIds: ids, length: 2 * C + 100, chunkSize: C },
    compressing,
    s,
    memory,
  );
  expect(got).toEqual(['aa:one', 'bb:two']);
  expect(compressing.size).toBe(0);
  expect(s.chunks_new).toBe(2);
  expect(s.bytes_new).toBe(C + 100);
  expect(released()).toBe(true);
});

it('releases the batch when the sink fails', async () => {
  const sink: ChunkSink = {
    add: async () => {
      throw new Error('upload failed');
    },
  };
  const { batch, released } = batchOf([Buffer.from('one')]);
  const input = { fresh: [0], freshIds: [Buffer.from('aa', 'hex')], length: C, chunkSize: C };
  await expect(sealBatch(sink, Promise.resolve(batch), input, new Set(), stats(), memory)).rejects.toThrow(
    'upload failed',
  );
  expect(released()).toBe(true);
});

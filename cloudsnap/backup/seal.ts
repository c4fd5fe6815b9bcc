/**
 * Stage "seal": a batch's compressed chunks, in order, into the pack writer, which seals each (AES-GCM under the
 * pack's key) in place in the pack being built and ships the pack once full (stage "pack", repo/pack-writer.ts).
 */
import type { JobMemory } from '../workers/memory-policy.js';
import type { CompressedBatch } from '../workers/pool.js';
import type { ChunkStats, Fresh } from './dedup.js';

/** Where sealed chunks go (the repository's pack writer). */
export interface ChunkSink {
  add(chunkId: Buffer, body: Buffer): Promise<void>;
}

export interface SealInput extends Fresh {
  /** The batch's length in bytes (its last chunk may be short). */
  length: number;
  chunkSize: number;
}

/**
 * Appends a batch's compressed chunks to `sink`, notes the bytes for the memory policy, and takes each off
 * `compressing`; the compressed bodies are released whatever happens.
 */
export async function sealBatch(
  sink: ChunkSink,
  bodies: Promise<CompressedBatch>,
  input: SealInput,
  compressing: Set<string>,
  stats: ChunkStats,
  memory: JobMemory,
): Promise<void> {
  const { fresh, freshIds, length, chunkSize: C } = input;
  const done = await bodies;
  try {
    for (let f = 0; f < fresh.length; f++) {
      const chunkId = freshIds[f] as Buffer;
      const body = done.bodies[f] as Buffer;
      await sink.add(chunkId, body);
      memory.processed(body.length);
      compressing.delete(chunkId.toString('hex'));
      stats.chunks_new++;
      stats.bytes_new += Math.min(C, length - (fresh[f] as number) * C);
    }
  } finally {
    done.release();
  }
}

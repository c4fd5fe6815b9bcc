/**
 * The chaos workload's self-describing 4 KiB values: each names its volume, block, writer, the writer's sequence
 * number and the node it was written through, fills the rest with bytes drawn from those, and ends in a SHA-256 of
 * everything before it. A block read back is either all zeros (never written), a value that decodes (and then says
 * which write it was), or garbage (a torn or foreign block: a value never written).
 */
import { createHash } from 'node:crypto';

export const BLOCK_SIZE = 4096;
const MAGIC = 'FERRYCHAOS-v1\0\0\0';
const HEADER = 16 + 64 + 4 * 4;
const SUM = 32;

/** What a value says about itself. */
export interface ValueId {
  volume: string;
  block: number;
  writer: number;
  seq: number;
  /** Index of the node the write went through. */
  via: number;
}

/** A 4 KiB value for `id`. */
export function encodeValue(id: ValueId): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.write(MAGIC, 0, 'latin1');
  const volume = Buffer.from(id.volume);
  if (volume.length > 64) throw new Error(`volume name ${id.volume} is too long for a chaos value`);
  volume.copy(b, 16);
  b.writeUInt32BE(id.block, 80);
  b.writeUInt32BE(id.writer, 84);
  b.writeUInt32BE(id.seq, 88);
  b.writeUInt32BE(id.via, 92);
  // Filler drawn from the id, so that two values differ everywhere.
  let x = (id.block * 2654435761) ^ (id.writer * 40503) ^ (id.seq * 2246822519);
  for (let i = HEADER; i < BLOCK_SIZE - SUM; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b.writeUInt32BE(x, i);
  }
  createHash('sha256')
    .update(b.subarray(0, BLOCK_SIZE - SUM))
    .digest()
    .copy(b, BLOCK_SIZE - SUM);
  return b;
}

/** A block read back: zeros, a value, or garbage (with why). */
export type Decoded = { kind: 'zero' } | { kind: 'value'; id: ValueId } | { kind: 'garbage'; why: string };

/** Decodes a 4 KiB block read back. */
export function decodeValue(b: Buffer): Decoded {
  if (b.length !== BLOCK_SIZE) return { kind: 'garbage', why: `length ${b.length}` };
  if (b.every((byte) => byte === 0)) return { kind: 'zero' };
  if (b.toString('latin1', 0, 16) !== MAGIC) return { kind: 'garbage', why: 'no chaos magic' };
  const sum = createHash('sha256')
    .update(b.subarray(0, BLOCK_SIZE - SUM))
    .digest();
  if (!sum.equals(b.subarray(BLOCK_SIZE - SUM))) return { kind: 'garbage', why: 'checksum mismatch (torn block)' };
  const nameEnd = b.indexOf(0, 16);
  const volume = b.toString('utf8', 16, nameEnd < 0 || nameEnd > 80 ? 80 : nameEnd);
  return {
    kind: 'value',
    id: {
      volume,
      block: b.readUInt32BE(80),
      writer: b.readUInt32BE(84),
      seq: b.readUInt32BE(88),
      via: b.readUInt32BE(92),
    },
  };
}

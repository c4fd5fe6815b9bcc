/**
 * The chaos checker's judgement on made-up evidence, so that a trial cannot pass because the checker sees nothing:
 * a clean history passes; a lost acknowledged write, a torn block, a value sent elsewhere and two reads that differ
 * are each caught; an unacknowledged write may or may not be there.
 */
import { describe, expect, it } from 'vitest';
import { judge } from './checker.js';
import { BLOCK_SIZE, decodeValue, encodeValue } from './value.js';
import type { WriteRecord } from './workload.js';

const volume = 'chaos-test';
const BLOCKS = 4;

function w(block: number, seq: number, acked: boolean): WriteRecord {
  return { writer: 1, seq, block, via: 0, invokedMs: seq, repliedMs: seq, ...(acked && { ackedMs: seq + 1 }) };
}

/** The volume as `values` say: block -> seq of writer 1 (absent: zeros). */
function image(values: Record<number, number>): Buffer {
  const b = Buffer.alloc(BLOCKS * BLOCK_SIZE);
  for (const [block, seq] of Object.entries(values)) {
    encodeValue({ volume, block: Number(block), writer: 1, seq, via: 0 }).copy(b, Number(block) * BLOCK_SIZE);
  }
  return b;
}

const writes = [w(0, 1, true), w(1, 2, true), w(0, 3, true), w(2, 4, false)];

describe('chaos checker', () => {
  it('values decode to what was written; zeros and garbage are told apart', () => {
    const v = encodeValue({ volume, block: 3, writer: 2, seq: 9, via: 1 });
    expect(decodeValue(v)).toEqual({ kind: 'value', id: { volume, block: 3, writer: 2, seq: 9, via: 1 } });
    expect(decodeValue(Buffer.alloc(BLOCK_SIZE))).toEqual({ kind: 'zero' });
    v[100] = (v[100] ?? 0) ^ 1;
    expect(decodeValue(v).kind).toBe('garbage');
  });

  it('passes a history whose last acknowledged writes are there, with or without the unacknowledged one', () => {
    for (const data of [image({ 0: 3, 1: 2 }), image({ 0: 3, 1: 2, 2: 4 })]) {
      expect(judge({ volume, writes, blocks: BLOCKS, reads: [{ via: 0, data }] })).toEqual([]);
    }
  });

  it('catches a lost acknowledged write (an older value, or zeros)', () => {
    for (const data of [image({ 0: 1, 1: 2 }), image({ 0: 3 })]) {
      const found = judge({ volume, writes, blocks: BLOCKS, reads: [{ via: 0, data }] });
      expect(found.map((v) => v.check)).toEqual(['lost-ack']);
    }
  });

  it('catches a torn block and a value never sent to its block', () => {
    const torn = image({ 0: 3, 1: 2 });
    torn[BLOCK_SIZE + 500] = 7;
    // One violation a block: the torn block also lost its acknowledged write, reported as the worse of the two.
    expect(judge({ volume, writes, blocks: BLOCKS, reads: [{ via: 0, data: torn }] }).map((v) => v.check)).toEqual([
      'never-written',
    ]);
    const misplaced = image({ 0: 3, 1: 2, 3: 4 });
    expect(judge({ volume, writes, blocks: BLOCKS, reads: [{ via: 0, data: misplaced }] }).map((v) => v.check)).toEqual(
      ['never-written'],
    );
  });

  it('catches two reads that differ, even where each alone is allowed', () => {
    const reads = [
      { via: 0, data: image({ 0: 3, 1: 2 }) },
      { via: 1, data: image({ 0: 3, 1: 2, 2: 4 }) },
    ];
    const found = judge({ volume, writes, blocks: BLOCKS, reads });
    expect(found.map((v) => v.check)).toEqual(['disagree']);
    expect(found[0]?.block).toBe(2);
  });
});

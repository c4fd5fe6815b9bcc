import { expect, it } from 'vitest';
import type { BlockDevice } from '../../node/index.js';
import { readPieces } from './read.js';

/** A device over `data` whose reads answer in a buffer of their own when `copy` (not in the caller's). */
function deviceOver(data: Buffer, options: { copy?: boolean; failAt?: number } = {}): BlockDevice & { ended: number } {
  const dev = {
    ended: 0,
    size: data.length,
    async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
      await new Promise((r) => setTimeout(r, offset === options.failAt ? 1 : 5));
      dev.ended++;
      if (offset === options.failAt) throw new Error(`read at ${offset} failed`);
      const bytes = data.subarray(offset, offset + length);
      if (options.copy === true || into === undefined) return Buffer.from(bytes);
      bytes.copy(into);
      return into.subarray(0, length);
    },
  };
  return dev as unknown as BlockDevice & { ended: number };
}

const data = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
const pieces = [
  { c: 0, from: 0, to: 8 },
  { c: 4, from: 32, to: 40 },
  { c: 6, from: 48, to: 64 },
];
const expected = Buffer.concat([data.subarray(0, 8), data.subarray(32, 40), data.subarray(48, 64)]);

it('reads the pieces back to back into the buffer', async () => {
  const into = Buffer.alloc(32);
  await readPieces(deviceOver(data), pieces, into);
  expect(into.equals(expected)).toBe(true);
});

it('copies in what a device returns in a buffer of its own', async () => {
  const into = Buffer.alloc(32);
  await readPieces(deviceOver(data, { copy: true }), pieces, into);
  expect(into.equals(expected)).toBe(true);
});

it('rejects only once every read has ended', async () => {
  const dev = deviceOver(data, { failAt: 0 });
  await expect(readPieces(dev, pieces, Buffer.alloc(32))).rejects.toThrow('read at 0 failed');
  expect(dev.ended).toBe(3);
});

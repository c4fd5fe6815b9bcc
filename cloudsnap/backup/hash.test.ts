import { createHmac } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import type { BlockDevice } from '../../node/index.js';
import { ChunkWorkers } from '../workers/pool.js';
import type { Batch } from './diff.js';
import { HashAhead } from './hash.js';

const C = 4096;
const KEY = Buffer.alloc(32, 9);
let pool: ChunkWorkers | undefined;

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

/** A device over `data` that counts the reads in flight at once. */
function deviceOver(data: Buffer): BlockDevice & { peak: number } {
  let inFlight = 0;
  const dev = {
    peak: 0,
    size: data.length,
    async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
      inFlight++;
      dev.peak = Math.max(dev.peak, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      const out = into ?? Buffer.alloc(length);
      data.copy(out, 0, offset, offset + length);
      return out.subarray(0, length);
    },
  };
  return dev as unknown as BlockDevice & { peak: number };
}

async function* batchesOver(n: number): AsyncGenerator<Batch> {
  for (let i = 0; i < n; i++)
    yield { leaf: 0, pieces: [{ c: i * 2, from: i * 2 * C, to: (i + 1) * 2 * C }], length: 2 * C };
}

it('reads and hashes batches in order, a bounded number ahead', async () => {
  pool = new ChunkWorkers(1);
  const data = Buffer.alloc(10 * 2 * C);
  for (let i = 0; i < data.length; i += C) data.fill(i / C + 1, i, i + C);
  data.fill(0, 3 * C, 4 * C);
  const dev = deviceOver(data);
  const ahead = new HashAhead(pool, KEY, C, dev, batchesOver(10), 3);
  await ahead.fill();
  const seen: number[] = [];
  while (ahead.pending) {
    const { batch, hashed } = await ahead.next();
    const c = (batch.pieces[0] as { c: number }).c;
    seen.push(c);
    for (let i = 0; i < 2; i++) {
      const chunk = data.subarray((c + i) * C, (c + i + 1) * C);
      const zero = chunk.every((b) => b === 0);
      expect(hashed.zero[i]).toBe(zero ? 1 : 0);
      if (!zero)
        expect(hashed.ids.subarray(i * 32, i * 32 + 32).equals(createHmac('sha256', KEY).update(chunk).digest())).toBe(
          true,
        );
    }
    (await pool.compress(hashed, [])).release();
  }
  expect(seen).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
  expect(dev.peak).toBeLessThanOrEqual(3);
});

it('gives back the batches read ahead when released', async () => {
  pool = new ChunkWorkers(1);
  const ahead = new HashAhead(pool, KEY, C, deviceOver(Buffer.alloc(8 * 2 * C, 1)), batchesOver(8), 4);
  await ahead.fill();
  expect(ahead.pending).toBe(true);
  await ahead.release();
  expect(ahead.pending).toBe(false);
});

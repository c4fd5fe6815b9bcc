import { afterEach, expect, it } from 'vitest';
import { ChunkWorkers } from '../workers/pool.js';
import { compressFresh, InOrder } from './compress.js';

let pool: ChunkWorkers | undefined;

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

it('compresses only the chunks asked for, in their order', async () => {
  pool = new ChunkWorkers(1);
  const data = Buffer.concat([Buffer.alloc(4096, 'a'), Buffer.alloc(4096, 'b'), Buffer.alloc(4096, 'c')]);
  const hashed = await pool.hash(Buffer.alloc(32, 7), data, 4096);
  const done = await compressFresh(pool, hashed, [0, 2]);
  expect(done.bodies).toHaveLength(2);
  expect((done.bodies[0] as Buffer).length).toBeLessThan(4096);
  done.release();
});

it('runs steps one after the other in order, never more than `ahead` unfinished when push returns', async () => {
  const order: number[] = [];
  const chain = new InOrder(2);
  const unfinished = new Set<number>();
  for (let i = 0; i < 6; i++) {
    unfinished.add(i);
    await chain.push(async () => {
      await new Promise((r) => setTimeout(r, 6 - i));
      order.push(i);
      unfinished.delete(i);
    });
    expect(unfinished.size).toBeLessThanOrEqual(2);
  }
  await chain.done();
  expect(order).toEqual([0, 1, 2, 3, 4, 5]);
});

it('keeps the first failure and skips every later step', async () => {
  const chain = new InOrder(8);
  const ran: number[] = [];
  await chain.push(async () => {
    ran.push(0);
  });
  await chain.push(async () => {
    throw new Error('first');
  });
  await chain.push(async () => {
    ran.push(2);
  });
  await chain.settled();
  expect(ran).toEqual([0]);
  expect((chain.failure as Error).message).toBe('first');
  await expect(chain.done()).rejects.toThrow('first');
});

import type { Worker } from 'node:worker_threads';
import { afterEach, expect, it, vi } from 'vitest';
import { DEFAULT_MEMORY_POLICY, JobMemory, resolveMemoryPolicy } from './memory-policy.js';
import { ChunkWorkers } from './pool.js';

let pool: ChunkWorkers | undefined;

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function workersOf(p: ChunkWorkers): Worker[] {
  return (p as unknown as { slots: Array<{ worker: Worker }> }).slots.map((s) => s.worker);
}

it('fills in every default, and keeps what the caller set', () => {
  expect(resolveMemoryPolicy()).toEqual(DEFAULT_MEMORY_POLICY);
  expect(DEFAULT_MEMORY_POLICY.collectEvery).toBe(256 * 1024 * 1024);
  const mine = resolveMemoryPolicy({ collectEvery: 1024, workersCollectWithJob: false });
  expect(mine).toEqual({ ...DEFAULT_MEMORY_POLICY, collectEvery: 1024, workersCollectWithJob: false });
});

it("has the workers collect with a job's main thread only when the policy says so", async () => {
  pool = new ChunkWorkers(1);
  const [posted] = workersOf(pool).map((w) => vi.spyOn(w, 'postMessage'));
  const quiet = new JobMemory({ collectEvery: 1024, workersCollectWithJob: false, trimAfterCollect: false }, pool);
  quiet.processed(4096);
  expect(posted).not.toHaveBeenCalled();
  const loud = new JobMemory({ collectEvery: 1024 }, pool);
  loud.processed(1000);
  expect(posted).not.toHaveBeenCalled();
  loud.processed(100);
  expect(posted).toHaveBeenCalledWith({ type: 'collect' });
});

it('never collects with collectEvery Infinity', async () => {
  pool = new ChunkWorkers(1);
  const [posted] = workersOf(pool).map((w) => vi.spyOn(w, 'postMessage'));
  const never = new JobMemory({ collectEvery: Number.POSITIVE_INFINITY }, pool);
  never.processed(1024 * 1024 * 1024);
  expect(posted).not.toHaveBeenCalled();
});

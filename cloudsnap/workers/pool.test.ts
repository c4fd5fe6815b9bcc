import { createHmac, randomBytes } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { afterEach, expect, it, vi } from 'vitest';
import { decompress } from 'zstd-napi';
import { native } from '../../common/native/index.js';
import { encodeChunk } from '../repo/chunk-codec.js';
import { JobMemory } from './memory-policy.js';
import { ChunkWorkers } from './pool.js';

let pool: ChunkWorkers | undefined;

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function workersOf(p: ChunkWorkers): Worker[] {
  return (p as unknown as { slots: Array<{ worker: Worker }> }).slots.map((s) => s.worker);
}

it('hashes, compresses (split over the workers) and gives every body back in order', async () => {
  pool = new ChunkWorkers(2);
  const chunk = 4096;
  const data = Buffer.alloc(16 * chunk);
  for (let i = 0; i < 16; i++) if (i !== 3) data.fill(`chunk ${i} `, i * chunk, (i + 1) * chunk);
  const copy = Buffer.from(data);
  const hashed = await pool.hash(Buffer.alloc(32, 1), data, chunk);
  expect([...hashed.zero]).toEqual(Array.from({ length: 16 }, (_, i) => (i === 3 ? 1 : 0)));
  const wanted = [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  const compressed = await pool.compress(hashed, wanted);
  expect(compressed.bodies).toHaveLength(wanted.length);
  // Codec 1 (zstd) for these repetitive chunks (the first byte of each body), and each body is its own chunk.
  compressed.bodies.forEach((body, k) => {
    const i = wanted[k] as number;
    expect(body[0]).toBe(1);
    expect(decompress(body.subarray(1)).equals(copy.subarray(i * chunk, (i + 1) * chunk))).toBe(true);
  });
  compressed.release();
});

it('replaces a worker that died: what it owed fails, later requests are answered', async () => {
  pool = new ChunkWorkers(1);
  const [first] = workersOf(pool);
  const owed = pool.hash(Buffer.alloc(32), Buffer.alloc(1024 * 1024, 7), 65536);
  await first?.terminate();
  await expect(owed).rejects.toThrow(/chunk worker died/);
  const [second] = workersOf(pool);
  expect(second).not.toBe(first);
  const hashed = await pool.hash(Buffer.alloc(32), Buffer.alloc(65536, 9), 65536);
  expect(hashed.zero[0]).toBe(0);
  (await pool.compress(hashed, [])).release();
});

it('decodes a ranged read into plaintexts that start on a page boundary (for direct writes), checking each id', async () => {
  pool = new ChunkWorkers(1);
  const idKey = Buffer.alloc(32, 5);
  const key = Buffer.alloc(32, 6);
  const chunk = 65536;
  const plains = [Buffer.alloc(chunk, 'text '), randomBytes(chunk), Buffer.alloc(chunk, 'more text ')];
  const ids = plains.map((p) => createHmac('sha256', idKey).update(p).digest());
  const sealed = plains.map((p, i) => encodeChunk(key, 100 + i, ids[i] as Buffer, p));
  const body = Buffer.concat(sealed);
  const spans = new Uint32Array(plains.length * 3);
  let at = 0;
  sealed.forEach((s, i) => {
    spans.set([at, s.length, 100 + i], i * 3);
    at += s.length;
  });
  const read = pool.borrow(body.length);
  body.copy(read);
  const decoded = await pool.decode(
    idKey,
    key,
    read,
    { spans, ids: Buffer.concat(ids), where: 'in a test' },
    plains.length * chunk,
  );
  decoded.chunks.forEach((c, i) => {
    expect(c.equals(plains[i] as Buffer)).toBe(true);
    expect(native.alignmentGap(c, 4096)).toBe(0);
  });
  decoded.release();
  // A wrong id is DATA_CORRUPTION, whatever the alignment.
  const wrong = Buffer.concat(ids);
  wrong[40] = (wrong[40] as number) ^ 1;
  await expect(
    pool.decode(idKey, key, read, { spans, ids: wrong, where: 'in a test' }, plains.length * chunk),
  ).rejects.toMatchObject({ code: 'DATA_CORRUPTION' });
  pool.giveBack(read);
});

it('drops the buffers it keeps for reuse once idle, and works on afterwards with new ones', async () => {
  // The pool's clock and timers are faked; the workers' replies are real.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  try {
    pool = new ChunkWorkers(1, 1000);
    const p = pool;
    const roundTrip = async (): Promise<void> => {
      const hashed = await p.hash(Buffer.alloc(32), Buffer.alloc(65536, 9), 65536);
      (await p.compress(hashed, [0])).release();
      p.giveBack(p.borrow(4096));
    };
    const slabsMade = (): number => Object.values(p.created.slabs).reduce((a, b) => a + b, 0) + p.created.reads;
    await roundTrip();
    const made = slabsMade();
    expect(p.spareBytes).toBeGreaterThan(0);
    // Activity within the idle time keeps them.
    for (let k = 0; k < 3; k++) {
      vi.advanceTimersByTime(900);
      await roundTrip();
    }
    expect(p.spareBytes).toBeGreaterThan(0);
    expect(slabsMade()).toBe(made);
    vi.advanceTimersByTime(999);
    expect(p.spareBytes).toBeGreaterThan(0);
    vi.advanceTimersByTime(1);
    expect(p.spareBytes).toBe(0);
    // The worker still answers (after its collection), and the next job makes its buffers again.
    await roundTrip();
    expect(p.spareBytes).toBeGreaterThan(0);
    expect(slabsMade()).toBe(2 * made);
  } finally {
    vi.useRealTimers();
  }
});

it('hashes each batch under its own id key (the worker keeps one hasher, made again when the key changes)', async () => {
  pool = new ChunkWorkers(1);
  const data = Buffer.alloc(4096, 'abc');
  const keys = [Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(32, 1)];
  for (const key of keys) {
    const hashed = await pool.hash(key, data, 4096);
    expect(hashed.ids.equals(createHmac('sha256', key).update(data).digest())).toBe(true);
    (await pool.compress(hashed, [])).release();
  }
});

it("has every worker collect with a job's main thread, and they answer on afterwards", async () => {
  pool = new ChunkWorkers(2);
  const posted = workersOf(pool).map((w) => vi.spyOn(w, 'postMessage'));
  const reclaimer = new JobMemory(undefined, pool);
  reclaimer.processed(128 * 1024 * 1024);
  for (const spy of posted) expect(spy).not.toHaveBeenCalled();
  reclaimer.processed(128 * 1024 * 1024);
  for (const spy of posted) expect(spy).toHaveBeenCalledWith({ type: 'collect' });
  const hashed = await pool.hash(Buffer.alloc(32, 3), Buffer.alloc(16 * 4096, 'xyz'), 4096);
  const compressed = await pool.compress(hashed, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(compressed.bodies).toHaveLength(10);
  compressed.release();
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { SqliteStore, type Watch } from '../../node/index.js';
import { Leases } from './lease.js';

let dir: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-lease-'));
  store = new SqliteStore(join(dir, 'cluster.db'), { sweepMs: 50 });
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Resolves when `key` is deleted (the store expired its lease), read from the store's own events. */
async function expired(key: string, watch: Watch): Promise<void> {
  for await (const e of watch) if (e.type === 'delete' && e.key === key) return;
}

it('one holder at a time; renewable by its holder; free after release or expiry', async () => {
  const a = new Leases(store, 'node-a');
  const b = new Leases(store, 'node-b');
  expect(await a.acquire('x', 1000)).toBe(true);
  expect(await b.acquire('x', 1000)).toBe(false);
  expect(await a.acquire('x', 1000)).toBe(true); // renew
  await b.release('x'); // not b's to give back
  expect(await b.acquire('x', 1000)).toBe(false);
  await a.release('x');
  const watch = await store.watch('/ferry/leases/');
  expect(await b.acquire('x', 1000)).toBe(true);
  await expired('/ferry/leases/x', watch); // b died without giving it back: the store's TTL frees it
  await watch.close();
  expect(await a.acquire('x', 1000)).toBe(true);
  expect(await b.acquire('x', 1000)).toBe(false); // b's lease is gone; renewing it does not steal a's
  const entry = await store.getEntry<{ holder: string }>('/ferry/leases/x');
  expect(entry?.value.holder).toBe('node-a');
  expect(entry?.lease).toBeDefined();
});

it('of two nodes racing for a free lease, exactly one wins', async () => {
  const nodes = Array.from({ length: 8 }, (_, i) => new Leases(store, `node-${i}`));
  const wins = await Promise.all(nodes.map((n) => n.acquire('race', 1000)));
  expect(wins.filter(Boolean)).toHaveLength(1);
});

it('compareAndSet changes a key only from the expected value', async () => {
  expect(await store.compareAndSet('/k', undefined, { v: 1 })).toBe(true);
  expect(await store.compareAndSet('/k', undefined, { v: 2 })).toBe(false);
  expect(await store.compareAndSet('/k', { v: 3 }, { v: 2 })).toBe(false);
  expect(await store.compareAndSet('/k', { v: 1 }, { v: 2 })).toBe(true);
  expect(await store.get('/k')).toEqual({ v: 2 });
  expect(await store.compareAndSet('/k', { v: 2 }, undefined)).toBe(true);
  expect(await store.get('/k')).toBeUndefined();
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { SqliteStore } from '../../node/index.js';
import { Leases } from './lease.js';

let dir: string;
let store: SqliteStore;
let now = 1_000_000;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-lease-'));
  store = new SqliteStore(join(dir, 'cluster.db'));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

it('one holder at a time; renewable by its holder; free after release or expiry', async () => {
  const a = new Leases(store, 'node-a', () => now);
  const b = new Leases(store, 'node-b', () => now);
  expect(await a.acquire('x', 1000)).toBe(true);
  expect(await b.acquire('x', 1000)).toBe(false);
  expect(await a.acquire('x', 1000)).toBe(true); // renew
  await b.release('x'); // not b's to give back
  expect(await b.acquire('x', 1000)).toBe(false);
  await a.release('x');
  expect(await b.acquire('x', 1000)).toBe(true);
  now += 1001; // b died without giving it back
  expect(await a.acquire('x', 1000)).toBe(true);
  expect(await store.get('/ferry/leases/x')).toEqual({ holder: 'node-a', expires: now + 1000 });
});

it('of two nodes racing for a free lease, exactly one wins', async () => {
  const nodes = Array.from({ length: 8 }, (_, i) => new Leases(store, `node-${i}`, () => now));
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

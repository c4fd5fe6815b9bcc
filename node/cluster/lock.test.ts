import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holderOf, lock, lockKey, tryLock } from './lock.js';
import { MemoryKv, MemoryStore } from './memory-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { ClusterStore } from './types.js';

function lostSoon(signal: AbortSignal): Promise<void> {
  return signal.aborted ? Promise.resolve() : new Promise((r) => signal.addEventListener('abort', () => r()));
}

const backends: Array<[string, () => Promise<{ a: ClusterStore; b: ClusterStore; done(): Promise<void> }>]> = [
  [
    'memory',
    async () => {
      const kv = new MemoryKv();
      const a = new MemoryStore(kv);
      const b = new MemoryStore(kv);
      return { a, b, done: async () => undefined };
    },
  ],
  [
    'sqlite (two connections to one file)',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ferry-lock-'));
      const a = new SqliteStore(join(dir, 'cluster.db'), { pollMs: 20, sweepMs: 50 });
      const b = new SqliteStore(join(dir, 'cluster.db'), { pollMs: 20, sweepMs: 50 });
      return {
        a,
        b,
        done: async () => {
          await a.close();
          await b.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  ],
];

describe.each(backends)('locks on %s', (_name, open) => {
  let a: ClusterStore;
  let b: ClusterStore;
  let done: () => Promise<void>;
  beforeAll(async () => {
    ({ a, b, done } = await open());
  });
  afterAll(async () => {
    await done();
  });

  it('one holder at a time; a later holder gets a greater fencing revision', async () => {
    const key = lockKey('one/holder');
    expect(key).toBe('/ferry/locks/one%2Fholder');
    const first = await tryLock(a, key, { holder: 'node-a' });
    expect(first).toBeDefined();
    expect(await tryLock(b, key, { holder: 'node-b' })).toBeUndefined();
    expect(await holderOf(b, key)).toMatchObject({ holder: 'node-a' });
    await first?.release();
    expect(first?.lost.aborted).toBe(true);
    const second = await tryLock(b, key, { holder: 'node-b' });
    expect(second?.revision).toBeGreaterThan(first?.revision ?? Number.POSITIVE_INFINITY);
    await second?.release();
    expect(await holderOf(a, key)).toBeUndefined();
  });

  it('lock() waits for the holder to release, then takes it', async () => {
    const key = lockKey('wait');
    const first = await tryLock(a, key, { holder: 'node-a' });
    let taken = false;
    const waiting = lock(b, key, { holder: 'node-b' }).then((h) => {
      taken = true;
      return h;
    });
    await a.put('/ferry-test/lock/unrelated', 1);
    expect(await holderOf(a, key)).toMatchObject({ holder: 'node-a' });
    expect(taken).toBe(false);
    await first?.release();
    const second = await waiting;
    expect(await holderOf(a, key)).toMatchObject({ holder: 'node-b' });
    await second.release();
  });

  it('a holder that dies (no keep-alive) loses the lock when its lease expires on the store; a waiter gets it', async () => {
    const key = lockKey('dies');
    const dying = await tryLock(a, key, { holder: 'node-a', ttlSeconds: 1, keepAlive: false });
    expect(dying).toBeDefined();
    const next = await lock(b, key, { holder: 'node-b' });
    expect(await holderOf(b, key)).toMatchObject({ holder: 'node-b' });
    await expect(dying?.renew()).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(dying?.lost.aborted).toBe(true);
    await next.release();
  });

  it('a kept lock outlives its TTL: it is still held when a lock taken after it, not kept, has expired', async () => {
    const kept = await tryLock(a, lockKey('kept'), { holder: 'node-a', ttlSeconds: 1 });
    const watch = await b.watch(lockKey('unkept'));
    const unkept = await tryLock(a, lockKey('unkept'), { holder: 'node-a', ttlSeconds: 1, keepAlive: false });
    expect(unkept).toBeDefined();
    for await (const e of watch) if (e.type === 'delete') break; // the store's TTL has run out for both leases
    await watch.close();
    expect(kept?.lost.aborted).toBe(false);
    expect(await holderOf(b, lockKey('kept'))).toMatchObject({ holder: 'node-a' });
    await kept?.release();
    expect(await holderOf(b, lockKey('kept'))).toBeUndefined();
  });

  it('a kept lock notices when its lease is revoked under it', async () => {
    const key = lockKey('revoked');
    const held = await tryLock(a, key, { holder: 'node-a', ttlSeconds: 1 });
    if (held === undefined) throw new Error('not taken');
    await b.revokeLease(held.lease);
    await lostSoon(held.lost);
    expect(await holderOf(a, key)).toBeUndefined();
    await held.release();
  });

  it('lock() stops waiting when its signal aborts', async () => {
    const key = lockKey('abort');
    const held = await tryLock(a, key, { holder: 'node-a' });
    const controller = new AbortController();
    const waiting = lock(b, key, { holder: 'node-b', signal: controller.signal });
    await a.put('/ferry-test/lock/unrelated', 2);
    controller.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow(/gave up/);
    await held?.release();
  });
});

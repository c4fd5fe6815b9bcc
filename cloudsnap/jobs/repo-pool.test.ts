/**
 * The repository pool as the cache of unwrapped master secrets: one unwrap per repository open and none per chunk,
 * reuse while the TTL runs, and expiry (the idle instance is wiped by its timer and the next job unwraps again).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { backup, type KeyHarness, openHarness, volumeWithData } from '../../test/support/key-harness.js';

let h: KeyHarness;

afterEach(async () => {
  await h.close();
});

describe('repository pool: cached master secrets', () => {
  it('unwraps once per open, never per chunk, and reuses the open repository while its TTL runs', async () => {
    h = await openHarness({ keyCacheTtlMs: 60_000 });
    await h.credential('c', {});
    const local = h.counting.get('local');
    await volumeWithData(h.engine, 'small', 1024 * 1024);
    await volumeWithData(h.engine, 'big', 16 * 1024 * 1024);
    local?.reset();
    expect((await backup(h, 'small', 'c')).status).toBe('Done');
    // A new repository: its master secret is wrapped once, never unwrapped.
    expect(local?.calls).toMatchObject({ wrap: 1, unwrap: 0 });
    await h.reopenJobs();
    local?.reset();
    expect((await backup(h, 'big', 'c')).status).toBe('Done');
    expect((await backup(h, 'small', 'c')).status).toBe('Done');
    // Two backups of 6 and 64+ chunks on a fresh pool: one unwrap in all (the second job reuses the open repository).
    expect(local?.calls).toMatchObject({ wrap: 0, unwrap: 1, rewrap: 0, generateDataKey: 0 });
    expect(h.backups.jobs.repositories.cached).toBe(1);
  });

  it('forgets an idle master secret when its TTL is up: the next job unwraps again', async () => {
    h = await openHarness({ keyCacheTtlMs: 150 });
    await h.credential('c', {});
    await volumeWithData(h.engine, 'v');
    expect((await backup(h, 'v', 'c')).status).toBe('Done');
    const pool = h.backups.jobs.repositories;
    const local = h.counting.get('local');
    local?.reset();
    expect(pool.cached).toBe(1);
    const lease = await pool.acquire('c');
    lease.release(true);
    expect(local?.calls.unwrap).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The expiry timer dropped (and wiped) it without anyone asking.
    expect(pool.cached).toBe(0);
    expect((await backup(h, 'v', 'c')).status).toBe('Done');
    expect(local?.calls.unwrap).toBe(1);
  });

  it('invalidateAll wipes the cached master secret: the instance cannot be used any more', async () => {
    h = await openHarness();
    await h.credential('c', {});
    const pool = h.backups.jobs.repositories;
    const lease = await pool.acquire('c');
    const repo = lease.repo;
    lease.release(true);
    expect(pool.cached).toBe(1);
    pool.invalidateAll();
    expect(pool.cached).toBe(0);
    expect(repo.keys.idKeyBytes.equals(Buffer.alloc(32))).toBe(true);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeClusterStoreConformance, take } from './conformance.js';
import { SCHEMA_VERSION } from './sqlite-schema.js';
import { SqliteStore } from './sqlite-store.js';

describeClusterStoreConformance('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sqlite-conf-'));
  const clients: SqliteStore[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  };
  return {
    client: async () => {
      const c = new SqliteStore(join(dir, 'cluster.db'), { pollMs: 20, sweepMs: 50 });
      clients.push(c);
      return c;
    },
    restart: closeAll,
    destroy: async () => {
      await closeAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-sqlite-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("opens a data directory of today's schema (kv(key, value) only), migrating it in place", async () => {
  const path = join(dir, 'cluster.db');
  const old = new Database(path);
  old.pragma('journal_mode = WAL');
  old.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  old.prepare('INSERT INTO kv (key, value) VALUES (?, ?)').run('/ferry/cluster', '{"id":"c1","name":"ferry"}');
  old.prepare('INSERT INTO kv (key, value) VALUES (?, ?)').run('/ferry/volumes/v1', '{"id":"v1"}');
  old.close();

  const store = new SqliteStore(path);
  try {
    expect(await store.list('/ferry/')).toEqual([
      { key: '/ferry/cluster', value: { id: 'c1', name: 'ferry' } },
      { key: '/ferry/volumes/v1', value: { id: 'v1' } },
    ]);
    expect(await store.revision()).toBe(1);
    expect(await store.getEntry('/ferry/volumes/v1')).toMatchObject({ createRevision: 1, modRevision: 1 });
    // History starts after the migration: a watch from revision 1 cannot be served, one from 2 can.
    await expect(store.watch('/ferry/', { fromRevision: 1 })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const watch = await store.watch('/ferry/', { fromRevision: 2 });
    expect(await store.compareAndSet('/ferry/volumes/v1', { id: 'v1' }, { id: 'v1', size: 1 })).toBe(true);
    expect(await take(watch, 1)).toEqual([
      { type: 'put', key: '/ferry/volumes/v1', value: { id: 'v1', size: 1 }, revision: 2 },
    ]);
    await watch.close();
  } finally {
    await store.close();
  }
  const reopened = new Database(path);
  expect(reopened.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
  reopened.close();
  const again = new SqliteStore(path);
  expect(await again.getEntry('/ferry/volumes/v1')).toMatchObject({ value: { id: 'v1', size: 1 }, modRevision: 2 });
  await again.close();
});

it('refuses a schema newer than its own, saying what to do', async () => {
  const path = join(dir, 'cluster.db');
  new SqliteStore(path).close();
  const db = new Database(path);
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  expect(() => new SqliteStore(path)).toThrow(/newer than this Ferry's/);
});

it('keeps a bounded history: a watch from a compacted revision fails, one after it works', async () => {
  const store = new SqliteStore(join(dir, 'cluster.db'), { historyRevisions: 50 });
  try {
    for (let i = 0; i < 200; i++) await store.put('/ferry/k', i);
    const history = new Database(join(dir, 'cluster.db'), { readonly: true });
    const rows = history.prepare('SELECT COUNT(*) AS n FROM history').get() as { n: number };
    history.close();
    expect(rows.n).toBeLessThanOrEqual(150);
    await expect(store.watch('/ferry/', { fromRevision: 10 })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const watch = await store.watch<number>('/ferry/', { fromRevision: 190 });
    expect((await take(watch, 11)).map((e) => e.value)).toEqual([
      189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199,
    ]);
    await watch.close();
  } finally {
    await store.close();
  }
});

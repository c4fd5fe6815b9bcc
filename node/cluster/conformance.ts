/**
 * The one conformance suite every ClusterStore backend passes (run with vitest from a backend's test file; not part
 * of the store's public face). Each test works under a prefix of its own, so one server serves the whole suite.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import type { ClusterStore, Watch, WatchEvent } from './types.js';

/** What a backend's test file hands the suite: one store server and clients of it. */
export interface ClusterStoreHarness {
  /** A new client of the store (several may be open at once; they see one another's writes). */
  client(): Promise<ClusterStore>;
  /**
   * Restarts the server, keeping its data: etcd's process stops and starts again; SQLite's clients are closed
   * (a process restart: the file is reopened by the next `client()`); memory's clients are closed (the state lives).
   * Clients opened before may be unusable after it.
   */
  restart(): Promise<void>;
  /** Closes every client and removes the server and its data. */
  destroy(): Promise<void>;
}

/** Reads the next `n` events of a watch. */
export async function take<T>(watch: Watch<T>, n: number): Promise<WatchEvent<T>[]> {
  const events: WatchEvent<T>[] = [];
  if (n === 0) return events;
  for await (const e of watch) {
    events.push(e);
    if (events.length === n) break;
  }
  return events;
}

/** Waits (on the store's own events) until `key` is deleted. */
async function deleted(watch: Watch, key: string): Promise<WatchEvent> {
  for await (const e of watch) if (e.type === 'delete' && e.key === key) return e;
  throw new Error(`the watch ended before ${key} was deleted`);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err: unknown) {
    if (isFerryError(err)) return err.code;
    throw err;
  }
  throw new Error('expected the call to reject, it resolved');
}

function brief(events: readonly WatchEvent[]): string[] {
  return events.map((e) => `${e.type} ${e.key}${e.type === 'put' ? ` ${JSON.stringify(e.value)}` : ''}`);
}

export function describeClusterStoreConformance(name: string, open: () => Promise<ClusterStoreHarness>): void {
  describe(`ClusterStore conformance: ${name}`, () => {
    let harness: ClusterStoreHarness;
    let store: ClusterStore;
    let p: string;

    beforeAll(async () => {
      harness = await open();
      store = await harness.client();
    });
    afterAll(async () => {
      await harness?.destroy();
    });
    const fresh = (): string => {
      p = `/ferry-test/${randomUUID()}/`;
      return p;
    };

    it('get, put, delete with revisions', async () => {
      fresh();
      expect(await store.get(`${p}a`)).toBeUndefined();
      const r1 = await store.put(`${p}a`, { n: 1 });
      expect(await store.revision()).toBeGreaterThanOrEqual(r1);
      expect(await store.getEntry(`${p}a`)).toEqual({
        key: `${p}a`,
        value: { n: 1 },
        createRevision: r1,
        modRevision: r1,
      });
      const r2 = await store.put(`${p}a`, { n: 2 });
      expect(r2).toBeGreaterThan(r1);
      expect(await store.getEntry(`${p}a`)).toMatchObject({ value: { n: 2 }, createRevision: r1, modRevision: r2 });
      expect(await store.delete(`${p}a`)).toBe(true);
      expect(await store.get(`${p}a`)).toBeUndefined();
      const after = await store.revision();
      expect(after).toBeGreaterThan(r2);
      expect(await store.delete(`${p}a`)).toBe(false);
      expect(await store.revision()).toBe(after);
      const r3 = await store.put(`${p}a`, { n: 3 });
      expect(await store.getEntry(`${p}a`)).toMatchObject({ createRevision: r3, modRevision: r3 });
    });

    it('the old methods: commit, list by prefix in key order, compareAndSet on JSON values', async () => {
      fresh();
      await store.commit([
        { op: 'put', key: `${p}b`, value: { v: 'b' } },
        { op: 'put', key: `${p}a`, value: { v: 'a' } },
        { op: 'put', key: `${p.slice(0, -1)}x`, value: { v: 'outside' } },
      ]);
      await store.commit([]);
      expect(await store.list(p)).toEqual([
        { key: `${p}a`, value: { v: 'a' } },
        { key: `${p}b`, value: { v: 'b' } },
      ]);
      await store.commit([
        { op: 'delete', key: `${p}a` },
        { op: 'put', key: `${p}c`, value: [1, 2] },
      ]);
      expect((await store.list(p)).map((kv) => kv.key)).toEqual([`${p}b`, `${p}c`]);
      const k = `${p}cas`;
      expect(await store.compareAndSet(k, undefined, { v: 1 })).toBe(true);
      expect(await store.compareAndSet(k, undefined, { v: 2 })).toBe(false);
      expect(await store.compareAndSet(k, { v: 3 }, { v: 2 })).toBe(false);
      expect(await store.compareAndSet(k, { v: 1 }, { v: 2 })).toBe(true);
      expect(await store.get(k)).toEqual({ v: 2 });
      expect(await store.compareAndSet(k, { v: 2 }, undefined)).toBe(true);
      expect(await store.get(k)).toBeUndefined();
    });

    it('lists a prefix in pages: limit, continue after a key, the next cursor', async () => {
      fresh();
      const keys = ['a', 'b', 'c', 'd', 'e'].map((s) => `${p}${s}`);
      await store.commit(keys.map((key, i) => ({ op: 'put', key, value: i })));
      await store.put(`${p.slice(0, -1)}0`, 'after the prefix in byte order');
      const pages: string[][] = [];
      let after: string | undefined;
      do {
        const page = await store.listPage<number>(p, { limit: 2, ...(after !== undefined && { after }) });
        expect(page.revision).toBeGreaterThan(0);
        pages.push(page.entries.map((e) => e.key));
        after = page.next;
      } while (after !== undefined);
      expect(pages).toEqual([keys.slice(0, 2), keys.slice(2, 4), keys.slice(4)]);
      const whole = await store.listPage<number>(p, { limit: 5 });
      expect(whole.next).toBeUndefined();
      expect(whole.entries.map((e) => e.value)).toEqual([0, 1, 2, 3, 4]);
      expect(await store.listPage(`${p}zz/`)).toMatchObject({ entries: [] });
    });

    it('a transaction applies its ops atomically when every mod revision compares equal (0 = absent)', async () => {
      fresh();
      const [a, b] = [`${p}a`, `${p}b`];
      const first = await store.txn(
        [
          { key: a, modRevision: 0 },
          { key: b, modRevision: 0 },
        ],
        [
          { op: 'put', key: a, value: 'A' },
          { op: 'put', key: b, value: 'B' },
        ],
      );
      expect(first.succeeded).toBe(true);
      expect((await store.getEntry(a))?.modRevision).toBe(first.revision);
      expect((await store.getEntry(b))?.modRevision).toBe(first.revision);
      const again = await store.txn([{ key: a, modRevision: 0 }], [{ op: 'put', key: b, value: 'lost' }]);
      expect(again.succeeded).toBe(false);
      expect(await store.get(b)).toBe('B');
      const one = await store.txn(
        [
          { key: a, modRevision: first.revision },
          { key: b, modRevision: first.revision - 1 },
        ],
        [{ op: 'delete', key: a }],
      );
      expect(one.succeeded).toBe(false);
      expect(await store.get(a)).toBe('A');
      const del = await store.txn(
        [{ key: a, modRevision: first.revision }],
        [
          { op: 'delete', key: a },
          { op: 'put', key: `${p}c`, value: 'C' },
        ],
      );
      expect(del.succeeded).toBe(true);
      expect(del.revision).toBeGreaterThan(first.revision);
      expect((await store.list(p)).map((kv) => kv.value)).toEqual(['B', 'C']);
    });

    it('a watch delivers the changes of its prefix in revision order, from a given revision', async () => {
      fresh();
      const start = (await store.revision()) + 1;
      const live = await store.watch<string>(p);
      await store.put(`${p}a`, '1');
      await store.put(`${p.slice(0, -1)}-outside`, 'not watched');
      await store.commit([
        { op: 'put', key: `${p}b`, value: '2' },
        { op: 'put', key: `${p}a`, value: '3' },
      ]);
      await store.delete(`${p}b`);
      await store.txn([{ key: `${p}c`, modRevision: 0 }], [{ op: 'put', key: `${p}c`, value: '4' }]);
      const expected = [`put ${p}a "1"`, `put ${p}b "2"`, `put ${p}a "3"`, `delete ${p}b`, `put ${p}c "4"`];
      const events = await take(live, 5);
      await live.close();
      expect(brief(events)).toEqual(expected);
      const revisions = events.map((e) => e.revision);
      expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
      expect(revisions[1]).toBe(revisions[2]); // one commit, one revision
      expect(revisions[3]).toBeGreaterThan(revisions[2] ?? 0);
      const replay = await store.watch<string>(p, { fromRevision: start });
      expect(brief(await take(replay, 5))).toEqual(expected);
      await replay.close();
      const fromMiddle = await store.watch<string>(p, { fromRevision: revisions[3] });
      expect(brief(await take(fromMiddle, 2))).toEqual(expected.slice(3));
      await fromMiddle.close();
    });

    it('leases: keys bound to one vanish when it is revoked or expires on the store clock', async () => {
      fresh();
      const watch = await store.watch(p);
      const revoked = await store.grantLease(1);
      await store.put(`${p}revoked`, 'r', { lease: revoked });
      await store.commit([{ op: 'put', key: `${p}kept`, value: 'k', lease: revoked }]);
      expect((await store.getEntry(`${p}revoked`))?.lease).toBe(revoked);
      await store.keepAlive(revoked);
      await store.revokeLease(revoked);
      expect(await store.get(`${p}revoked`)).toBeUndefined();
      expect(await store.get(`${p}kept`)).toBeUndefined();
      expect(await codeOf(store.keepAlive(revoked))).toBe('NOT_FOUND');
      expect(await codeOf(store.put(`${p}late`, 'x', { lease: revoked }))).toBe('NOT_FOUND');
      await store.revokeLease(revoked); // gone already: nothing
      const expiring = await store.grantLease(1);
      await store.put(`${p}expiring`, 'e', { lease: expiring });
      await store.put(`${p}plain`, 'p');
      const gone = await deleted(watch, `${p}expiring`);
      expect(gone.type).toBe('delete');
      expect(await store.get(`${p}expiring`)).toBeUndefined();
      expect(await store.get(`${p}plain`)).toBe('p');
      expect(await codeOf(store.keepAlive(expiring))).toBe('NOT_FOUND');
      expect(await codeOf(store.grantLease(0))).toBe('INVALID_ARGUMENT');
      await watch.close();
    });

    it('compare-and-set races between two clients: exactly one wins each race, no update is lost', async () => {
      fresh();
      const other = await harness.client();
      try {
        for (let round = 0; round < 5; round++) {
          const key = `${p}race-${round}`;
          const wins = await Promise.all(
            [store, other, store, other].map((c, i) =>
              c.txn([{ key, modRevision: 0 }], [{ op: 'put', key, value: i }]),
            ),
          );
          expect(wins.filter((w) => w.succeeded)).toHaveLength(1);
        }
        const counter = `${p}counter`;
        const increment = async (c: ClusterStore, times: number): Promise<void> => {
          for (let done = 0; done < times; ) {
            const n = (await c.get<number>(counter)) ?? 0;
            if (await c.compareAndSet(counter, n === 0 ? undefined : n, n + 1)) done++;
          }
        };
        await Promise.all([increment(store, 10), increment(other, 10)]);
        expect(await store.get(counter)).toBe(20);
      } finally {
        await other.close();
      }
    });

    it('a watch resumes from its last revision after the server restarts: nothing lost, nothing repeated', async () => {
      fresh();
      const before = await harness.client();
      const watch = await before.watch<number>(p);
      await before.put(`${p}a`, 1);
      await before.put(`${p}b`, 2);
      const seen = await take(watch, 2);
      const last = seen.at(-1)?.revision ?? 0;
      await before.put(`${p}c`, 3); // written, not yet read by the watcher
      await watch.close();
      await harness.restart();
      store = await harness.client();
      await store.put(`${p}d`, 4);
      const resumed = await store.watch<number>(p, { fromRevision: last + 1 });
      await store.delete(`${p}a`);
      const rest = await take(resumed, 3);
      await resumed.close();
      expect(brief([...seen, ...rest])).toEqual([
        `put ${p}a 1`,
        `put ${p}b 2`,
        `put ${p}c 3`,
        `put ${p}d 4`,
        `delete ${p}a`,
      ]);
      expect(await store.list(p)).toEqual([
        { key: `${p}b`, value: 2 },
        { key: `${p}c`, value: 3 },
        { key: `${p}d`, value: 4 },
      ]);
    });
  });
}

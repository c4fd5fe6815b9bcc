import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { CLUSTER_KEY, Membership, NODES_PREFIX } from './membership.js';
import { SqliteStore } from './sqlite-store.js';
import type { Watch } from './types.js';

let dir: string;
let observer: SqliteStore;
const opened: SqliteStore[] = [];

/** A connection to the one store file, as each node process would have. */
function connect(): SqliteStore {
  const store = new SqliteStore(join(dir, 'cluster.db'), { pollMs: 20, sweepMs: 50 });
  opened.push(store);
  return store;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-membership-'));
  observer = connect();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function next(watch: Watch, type: 'put' | 'delete', key: string): Promise<void> {
  for await (const e of watch) if (e.type === type && e.key === key) return;
}

async function member(name: string, heartbeatSeconds = 10): Promise<{ m: Membership; store: SqliteStore }> {
  const store = connect();
  const nodeDir = await mkdtemp(join(dir, `${name}-`));
  return { m: await Membership.open({ dataDir: nodeDir, store, version: '9.9.9', heartbeatSeconds }), store };
}

it('nodes share the first cluster record and see one another with labels, addresses, capacity and version', async () => {
  const [a, b] = await Promise.all([member('a'), member('b')]);
  expect(await a.m.cluster()).toEqual(await b.m.cluster());
  expect(await observer.get(CLUSTER_KEY)).toEqual(await a.m.cluster());
  await a.m.announce('http://10.0.0.1:9001', { labels: { zone: 'a' } });
  await b.m.announce('http://10.0.0.2:9001', {
    labels: { zone: 'b' },
    addresses: { nbd: 'nbd://10.0.0.2:10809' },
    capacity: { size_bytes: 100, free_bytes: 40 },
  });
  const nodes = await a.m.nodes();
  expect(nodes.map((n) => n.id).sort()).toEqual([a.m.nodeId, b.m.nodeId].sort());
  expect(nodes.find((n) => n.id === b.m.nodeId)).toMatchObject({
    api_url: 'http://10.0.0.2:9001',
    version: '9.9.9',
    labels: { zone: 'b' },
    addresses: { nbd: 'nbd://10.0.0.2:10809' },
    capacity: { size_bytes: 100, free_bytes: 40 },
  });
  expect((await observer.getEntry(`${NODES_PREFIX}${a.m.nodeId}`))?.lease).toBeDefined();
  await a.m.leave();
  expect((await b.m.nodes()).map((n) => n.id)).toEqual([b.m.nodeId]);
  await b.m.leave();
});

it("a node that dies vanishes when its heartbeat lease expires on the store's clock", async () => {
  const { m, store } = await member('dies', 1);
  const key = `${NODES_PREFIX}${m.nodeId}`;
  await m.announce('http://10.0.0.3:9001');
  const watch = await observer.watch(NODES_PREFIX);
  await store.close(); // the node's process is gone: nobody keeps its lease alive
  await next(watch, 'delete', key);
  await watch.close();
  expect(await observer.get(key)).toBeUndefined();
});

it('a node whose lease was lost announces itself again under a new one', async () => {
  const { m } = await member('again', 1);
  const key = `${NODES_PREFIX}${m.nodeId}`;
  await m.announce('http://10.0.0.4:9001');
  const first = await observer.getEntry(key);
  const watch = await observer.watch(NODES_PREFIX);
  await observer.revokeLease(first?.lease ?? '');
  await next(watch, 'delete', key);
  await next(watch, 'put', key);
  await watch.close();
  const again = await observer.getEntry(key);
  expect(again?.lease).toBeDefined();
  expect(again?.lease).not.toBe(first?.lease);
  await m.leave();
  expect(await observer.get(key)).toBeUndefined();
});

it('the registry keeps a node that left as Offline, maintenance shows and survives re-announcing', async () => {
  const [a, b] = await Promise.all([member('reg-a'), member('reg-b')]);
  await a.m.announce('http://10.0.0.5:9001', { labels: { rack: 'r1' } });
  await b.m.announce('http://10.0.0.6:9001', { labels: { rack: 'r2' } });
  const status = async () => Object.fromEntries((await a.m.members()).map((n) => [n.id, n.status]));
  expect(await status()).toEqual({ [a.m.nodeId]: 'Online', [b.m.nodeId]: 'Online' });
  await a.m.setMaintenance(b.m.nodeId, true);
  await b.m.announce('http://10.0.0.6:9001', { labels: { rack: 'r2' } });
  expect(await status()).toEqual({ [a.m.nodeId]: 'Online', [b.m.nodeId]: 'Maintenance' });
  await b.m.leave();
  expect(await status()).toEqual({ [a.m.nodeId]: 'Online', [b.m.nodeId]: 'Offline' });
  expect((await a.m.members()).find((n) => n.id === b.m.nodeId)).toMatchObject({ labels: { rack: 'r2' } });
  await a.m.setMaintenance(b.m.nodeId, false);
  await expect(a.m.setMaintenance('nobody', true)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  await expect(a.m.forget(a.m.nodeId)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  await a.m.forget(b.m.nodeId);
  expect(await status()).toEqual({ [a.m.nodeId]: 'Online' });
  await a.m.leave();
});

import { createServer } from 'node:net';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type EtcdServer, startEtcd } from '../../test/support/etcd.js';
import { describeClusterStoreConformance, take } from './conformance.js';
import { type EtcdStore, openEtcdStore } from './etcd-store.js';

describeClusterStoreConformance('etcd', async () => {
  const server = await startEtcd();
  const clients: EtcdStore[] = [];
  return {
    client: async () => {
      const c = openEtcdStore([server.url]);
      clients.push(c);
      return c;
    },
    restart: async () => {
      await server.stop();
      await server.start();
    },
    destroy: async () => {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await server.destroy();
    },
  };
});

let server: EtcdServer;

/** A bare client, for what the store does not offer (compaction is an operator's act). */
async function etcdClientOf(url: string): Promise<Etcd3> {
  return new Etcd3({ hosts: url });
}
beforeAll(async () => {
  server = await startEtcd();
});
afterAll(async () => {
  await server?.destroy();
});

it('a live watch reconnects by itself when etcd restarts and goes on after its last event', async () => {
  const store = openEtcdStore([server.url]);
  try {
    const watch = await store.watch<number>('/ferry-test/live/');
    await store.put('/ferry-test/live/a', 1);
    expect((await take(watch, 1)).map((e) => e.key)).toEqual(['/ferry-test/live/a']);
    await server.stop();
    await server.start();
    await store.put('/ferry-test/live/b', 2);
    await store.delete('/ferry-test/live/a');
    const after = await take(watch, 2);
    expect(after.map((e) => `${e.type} ${e.key}`)).toEqual(['put /ferry-test/live/b', 'delete /ferry-test/live/a']);
    await watch.close();
  } finally {
    await store.close();
  }
});

it('refuses a watch from a revision etcd compacted away (FAILED_PRECONDITION), and serves one after it', async () => {
  const store = openEtcdStore([server.url]);
  try {
    const first = await store.put('/ferry-test/compact/a', 1);
    const last = await store.put('/ferry-test/compact/a', 2);
    await etcdClientOf(server.url).then(async (client) => {
      await client.kv.compact({ revision: last, physical: true });
      client.close();
    });
    await expect(store.watch('/ferry-test/compact/', { fromRevision: first })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
    const watch = await store.watch<number>('/ferry-test/compact/', { fromRevision: last });
    expect((await take(watch, 1)).map((e) => e.value)).toEqual([2]);
    await watch.close();
  } finally {
    await store.close();
  }
});

it('the test etcd refuses to start on a port another process took, and starts once it is free', async () => {
  await server.stop();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(Number(new URL(server.url).port), '127.0.0.1', resolve));
  try {
    await expect(server.start()).rejects.toThrow(/is taken; etcd not started/);
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
  await server.start();
  const store = openEtcdStore([server.url]);
  await store.put('/ferry-test/port/a', 1);
  expect(await store.get('/ferry-test/port/a')).toBe(1);
  await store.close();
});

it('answers UNAVAILABLE, saying what to check, when etcd is down', async () => {
  const store = openEtcdStore([server.url], { dialTimeoutMs: 500 });
  await server.stop();
  try {
    await expect(store.get('/ferry-test/x')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/check that etcd runs/),
    });
  } finally {
    await server.start();
    await store.close();
  }
});

it('stores with namespaces share one etcd without seeing each other (keys, lists, transactions, watches)', async () => {
  const one = openEtcdStore([server.url], { namespace: '/ferry-clusters/one' });
  const two = openEtcdStore([server.url], { namespace: '/ferry-clusters/two' });
  const bare = openEtcdStore([server.url]);
  try {
    const watch = await two.watch('/ferry/nodes/');
    await one.put('/ferry/nodes/a', { id: 'a' });
    await two.put('/ferry/nodes/b', { id: 'b' });
    expect(await one.list('/ferry/nodes/')).toEqual([{ key: '/ferry/nodes/a', value: { id: 'a' } }]);
    expect(await two.list('/ferry/nodes/')).toEqual([{ key: '/ferry/nodes/b', value: { id: 'b' } }]);
    expect(await two.get('/ferry/nodes/a')).toBeUndefined();
    expect(await bare.get('/ferry-clusters/one/ferry/nodes/a')).toEqual({ id: 'a' });
    expect(
      (await one.txn([{ key: '/ferry/nodes/b', modRevision: 0 }], [{ op: 'put', key: '/ferry/x', value: 1 }]))
        .succeeded,
    ).toBe(true);
    expect((await take(watch, 1)).map((e) => e.key)).toEqual(['/ferry/nodes/b']);
    await watch.close();
  } finally {
    await Promise.all([one.close(), two.close(), bare.close()]);
  }
});

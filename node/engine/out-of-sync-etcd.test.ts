import { afterAll, beforeAll } from 'vitest';
import { DirectConnector } from '../../test/support/direct-connector.js';
import { type EtcdServer, startEtcd } from '../../test/support/etcd.js';
import { openEtcdStore } from '../cluster/etcd-store.js';
import { outOfSyncCases } from './out-of-sync.cases.js';

let server: EtcdServer;
beforeAll(async () => {
  server = await startEtcd();
});
afterAll(async () => {
  await server?.destroy();
});

// One real etcd for the file; each case starts from an empty keyspace.
outOfSyncCases(
  'etcd',
  async () => {
    const store = openEtcdStore([server.url]);
    const left = await store.list('/');
    if (left.length > 0) await store.commit(left.map((kv) => ({ op: 'delete' as const, key: kv.key })));
    return store;
  },
  () => new DirectConnector(),
);

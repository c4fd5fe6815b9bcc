import { describe, expect, it } from 'vitest';
import { packagesLoadedBy } from '../../test/support/packages-loaded.js';

describe("node/'s face and the etcd client", () => {
  it('importing node/index.ts loads no etcd client (gRPC): connectEtcd loads it on first use', async () => {
    const loaded = await packagesLoadedBy('node/index.ts');
    expect(loaded.has('better-sqlite3')).toBe(true);
    expect(['etcd3', '@grpc/grpc-js'].filter((p) => loaded.has(p))).toEqual([]);
  });

  it('etcd-store.ts does load it (the probe sees such a load)', async () => {
    expect((await packagesLoadedBy('node/cluster/etcd-store.ts')).has('etcd3')).toBe(true);
  });
});

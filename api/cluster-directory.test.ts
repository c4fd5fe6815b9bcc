/** The node id file and the cluster record: created once, then read; a damaged id file is reported, not replaced. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadNodeId, MemoryStore } from '../node/index.js';
import { CLUSTER_KEY, StoreClusterDirectory } from './cluster-directory.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-cluster-dir-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cluster directory', () => {
  it('keeps one node id per data directory, also when two opens race', async () => {
    const [a, b] = await Promise.all([loadNodeId(dir), loadNodeId(dir)]);
    expect(a).toMatch(/^[0-9a-f-]{36}$/);
    expect(b).toBe(a);
    expect(await loadNodeId(dir)).toBe(a);
  });

  it('reports a damaged node-id file instead of minting a new identity', async () => {
    await writeFile(join(dir, 'node-id'), '../../not an id\n');
    await expect(loadNodeId(dir)).rejects.toMatchObject({ code: 'DATA_CORRUPTION' });
  });

  it('shares the first cluster record among the nodes of one store', async () => {
    const store = new MemoryStore();
    const other = await mkdtemp(join(tmpdir(), 'ferry-cluster-dir-'));
    try {
      const [one, two] = await Promise.all([
        StoreClusterDirectory.open({ dataDir: dir, store, clusterName: 'a' }),
        StoreClusterDirectory.open({ dataDir: other, store, clusterName: 'b' }),
      ]);
      expect(one.nodeId).not.toBe(two.nodeId);
      expect(await one.cluster()).toEqual(await two.cluster());
      expect(await store.get(CLUSTER_KEY)).toEqual(await one.cluster());
      await one.announce('http://10.0.0.1:9001');
      await two.announce('http://10.0.0.2:9001', { zone: 'b' });
      const nodes = await two.nodes();
      expect(nodes.map((n) => n.id).sort()).toEqual([one.nodeId, two.nodeId].sort());
      expect(nodes.find((n) => n.id === two.nodeId)).toMatchObject({ labels: { zone: 'b' } });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('replication addresses', () => {
  it('gives the host and port of an Online node and UNAVAILABLE for one that is not', async () => {
    const store = new MemoryStore();
    const directory = await StoreClusterDirectory.open({ dataDir: dir, store });
    await expect(directory.replAddress(directory.nodeId)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await directory.announce('http://[::1]:9001', {}, { addresses: { repl: 'tls://[::1]:9002' } });
    expect(await directory.replAddress(directory.nodeId)).toEqual({ host: '::1', port: 9002 });
    await directory.leave();
    await expect(directory.replAddress(directory.nodeId)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});

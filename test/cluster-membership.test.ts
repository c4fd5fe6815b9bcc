/**
 * Issue 22, Cluster: three real nodes on one real etcd. Each lists all three Online with their labels, addresses
 * and capacity (API and `ferry node list` / `ferry cluster inspect`); a volume name is unique in the cluster; a node
 * killed with SIGKILL turns Offline once its heartbeat lease expires and Online again when it restarts; maintenance
 * takes a node out of placement; placement rules run over the live records.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { StoreClusterDirectory } from '../api/index.js';
import { clusterNamespace, connectEtcd } from '../node/index.js';
import { startCluster, type TestCluster } from './support/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({
    nodes: 3,
    labels: [
      { rack: 'r1', zone: 'z1' },
      { rack: 'r2', zone: 'z1' },
      { rack: 'r2', zone: 'z2' },
    ],
  });
}, 120_000);

afterAll(async () => {
  await cluster?.cleanup();
});

it('every node lists the three nodes Online with labels, addresses and capacity', async () => {
  const ids = cluster.nodes.map((n) => n.id).sort();
  for (let i = 0; i < 3; i++) {
    const listed = await cluster.listNodes(i);
    expect(listed.map((n) => n.id)).toEqual(ids);
    for (const node of cluster.nodes) {
      const seen = listed.find((n) => n.id === node.id);
      expect(seen).toMatchObject({
        state: 'Online',
        status: 'STATUS_OK',
        node_labels: node.labels,
        addresses: { api: node.apiUrl, nbd: node.nbdUrl, repl: `tls://${node.replAddr}` },
      });
      expect(seen?.capacity?.size_bytes).toBeGreaterThan(0);
    }
    const enumerated = await cluster.request<{ node_ids: string[] }>(i, 'GET', '/v1/nodes');
    expect(enumerated.node_ids).toEqual(ids);
  }
  const inspected = await cluster.request<{ cluster: { id: string; nodes: unknown } }>(
    1,
    'GET',
    '/v1/clusters/inspectcurrent',
  );
  expect(inspected.cluster).toMatchObject({ id: cluster.clusterId, nodes: { online: 3, offline: 0, maintenance: 0 } });

  const table = await cluster.ferry(2, ['node', 'list']);
  expect(table.stderr).toBe('');
  expect(table.code).toBe(0);
  for (const node of cluster.nodes) expect(table.stdout).toMatch(new RegExp(`${node.id}\\s+\\S+\\s+Online\\s+rack=`));
  const inspect = await cluster.ferry(0, ['--json', 'cluster', 'inspect']);
  expect(inspect.code).toBe(0);
  const report = JSON.parse(inspect.stdout) as { cluster: { id: string }; current_node: string; nodes: unknown[] };
  expect(report.cluster.id).toBe(cluster.clusterId);
  expect(report.current_node).toBe(cluster.nodes[0]?.id);
  expect(report.nodes).toHaveLength(3);
});

it('a volume name is unique in the cluster, and the catalog shows which node holds its replica', async () => {
  const created = await cluster.request<{ volume_id: string }>(0, 'POST', '/v1/volumes', {
    name: 'shared-name',
    spec: { size: 1024 * 1024 },
  });
  // Another node answers for the same name: the same volume for the same spec, ALREADY_EXISTS for another size.
  const again = await cluster.request<{ volume_id: string }>(1, 'POST', '/v1/volumes', {
    name: 'shared-name',
    spec: { size: 1024 * 1024 },
  });
  expect(again.volume_id).toBe(created.volume_id);
  await expect(
    cluster.request(2, 'POST', '/v1/volumes', { name: 'shared-name', spec: { size: 2 * 1024 * 1024 } }),
  ).rejects.toThrow(/409.*already exists with size/);
  const listed = await cluster.listNodes(2);
  const holders = listed.filter((n) => n.replicas.some((r) => r.volume_id === created.volume_id));
  expect(holders).toHaveLength(1);
  expect(holders[0]?.replicas).toContainEqual({
    volume_id: created.volume_id,
    volume_name: 'shared-name',
    state: 'in-sync',
  });
});

it('placement (the directory a node passes to its engine) spreads over racks of the live records', async () => {
  const store = await connectEtcd([cluster.etcd.url], { namespace: clusterNamespace(cluster.clusterId) });
  const dir = await mkdtemp(join(tmpdir(), 'ferry-placement-'));
  try {
    const { placement } = await StoreClusterDirectory.open({ dataDir: dir, store });
    const rackOf = (id: string | undefined) => cluster.nodes.find((n) => n.id === id)?.labels.rack;
    const two = await placement.place({ ha_level: 2, size: 1 });
    expect(new Set(two.map(rackOf))).toEqual(new Set(['r1', 'r2']));
    await expect(placement.place({ ha_level: 3, size: 1 })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining(
        'ha_level 3 needs 3 different racks: the cluster has 3 Online nodes labelled rack there (r1, r2)',
      ),
    });
    expect(await placement.place({ ha_level: 1, size: 1, zones: ['z2'] })).toEqual([cluster.nodes[2]?.id]);

    // Maintenance takes a node out of placement, and shows.
    const entered = await cluster.ferry(1, ['node', 'maintenance', cluster.nodes[2]?.id ?? '', '--enter']);
    expect(entered.stderr).toBe('');
    expect(entered.stdout).toContain('Maintenance');
    await cluster.waitForStates(0, { [cluster.nodes[2]?.id ?? '']: 'Maintenance' });
    await expect(placement.place({ ha_level: 1, size: 1, zones: ['z2'] })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
    expect((await cluster.ferry(0, ['node', 'maintenance', cluster.nodes[2]?.id ?? '', '--exit'])).code).toBe(0);
    await cluster.waitForStates(1, { [cluster.nodes[2]?.id ?? '']: 'Online' });
    expect(await placement.place({ ha_level: 1, size: 1, zones: ['z2'] })).toEqual([cluster.nodes[2]?.id]);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it('a node killed with SIGKILL turns Offline when its lease expires, and Online again when it restarts', async () => {
  const [a, b, c] = cluster.nodes.map((n) => n.id);
  if (a === undefined || b === undefined || c === undefined) throw new Error('three nodes expected');
  await cluster.kill(1);
  const listed = await cluster.waitForStates(0, { [a]: 'Online', [b]: 'Offline', [c]: 'Online' });
  // Its last announcement stays: labels and addresses of an Offline node are still shown.
  expect(listed.find((n) => n.id === b)).toMatchObject({ status: 'STATUS_OFFLINE', node_labels: { rack: 'r2' } });
  await cluster.waitForStates(2, { [b]: 'Offline' });
  const cli = await cluster.ferry(2, ['cluster', 'inspect']);
  expect(cli.stdout).toContain('3 nodes: 2 Online, 1 Offline, 0 Maintenance');
  await cluster.restart(1);
  await cluster.waitForStates(0, { [a]: 'Online', [b]: 'Online', [c]: 'Online' });
});

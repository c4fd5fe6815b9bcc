/**
 * A real `ferry node start` (the built CLI) answers the cluster, node and identity routes: the node id survives a
 * restart (it lives in `<dataDir>/node-id`), the cluster id too (it lives in the cluster store), and the API document
 * and reference page are served.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from './support/cli-node.js';

let dataDir: string | undefined;
let node: TestNode | undefined;

afterEach(async () => {
  await node?.stop();
  node = undefined;
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
});

async function get<T>(path: string): Promise<T> {
  if (node === undefined) throw new Error('no node');
  const res = await fetch(`${node.apiUrl}${path}`);
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

interface NodeView {
  id: string;
  status: string;
  api_url: string;
  hostname: string;
  mem_total: number;
}

describe('cluster and nodes on a running node', () => {
  it('reports a stable node id and cluster id across restarts', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'ferry-cluster-'));
    node = await startTestNode(dataDir, { FERRY_AUTH: 'off', FERRY_CLUSTER_NAME: 'east' });
    const idOnDisk = (await readFile(join(dataDir, 'node-id'), 'utf8')).trim();

    const { node: current } = await get<{ node: NodeView }>('/v1/nodes/inspectcurrent');
    expect(current).toMatchObject({ id: idOnDisk, status: 'STATUS_OK', api_url: node.apiUrl });
    expect(current.mem_total).toBeGreaterThan(0);
    expect(await get('/v1/nodes')).toEqual({ node_ids: [idOnDisk] });
    expect(await get(`/v1/nodes/inspect/${idOnDisk}`)).toEqual({ node: expect.objectContaining({ id: idOnDisk }) });
    const missing = await fetch(`${node.apiUrl}/v1/nodes/inspect/no-such-node`);
    expect(missing.status).toBe(404);
    const { cluster } = await get<{ cluster: { id: string; name: string; status: string } }>(
      '/v1/clusters/inspectcurrent',
    );
    expect(cluster).toMatchObject({ name: 'east', status: 'STATUS_OK' });
    const { capabilities } = await get<{ capabilities: { service: { type: string } }[] }>(
      '/v1/identities/capabilities',
    );
    expect(capabilities.map((c) => c.service.type)).toEqual(
      expect.arrayContaining(['CLUSTER', 'NODE', 'VOLUME', 'CREDENTIALS', 'CLOUD_BACKUP']),
    );
    expect((await fetch(`${node.apiUrl}/v1/docs`)).headers.get('content-type')).toMatch(/^text\/html/);

    await node.stop();
    node = await startTestNode(dataDir, { FERRY_AUTH: 'off', FERRY_CLUSTER_NAME: 'renamed' });
    const again = await get<{ node: NodeView }>('/v1/nodes/inspectcurrent');
    expect(again.node.id).toBe(idOnDisk);
    expect(again.node.api_url).toBe(node.apiUrl);
    // The cluster record is the first one written: a later start does not rename or re-id the cluster.
    expect(await get('/v1/clusters/inspectcurrent')).toEqual({ cluster });
  }, 60_000);
});

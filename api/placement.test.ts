/**
 * The API face of placement on a real engine and cluster directory: create's and update's replica fields (validated,
 * named in errors, passed to the engine), the views' replicas, and the locality ranking over announced nodes.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore, openEngine, type VolumeEngine, type VolumeInfo } from '../node/index.js';
import { requestJson } from '../test/support/app-request.js';
import { createApp } from './app.js';
import { StoreClusterDirectory } from './cluster-directory.js';
import { rankNodes } from './locality.js';
import { localityResponseSchema, volumeInspectResponseSchema } from './schemas/index.js';

const MiB = 1024 * 1024;

let base: string;
let store: MemoryStore;
let engine: VolumeEngine;
let directory: StoreClusterDirectory;
let others: StoreClusterDirectory[];
let app: Hono;

async function directoryIn(name: string): Promise<StoreClusterDirectory> {
  const dir = join(base, name);
  await mkdir(dir);
  return StoreClusterDirectory.open({ dataDir: dir, store });
}

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-api-placement-'));
  store = new MemoryStore();
  directory = await directoryIn('self');
  engine = await openEngine({ dataDir: join(base, 'self'), store, nodeId: directory.nodeId });
  await directory.announce('http://127.0.0.1:1', { rack: 'r1', zone: 'z1' });
  others = [];
  app = createApp({ engine, cluster: directory });
});

afterEach(async () => {
  for (const d of [directory, ...others]) await d.leave();
  await engine.close();
  await store.close();
  await rm(base, { recursive: true, force: true });
});

function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown) {
  return requestJson<T>(app, method, path, body);
}

describe('create and update: replica fields', () => {
  it('creates with spec.replica_set.nodes naming this node; inspect shows the replica, in-sync', async () => {
    const created = await call<{ volume_id: string }>('POST', '/v1/volumes', {
      name: 'v1',
      spec: { size: 4 * MiB, ha_level: 1, replica_set: { nodes: [directory.nodeId] } },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const view = await call('GET', `/v1/volumes/inspect/${created.body.volume_id}`);
    const parsed = volumeInspectResponseSchema.parse(view.body);
    expect(parsed.volume.spec.ha_level).toBe(1);
    expect(parsed.volume.replica_sets).toEqual([{ nodes: [directory.nodeId] }]);
    expect(parsed.volume.replicas).toEqual([{ node_id: directory.nodeId, state: 'in-sync' }]);
    expect(parsed.volume.attached_on).toBeUndefined();
    const listed = await call<{ volumes: unknown[] }>('POST', '/v1/volumes/inspectwithfilters', {});
    expect(listed.body.volumes.map((v) => volumeInspectResponseSchema.parse(v).volume.replicas)).toEqual([
      [{ node_id: directory.nodeId, state: 'in-sync' }],
    ]);
  });

  it.each([
    [{ replica_set: { nodes: ['a', 'a'] } }, 'spec.replica_set.nodes', /same node twice/],
    [{ replica_set: { nodes: [] } }, 'spec.replica_set.nodes', /at least one node/],
    [{ replica_set: { nodes: ['a', 'b', 'c', 'd'] } }, 'spec.replica_set.nodes', /at most 3 nodes/],
    [{ replica_set: { nodes: ['../x'] } }, 'spec.replica_set.nodes.0', /node id/],
    [{ racks: 'r1' }, 'spec.racks', /a list of racks/],
    [{ zones: ['z 1'] }, 'spec.zones.0', /label value/],
    [{ placement_strategy: {} }, 'spec.placement_strategy', /./],
  ])('refuses create spec %j naming %s', async (extra, field, message) => {
    const res = await call<{ code: string; field: string; message: string }>('POST', '/v1/volumes', {
      name: 'bad',
      spec: { size: 4 * MiB, ...extra },
    });
    expect([res.status, res.body.code, res.body.field]).toEqual([400, 'INVALID_ARGUMENT', field]);
    expect(res.body.message).toMatch(message);
    expect(await engine.listVolumes()).toEqual([]);
  });

  it('update: replica_set alone is refused; an ha_level change on a lone node is FAILED_PRECONDITION', async () => {
    await engine.createVolume({ name: 'v1', size: 4 * MiB });
    const alone = await call<{ field: string }>('PUT', '/v1/volumes/v1', {
      spec: { replica_set: { nodes: ['x'] } },
    });
    expect([alone.status, alone.body.field]).toEqual([400, 'spec.replica_set']);
    const two = await call<{ field: string }>('PUT', '/v1/volumes/v1', {
      spec: { ha_level: 2, replica_set: { nodes: ['x', 'y'] } },
    });
    expect([two.status, two.body.field]).toEqual([400, 'spec.replica_set.nodes']);
    const raise = await call<{ code: string; message: string }>('PUT', '/v1/volumes/v1', { spec: { ha_level: 2 } });
    expect([raise.status, raise.body.code]).toEqual([412, 'FAILED_PRECONDITION']);
    expect(raise.body.message).toMatch(/volume v1 cannot get another replica: this node runs alone/);
    expect((await engine.inspectVolume('v1')).ha_level).toBe(1);
    const same = await call('PUT', '/v1/volumes/v1', { spec: { ha_level: 1 } });
    expect(same.status).toBe(200);
  });
});

describe('locality', () => {
  it('ranks the online nodes: the replica, then its rack, then its zone, then the rest', async () => {
    const sameRack = await directoryIn('n2');
    const sameZone = await directoryIn('n3');
    const elsewhere = await directoryIn('n4');
    others.push(sameRack, sameZone, elsewhere);
    await sameRack.announce('http://127.0.0.1:2', { rack: 'r1', zone: 'z1' });
    await sameZone.announce('http://127.0.0.1:3', { rack: 'r2', zone: 'z1' });
    await elsewhere.announce('http://127.0.0.1:4', { rack: 'r3', zone: 'z2' });
    await engine.createVolume({ name: 'v1', size: 4 * MiB });
    const res = await call('GET', '/v1/volumes/v1/locality');
    expect(res.status).toBe(200);
    const answer = localityResponseSchema.parse(res.body);
    expect(answer.nodes.map((n) => [n.node_id, n.reason, n.score, n.rack, n.zone])).toEqual([
      [directory.nodeId, 'replica', 100, 'r1', 'z1'],
      [sameRack.nodeId, 'same-rack', 50, 'r1', 'z1'],
      [sameZone.nodeId, 'same-zone', 25, 'r2', 'z1'],
      [elsewhere.nodeId, 'other', 0, 'r3', 'z2'],
    ]);
    // A node that left (offline) is not ranked.
    await sameRack.leave();
    const after = localityResponseSchema.parse((await call('GET', '/v1/volumes/v1/locality')).body);
    expect(after.nodes.map((n) => n.node_id)).toEqual([directory.nodeId, sameZone.nodeId, elsewhere.nodeId]);
    expect((await call('GET', '/v1/volumes/nope/locality')).status).toBe(404);
  });

  it('puts in-sync replicas before filling ones, and ranks an out-of-sync one by its rack', () => {
    const node = (id: string, labels: Record<string, string>) => ({
      id,
      hostname: `h-${id}`,
      api_url: `http://${id}`,
      version: '1',
      start_time: '',
      last_seen: '',
      labels,
    });
    const volume = {
      replicas: [
        { node_id: 'c', state: 'filling' as const },
        { node_id: 'd', state: 'out-of-sync' as const },
        { node_id: 'b', state: 'in-sync' as const },
      ],
    } as VolumeInfo;
    const ranked = rankNodes(volume, [
      node('a', {}),
      node('b', { rack: 'r9' }),
      node('c', { zone: 'z9' }),
      node('d', { rack: 'r9' }),
      node('e', { zone: 'z9' }),
    ]);
    expect(ranked.map((n) => [n.node_id, n.reason])).toEqual([
      ['b', 'replica'],
      ['c', 'filling-replica'],
      ['d', 'same-rack'],
      ['e', 'same-zone'],
      ['a', 'other'],
    ]);
  });
});

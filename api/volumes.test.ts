import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openEngine, type VolumeEngine } from '../node/index.js';
import { requestJson } from '../test/support/app-request.js';
import { createApp } from './app.js';
import type { InspectView } from './views.js';

const GiB = 1024 ** 3;

let dataDir: string;
let engine: VolumeEngine;
let app: Hono;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-volumes-'));
  engine = await openEngine({ dataDir });
  app = createApp({ engine });
});

afterEach(async () => {
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  return requestJson<T>(app, method, path, body);
}

async function create(name: string, size: number | string = GiB, extra: Record<string, unknown> = {}): Promise<string> {
  const { status, body } = await call<{ volume_id: string }>('POST', '/v1/volumes', {
    name,
    spec: { size },
    ...extra,
  });
  expect(status).toBe(200);
  return body.volume_id;
}

describe('POST /v1/volumes (Create)', () => {
  it('creates a volume and returns its id', async () => {
    const id = await create('db1', GiB, { labels: { app: 'pg' } });
    expect(id).toMatch(/\S/);
    const volumes = await engine.listVolumes();
    expect(volumes.map((v) => [v.id, v.name, v.size, v.labels])).toEqual([[id, 'db1', GiB, { app: 'pg' }]]);
  });

  it('inspect names the node holding the volume (OpenStorage replica_sets)', async () => {
    const id = await create('db1');
    const nodeId = (await readFile(join(dataDir, 'node-id'), 'utf8')).trim();
    const { status, body } = await call<{ volume: { replica_sets?: { nodes: string[] }[] } }>(
      'GET',
      `/v1/volumes/inspect/${id}`,
    );
    expect(status).toBe(200);
    expect(body.volume.replica_sets).toEqual([{ nodes: [nodeId] }]);
  });

  it('is idempotent by name: same name and size answers 200 with the same id', async () => {
    const first = await create('db1');
    const second = await create('db1');
    expect(second).toBe(first);
    expect(await engine.listVolumes()).toHaveLength(1);
  });

  it('refuses the same name with another size: 409 ALREADY_EXISTS', async () => {
    await create('db1');
    const { status, body } = await call('POST', '/v1/volumes', { name: 'db1', spec: { size: 2 * GiB } });
    expect(status).toBe(409);
    expect(body.code).toBe('ALREADY_EXISTS');
    expect(body.message).toMatch(/db1/);
    expect((await engine.inspectVolume('db1')).size).toBe(GiB);
  });

  it('accepts the size as a numeric string (protobuf JSON uint64), ha_level and shared', async () => {
    const id = await create('s1', String(2 * GiB), {});
    const { status } = await call('POST', '/v1/volumes', {
      name: 's2',
      spec: { size: '8192', ha_level: 1, shared: true },
    });
    expect(status).toBe(200);
    expect((await engine.inspectVolume(id)).size).toBe(2 * GiB);
    const s2 = await engine.inspectVolume('s2');
    expect([s2.size, s2.ha_level, s2.shared]).toEqual([8192, 1, true]);
  });
});

describe('GET /v1/volumes/inspect/{volume_id} (Inspect)', () => {
  it('returns the OpenStorage Volume shape with Ferry extras, by id and by name', async () => {
    const id = await create('db1', GiB, { labels: { app: 'pg' } });
    const byId = await call<InspectView>('GET', `/v1/volumes/inspect/${id}`);
    const byName = await call<InspectView>('GET', '/v1/volumes/inspect/db1');
    expect(byId.status).toBe(200);
    expect(byName.body).toEqual(byId.body);
    const v = byId.body.volume;
    expect(byId.body.name).toBe('db1');
    expect(byId.body.labels).toEqual({ app: 'pg' });
    expect(v).toMatchObject({
      id,
      readonly: false,
      locator: { name: 'db1', volume_labels: { app: 'pg' } },
      spec: { size: GiB, ha_level: 1, shared: false },
      status: 'VOLUME_STATUS_UP',
      state: 'VOLUME_STATE_AVAILABLE',
      snapshot_count: 0,
      attached: false,
      bytes_used: 0,
      usage: 0,
      export_name: 'db1',
    });
    expect(Number.isNaN(Date.parse(v.ctime))).toBe(false);
    expect(v.source).toBeUndefined();
  });

  it('shows an attached volume as VOLUME_STATE_ATTACHED', async () => {
    await create('db1');
    const device = await engine.openExport('db1');
    try {
      const { body } = await call<InspectView>('GET', '/v1/volumes/inspect/db1');
      expect([body.volume.attached, body.volume.state]).toEqual([true, 'VOLUME_STATE_ATTACHED']);
    } finally {
      await device.close();
    }
  });

  it('answers 404 NOT_FOUND for an unknown volume', async () => {
    const { status, body } = await call('GET', '/v1/volumes/inspect/nope');
    expect(status).toBe(404);
    expect(body.code).toBe('NOT_FOUND');
    expect(Object.keys(body).sort()).toEqual(['code', 'message']);
  });
});

describe('GET /v1/volumes, POST /v1/volumes/filters, POST /v1/volumes/inspectwithfilters', () => {
  it('enumerates ids, filters by name and labels, and inspects with filters', async () => {
    const a = await create('a', GiB, { labels: { tier: 'gold', app: 'x' } });
    const b = await create('b', GiB, { labels: { tier: 'gold' } });
    await create('c', GiB, { labels: { tier: 'bronze' } });
    const all = await call<{ volume_ids: string[] }>('GET', '/v1/volumes');
    expect(all.body.volume_ids).toHaveLength(3);
    const gold = await call<{ volume_ids: string[] }>('POST', '/v1/volumes/filters', {
      locator: { volume_labels: { tier: 'gold' } },
    });
    expect(gold.body.volume_ids.sort()).toEqual([a, b].sort());
    const byName = await call<{ volume_ids: string[] }>('POST', '/v1/volumes/filters', { locator: { name: 'b' } });
    expect(byName.body.volume_ids).toEqual([b]);
    const inspected = await call<{ volumes: InspectView[] }>('POST', '/v1/volumes/inspectwithfilters', {
      labels: { tier: 'gold', app: 'x' },
    });
    expect(inspected.body.volumes.map((v) => v.volume.id)).toEqual([a]);
    const everything = await call<{ volumes: InspectView[] }>('POST', '/v1/volumes/inspectwithfilters', {});
    expect(everything.body.volumes.map((v) => v.name)).toEqual(['a', 'b', 'c']);
  });
});

describe('PUT /v1/volumes/{volume_id} (Update)', () => {
  it('grows a volume and sets and removes labels', async () => {
    const id = await create('db1', GiB, { labels: { keep: '1', drop: '2' } });
    const grown = await call('PUT', `/v1/volumes/${id}`, { volume_id: id, spec: { size: String(2 * GiB) } });
    expect(grown).toEqual({ status: 200, body: {} });
    const relabel = await call('PUT', '/v1/volumes/db1', { labels: { drop: '', add: 'yes' } });
    expect(relabel.status).toBe(200);
    const viaLocator = await call('PUT', '/v1/volumes/db1', { locator: { volume_labels: { extra: 'z' } } });
    expect(viaLocator.status).toBe(200);
    const after = await engine.inspectVolume(id);
    expect(after.size).toBe(2 * GiB);
    expect(after.labels).toEqual({ keep: '1', add: 'yes', extra: 'z' });
  });

  it('refuses to shrink: 400 naming spec.size, size unchanged', async () => {
    const id = await create('db1', 2 * GiB);
    const { status, body } = await call('PUT', `/v1/volumes/${id}`, { spec: { size: GiB } });
    expect(status).toBe(400);
    expect(body).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'spec.size' });
    expect((await engine.inspectVolume(id)).size).toBe(2 * GiB);
  });

  it('refuses a body volume_id that differs from the path', async () => {
    await create('db1');
    const { status, body } = await call('PUT', '/v1/volumes/db1', { volume_id: 'other', spec: { size: 2 * GiB } });
    expect(status).toBe(400);
    expect(body.field).toBe('volume_id');
    expect((await engine.inspectVolume('db1')).size).toBe(GiB);
  });

  it('answers 404 for an unknown volume', async () => {
    const { status, body } = await call('PUT', '/v1/volumes/nope', { spec: { size: GiB } });
    expect(status).toBe(404);
    expect(body.code).toBe('NOT_FOUND');
  });
});

describe('DELETE /v1/volumes/{volume_id} (Delete)', () => {
  it('deletes by id or name; a second delete is 404', async () => {
    const id = await create('a');
    await create('b');
    expect(await call('DELETE', `/v1/volumes/${id}`)).toEqual({ status: 200, body: {} });
    expect(await call('DELETE', '/v1/volumes/b')).toEqual({ status: 200, body: {} });
    expect(await engine.listVolumes()).toEqual([]);
    const again = await call('DELETE', `/v1/volumes/${id}`);
    expect(again.status).toBe(404);
    expect(again.body.code).toBe('NOT_FOUND');
  });

  it('refuses to delete an attached volume: 412 FAILED_PRECONDITION', async () => {
    await create('db1');
    const device = await engine.openExport('db1');
    try {
      const { status, body } = await call('DELETE', '/v1/volumes/db1');
      expect(status).toBe(412);
      expect(body.code).toBe('FAILED_PRECONDITION');
    } finally {
      await device.close();
    }
    expect(await engine.listVolumes()).toHaveLength(1);
  });
});

describe('POST /v1/volumes/clone (Clone)', () => {
  it('clones a snapshot (source.parent is the snapshot) and a live volume, keeping the data', async () => {
    await create('db1', GiB);
    const device = await engine.openExport('db1');
    await device.write(0, Buffer.alloc(4096, 7));
    await device.close();
    const snap = await call<{ snapshot_id: string }>('POST', '/v1/volumes/snapshots', { volume_id: 'db1', name: 's1' });
    const fromSnap = await call<{ volume_id: string }>('POST', '/v1/volumes/clone', {
      name: 'copy1',
      parent_id: snap.body.snapshot_id,
      additional_labels: { from: 'snap' },
    });
    expect(fromSnap.status).toBe(200);
    const inspected = await call<InspectView>('GET', `/v1/volumes/inspect/${fromSnap.body.volume_id}`);
    expect(inspected.body.volume.source).toEqual({ parent: snap.body.snapshot_id });
    expect(inspected.body.labels).toEqual({ from: 'snap' });
    const fromVolume = await call<{ volume_id: string }>('POST', '/v1/volumes/clone', {
      name: 'copy2',
      parent_id: 'db1',
    });
    expect(fromVolume.status).toBe(200);
    const clone = await engine.openExport('copy2');
    expect((await clone.read(0, 4096)).equals(Buffer.alloc(4096, 7))).toBe(true);
    await clone.close();
  });

  it('refuses an existing name (409) and an unknown parent (404)', async () => {
    await create('db1');
    const dup = await call('POST', '/v1/volumes/clone', { name: 'db1', parent_id: 'db1' });
    expect([dup.status, dup.body.code]).toEqual([409, 'ALREADY_EXISTS']);
    const missing = await call('POST', '/v1/volumes/clone', { name: 'x', parent_id: 'nope' });
    expect([missing.status, missing.body.code]).toEqual([404, 'NOT_FOUND']);
    expect((await engine.listVolumes()).map((v) => v.name)).toEqual(['db1']);
  });
});

describe('GET /v1/volumes/{volume_id}/changed_blocks', () => {
  it('returns the allocation map, the diff since a snapshot, and pages with next_offset', async () => {
    await create('db1', GiB);
    const device = await engine.openExport('db1');
    await device.write(0, Buffer.alloc(4096, 1));
    await device.write(1024 * 1024, Buffer.alloc(8192, 2));
    await device.close();
    await call('POST', '/v1/volumes/snapshots', { volume_id: 'db1', name: 's1' });
    const device2 = await engine.openExport('db1');
    await device2.write(512 * 1024 * 1024, Buffer.alloc(4096, 3));
    await device2.close();

    const all = await call('GET', '/v1/volumes/db1/changed_blocks');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ block_size: 4096, size: GiB });
    expect(all.body.extents).toEqual([
      { offset: 0, length: 4096 },
      { offset: 1024 * 1024, length: 8192 },
      { offset: 512 * 1024 * 1024, length: 4096 },
    ]);
    expect(all.body.next_offset).toBeUndefined();

    const since = await call('GET', '/v1/volumes/db1/changed_blocks?base_snapshot_id=db1@s1');
    expect(since.body.extents).toEqual([{ offset: 512 * 1024 * 1024, length: 4096 }]);

    const first = await call<{ extents: unknown[]; next_offset?: number }>(
      'GET',
      '/v1/volumes/db1/changed_blocks?limit=2',
    );
    expect(first.body.extents).toHaveLength(2);
    expect(typeof first.body.next_offset).toBe('number');
    const rest = await call<{ extents: unknown[]; next_offset?: number }>(
      'GET',
      `/v1/volumes/db1/changed_blocks?limit=2&offset=${first.body.next_offset}`,
    );
    expect(rest.body.extents).toEqual([{ offset: 512 * 1024 * 1024, length: 4096 }]);
    expect(rest.body.next_offset).toBeUndefined();
  });

  it('answers 404 for an unknown volume or snapshot and 400 naming a bad query field', async () => {
    await create('db1');
    expect((await call('GET', '/v1/volumes/nope/changed_blocks')).status).toBe(404);
    expect((await call('GET', '/v1/volumes/db1/changed_blocks?base_snapshot_id=nope')).status).toBe(404);
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=abc', 'limit'],
      ['offset=-1', 'offset'],
      ['colour=red', 'colour'],
    ]) {
      const { status, body } = await call('GET', `/v1/volumes/db1/changed_blocks?${query}`);
      expect([status, body.code, body.field]).toEqual([400, 'INVALID_ARGUMENT', field]);
    }
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openEngine, type VolumeEngine } from '../node/index.js';
import { requestJson } from '../test/support/app-request.js';
import { createApp } from './app.js';
import type { InspectView } from './views.js';

const MiB = 1024 ** 2;

let dataDir: string;
let engine: VolumeEngine;
let app: Hono;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-snapshots-'));
  engine = await openEngine({ dataDir });
  app = createApp({ engine });
  expect((await call('POST', '/v1/volumes', { name: 'db1', spec: { size: 64 * MiB } })).status).toBe(200);
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

async function snapshot(name: string, labels?: Record<string, string>): Promise<string> {
  const { status, body } = await call<{ snapshot_id: string }>('POST', '/v1/volumes/snapshots', {
    volume_id: 'db1',
    name,
    ...(labels !== undefined && { labels }),
  });
  expect(status).toBe(200);
  return body.snapshot_id;
}

async function writeByte(value: number): Promise<void> {
  const device = await engine.openExport('db1');
  await device.write(0, Buffer.alloc(4096, value));
  await device.close();
}

async function readByte(): Promise<number> {
  const device = await engine.openExport('db1');
  const data = await device.read(0, 1);
  await device.close();
  return data[0] ?? -1;
}

describe('snapshots', () => {
  it('creates (SnapshotCreate), enumerates (SnapshotEnumerate) and inspects a snapshot as a read-only volume', async () => {
    const s1 = await snapshot('s1', { kind: 'hourly' });
    const s2 = await snapshot('s2');
    const listed = await call<{ volume_snapshot_ids: string[] }>('GET', '/v1/volumes/snapshots/db1');
    expect(listed).toEqual({ status: 200, body: { volume_snapshot_ids: [s1, s2] } });

    const volumeId = (await engine.inspectVolume('db1')).id;
    for (const ref of [s1, 'db1@s1']) {
      const { status, body } = await call<InspectView>('GET', `/v1/volumes/inspect/${encodeURIComponent(ref)}`);
      expect(status).toBe(200);
      expect(body.name).toBe('s1');
      expect(body.labels).toEqual({ kind: 'hourly' });
      expect(body.volume).toMatchObject({
        id: s1,
        readonly: true,
        source: { parent: volumeId },
        locator: { name: 's1', volume_labels: { kind: 'hourly' } },
        spec: { size: 64 * MiB },
        status: 'VOLUME_STATUS_UP',
        export_name: 'db1@s1',
      });
    }
    const volume = await call<InspectView>('GET', '/v1/volumes/inspect/db1');
    expect(volume.body.volume.snapshot_count).toBe(2);
  });

  it('filters snapshots by labels (SnapshotEnumerateWithFilters)', async () => {
    const s1 = await snapshot('s1', { kind: 'hourly' });
    await snapshot('s2', { kind: 'daily' });
    const { status, body } = await call('POST', '/v1/volumes/snapshots/db1/filters', { labels: { kind: 'hourly' } });
    expect([status, body.volume_snapshot_ids]).toEqual([200, [s1]]);
  });

  it('restores a volume to a snapshot by id or name (SnapshotRestore)', async () => {
    await writeByte(1);
    const s1 = await snapshot('s1');
    await writeByte(2);
    await snapshot('s2');
    await writeByte(3);
    expect(await call('POST', '/v1/volumes/snapshots/restore', { volume_id: 'db1', snapshot_id: s1 })).toEqual({
      status: 200,
      body: {},
    });
    expect(await readByte()).toBe(1);
    expect((await call('POST', '/v1/volumes/snapshots/restore', { volume_id: 'db1', snapshot_id: 's2' })).status).toBe(
      200,
    );
    expect(await readByte()).toBe(2);
  });

  it('refuses a restore while the volume is attached (412) and of an unknown snapshot (404)', async () => {
    const s1 = await snapshot('s1');
    const device = await engine.openExport('db1');
    try {
      const busy = await call('POST', '/v1/volumes/snapshots/restore', { volume_id: 'db1', snapshot_id: s1 });
      expect([busy.status, busy.body.code]).toEqual([412, 'FAILED_PRECONDITION']);
    } finally {
      await device.close();
    }
    const missing = await call('POST', '/v1/volumes/snapshots/restore', { volume_id: 'db1', snapshot_id: 'nope' });
    expect([missing.status, missing.body.code]).toEqual([404, 'NOT_FOUND']);
  });

  it('deletes snapshots through DELETE /v1/volumes/{id}, by id and by VOLUME@SNAPSHOT, leaving the volume', async () => {
    const s1 = await snapshot('s1');
    await snapshot('s2');
    expect(await call('DELETE', `/v1/volumes/${s1}`)).toEqual({ status: 200, body: {} });
    expect(await call('DELETE', '/v1/volumes/db1@s2')).toEqual({ status: 200, body: {} });
    expect(await engine.listSnapshots('db1')).toEqual([]);
    expect((await engine.inspectVolume('db1')).name).toBe('db1');
    expect((await call('DELETE', `/v1/volumes/${s1}`)).status).toBe(404);
    expect((await call('GET', `/v1/volumes/inspect/${s1}`)).status).toBe(404);
  });

  it('refuses a duplicate snapshot name (409) and the 65th snapshot (429 RESOURCE_EXHAUSTED)', async () => {
    await snapshot('s0');
    const dup = await call('POST', '/v1/volumes/snapshots', { volume_id: 'db1', name: 's0' });
    expect([dup.status, dup.body.code]).toEqual([409, 'ALREADY_EXISTS']);
    for (let i = 1; i < 64; i += 1) await snapshot(`s${i}`);
    const full = await call('POST', '/v1/volumes/snapshots', { volume_id: 'db1', name: 's64' });
    expect([full.status, full.body.code]).toEqual([429, 'RESOURCE_EXHAUSTED']);
    expect(await engine.listSnapshots('db1')).toHaveLength(64);
  });

  it('answers 404 for snapshots of an unknown volume', async () => {
    const list = await call('GET', '/v1/volumes/snapshots/nope');
    expect([list.status, list.body.code]).toEqual([404, 'NOT_FOUND']);
    const create = await call('POST', '/v1/volumes/snapshots', { volume_id: 'nope', name: 's1' });
    expect([create.status, create.body.code]).toEqual([404, 'NOT_FOUND']);
  });
});

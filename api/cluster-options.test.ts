/**
 * GET/PUT /v1/clusters/options (the replication settings in the cluster store) and a volume's
 * spec.resync_bandwidth in PUT /v1/volumes/{id}, on a real engine and cluster directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore, openEngine, type VolumeEngine } from '../node/index.js';
import { requestJson } from '../test/support/app-request.js';
import { createApp } from './app.js';
import { StoreClusterDirectory } from './cluster-directory.js';

const MiB = 1024 * 1024;

let base: string;
let store: MemoryStore;
let engine: VolumeEngine;
let directory: StoreClusterDirectory;
let app: Hono;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-api-options-'));
  store = new MemoryStore();
  directory = await StoreClusterDirectory.open({ dataDir: base, store });
  engine = await openEngine({ dataDir: base, store, nodeId: directory.nodeId });
  app = createApp({ engine, cluster: directory });
});

afterEach(async () => {
  await engine.close();
  await store.close();
  await rm(base, { recursive: true, force: true });
});

type Answer = { options?: Record<string, number>; error?: { field?: string }; code?: number; message?: string };
const call = (method: string, path: string, body?: unknown) => requestJson<Answer>(app, method, path, body);

describe('cluster options', () => {
  it('answers the defaults, then changes only the settings given', async () => {
    expect(await call('GET', '/v1/clusters/options')).toEqual({
      status: 200,
      body: { options: { resync_bandwidth: 0, replica_timeout_seconds: 600 } },
    });
    const put = await call('PUT', '/v1/clusters/options', { resync_bandwidth: 100 * MiB });
    expect(put).toEqual({
      status: 200,
      body: { options: { resync_bandwidth: 100 * MiB, replica_timeout_seconds: 600 } },
    });
    await call('PUT', '/v1/clusters/options', { replica_timeout_seconds: 120 });
    expect((await call('GET', '/v1/clusters/options')).body.options).toEqual({
      resync_bandwidth: 100 * MiB,
      replica_timeout_seconds: 120,
    });
    expect(await store.get('/ferry/settings/replication')).toEqual({
      resync_bandwidth: 100 * MiB,
      replica_timeout_seconds: 120,
    });
  });

  it('refuses bad settings naming the field, changing nothing', async () => {
    for (const [body, field] of [
      [{ replica_timeout_seconds: 0 }, 'replica_timeout_seconds'],
      [{ resync_bandwidth: -1 }, 'resync_bandwidth'],
      [{ resync_bandwidth: '10M' }, 'resync_bandwidth'],
      [{ bandwidth: 1 }, 'bandwidth'],
    ] as const) {
      const answer = await call('PUT', '/v1/clusters/options', body);
      expect(answer.status).toBe(400);
      expect(JSON.stringify(answer.body)).toContain(field);
    }
    expect(await store.get('/ferry/settings/replication')).toBeUndefined();
  });
});

describe("a volume's resync bandwidth", () => {
  it('sets it with spec.resync_bandwidth (0: none), null follows the cluster again, a bad one names the field', async () => {
    const { volume } = await engine.createVolume({ name: 'v', size: 4 * MiB });
    const record = async () => (await store.get<{ resync_bandwidth?: number }>(`/ferry/volumes/${volume.id}`)) ?? {};
    expect((await call('PUT', `/v1/volumes/${volume.id}`, { spec: { resync_bandwidth: 50 * MiB } })).status).toBe(200);
    expect((await record()).resync_bandwidth).toBe(50 * MiB);
    expect((await call('PUT', `/v1/volumes/v`, { spec: { resync_bandwidth: 0 } })).status).toBe(200);
    expect((await record()).resync_bandwidth).toBe(0);
    expect((await call('PUT', `/v1/volumes/v`, { spec: { resync_bandwidth: null } })).status).toBe(200);
    expect((await record()).resync_bandwidth).toBeUndefined();
    const bad = await call('PUT', `/v1/volumes/v`, { spec: { resync_bandwidth: 1.5 } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('spec.resync_bandwidth');
  });
});

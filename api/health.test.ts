import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../common/index.js';
import { openEngine, type SpaceStatus, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';
import { checkReadiness, type ReadinessCheck } from './health.js';

let dataDir: string;
let engine: VolumeEngine;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-health-'));
  engine = await openEngine({ dataDir });
});

afterAll(async () => {
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

const ok: ReadinessCheck = { name: 'ok', check: async () => undefined };
const broken: ReadinessCheck = {
  name: 'cluster_store',
  check: async () => {
    throw new Error('database is closed');
  },
};
/** A check that never answers unless aborted. */
function hanging(seen: { aborted: boolean }): ReadinessCheck {
  return {
    name: 'slow',
    check: (signal) =>
      new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          seen.aborted = true;
          reject(new Error('aborted'));
        }),
      ),
  };
}

describe('checkReadiness', () => {
  it('is ready when every check passes, and names each failure otherwise', async () => {
    expect(await checkReadiness([ok])).toEqual({ ready: true, checks: { ok: 'ok' } });
    expect(await checkReadiness([])).toEqual({ ready: true, checks: {} });
    expect(await checkReadiness([ok, broken])).toEqual({
      ready: false,
      checks: { ok: 'ok', cluster_store: 'database is closed' },
    });
  });

  it('fails a check that does not answer within the timeout, and aborts it', async () => {
    const seen = { aborted: false };
    const report = await checkReadiness([ok, hanging(seen)], 20);
    expect(report).toEqual({ ready: false, checks: { ok: 'ok', slow: 'no answer within 20 ms' } });
    expect(seen.aborted).toBe(true);
  });
});

describe('GET /healthz and /readyz', () => {
  it('answer outside /v1 even when /v1 refuses every request', async () => {
    const app = createApp({
      engine,
      readiness: [ok],
      authenticate: async () => {
        throw new FerryError('UNAUTHENTICATED', 'send a bearer token');
      },
    });
    expect((await app.request('/v1/volumes')).status).toBe(401);
    const health = await app.request('/healthz');
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    const ready = await app.request('/readyz');
    expect([ready.status, await ready.json()]).toEqual([
      200,
      {
        status: 'ready',
        checks: { engine: 'ok', data_dir: 'ok', ok: 'ok' },
        space: expect.objectContaining({ state: 'ok', path: dataDir, warn_percent: 90 }),
      },
    ]);
  });

  it('/readyz answers 503 UNAVAILABLE naming the failed check while /healthz stays 200', async () => {
    const app = createApp({ engine, readiness: [broken] });
    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toBe('1');
    expect(await ready.json()).toEqual({
      code: 'UNAVAILABLE',
      message: 'not ready: cluster_store (database is closed)',
      checks: { engine: 'ok', data_dir: 'ok', cluster_store: 'database is closed' },
      space: expect.objectContaining({ state: 'ok' }),
    });
    expect((await app.request('/healthz')).status).toBe(200);
  });

  it('checks the engine itself', async () => {
    const failing = {
      ...engine,
      listVolumes: async () => {
        throw new Error('engine is closed');
      },
    } as VolumeEngine;
    const ready = await createApp({ engine: failing }).request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { engine: 'engine is closed' } });
  });

  it('/readyz is 503 while the data directory is full, saying how full, with the space in the answer', async () => {
    const space: SpaceStatus = {
      state: 'full',
      path: '/var/lib/ferry',
      size_bytes: 256 * 1024 * 1024,
      free_bytes: 3 * 1024 * 1024,
      used_percent: 98.8,
      warn_percent: 90,
      min_free_bytes: 16 * 1024 * 1024,
      reserve_bytes: 16 * 1024 * 1024,
      reserve_held: true,
      reason: 'fewer than 16.0 MiB are free',
    };
    const full = { listVolumes: async () => [], spaceStatus: async () => space } as unknown as VolumeEngine;
    const ready = await createApp({ engine: full }).request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({
      code: 'UNAVAILABLE',
      message:
        'not ready: data_dir (out of space: /var/lib/ferry has 3.0 MiB free of 256.0 MiB (98.8% used; fewer than 16.0 MiB are free); delete snapshots or volumes, or grow the file system)',
      checks: { engine: 'ok', data_dir: expect.stringMatching(/^out of space/) },
      space,
    });
    const warn = { ...space, state: 'warn' as const, free_bytes: 20 * 1024 * 1024 };
    const warned = { listVolumes: async () => [], spaceStatus: async () => warn } as unknown as VolumeEngine;
    const ok = await createApp({ engine: warned }).request('/readyz');
    expect([ok.status, await ok.json()]).toEqual([
      200,
      { status: 'ready', checks: { engine: 'ok', data_dir: 'ok' }, space: warn },
    ]);
  });
});

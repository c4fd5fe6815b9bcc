/**
 * The schedule policy and cloud backup schedule routes in process (`app.request`) against a real engine, cluster
 * store and credential store in a temp dir: create, list, inspect, update, delete, bad input naming the field.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CredentialStore } from '../cloudsnap/index.js';
import { type LocalKeyring, openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { requestJson } from '../test/support/app-request.js';
import { createApp } from './app.js';
import { ScheduleRecords } from './schedules/index.js';

let dataDir: string;
let store: SqliteStore;
let keyring: LocalKeyring;
let engine: VolumeEngine;
let app: Hono;
let changes = 0;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-schedules-'));
  store = new SqliteStore(join(dataDir, 'cluster.db'));
  engine = await openEngine({ dataDir, store });
  keyring = await openDefaultKeyring(dataDir);
  const credentials = new CredentialStore(store, keyring);
  await mkdir(join(dataDir, 'objects', 'b'), { recursive: true });
  await credentials.create({ name: 'local', bucket: 'b', directory_credential: { path: join(dataDir, 'objects') } });
  await engine.createVolume({ name: 'db', size: 1024 * 1024 });
  changes = 0;
  const records = new ScheduleRecords(store, () => Date.parse('2024-03-10T10:00:00Z'));
  app = createApp({
    engine,
    credentials,
    schedules: { records, changed: () => changes++, now: () => Date.parse('2024-03-10T10:00:00Z') },
  });
});

afterEach(async () => {
  await engine.close();
  await store.close();
  await keyring.close();
  await rm(dataDir, { recursive: true, force: true });
});

function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown) {
  return requestJson<T>(app, method, path, body);
}

const hourlyGfs = {
  name: 'hourly-gfs',
  schedules: [
    { periodic: { seconds: '3600' }, retain: 24 },
    { daily: { hour: 2 }, retain: '7' },
  ],
  retention: { daily: 7, weekly: 4, monthly: 12 },
};

describe('/v1/schedulepolicies', () => {
  it('creates, lists, inspects, updates and deletes a policy (protobuf JSON forms accepted)', async () => {
    expect((await call('POST', '/v1/schedulepolicies', { schedule_policy: hourlyGfs })).status).toBe(200);
    const inspected = await call<{ policy: Record<string, unknown> }>('GET', '/v1/schedulepolicies/inspect/hourly-gfs');
    expect(inspected.status).toBe(200);
    expect(inspected.body.policy).toMatchObject({
      name: 'hourly-gfs',
      schedules: [
        { periodic: { seconds: 3600 }, retain: 24 },
        { daily: { hour: 2, minute: 0 }, retain: 7 },
      ],
      retention: { daily: 7, weekly: 4, monthly: 12 },
      owner: '',
    });
    const again = await call('POST', '/v1/schedulepolicies', { schedule_policy: hourlyGfs });
    expect(again.status).toBe(409);
    const weekly = {
      name: 'hourly-gfs',
      schedules: [{ weekly: { day: 'SdkTimeWeekdayFriday', hour: 23 }, retain: 4 }],
    };
    expect((await call('PUT', '/v1/schedulepolicies', { schedule_policy: weekly })).status).toBe(200);
    const list = await call<{ policies: Array<{ name: string; schedules: unknown[]; retention?: unknown }> }>(
      'GET',
      '/v1/schedulepolicies',
    );
    expect(list.body.policies).toHaveLength(1);
    expect(list.body.policies[0]?.schedules).toEqual([{ weekly: { day: 'Friday', hour: 23, minute: 0 }, retain: 4 }]);
    expect(list.body.policies[0]?.retention).toBeUndefined();
    expect((await call('DELETE', '/v1/schedulepolicies/hourly-gfs')).status).toBe(200);
    expect((await call('GET', '/v1/schedulepolicies/inspect/hourly-gfs')).status).toBe(404);
    expect((await call('PUT', '/v1/schedulepolicies', { schedule_policy: weekly })).status).toBe(404);
    expect(changes).toBe(3);
  });

  it('names the field at fault', async () => {
    const cases: Array<[unknown, string]> = [
      [{ schedule_policy: { name: 'p', schedules: [] } }, 'schedule_policy.schedules'],
      [{ schedule_policy: { name: 'p', schedules: [{ retain: 1 }] } }, 'schedule_policy.schedules.0'],
      [
        { schedule_policy: { name: 'p', schedules: [{ retain: 1, daily: {}, periodic: { seconds: 60 } }] } },
        'schedule_policy.schedules.0',
      ],
      [{ schedule_policy: { name: 'p', schedules: [{ retain: 0, daily: {} }] } }, 'schedule_policy.schedules.0.retain'],
      [
        { schedule_policy: { name: 'p', schedules: [{ retain: 1, daily: { hour: 24 } }] } },
        'schedule_policy.schedules.0.daily.hour',
      ],
      [
        { schedule_policy: { name: 'p', schedules: [{ retain: 1, periodic: { seconds: 5 } }] } },
        'schedule_policy.schedules.0.periodic.seconds',
      ],
      [
        { schedule_policy: { name: 'p', schedules: [{ retain: 1, weekly: { day: 'Funday' } }] } },
        'schedule_policy.schedules.0.weekly.day',
      ],
      [
        { schedule_policy: { name: 'p', schedules: [{ retain: 1, daily: {} }], retention: { daily: -1 } } },
        'schedule_policy.retention.daily',
      ],
    ];
    for (const [body, field] of cases) {
      const r = await call<{ code: string; field: string }>('POST', '/v1/schedulepolicies', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.field).toBe(field);
    }
  });
});

describe('/v1/cloudbackups/schedules', () => {
  it('creates a schedule (own intervals or a policy), lists it with its next run, deletes it', async () => {
    const own = await call<{ backup_schedule_id: string }>('POST', '/v1/cloudbackups/schedules', {
      cloud_sched_info: {
        src_volume_id: 'db',
        credential_id: 'local',
        schedules: [{ daily: { hour: 2, minute: 30 }, retain: 7 }],
        max_backups: 10,
        labels: { app: 'db' },
      },
    });
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    await call('POST', '/v1/schedulepolicies', { schedule_policy: hourlyGfs });
    const viaPolicy = await call<{ backup_schedule_id: string }>('POST', '/v1/cloudbackups/schedules', {
      cloud_sched_info: { src_volume_id: 'db', credential_id: 'local', policy_name: 'hourly-gfs' },
    });
    expect(viaPolicy.status).toBe(200);
    const list = await call<{ cloud_sched_list: Record<string, Record<string, unknown>> }>(
      'GET',
      '/v1/cloudbackups/schedules',
    );
    const volumeId = (await engine.inspectVolume('db')).id;
    expect(list.body.cloud_sched_list[own.body.backup_schedule_id]).toMatchObject({
      src_volume_id: volumeId,
      max_backups: 10,
      labels: { app: 'db' },
      next_run: '2024-03-11T02:30:00.000Z',
    });
    expect(list.body.cloud_sched_list[viaPolicy.body.backup_schedule_id]).toMatchObject({
      policy_name: 'hourly-gfs',
      next_run: '2024-03-10T11:00:00.000Z',
    });
    // A policy in use cannot be deleted.
    expect((await call('DELETE', '/v1/schedulepolicies/hourly-gfs')).status).toBe(412);
    expect((await call('DELETE', `/v1/cloudbackups/schedules/${viaPolicy.body.backup_schedule_id}`)).status).toBe(200);
    expect((await call('DELETE', '/v1/schedulepolicies/hourly-gfs')).status).toBe(200);
    expect((await call('DELETE', `/v1/cloudbackups/schedules/${viaPolicy.body.backup_schedule_id}`)).status).toBe(404);
  });

  it('updates a schedule in place (SchedUpdate): same id and owner, new intervals; unknown ids are 404', async () => {
    const created = await call<{ backup_schedule_id: string }>('POST', '/v1/cloudbackups/schedules', {
      cloud_sched_info: { src_volume_id: 'db', credential_id: 'local', schedules: [{ daily: { hour: 2 }, retain: 7 }] },
    });
    const id = created.body.backup_schedule_id;
    const updated = await call('PUT', '/v1/cloudbackups/schedules', {
      sched_uuid: id,
      cloud_sched_info: {
        src_volume_id: 'db',
        credential_id: 'local',
        schedules: [{ daily: { hour: 4, minute: 15 }, retain: 3 }],
        labels: { tier: 'gold' },
      },
    });
    expect(updated.status).toBe(200);
    const list = await call<{ cloud_sched_list: Record<string, Record<string, unknown>> }>(
      'GET',
      '/v1/cloudbackups/schedules',
    );
    expect(Object.keys(list.body.cloud_sched_list)).toEqual([id]);
    expect(list.body.cloud_sched_list[id]).toMatchObject({
      labels: { tier: 'gold' },
      next_run: '2024-03-11T04:15:00.000Z',
      schedules: [{ daily: { hour: 4, minute: 15 }, retain: 3 }],
    });
    const missing = await call('PUT', '/v1/cloudbackups/schedules', {
      sched_uuid: '00000000-0000-0000-0000-000000000000',
      cloud_sched_info: { src_volume_id: 'db', credential_id: 'local', policy_name: 'nope' },
    });
    expect(missing.status).toBe(404);
    const bad = await call<{ field: string }>('PUT', '/v1/cloudbackups/schedules', {
      sched_uuid: 'x',
      cloud_sched_info: {},
    });
    expect(bad.status).toBe(400);
  });

  it('refuses unknown volumes, credentials and policies, and schedules with both or neither kind of interval', async () => {
    const base = { src_volume_id: 'db', credential_id: 'local' };
    const daily = [{ daily: {}, retain: 1 }];
    const r1 = await call('POST', '/v1/cloudbackups/schedules', {
      cloud_sched_info: { ...base, src_volume_id: 'nope', schedules: daily },
    });
    expect(r1.status).toBe(404);
    const r2 = await call('POST', '/v1/cloudbackups/schedules', {
      cloud_sched_info: { ...base, credential_id: 'nope', schedules: daily },
    });
    expect(r2.status).toBe(404);
    const r3 = await call('POST', '/v1/cloudbackups/schedules', { cloud_sched_info: { ...base, policy_name: 'nope' } });
    expect(r3.status).toBe(404);
    const r4 = await call<{ field: string }>('POST', '/v1/cloudbackups/schedules', { cloud_sched_info: base });
    expect(r4.status).toBe(400);
    expect(r4.body.field).toBe('cloud_sched_info.schedules');
    const r5 = await call('POST', '/v1/cloudbackups/schedules', {
      cloud_sched_info: { ...base, schedules: daily, policy_name: 'x' },
    });
    expect(r5.status).toBe(400);
    expect((await call('DELETE', '/v1/cloudbackups/schedules/not-an-id')).status).toBe(400);
  });

  it('answers 503 when the node runs no schedules', async () => {
    const bare = createApp({ engine });
    expect((await requestJson(bare, 'GET', '/v1/schedulepolicies')).status).toBe(503);
    expect((await requestJson(bare, 'GET', '/v1/cloudbackups/schedules')).status).toBe(503);
  });
});

describe('deleting what a schedule uses', () => {
  async function schedule(volume = 'db'): Promise<string> {
    const made = await call<{ backup_schedule_id: string }>('POST', '/v1/cloudbackups/schedules', {
      cloud_sched_info: {
        src_volume_id: volume,
        credential_id: 'local',
        schedules: [{ daily: { hour: 2, minute: 30 }, retain: 7 }],
      },
    });
    expect(made.status).toBe(200);
    return made.body.backup_schedule_id;
  }

  async function scheduleIds(): Promise<string[]> {
    const listed = await call<{ cloud_sched_list: Record<string, unknown> }>('GET', '/v1/cloudbackups/schedules');
    return Object.keys(listed.body.cloud_sched_list).sort();
  }

  it('a volume: refused naming its schedules; with_schedules deletes both in one step', async () => {
    await engine.createVolume({ name: 'other', size: 1024 * 1024 });
    const a = await schedule();
    const b = await schedule();
    const kept = await schedule('other');
    const refused = await call('DELETE', '/v1/volumes/db');
    expect(refused.status).toBe(412);
    expect(refused.body).toMatchObject({ code: 'FAILED_PRECONDITION' });
    const both = [a, b].sort();
    expect(refused.body.message).toContain(`volume db is used by cloud backup schedules ${both.join(', ')}:`);
    expect(refused.body.message).toMatch(/--with-schedules/);
    expect((await call('GET', '/v1/volumes/inspect/db')).status).toBe(200);
    expect(await scheduleIds()).toEqual([a, b, kept].sort());

    const before = changes;
    const deleted = await call('DELETE', '/v1/volumes/db?with_schedules=true');
    expect(deleted).toMatchObject({ status: 200, body: { deleted_schedule_ids: both } });
    expect((await call('GET', '/v1/volumes/inspect/db')).status).toBe(404);
    expect(await scheduleIds()).toEqual([kept]);
    expect(changes).toBe(before + 1);
  });

  it('a volume whose delete fails after its schedules went: the schedules are put back', async () => {
    const a = await schedule();
    const dev = await engine.openExport('db');
    try {
      const failed = await call('DELETE', '/v1/volumes/db?with_schedules=true');
      expect(failed.status).toBe(412);
      expect(failed.body.message).toMatch(/is attached/);
      expect(await scheduleIds()).toEqual([a]);
    } finally {
      await dev.close();
    }
  });

  it('a credential: refused naming its schedules; with_schedules deletes both', async () => {
    const a = await schedule();
    const refused = await call('DELETE', '/v1/credentials/local');
    expect(refused.status).toBe(412);
    expect(refused.body.message).toContain(`credential local is used by cloud backup schedule ${a}`);
    expect((await call('GET', '/v1/credentials/inspect/local')).status).toBe(200);
    const deleted = await call('DELETE', '/v1/credentials/local?with_schedules=true');
    expect(deleted).toMatchObject({ status: 200, body: { deleted_schedule_ids: [a] } });
    expect((await call('GET', '/v1/credentials/inspect/local')).status).toBe(404);
    expect(await scheduleIds()).toEqual([]);
    expect((await call('DELETE', '/v1/volumes/db?with_schedules=maybe')).status).toBe(400);
    expect((await call('DELETE', '/v1/volumes/db')).status).toBe(200);
  });
});

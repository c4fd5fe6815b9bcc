/**
 * Authentication and ownership, route by route: every /v1 route is tried with no token, a bad token, a token without
 * a role, and as each role and tenant (the owner alice; bob, another tenant; carol, in a group alice shares Read
 * with; dave, a collaborator with Write; vic, a system.view in a group with Read; an admin) against resources alice
 * made through the API. Expected: 401 / 403 where due, the route's own answer otherwise, and lists that never show
 * another tenant's resources.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerAuth, createApp, createTokenVerifier, mintToken, ScheduleRecords } from '../api/index.js';
import { isFinal, type JobStatus } from '../cloudsnap/index.js';
import { MemoryStore } from '../node/index.js';
import { type KeyHarness, openHarness } from './support/key-harness.js';

const MiB = 1024 * 1024;
const SECRET = randomBytes(32);

type Who = 'anonymous' | 'forged' | 'expired' | 'norole' | 'admin' | 'alice' | 'bob' | 'carol' | 'dave' | 'vic';
type Need = 'none' | 'Read' | 'Write' | 'Admin' | 'TaskOwner';

/** What alice made, named after the principal under test so that each test has its own. */
interface Fixture {
  tag: string;
  vol: string;
  volId: string;
  snap: string;
  cred: string;
  credId: string;
  backupId: string;
  taskId: string;
  bobVolId: string;
  /** Alice's backup schedule of her volume. */
  schedId: string;
}

interface Row {
  name: string;
  method: string;
  path: (f: Fixture) => string;
  body?: (f: Fixture) => unknown;
  /** The role the route asks for: read (any role), write (system.user or admin), admin (system.admin), public. */
  action: 'public' | 'read' | 'write' | 'admin';
  /** The access it needs on alice's resources. */
  need: Need;
  /** A list: must not show alice's resources to whoever has no access to them. */
  list?: boolean;
  /** Statuses the route answers when allowed. Default [200]. */
  ok?: number[];
}

const ACLS = {
  groups: { 'team-c': 'Read', 'team-v': 'Read' },
  collaborators: { dave: 'Write' },
};

const ROWS: Row[] = [
  { name: 'version', method: 'GET', path: () => '/v1/identities/version', action: 'public', need: 'none' },
  { name: 'openapi', method: 'GET', path: () => '/v1/openapi.json', action: 'public', need: 'none' },
  { name: 'whoami', method: 'GET', path: () => '/v1/auth/whoami', action: 'read', need: 'none' },
  {
    name: 'cluster',
    method: 'GET',
    path: () => '/v1/clusters/inspectcurrent',
    action: 'read',
    need: 'none',
    ok: [503],
  },
  { name: 'nodes', method: 'GET', path: () => '/v1/nodes', action: 'read', need: 'none', ok: [503] },
  // Lists.
  { name: 'volume enumerate', method: 'GET', path: () => '/v1/volumes', action: 'read', need: 'none', list: true },
  {
    name: 'volume filters',
    method: 'POST',
    path: () => '/v1/volumes/filters',
    body: () => ({}),
    action: 'read',
    need: 'none',
    list: true,
  },
  {
    name: 'volume inspectwithfilters',
    method: 'POST',
    path: () => '/v1/volumes/inspectwithfilters',
    body: () => ({}),
    action: 'read',
    need: 'none',
    list: true,
  },
  {
    name: 'credential enumerate',
    method: 'GET',
    path: () => '/v1/credentials',
    action: 'read',
    need: 'none',
    list: true,
  },
  {
    name: 'cloudbackup status (all)',
    method: 'POST',
    path: () => '/v1/cloudbackups/status',
    body: () => ({}),
    action: 'read',
    need: 'none',
    list: true,
  },
  // Reading alice's resources.
  {
    name: 'volume inspect',
    method: 'GET',
    path: (f) => `/v1/volumes/inspect/${f.volId}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'snapshot inspect',
    method: 'GET',
    path: (f) => `/v1/volumes/inspect/${f.vol}@${f.snap}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'changed blocks',
    method: 'GET',
    path: (f) => `/v1/volumes/${f.volId}/changed_blocks`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'snapshot enumerate',
    method: 'GET',
    path: (f) => `/v1/volumes/snapshots/${f.volId}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'snapshot filters',
    method: 'POST',
    path: (f) => `/v1/volumes/snapshots/${f.volId}/filters`,
    body: () => ({}),
    action: 'read',
    need: 'Read',
  },
  {
    name: 'credential inspect',
    method: 'GET',
    path: (f) => `/v1/credentials/inspect/${f.credId}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'credential validate',
    method: 'GET',
    path: (f) => `/v1/credentials/validate/${f.cred}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'cloudbackup enumerate',
    method: 'POST',
    path: () => '/v1/cloudbackups/enumerate/filters',
    body: (f) => ({ credential_id: f.credId }),
    action: 'read',
    need: 'Read',
  },
  {
    name: 'cloudbackup status (task)',
    method: 'POST',
    path: () => '/v1/cloudbackups/status',
    body: (f) => ({ task_id: f.taskId }),
    action: 'read',
    need: 'Read',
  },
  {
    name: 'cloudbackup catalog',
    method: 'POST',
    path: () => '/v1/cloudbackups/catalog',
    body: (f) => ({ credential_id: f.credId, backup_id: f.backupId }),
    action: 'read',
    need: 'Read',
  },
  {
    name: 'cloudbackup history',
    method: 'GET',
    path: (f) => `/v1/cloudbackups/history/${f.volId}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'cloudbackup size',
    method: 'GET',
    path: (f) => `/v1/cloudbackups/size?credential_id=${f.credId}&backup_id=${f.backupId}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'cloudbackup verify (one)',
    method: 'POST',
    path: () => '/v1/cloudbackups/verify',
    body: (f) => ({ credential_id: f.credId, backup_id: f.backupId }),
    action: 'read',
    need: 'Read',
  },
  {
    name: 'ownership of volume',
    method: 'GET',
    path: (f) => `/v1/ownership/volumes/${f.vol}`,
    action: 'read',
    need: 'Read',
  },
  {
    name: 'ownership of credential',
    method: 'GET',
    path: (f) => `/v1/ownership/credentials/${f.cred}`,
    action: 'read',
    need: 'Read',
  },
  // Making something new out of alice's resources (Read on them, a role that may change things).
  {
    name: 'snapshot create',
    method: 'POST',
    path: () => '/v1/volumes/snapshots',
    body: (f) => ({ volume_id: f.volId, name: `by-${f.tag}` }),
    action: 'write',
    need: 'Read',
  },
  {
    name: 'volume clone',
    method: 'POST',
    path: () => '/v1/volumes/clone',
    body: (f) => ({ name: `clone-${f.tag}`, parent_id: f.volId }),
    action: 'write',
    need: 'Read',
  },
  {
    name: 'cloudbackup create',
    method: 'POST',
    path: () => '/v1/cloudbackups',
    body: (f) => ({ volume_id: f.volId, credential_id: f.credId }),
    action: 'write',
    need: 'Read',
  },
  {
    name: 'group backup',
    method: 'POST',
    path: () => '/v1/cloudbackups/group',
    body: (f) => ({ volume_ids: [f.volId], credential_id: f.credId }),
    action: 'write',
    need: 'Read',
  },
  {
    name: 'schedule create',
    method: 'POST',
    path: () => '/v1/cloudbackups/schedules',
    body: (f) => ({ cloud_sched_info: { ...scheduleInfo(f), labels: { by: 'matrix' } } }),
    action: 'write',
    need: 'Read',
  },
  {
    name: 'schedule update',
    method: 'PUT',
    path: () => '/v1/cloudbackups/schedules',
    body: (f) => ({ sched_uuid: f.schedId, cloud_sched_info: scheduleInfo(f) }),
    action: 'write',
    need: 'TaskOwner',
  },
  {
    name: 'schedule delete',
    method: 'DELETE',
    path: (f) => `/v1/cloudbackups/schedules/${f.schedId}`,
    action: 'write',
    need: 'TaskOwner',
  },
  {
    name: 'cloudbackup restore',
    method: 'POST',
    path: () => '/v1/cloudbackups/restore',
    body: (f) => ({ backup_id: f.backupId, credential_id: f.credId, restore_volume_name: `restored-${f.tag}` }),
    action: 'write',
    need: 'Read',
  },
  // Creating one's own resources.
  {
    name: 'volume create',
    method: 'POST',
    path: () => '/v1/volumes',
    body: (f) => ({ name: `own-${f.tag}`, spec: { size: MiB } }),
    action: 'write',
    need: 'none',
  },
  // Changing alice's resources.
  {
    name: 'volume update',
    method: 'PUT',
    path: (f) => `/v1/volumes/${f.volId}`,
    body: (f) => ({ labels: { touched: f.tag } }),
    action: 'write',
    need: 'Write',
  },
  {
    name: 'snapshot restore',
    method: 'POST',
    path: () => '/v1/volumes/snapshots/restore',
    body: (f) => ({ volume_id: f.volId, snapshot_id: `${f.vol}@${f.snap}` }),
    action: 'write',
    need: 'Write',
  },
  {
    name: 'cloudbackup statechange',
    method: 'POST',
    path: () => '/v1/cloudbackups/statechange',
    body: (f) => ({ task_id: f.taskId, requested_state: 'Stop' }),
    action: 'write',
    need: 'TaskOwner',
    ok: [412],
  },
  {
    name: 'cloudbackup verify (all)',
    method: 'POST',
    path: () => '/v1/cloudbackups/verify',
    body: (f) => ({ credential_id: f.credId }),
    action: 'read',
    need: 'Write',
  },
  {
    name: 'cloudbackup gc',
    method: 'POST',
    path: () => '/v1/cloudbackups/gc',
    body: (f) => ({ credential_id: f.credId }),
    action: 'write',
    need: 'Write',
  },
  {
    name: 'cloudbackup repair',
    method: 'POST',
    path: () => '/v1/cloudbackups/repair',
    body: (f) => ({ credential_id: f.credId, what: 'index' }),
    action: 'write',
    need: 'Write',
  },
  {
    name: 'snapshot delete',
    method: 'DELETE',
    path: (f) => `/v1/volumes/${f.vol}@${f.snap}`,
    action: 'write',
    need: 'Write',
  },
  {
    name: 'cloudbackup delete',
    method: 'DELETE',
    path: (f) => `/v1/cloudbackups/backup/${f.backupId}?credential_id=${f.credId}`,
    action: 'write',
    need: 'Write',
    // A restore of it submitted above may still be queued or running.
    ok: [200, 412],
  },
  {
    name: 'cloudbackup deleteall',
    method: 'POST',
    path: () => '/v1/cloudbackups/deleteall',
    body: (f) => ({ credential_id: f.credId, src_volume_id: f.volId }),
    action: 'write',
    need: 'Write',
    ok: [200, 412],
  },
  // Admin access on alice's resources.
  {
    name: 'set volume ownership',
    method: 'PUT',
    path: (f) => `/v1/ownership/volumes/${f.volId}`,
    body: () => ({ ownership: { acls: ACLS } }),
    action: 'write',
    need: 'Admin',
  },
  {
    name: 'set credential ownership',
    method: 'PUT',
    path: (f) => `/v1/ownership/credentials/${f.credId}`,
    body: () => ({ ownership: { acls: ACLS } }),
    action: 'write',
    need: 'Admin',
  },
  {
    name: 'credential delete',
    method: 'DELETE',
    // The schedules created above use the credential: they go with it.
    path: (f) => `/v1/credentials/${f.credId}?with_schedules=true`,
    action: 'write',
    need: 'Admin',
  },
  {
    name: 'volume delete',
    method: 'DELETE',
    path: (f) => `/v1/volumes/${f.volId}`,
    action: 'write',
    need: 'Admin',
    // A backup or restore submitted above may still hold it.
    ok: [200, 412],
  },
  // Schedule policies are shared templates: role checks only. Schedules have owners.
  { name: 'policies', method: 'GET', path: () => '/v1/schedulepolicies', action: 'read', need: 'none' },
  {
    name: 'policy create',
    method: 'POST',
    path: () => '/v1/schedulepolicies',
    body: () => ({}),
    action: 'write',
    need: 'none',
    ok: [400],
  },
  { name: 'schedules', method: 'GET', path: () => '/v1/cloudbackups/schedules', action: 'read', need: 'none' },
  // Keys: system.admin only.
  { name: 'keys list', method: 'GET', path: () => '/v1/keys', action: 'admin', need: 'none' },
  {
    name: 'keys create',
    method: 'POST',
    path: () => '/v1/keys',
    body: (f) => ({ kek: `kek-${f.tag}` }),
    action: 'admin',
    need: 'none',
  },
  {
    name: 'keys rotate',
    method: 'POST',
    path: () => '/v1/keys/rotate',
    body: (f) => ({ kek: `kek-${f.tag}` }),
    action: 'admin',
    need: 'none',
  },
  {
    name: 'keys destroy',
    method: 'POST',
    path: () => '/v1/keys/destroy',
    body: (f) => ({ kek: `kek-${f.tag}` }),
    action: 'admin',
    need: 'none',
  },
];

/** Each principal's access to alice's (shared) resources. */
const LEVEL: Partial<Record<Who, Need>> = { alice: 'Admin', dave: 'Write', carol: 'Read', vic: 'Read' };
const ORDER: Need[] = ['none', 'Read', 'Write', 'Admin'];

function expected(row: Row, who: Who): 'allow' | 401 | 403 {
  if (row.action === 'public') return 'allow';
  if (who === 'anonymous' || who === 'forged' || who === 'expired') return 401;
  if (who === 'norole') return 403;
  if (who === 'admin') return 'allow';
  if (row.action === 'admin') return 403;
  if (row.action === 'write' && who === 'vic') return 403;
  if (row.need === 'none') return 'allow';
  if (row.need === 'TaskOwner') return who === 'alice' ? 'allow' : 403;
  return ORDER.indexOf(LEVEL[who] ?? 'none') >= ORDER.indexOf(row.need) ? 'allow' : 403;
}

let h: KeyHarness;
let app: Hono;
const tokens = new Map<Who, string | undefined>();

async function send(who: Who, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = {};
  const token = tokens.get(who);
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await app.request(path, {
    method,
    headers,
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, text, headers: response.headers };
}

async function ok<T>(who: Who, method: string, path: string, body?: unknown): Promise<T> {
  const response = await send(who, method, path, body);
  expect(response.status, `${who} ${method} ${path}: ${response.text}`).toBe(200);
  return JSON.parse(response.text) as T;
}

async function waitForTask(taskId: string, who: Who = 'alice'): Promise<JobStatus> {
  for (;;) {
    const { statuses } = await ok<{ statuses: Record<string, JobStatus> }>(who, 'POST', '/v1/cloudbackups/status', {
      task_id: taskId,
    });
    const job = statuses[taskId] as JobStatus;
    if (isFinal(job)) return job;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function scheduleInfo(f: Pick<Fixture, 'volId' | 'credId'>) {
  return { src_volume_id: f.volId, credential_id: f.credId, schedules: [{ periodic: { seconds: 3600 }, retain: 2 }] };
}

/** Alice's volume (with a snapshot), credential, backup and schedule, shared as ACLS says; bob's own volume. */
async function fixture(tag: string): Promise<Fixture> {
  const vol = `vol-${tag}`;
  const { volume_id: volId } = await ok<{ volume_id: string }>('alice', 'POST', '/v1/volumes', {
    name: vol,
    spec: { size: 4 * MiB },
  });
  const dev = await h.engine.openExport(vol);
  await dev.write(0, randomBytes(64 * 1024));
  await dev.flush();
  await dev.close();
  await ok('alice', 'POST', '/v1/volumes/snapshots', { volume_id: volId, name: 's1' });
  const cred = `cred-${tag}`;
  await mkdir(join(h.objects, cred), { recursive: true });
  const { credential_id: credId } = await ok<{ credential_id: string }>('alice', 'POST', '/v1/credentials', {
    name: cred,
    bucket: cred,
    directory_credential: { path: h.objects },
  });
  const { task_id: taskId } = await ok<{ task_id: string }>('alice', 'POST', '/v1/cloudbackups', {
    volume_id: volId,
    credential_id: credId,
  });
  const job = await waitForTask(taskId);
  expect(job.status, job.info.join('; ')).toBe('Done');
  await ok('alice', 'PUT', `/v1/ownership/volumes/${volId}`, { ownership: { acls: ACLS } });
  await ok('alice', 'PUT', `/v1/ownership/credentials/${credId}`, { ownership: { acls: ACLS } });
  const { volume_id: bobVolId } = await ok<{ volume_id: string }>('bob', 'POST', '/v1/volumes', {
    name: `bob-${tag}`,
    spec: { size: MiB },
  });
  const { backup_schedule_id: schedId } = await ok<{ backup_schedule_id: string }>(
    'alice',
    'POST',
    '/v1/cloudbackups/schedules',
    { cloud_sched_info: scheduleInfo({ volId, credId }) },
  );
  return { tag, vol, volId, snap: 's1', cred, credId, backupId: job.backup_id ?? '', taskId, bobVolId, schedId };
}

/** Waits until no job is queued or running, so the next test starts from quiet. */
async function settle(): Promise<void> {
  for (;;) {
    const jobs = await h.backups.jobs.list();
    if (jobs.every(isFinal)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  h = await openHarness();
  const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
  app = createApp({
    engine: h.engine,
    credentials: h.credentials,
    cloudBackups: h.backups,
    keys: h.keys,
    schedules: { records: new ScheduleRecords(new MemoryStore()) },
    authenticate: bearerAuth(verifier),
  });
  const mint = (sub: string, roles: string[], groups: string[] = []) => mintToken(SECRET, { sub, roles, groups });
  tokens.set('anonymous', undefined);
  tokens.set('forged', await mintToken(randomBytes(32), { sub: 'admin', roles: ['system.admin'] }));
  tokens.set('expired', await mintToken(SECRET, { sub: 'admin', roles: ['system.admin'] }, { ttlSeconds: -120 }));
  tokens.set('norole', await mint('nobody', []));
  tokens.set('admin', await mint('root', ['system.admin']));
  tokens.set('alice', await mint('alice', ['system.user'], ['team-a']));
  tokens.set('bob', await mint('bob', ['system.user'], ['team-b']));
  tokens.set('carol', await mint('carol', ['system.user'], ['team-c']));
  tokens.set('dave', await mint('dave', ['system.user']));
  tokens.set('vic', await mint('vic', ['system.view'], ['team-v']));
});

afterAll(async () => {
  await h?.close();
});

const PRINCIPALS: Who[] = ['anonymous', 'forged', 'expired', 'norole', 'bob', 'vic', 'carol', 'dave', 'alice', 'admin'];

describe('every route as every principal', () => {
  it.each(PRINCIPALS)('as %s', async (who) => {
    const f = await fixture(who);
    const failures: string[] = [];
    for (const row of ROWS) {
      const path = row.path(f);
      const response = await send(who, row.method, path, row.body?.(f));
      const want = expected(row, who);
      const label = `${row.name} (${row.method} ${path}) as ${who}`;
      if (want === 'allow') {
        if (!(row.ok ?? [200]).includes(response.status))
          failures.push(`${label}: ${response.status} ${response.text}`);
      } else if (response.status !== want) {
        failures.push(`${label}: wanted ${want}, got ${response.status} ${response.text}`);
      } else if (want === 401 && response.headers.get('www-authenticate') === null) {
        failures.push(`${label}: 401 without WWW-Authenticate`);
      }
      if (row.list === true && response.status === 200) {
        const sees = LEVEL[who] !== undefined || who === 'admin';
        for (const secret of [f.volId, f.credId, f.taskId]) {
          if (!sees && response.text.includes(secret)) failures.push(`${label}: lists alice's ${secret}`);
          if (sees && row.name !== 'cloudbackup status (all)' && !response.text.includes(secret)) {
            const applies = row.name.startsWith('credential') ? secret === f.credId : secret === f.volId;
            if (applies) failures.push(`${label}: does not list ${secret}, shared with ${who}`);
          }
        }
        if (who === 'bob' && row.name.startsWith('volume') && !response.text.includes(f.bobVolId)) {
          failures.push(`${label}: does not list bob's own volume`);
        }
      }
    }
    await settle();
    expect(failures).toEqual([]);
  });
});

describe('schedules', () => {
  it('lists only the schedules a caller may read: no leak to another tenant or a reader of the volume', async () => {
    const f = await fixture('sched-list');
    const listed = async (who: Who) =>
      Object.keys(
        (await ok<{ cloud_sched_list: Record<string, unknown> }>(who, 'GET', '/v1/cloudbackups/schedules'))
          .cloud_sched_list,
      );
    expect(await listed('alice')).toContain(f.schedId);
    expect(await listed('admin')).toContain(f.schedId);
    for (const who of ['bob', 'carol', 'dave', 'vic'] as const) expect(await listed(who)).not.toContain(f.schedId);
  });
});

describe('what a denial says', () => {
  it('names the caller and the resource, never the token', async () => {
    const f = await fixture('denial');
    const response = await send('bob', 'GET', `/v1/volumes/inspect/${f.volId}`);
    expect(response.status).toBe(403);
    expect(JSON.parse(response.text)).toEqual({
      code: 'PERMISSION_DENIED',
      message: `bob has no Read access to volume ${f.vol}; ask its owner`,
    });
    const forged = await send('forged', 'GET', '/v1/volumes');
    expect(forged.status).toBe(401);
    expect(forged.text).not.toContain(tokens.get('forged') ?? 'never');
    expect(JSON.parse(forged.text)).toMatchObject({ code: 'UNAUTHENTICATED' });
    await settle();
  });

  it('filters enumerate to the backups of volumes a credential reader may read', async () => {
    const f = await fixture('filter');
    // bob may read alice's credential but not her volume: he backs up his own volume with it.
    await ok('alice', 'PUT', `/v1/ownership/credentials/${f.credId}`, {
      ownership: { acls: { collaborators: { bob: 'Read' } } },
    });
    const { task_id } = await ok<{ task_id: string }>('bob', 'POST', '/v1/cloudbackups', {
      volume_id: f.bobVolId,
      credential_id: f.credId,
    });
    await waitForTask(task_id, 'bob');
    const list = (who: Who) =>
      ok<{ backups: { id: string; src_volume_id: string }[] }>(who, 'POST', '/v1/cloudbackups/enumerate/filters', {
        credential_id: f.credId,
      });
    expect((await list('bob')).backups.map((b) => b.src_volume_id)).toEqual([f.bobVolId]);
    expect((await list('alice')).backups.map((b) => b.src_volume_id).sort()).toEqual([f.bobVolId, f.volId].sort());
    const alices = (await list('alice')).backups.find((b) => b.src_volume_id === f.volId);
    const catalog = await send('bob', 'POST', '/v1/cloudbackups/catalog', {
      credential_id: f.credId,
      backup_id: alices?.id,
    });
    expect(catalog.status).toBe(403);
    await settle();
  });

  it('lets only an admin change an owner, and a restore belongs to whoever restored', async () => {
    const f = await fixture('owner');
    const change = await send('alice', 'PUT', `/v1/ownership/volumes/${f.volId}`, { ownership: { owner: 'bob' } });
    expect(change.status).toBe(403);
    await ok('admin', 'PUT', `/v1/ownership/volumes/${f.volId}`, { ownership: { owner: 'bob' } });
    expect((await send('bob', 'GET', `/v1/volumes/inspect/${f.volId}`)).status).toBe(200);
    expect((await send('alice', 'GET', `/v1/volumes/inspect/${f.volId}`)).status).toBe(403);

    const { task_id } = await ok<{ task_id: string }>('carol', 'POST', '/v1/cloudbackups/restore', {
      backup_id: f.backupId,
      credential_id: f.credId,
      restore_volume_name: 'carols-copy',
    });
    const status = await send('alice', 'POST', '/v1/cloudbackups/status', { task_id });
    expect(status.status).toBe(403);
    expect((await waitForTask(task_id, 'carol')).status).toBe('Done');
    const all = await ok<{ statuses: Record<string, JobStatus> }>('alice', 'POST', '/v1/cloudbackups/status', {});
    expect(Object.keys(all.statuses)).not.toContain(task_id);
    expect((await send('carol', 'GET', '/v1/volumes/inspect/carols-copy')).status).toBe(200);
    expect((await send('alice', 'GET', '/v1/volumes/inspect/carols-copy')).status).toBe(403);
    const carols = await ok<{ volume_ids: string[] }>('carol', 'GET', '/v1/volumes');
    expect(carols.volume_ids).toContain((await h.engine.inspectVolume('carols-copy')).id);
  });
});

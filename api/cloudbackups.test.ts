/**
 * The OpenStorageCloudBackup routes against a real engine, a directory-store credential and the local keyring, all
 * in a temp dir: backup -> status -> enumerate -> restore -> compare -> delete, idempotent task ids, Stop, a burst
 * of 50 backups through the queue, restart recovery, and bad input.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CloudBackups,
  CredentialStore,
  isFinal,
  JOBS_PREFIX,
  type JobStatus,
  type ObjectStoreCredential,
  openObjectStore,
  type PutOptions,
  RESTART_MESSAGE,
} from '../cloudsnap/index.js';
import { type LocalKeyring, openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { jobRequests, requestJson } from '../test/support/app-request.js';
import { DelegatingStore } from '../test/support/delegating-store.js';
import { createApp } from './app.js';

const MiB = 1024 * 1024;

/** A directory store whose pack uploads wait while `held` is set (they still honour their AbortSignal). */
class GatedStore extends DelegatingStore {
  static held = false;
  static reached = 0;
  override async put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
    if (GatedStore.held && key.startsWith('packs/')) {
      GatedStore.reached++;
      await new Promise<void>((_resolve, reject) => {
        const signal = options?.signal;
        const abort = (): void => reject(signal?.reason ?? new Error('aborted'));
        if (signal?.aborted) abort();
        signal?.addEventListener('abort', abort, { once: true });
      });
    }
    await this.inner.put(key, body, options);
  }
}

let dataDir: string;
let store: SqliteStore;
let keyring: LocalKeyring;
let engine: VolumeEngine;
let credentials: CredentialStore;
let backups: CloudBackups;
let app: Hono;

async function openService(): Promise<CloudBackups> {
  return CloudBackups.open({
    blockSource: engine,
    store,
    credentials,
    keys: keyring,
    repoOptions: { packSize: MiB },
    openStore: async (c: ObjectStoreCredential) => new GatedStore(await openObjectStore(c)),
  });
}

beforeEach(async () => {
  GatedStore.held = false;
  GatedStore.reached = 0;
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-cloudbackups-'));
  store = new SqliteStore(join(dataDir, 'cluster.db'));
  engine = await openEngine({ dataDir, store });
  keyring = await openDefaultKeyring(dataDir);
  credentials = new CredentialStore(store, keyring);
  await mkdir(join(dataDir, 'objects', 'backups'), { recursive: true });
  await credentials.create({
    name: 'local',
    bucket: 'backups',
    directory_credential: { path: join(dataDir, 'objects') },
  });
  backups = await openService();
  app = createApp({ engine, credentials, cloudBackups: backups });
});

afterEach(async () => {
  GatedStore.held = false;
  await backups.close();
  await engine.close();
  await store.close();
  await keyring.close();
  await rm(dataDir, { recursive: true, force: true });
});

function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  return requestJson<T>(app, method, path, body);
}

const { ok, statusOf, until } = jobRequests<JobStatus>(() => app);
const ended = isFinal;

async function volumeWithData(name: string, size = 8 * MiB): Promise<void> {
  await engine.createVolume({ name, size });
  const dev = await engine.openExport(name);
  await dev.write(0, randomBytes(MiB));
  await dev.write(size / 2 + 65536, Buffer.alloc(200_000, name));
  await dev.flush();
  await dev.close();
}

async function digest(name: string): Promise<string> {
  const dev = await engine.openExport(name);
  const h = createHash('sha256').update(await dev.read(0, dev.size));
  await dev.close();
  return h.digest('hex');
}

async function listed(body: Record<string, unknown> = {}): Promise<{ id: string; src_volume_name: string }[]> {
  const page = await ok<{ backups: { id: string; src_volume_name: string }[] }>(
    'POST',
    '/v1/cloudbackups/enumerate/filters',
    { credential_id: 'local', ...body },
  );
  return page.backups;
}

describe('cloud backups: backup, status, enumerate, restore, delete', () => {
  it('backs up, lists, restores bit for bit, refuses an existing name, deletes', async () => {
    await volumeWithData('db');
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
      volume_id: 'db',
      credential_id: 'local',
      labels: { app: 'pg' },
    });
    const backup = await until(task_id, ended);
    expect(backup).toMatchObject({ status: 'Done', optype: 'Backup', volume_name: 'db', info: [] });
    expect(backup.bytes_total).toBeGreaterThan(0);
    expect(backup.bytes_done).toBe(backup.bytes_total);
    expect(backup.completed_time).toBeDefined();
    const backupId = backup.backup_id as string;

    const list = await listed({ src_volume_id: 'db', metadata_filter: { app: 'pg' } });
    expect(list.map((b) => [b.id, b.src_volume_name])).toEqual([[backupId, 'db']]);
    expect(await listed({ metadata_filter: { app: 'other' } })).toEqual([]);
    expect(await listed({ status_filter: 'SdkCloudBackupStatusTypeFailed' })).toEqual([]);

    const catalog = await ok<{ contents: string[]; summary: { chunks: number; bytes: number } }>(
      'POST',
      '/v1/cloudbackups/catalog',
      { backup_id: backupId, credential_id: 'local' },
    );
    expect(catalog.contents).toEqual(['0+1048576', `${4 * MiB + 65536}+${4 * 65536}`]);
    expect(catalog.summary).toMatchObject({ chunks: 20, bytes: MiB + 4 * 65536 });
    const size = await ok('GET', `/v1/cloudbackups/size?backup_id=${backupId}&credential_id=local`);
    expect(size.size).toBe(8 * MiB);
    const history = await ok<{ history_list: { status: string }[] }>('GET', '/v1/cloudbackups/history/db');
    expect(history.history_list.map((h) => h.status)).toEqual(['Done']);

    const restore = await ok<{ task_id: string; restore_volume_id: string }>('POST', '/v1/cloudbackups/restore', {
      backup_id: backupId,
      restore_volume_name: 'db-copy',
      credential_id: 'local',
    });
    expect(restore.restore_volume_id).toBe('db-copy');
    const restored = await until(restore.task_id, ended);
    expect(restored).toMatchObject({ status: 'Done', optype: 'Restore', backup_id: backupId });
    expect(restored.bytes_done).toBe(restored.bytes_total);
    expect(restored.src_volume_id).toBe((await engine.inspectVolume('db-copy')).id);
    expect(await digest('db-copy')).toBe(await digest('db'));

    const again = await call('POST', '/v1/cloudbackups/restore', {
      backup_id: backupId,
      restore_volume_name: 'db-copy',
      credential_id: 'local',
    });
    expect([again.status, again.body.code]).toEqual([409, 'ALREADY_EXISTS']);

    const verify = await ok<{ task_id: string }>('POST', '/v1/cloudbackups/verify', {
      credential_id: 'local',
      data_percent: 100,
    });
    const verified = await until(verify.task_id, ended);
    expect(verified).toMatchObject({ status: 'Done', optype: 'Verify', info: [] });
    // 20 chunks, two of them alike (the repeated text): each distinct chunk is read once.
    expect(verified.verify).toMatchObject({ backups: 1, problems: [], chunks: 20, chunks_unique: 18, chunks_read: 18 });

    await ok('DELETE', `/v1/cloudbackups/backup/${backupId}?credential_id=local`);
    expect(await listed()).toEqual([]);
    const gone = await call('POST', '/v1/cloudbackups/catalog', { backup_id: backupId, credential_id: 'local' });
    expect([gone.status, gone.body.code]).toEqual([404, 'NOT_FOUND']);
    const gc = await ok<{ packs: number; condemned: number; deleted: number; live_chunks: number }>(
      'POST',
      '/v1/cloudbackups/gc',
      { credential_id: 'local', grace_seconds: 0 },
    );
    expect(gc.packs).toBeGreaterThan(0);
    expect(gc).toMatchObject({ live_chunks: 0, condemned: gc.packs, deleted: 0 });
    const sweep = await ok('POST', '/v1/cloudbackups/gc', { credential_id: 'local', grace_seconds: 0 });
    expect(sweep).toMatchObject({ deleted: gc.packs });
  });

  it('returns the existing job for a task_id given twice, and refuses it for another operation', async () => {
    await volumeWithData('db');
    const body = { volume_id: 'db', credential_id: 'local', task_id: 'nightly-db-1' };
    const [a, b] = await Promise.all([
      ok<{ task_id: string }>('POST', '/v1/cloudbackups', body),
      ok<{ task_id: string }>('POST', '/v1/cloudbackups', body),
    ]);
    expect([a.task_id, b.task_id]).toEqual(['nightly-db-1', 'nightly-db-1']);
    const done = await until('nightly-db-1', ended);
    expect(done.status).toBe('Done');
    expect((await ok('POST', '/v1/cloudbackups', body)).task_id).toBe('nightly-db-1');
    expect(await listed()).toHaveLength(1);
    const { statuses } = await ok<{ statuses: Record<string, JobStatus> }>('POST', '/v1/cloudbackups/status', {});
    expect(Object.keys(statuses)).toEqual(['nightly-db-1']);
    const clash = await call('POST', '/v1/cloudbackups/restore', {
      backup_id: done.backup_id,
      credential_id: 'local',
      task_id: 'nightly-db-1',
    });
    expect([clash.status, clash.body.code, clash.body.field]).toEqual([409, 'ALREADY_EXISTS', 'task_id']);
  });

  it('Stop aborts a running backup: Aborted, nothing listed, no snapshot left; Resume of a running job is refused', async () => {
    await volumeWithData('db');
    GatedStore.held = true;
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
      volume_id: 'db',
      credential_id: 'local',
    });
    const running = await until(task_id, (s) => s.status === 'Active' && GatedStore.reached > 0);
    expect(running.bytes_total).toBeGreaterThan(0);
    // A second backup of the same volume waits Queued behind the first; Stop ends it at once.
    const queued = await ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
      volume_id: 'db',
      credential_id: 'local',
    });
    expect((await statusOf(queued.task_id)).status).toBe('Queued');
    await ok('POST', '/v1/cloudbackups/statechange', { task_id: queued.task_id, requested_state: 'Stop' });
    expect(await until(queued.task_id, ended)).toMatchObject({ status: 'Aborted', info: ['stopped by request'] });
    expect((await statusOf(task_id)).status).toBe('Active');
    const resume = await call('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Resume' });
    expect([resume.status, resume.body.code]).toEqual([412, 'FAILED_PRECONDITION']);
    await ok('POST', '/v1/cloudbackups/statechange', {
      task_id,
      requested_state: 'SdkCloudBackupRequestedStateStop',
    });
    const stopped = await until(task_id, ended);
    expect(stopped).toMatchObject({ status: 'Aborted', info: ['stopped by request'] });
    GatedStore.held = false;
    expect(await listed()).toEqual([]);
    expect((await engine.listSnapshots('db')).map((s) => s.name)).toEqual([]);
    const late = await call('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Stop' });
    expect([late.status, late.body.code]).toEqual([412, 'FAILED_PRECONDITION']);
  });

  it('queues 50 backups asked for at once: at most 2 Active, all end Done, enumerate pages them', async () => {
    const volumes = Array.from({ length: 10 }, (_, i) => `v${i}`);
    for (const v of volumes) await volumeWithData(v, MiB * 2);
    const tasks = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
          volume_id: volumes[i % 10],
          credential_id: 'local',
        }),
      ),
    );
    let maxActive = 0;
    let sawQueued = 0;
    for (;;) {
      const { statuses } = await ok<{ statuses: Record<string, JobStatus> }>('POST', '/v1/cloudbackups/status', {});
      const all = Object.values(statuses);
      maxActive = Math.max(maxActive, all.filter((s) => s.status === 'Active').length);
      sawQueued = Math.max(sawQueued, all.filter((s) => s.status === 'Queued').length);
      if (all.length === 50 && all.every(ended)) {
        expect(all.map((s) => s.status)).toEqual(Array(50).fill('Done'));
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(new Set(tasks.map((t) => t.task_id)).size).toBe(50);
    expect(maxActive).toBeLessThanOrEqual(2);
    expect(sawQueued).toBeGreaterThanOrEqual(20);
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await ok<{ backups: { id: string }[]; continuation_token?: string }>(
        'POST',
        '/v1/cloudbackups/enumerate/filters',
        { credential_id: 'local', max_backups: 20, ...(token !== undefined && { continuation_token: token }) },
      );
      expect(page.backups.length).toBeLessThanOrEqual(20);
      ids.push(...page.backups.map((b) => b.id));
      token = page.continuation_token;
    } while (token !== undefined);
    expect(new Set(ids).size).toBe(50);
  });

  it('fails a job a dead process left Active, with the restart message', async () => {
    const orphan: JobStatus = {
      task_id: 'left-behind',
      optype: 'Backup',
      status: 'Active',
      bytes_done: 10,
      bytes_total: 100,
      src_volume_id: 'abc',
      info: [],
      credential_id: 'x',
      create_time: new Date().toISOString(),
      volume_name: 'db',
    };
    await store.commit([{ op: 'put', key: `${JOBS_PREFIX}left-behind`, value: orphan }]);
    await backups.close();
    backups = await openService();
    app = createApp({ engine, credentials, cloudBackups: backups });
    const status = await statusOf('left-behind');
    expect(status).toMatchObject({ status: 'Failed', info: [RESTART_MESSAGE], bytes_done: 10 });
    expect(status.completed_time).toBeDefined();
  });
});

describe('cloud backups: bad input', () => {
  const bad: [string, string, unknown, string][] = [
    ['POST', '/v1/cloudbackups', { credential_id: 'local' }, 'volume_id'],
    ['POST', '/v1/cloudbackups', { volume_id: 'db', credential_id: 'local', task_id: 'a/b' }, 'task_id'],
    ['POST', '/v1/cloudbackups', { volume_id: 'db', credential_id: 'local', full: 'yes' }, 'full'],
    ['POST', '/v1/cloudbackups', { volume_id: 'db', credential_id: 'local', delete_local: true }, 'delete_local'],
    ['POST', '/v1/cloudbackups/restore', { credential_id: 'local' }, 'backup_id'],
    ['POST', '/v1/cloudbackups/restore', { backup_id: '../x', credential_id: 'local' }, 'backup_id'],
    [
      'POST',
      '/v1/cloudbackups/restore',
      { backup_id: 'b', credential_id: 'local', restore_volume_name: 'a@b' },
      'restore_volume_name',
    ],
    ['POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 5 }, 'credential_id'],
    ['POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'local', status_filter: 'Bogus' }, 'status_filter'],
    ['POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'local', max_backups: 0 }, 'max_backups'],
    ['POST', '/v1/cloudbackups/statechange', { task_id: 't', requested_state: 'Explode' }, 'requested_state'],
    ['POST', '/v1/cloudbackups/verify', { credential_id: 'local', data_percent: 101 }, 'data_percent'],
    ['POST', '/v1/cloudbackups/gc', { credential_id: 'local', grace_seconds: -1 }, 'grace_seconds'],
    ['GET', '/v1/cloudbackups/size?credential_id=local', undefined, 'backup_id'],
    ['DELETE', '/v1/cloudbackups/backup/b1', undefined, 'credential_id'],
  ];
  for (const [method, path, body, field] of bad) {
    it(`${method} ${path}: 400 INVALID_ARGUMENT naming ${field}`, async () => {
      const response = await call(method, path, body);
      expect([response.status, response.body.code, response.body.field]).toEqual([400, 'INVALID_ARGUMENT', field]);
    });
  }

  it('404 for an unknown volume, credential or task; nothing queued', async () => {
    await volumeWithData('db');
    const noVolume = await call('POST', '/v1/cloudbackups', { volume_id: 'nope', credential_id: 'local' });
    expect([noVolume.status, noVolume.body.code]).toEqual([404, 'NOT_FOUND']);
    const noCred = await call('POST', '/v1/cloudbackups', { volume_id: 'db', credential_id: 'nope' });
    expect([noCred.status, noCred.body.code]).toEqual([404, 'NOT_FOUND']);
    const noTask = await call('POST', '/v1/cloudbackups/status', { task_id: 'nope' });
    expect([noTask.status, noTask.body.code]).toEqual([404, 'NOT_FOUND']);
    expect((await ok('POST', '/v1/cloudbackups/status', {})).statuses).toEqual({});
  });

  it('answers 503 UNAVAILABLE on a node without cloud backups', async () => {
    const bare = createApp({ engine });
    const response = await bare.request('/v1/cloudbackups/status', { method: 'POST', body: '{}' });
    expect(response.status).toBe(503);
  });
});

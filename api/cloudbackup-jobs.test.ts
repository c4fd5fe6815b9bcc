/**
 * StateChange Pause/Resume of backup and restore jobs, and group backups (POST /v1/cloudbackups/group), in process
 * against a real engine, a directory-store credential and the local keyring in a temp dir.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloudBackups, CredentialStore, type JobStatus } from '../cloudsnap/index.js';
import { type LocalKeyring, openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { jobRequests, requestJson } from '../test/support/app-request.js';
import { createApp } from './app.js';

const MiB = 1024 * 1024;
let dataDir: string;
let store: SqliteStore;
let keyring: LocalKeyring;
let engine: VolumeEngine;
let backups: CloudBackups;
let app: Hono;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-jobs-'));
  store = new SqliteStore(join(dataDir, 'cluster.db'));
  engine = await openEngine({ dataDir, store });
  keyring = await openDefaultKeyring(dataDir);
  const credentials = new CredentialStore(store, keyring);
  await mkdir(join(dataDir, 'objects', 'b'), { recursive: true });
  await credentials.create({ name: 'local', bucket: 'b', directory_credential: { path: join(dataDir, 'objects') } });
  backups = await CloudBackups.open({
    blockSource: engine,
    store,
    credentials,
    keys: keyring,
    repoOptions: { packSize: MiB },
  });
  app = createApp({ engine, credentials, cloudBackups: backups });
});

afterEach(async () => {
  await backups.close();
  await engine.close();
  await store.close();
  await keyring.close();
  await rm(dataDir, { recursive: true, force: true });
});

const { ok, statusOf } = jobRequests<JobStatus>(() => app);

async function volumeWith(name: string, data: Buffer): Promise<void> {
  await engine.createVolume({ name, size: 8 * MiB });
  const dev = await engine.openExport(name);
  await dev.write(0, data);
  await dev.close();
}

async function read(exportName: string, length: number): Promise<Buffer> {
  const dev = await engine.openExport(exportName);
  const buf = await dev.read(0, length);
  await dev.close();
  return buf;
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('StateChange Pause and Resume', () => {
  it('a paused backup holds its place and does no I/O; Resume finishes it', async () => {
    await volumeWith('v', randomBytes(4 * MiB));
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
      volume_id: 'v',
      credential_id: 'local',
    });
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Pause' });
    expect((await statusOf(task_id)).status).toBe('Paused');
    await settle(300);
    const paused = await statusOf(task_id);
    expect(paused.status).toBe('Paused');
    expect(paused.bytes_done).toBe(0);
    expect((await backups.enumerate({ credential_id: 'local' })).backups).toHaveLength(0);
    // Pausing again changes nothing; Resume continues.
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'SdkCloudBackupRequestedStatePause' });
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Resume' });
    const final = await backups.jobs.wait(task_id);
    expect(final.status).toBe('Done');
    expect(final.bytes_done).toBe(4 * MiB);
    // A job that is not paused cannot be resumed; an ended one cannot change.
    const again = await requestJson(app, 'POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Pause' });
    expect(again.status).toBe(412);
  });

  it('Resume of a running job is refused; Stop works from Paused and the job ends Aborted', async () => {
    await volumeWith('v', randomBytes(2 * MiB));
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
      volume_id: 'v',
      credential_id: 'local',
    });
    const resume = await requestJson(app, 'POST', '/v1/cloudbackups/statechange', {
      task_id,
      requested_state: 'Resume',
    });
    expect(resume.status).toBe(412);
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Pause' });
    await settle(100);
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Stop' });
    const final = await backups.jobs.wait(task_id);
    expect(final.status).toBe('Aborted');
    expect((await backups.enumerate({ credential_id: 'local' })).backups).toHaveLength(0);
  });

  it('pauses and resumes a restore, which then reads back equal', async () => {
    const data = randomBytes(3 * MiB);
    await volumeWith('v', data);
    const { task_id: b } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
      volume_id: 'v',
      credential_id: 'local',
    });
    const backupId = (await backups.jobs.wait(b)).backup_id;
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups/restore', {
      backup_id: backupId,
      credential_id: 'local',
      restore_volume_name: 'copy',
    });
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Pause' });
    await settle(200);
    expect((await statusOf(task_id)).status).toBe('Paused');
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Resume' });
    expect((await backups.jobs.wait(task_id)).status).toBe('Done');
    expect((await read('copy', 3 * MiB)).equals(data)).toBe(true);
  });
});

describe('POST /v1/cloudbackups/group', () => {
  it('backs several volumes up from one point in time', async () => {
    const a = randomBytes(MiB);
    const b = randomBytes(MiB);
    await volumeWith('a', a);
    await volumeWith('b', b);
    const group = await ok<{ group_cloud_backup_id: string; task_ids: string[] }>('POST', '/v1/cloudbackups/group', {
      group_id: 'nightly-1',
      volume_ids: ['a', 'b'],
      credential_id: 'local',
      labels: { app: 'shop' },
    });
    expect(group).toEqual({ group_cloud_backup_id: 'nightly-1', task_ids: ['nightly-1:a', 'nightly-1:b'] });
    // Written after the group was accepted: the backups must not see it.
    const dev = await engine.openExport('a');
    await dev.write(0, Buffer.alloc(MiB, 7));
    await dev.close();
    const finals = await Promise.all(group.task_ids.map((t) => backups.jobs.wait(t)));
    expect(finals.map((f) => [f.status, f.group_id])).toEqual([
      ['Done', 'nightly-1'],
      ['Done', 'nightly-1'],
    ]);
    const listed = (
      await backups.enumerate({ credential_id: 'local', metadata_filter: { 'ferry.io/group': 'nightly-1' } })
    ).backups;
    expect(listed.map((r) => [r.volume_name, r.labels.app]).sort()).toEqual([
      ['a', 'shop'],
      ['b', 'shop'],
    ]);
    const backupOfA = finals[0]?.backup_id as string;
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups/restore', {
      backup_id: backupOfA,
      credential_id: 'local',
      restore_volume_name: 'a-copy',
    });
    expect((await backups.jobs.wait(task_id)).status).toBe('Done');
    expect((await read('a-copy', MiB)).equals(a)).toBe(true);
    // Only each volume's last backup snapshot is kept, as after ordinary backups.
    expect((await engine.listSnapshots('a')).map((s) => s.name)).toEqual(['cloudsnap-group-nightly-1']);
    // The same group id again returns the same jobs.
    const again = await ok<{ task_ids: string[] }>('POST', '/v1/cloudbackups/group', {
      group_id: 'nightly-1',
      volume_ids: ['a', 'b'],
      credential_id: 'local',
    });
    expect(again.task_ids).toEqual(group.task_ids);
  });

  it('refuses bad groups before taking any snapshot', async () => {
    await volumeWith('a', randomBytes(4096));
    const cases: Array<[unknown, number]> = [
      [{ volume_ids: [], credential_id: 'local' }, 400],
      [{ volume_ids: ['a', 'a'], credential_id: 'local' }, 400],
      [{ volume_ids: ['a', 'nope'], credential_id: 'local' }, 404],
      [{ volume_ids: ['a'], credential_id: 'nope' }, 404],
      [{ volume_ids: ['a'], credential_id: 'local', group_id: 'bad:id' }, 400],
    ];
    for (const [body, status] of cases) {
      const r = await requestJson(app, 'POST', '/v1/cloudbackups/group', body);
      expect(r.status, JSON.stringify(body)).toBe(status);
    }
    expect(await engine.listSnapshots('a')).toEqual([]);
  });
});

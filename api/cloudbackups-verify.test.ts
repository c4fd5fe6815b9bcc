/**
 * `POST /v1/cloudbackups/verify` as a job, against a real engine, the local keyring and a directory-store credential:
 * a task id at once, progress and the report through the status route, `wait`, Stop, and a verify that sees objects
 * tampered with after the node cached its repository (records and index objects are read from the store).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CloudBackups,
  CredentialStore,
  type GetOptions,
  isFinal,
  type JobStatus,
  type ObjectStoreCredential,
  openObjectStore,
} from '../cloudsnap/index.js';
import { type LocalKeyring, openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { jobRequests } from '../test/support/app-request.js';
import { DelegatingStore } from '../test/support/delegating-store.js';
import { createApp } from './app.js';

const MiB = 1024 * 1024;

/** A directory store whose pack reads wait while `held` is set, until `release` (they honour their AbortSignal). */
class HeldReads extends DelegatingStore {
  static held = false;
  static reached = 0;
  static waiting: Array<() => void> = [];
  static release(): void {
    HeldReads.held = false;
    for (const go of HeldReads.waiting.splice(0)) go();
  }
  override async get(key: string, options?: GetOptions): Promise<Buffer> {
    if (HeldReads.held && key.startsWith('packs/')) {
      HeldReads.reached++;
      await new Promise<void>((resolve, reject) => {
        HeldReads.waiting.push(resolve);
        const signal = options?.signal;
        const abort = (): void => reject(signal?.reason ?? new Error('aborted'));
        if (signal?.aborted) abort();
        signal?.addEventListener('abort', abort, { once: true });
      });
    }
    return this.inner.get(key, options);
  }
}

let dataDir: string;
let bucket: string;
let cluster: SqliteStore;
let keyring: LocalKeyring;
let engine: VolumeEngine;
let backups: CloudBackups;
let app: Hono;

beforeEach(async () => {
  HeldReads.held = false;
  HeldReads.reached = 0;
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-verify-'));
  bucket = join(dataDir, 'objects', 'backups');
  cluster = new SqliteStore(join(dataDir, 'cluster.db'));
  engine = await openEngine({ dataDir, store: cluster });
  keyring = await openDefaultKeyring(dataDir);
  const credentials = new CredentialStore(cluster, keyring);
  await mkdir(bucket, { recursive: true });
  await credentials.create({
    name: 'local',
    bucket: 'backups',
    directory_credential: { path: join(dataDir, 'objects') },
  });
  backups = await CloudBackups.open({
    blockSource: engine,
    store: cluster,
    credentials,
    keys: keyring,
    repoOptions: { packSize: MiB },
    openStore: async (c: ObjectStoreCredential) => new HeldReads(await openObjectStore(c)),
  });
  app = createApp({ engine, credentials, cloudBackups: backups });
});

afterEach(async () => {
  HeldReads.release();
  await backups.close();
  await engine.close();
  await cluster.close();
  await keyring.close();
  await rm(dataDir, { recursive: true, force: true });
});

const { ok, statusOf, until } = jobRequests<JobStatus>(() => app);
const ended = isFinal;

/** A volume with `mib` MiB of data (in about as many packs), backed up through the API; returns the backup id. */
async function backedUp(mib = 3): Promise<string> {
  await engine.createVolume({ name: 'db', size: 16 * MiB });
  const dev = await engine.openExport('db');
  await dev.write(0, randomBytes(mib * MiB));
  await dev.close();
  const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups', {
    volume_id: 'db',
    credential_id: 'local',
  });
  const done = await until(task_id, ended);
  expect(done.status).toBe('Done');
  return done.backup_id as string;
}

describe('verify jobs', () => {
  it('answers a task id at once; status shows progress, then the report; wait answers the final status', async () => {
    const backupId = await backedUp();
    HeldReads.held = true;
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups/verify', {
      credential_id: 'local',
      data_percent: 100,
    });
    const waiting = await until(task_id, () => HeldReads.reached > 0);
    expect(waiting).toMatchObject({ optype: 'Verify', status: 'Active', credential_id: expect.any(String) });
    expect(waiting.verify).toMatchObject({ backups: 1, packs_read: 0 });
    expect(waiting.verify?.packs_to_read).toBeGreaterThan(0);
    expect(waiting.bytes_total).toBeGreaterThan(0);
    const listed = await ok<{ statuses: Record<string, JobStatus> }>('POST', '/v1/cloudbackups/status', {});
    expect(listed.statuses[task_id]?.optype).toBe('Verify');
    HeldReads.release();
    const done = await until(task_id, ended);
    expect(done).toMatchObject({ status: 'Done', info: [] });
    expect(done.bytes_done).toBe(done.bytes_total);
    expect(done.verify).toMatchObject({ backups: 1, problems: [], problems_total: 0, chunks_read: 48 });
    expect(done.verify?.packs_read).toBe(done.verify?.packs_to_read);

    const waited = await ok<{ task_id: string; status: JobStatus }>('POST', '/v1/cloudbackups/verify', {
      credential_id: 'local',
      backup_id: backupId,
      wait: true,
    });
    expect(waited.status).toMatchObject({ task_id: waited.task_id, status: 'Done', backup_id: backupId });
    expect(waited.status.verify).toMatchObject({ backups: 1, chunks_read: 0, problems: [] });
  });

  it('pauses, resumes and stops on StateChange', async () => {
    await backedUp(12);
    HeldReads.held = true;
    const { task_id } = await ok<{ task_id: string }>('POST', '/v1/cloudbackups/verify', {
      credential_id: 'local',
      data_percent: 100,
    });
    // Six packs are read at once, one range each (a pack of 1 MiB is one range): all six wait.
    await until(task_id, () => HeldReads.reached === 6);
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Pause' });
    expect((await statusOf(task_id)).status).toBe('Paused');
    // Paused, it issues no further read once the one in flight returns.
    const reads = HeldReads.reached;
    HeldReads.release();
    HeldReads.held = true;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(HeldReads.reached).toBe(reads);
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Resume' });
    await until(task_id, () => HeldReads.reached > reads);
    expect((await statusOf(task_id)).status).toBe('Active');
    await ok('POST', '/v1/cloudbackups/statechange', { task_id, requested_state: 'Stop' });
    const stopped = await until(task_id, ended);
    expect(stopped).toMatchObject({ status: 'Aborted', info: ['stopped by request'] });
  });

  it('reads records and index objects from the store, not from the node’s cached repository', async () => {
    const backupId = await backedUp();
    // The node has the repository open and cached (its record and index loaded by the backup); now both are
    // altered in the bucket.
    const record = join(bucket, 'backups', backupId);
    const rec = await readFile(record);
    rec[rec.length - 2] = (rec[rec.length - 2] ?? 0) ^ 0x01;
    await writeFile(record, rec);
    const [indexName] = await readdir(join(bucket, 'index'));
    const index = join(bucket, 'index', indexName as string);
    const idx = await readFile(index);
    idx[idx.length - 2] = (idx[idx.length - 2] ?? 0) ^ 0x01;
    await writeFile(index, idx);
    const { status } = await ok<{ status: JobStatus }>('POST', '/v1/cloudbackups/verify', {
      credential_id: 'local',
      wait: true,
    });
    expect(status.status).toBe('Done');
    expect(status.info).toEqual([`verify found ${status.verify?.problems_total} problems`]);
    const found = status.verify?.problems.map((p) => [p.kind, p.object]);
    expect(found).toContainEqual(['record', `backups/${backupId}`]);
    expect(found).toContainEqual(['index', `index/${indexName}`]);
  });
});

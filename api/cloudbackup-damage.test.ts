/**
 * Damage through the API and the jobs, on a directory credential: a damaged backup record is listed as Failed with
 * the reason while every healthy backup is listed and catalogued (no 500); `POST /v1/cloudbackups/repair` rebuilds a
 * deleted index object from the packs' headers; a backup job over an altered index object ends Done and says what
 * was repaired; a node clears the `running/` markers its own dead process left, and only those, when it starts.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryStore, type JobStatus, jobKey, type ObjectStore, type Repository } from '../cloudsnap/index.js';
import { requestJson } from '../test/support/app-request.js';
import { backup, type KeyHarness, openHarness, volumeWithData } from '../test/support/key-harness.js';
import { createApp } from './app.js';

let h: KeyHarness;
let app: Hono;

beforeEach(async () => {
  h = await openHarness();
  await h.credential('c', {});
  app = createApp({ engine: h.engine, credentials: h.credentials, cloudBackups: h.backups });
});

afterEach(async () => {
  await h.close();
});

/** Runs `fn` on the credential's repository (a lent instance). */
function withRepo<T>(fn: (repo: Repository) => Promise<T>): Promise<T> {
  return h.backups.jobs.repositories.use('c', fn);
}

/** The credential's bucket, read and altered as any other client of the store would (the repository's store is its own). */
function bucket(): ObjectStore {
  return new DirectoryStore(join(h.objects, 'backups'));
}

async function alter(store: ObjectStore, key: string): Promise<void> {
  const body = await store.get(key);
  body[body.length - 3] = (body[body.length - 3] ?? 0) ^ 0x5a;
  await store.put(key, body);
}

async function done(volume: string): Promise<JobStatus> {
  const job = await backup(h, volume, 'c');
  expect(job.status, job.info.join('; ')).toBe('Done');
  return job;
}

describe('a damaged backup record', () => {
  it('is listed as Failed with the reason; every healthy backup is listed and catalogued', async () => {
    await volumeWithData(h.engine, 'db');
    const a = await done('db');
    const b = await done('db');
    await alter(bucket(), `backups/${b.backup_id}`);
    // A node that had the record cached would not see the tampering: read from the store.
    h.backups.jobs.repositories.invalidate((await h.credentials.inspect('c')).credential_id);

    const list = await requestJson<{ backups: Array<{ id: string; status: string; damage?: string }> }>(
      app,
      'POST',
      '/v1/cloudbackups/enumerate/filters',
      { credential_id: 'c' },
    );
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    expect(list.body.backups.map((x) => [x.id, x.status])).toEqual([
      [a.backup_id, 'Done'],
      [b.backup_id, 'Failed'],
    ]);
    expect(list.body.backups[1]?.damage).toContain('failed authentication');
    const catalog = await requestJson(app, 'POST', '/v1/cloudbackups/catalog', {
      credential_id: 'c',
      backup_id: a.backup_id,
    });
    expect(catalog.status).toBe(200);
    // Listing only healthy backups: the damaged one is left out.
    const healthy = await requestJson<{ backups: Array<{ id: string }> }>(
      app,
      'POST',
      '/v1/cloudbackups/enumerate/filters',
      { credential_id: 'c', status_filter: 'Done' },
    );
    expect(healthy.body.backups.map((x) => x.id)).toEqual([a.backup_id]);
    // It can be deleted like any other.
    const gone = await requestJson(app, 'DELETE', `/v1/cloudbackups/backup/${b.backup_id}?credential_id=c`);
    expect(gone.status, JSON.stringify(gone.body)).toBe(200);
  });
});

describe('POST /v1/cloudbackups/repair', () => {
  it('rebuilds a deleted index object from the packs and says so', async () => {
    await volumeWithData(h.engine, 'db');
    await done('db');
    const indexKeys = (await bucket().list('index/')).objects.map((o) => o.key);
    await bucket().delete(indexKeys);
    const response = await requestJson<{
      repositories: Array<{ packs: number; packs_reindexed: number; written: string[] }>;
    }>(app, 'POST', '/v1/cloudbackups/repair', { credential_id: 'c', what: 'index' });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const [report] = response.body.repositories;
    expect(report?.packs).toBeGreaterThan(0);
    expect(report?.packs_reindexed).toBe(report?.packs);
    expect(report?.written.length).toBeGreaterThan(0);
    const again = await requestJson<{ repositories: Array<{ packs_reindexed: number }> }>(
      app,
      'POST',
      '/v1/cloudbackups/repair',
      { credential_id: 'c' },
    );
    expect(again.body.repositories[0]?.packs_reindexed).toBe(0);
    const bad = await requestJson(app, 'POST', '/v1/cloudbackups/repair', { credential_id: 'c', what: 'packs' });
    expect(bad.status).toBe(400);
  });
});

describe('a backup job over an altered index object', () => {
  it('ends Done and its status says what was damaged and rebuilt', async () => {
    await volumeWithData(h.engine, 'db');
    await done('db');
    const [first] = (await bucket().list('index/')).objects.map((o) => o.key);
    await alter(bucket(), first as string);
    await h.reopenJobs();
    const job = await done('db');
    expect(job.info.join('\n')).toContain(`index object ${first} is damaged`);
  });
});

describe('running markers at start', () => {
  it('clears the markers of dead processes of this node, and no other', async () => {
    await volumeWithData(h.engine, 'db');
    await done('db');
    const credentialId = (await h.credentials.inspect('c')).credential_id;
    const started = new Date().toISOString();
    const markers = {
      dead: { id: 'dead', volume: 'x', started, node: hostname(), process: 'a-process-that-died' },
      other: { id: 'other', volume: 'x', started, node: 'another-node', process: 'p' },
    };
    await withRepo(async (repo) => {
      for (const [name, body] of Object.entries(markers)) {
        const key = `running/${name}`;
        await repo.putSealedJson(key, body);
      }
    });
    // The job that process was running, left Active by its death.
    const job: JobStatus = {
      task_id: 'killed',
      optype: 'Backup',
      status: 'Active',
      bytes_done: 0,
      bytes_total: 0,
      src_volume_id: 'db',
      info: [],
      credential_id: credentialId,
      create_time: started,
      volume_name: 'db',
    };
    await h.backups.close();
    await h.clusterStore.commit([{ op: 'put', key: jobKey('killed'), value: job }]);
    await h.reopenJobs();
    expect(await h.backups.jobs.markersCleared).toEqual(['dead']);
    const left = (await bucket().list('running/')).objects.map((o) => o.key);
    expect(left).toEqual(['running/other']);
  });
});

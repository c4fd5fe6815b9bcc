/**
 * The app of a process without a volume engine (the serverless handler builds it so): what needs a volume answers
 * 503 UNAVAILABLE with one message; what needs none (identity, health, credentials, backup listings) works.
 */
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudBackups, NO_BLOCK_SOURCE_MESSAGE } from '../cloudsnap/index.js';
import { requestJson } from '../test/support/app-request.js';
import { backup, type KeyHarness, openHarness, volumeWithData } from '../test/support/key-harness.js';
import { createApp } from './app.js';

let h: KeyHarness;
let alone: CloudBackups;
let app: Hono;
let backupId: string;

beforeAll(async () => {
  h = await openHarness();
  await h.credential('c', {});
  await volumeWithData(h.engine, 'vol');
  const done = await backup(h, 'vol', 'c');
  backupId = done.backup_id ?? '';
  alone = await CloudBackups.open({ store: h.clusterStore, credentials: h.credentials, keys: h.keyring });
  app = createApp({ credentials: h.credentials, cloudBackups: alone });
});

afterAll(async () => {
  await alone?.close();
  await h?.close();
});

const refused = { code: 'UNAVAILABLE', message: NO_BLOCK_SOURCE_MESSAGE };

describe('an app without an engine', () => {
  it.each([
    ['POST', '/v1/volumes', { name: 'x', spec: { size: 1048576 } }],
    ['GET', '/v1/volumes', undefined],
    ['GET', '/v1/volumes/inspect/vol', undefined],
    ['DELETE', '/v1/volumes/vol', undefined],
    ['GET', '/v1/volumes/vol/changed_blocks', undefined],
    ['POST', '/v1/volumes/snapshots', { volume_id: 'vol', name: 's' }],
    ['GET', '/v1/volumes/snapshots/vol', undefined],
    ['GET', '/v1/ownership/volumes/vol', undefined],
    ['POST', '/v1/cloudbackups', { volume_id: 'vol', credential_id: 'c' }],
  ])('%s %s answers 503 UNAVAILABLE', async (method, path, body) => {
    const res = await requestJson(app, method, path, body);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject(refused);
  });

  it('refuses a restore the same way (its volume would live on a node)', async () => {
    const res = await requestJson(app, 'POST', '/v1/cloudbackups/restore', { backup_id: backupId, credential_id: 'c' });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject(refused);
  });

  it('serves identity, health, credentials and backup listings', async () => {
    expect((await requestJson(app, 'GET', '/v1/identities/version')).status).toBe(200);
    expect((await requestJson(app, 'GET', '/healthz')).status).toBe(200);
    expect((await requestJson(app, 'GET', '/readyz')).status).toBe(200);
    expect((await requestJson(app, 'GET', '/v1/credentials/inspect/c')).status).toBe(200);
    const listed = await requestJson<{ backups: Array<{ id: string }> }>(
      app,
      'POST',
      '/v1/cloudbackups/enumerate/filters',
      {
        credential_id: 'c',
      },
    );
    expect(listed.status).toBe(200);
    expect(listed.body.backups.map((b) => b.id)).toEqual([backupId]);
  });
});

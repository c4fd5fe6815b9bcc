import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CredentialStore } from '../cloudsnap/index.js';
import { type LocalKeyring, openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';

const SECRET = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';
const AZURE_KEY = 'RXhhbXBsZUF6dXJlQWNjb3VudEtleQ==';

let dataDir: string;
let store: SqliteStore;
let keyring: LocalKeyring;
let engine: VolumeEngine;
let app: Hono;
/** Every response body of the test, to check that no secret ever leaves the API. */
let bodies: string[];

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-credentials-'));
  store = new SqliteStore(join(dataDir, 'cluster.db'));
  engine = await openEngine({ dataDir, store });
  keyring = await openDefaultKeyring(dataDir);
  app = createApp({ engine, credentials: new CredentialStore(store, keyring) });
  bodies = [];
});

afterEach(async () => {
  for (const body of bodies) {
    expect(body).not.toContain(SECRET);
    expect(body).not.toContain(AZURE_KEY);
  }
  await engine.close();
  await store.close();
  await keyring.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  target: Hono = app,
): Promise<{ status: number; body: T }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const response = await target.request(path, init);
  const text = await response.text();
  bodies.push(text);
  return { status: response.status, body: JSON.parse(text) as T };
}

const s3Body = {
  name: 'offsite',
  bucket: 'ferry-backups',
  aws_credential: { access_key: 'AKIAEXAMPLE', secret_key: SECRET, endpoint: 's3.example.com', region: 'eu-west-1' },
  prefix: 'cluster-a',
  labels: { env: 'prod' },
};

async function create(body: unknown = s3Body): Promise<string> {
  const response = await call<{ credential_id: string }>('POST', '/v1/credentials', body);
  expect(response.status).toBe(200);
  return response.body.credential_id;
}

describe('POST /v1/credentials (Create) and GET /v1/credentials (Enumerate)', () => {
  it('creates from an OpenStorage-shaped request and lists the id', async () => {
    const id = await create();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const azure = await create({
      name: 'azure1',
      provider: 'azure',
      bucket: 'container',
      azure_credential: { account_name: 'acct1', account_key: AZURE_KEY },
    });
    const { status, body } = await call<{ credential_ids: string[] }>('GET', '/v1/credentials');
    expect(status).toBe(200);
    expect(body.credential_ids).toEqual([azure, id]);
  });

  it('answers 409 ALREADY_EXISTS for a taken name', async () => {
    await create();
    const { status, body } = await call('POST', '/v1/credentials', s3Body);
    expect([status, body.code]).toEqual([409, 'ALREADY_EXISTS']);
  });

  const bad: [string, unknown, string][] = [
    ['unknown provider', { ...s3Body, provider: 'ftp' }, 'provider'],
    ['missing bucket', { ...s3Body, bucket: undefined }, 'bucket'],
    ['empty bucket', { ...s3Body, bucket: '' }, 'bucket'],
    [
      'bad endpoint URL',
      { ...s3Body, aws_credential: { ...s3Body.aws_credential, endpoint: 'http://' } },
      'aws_credential.endpoint',
    ],
    [
      'secret of the wrong type',
      { ...s3Body, aws_credential: { ...s3Body.aws_credential, secret_key: 5 } },
      'aws_credential.secret_key',
    ],
    ['unknown field', { ...s3Body, encryption_key: 'x' }, 'encryption_key'],
    ['no provider block', { name: 'x', bucket: 'b' }, 'provider'],
    ['unknown KEK', { ...s3Body, kek: 'missing-kek' }, 'kek'],
    ['bad name', { ...s3Body, name: 'a/b' }, 'name'],
  ];
  for (const [what, body, field] of bad) {
    it(`400 INVALID_ARGUMENT naming ${field}: ${what}; nothing stored`, async () => {
      const response = await call('POST', '/v1/credentials', body);
      expect([response.status, response.body.code, response.body.field]).toEqual([400, 'INVALID_ARGUMENT', field]);
      expect((await call<{ credential_ids: string[] }>('GET', '/v1/credentials')).body.credential_ids).toEqual([]);
    });
  }

  it('400 on a body that is not JSON', async () => {
    const { status, body } = await call('POST', '/v1/credentials', '{not json');
    expect([status, body.field]).toEqual([400, 'body']);
  });
});

describe('GET /v1/credentials/inspect/{credential_id} (Inspect)', () => {
  it('returns SdkCredentialInspectResponse plus Ferry fields, by id and by name, never the secret', async () => {
    const id = await create();
    const byId = await call('GET', `/v1/credentials/inspect/${id}`);
    const byName = await call('GET', '/v1/credentials/inspect/offsite');
    expect(byId.status).toBe(200);
    expect(byName.body).toEqual(byId.body);
    expect(byId.body).toMatchObject({
      credential_id: id,
      name: 'offsite',
      provider: 's3',
      bucket: 'ferry-backups',
      prefix: 'cluster-a',
      kek: 'default',
      labels: { env: 'prod' },
      aws_credential: { access_key: 'AKIAEXAMPLE', endpoint: 's3.example.com', region: 'eu-west-1' },
    });
    expect(byId.body.aws_credential).not.toHaveProperty('secret_key');
  });

  it('404 for an unknown credential, 400 for a malformed id', async () => {
    expect((await call('GET', '/v1/credentials/inspect/nope')).status).toBe(404);
    const bad = await call('GET', '/v1/credentials/inspect/-x');
    expect([bad.status, bad.body.field]).toEqual([400, 'credential_id']);
  });
});

describe('DELETE /v1/credentials/{credential_id} (Delete)', () => {
  it('deletes by id or name; a second delete is 404', async () => {
    const id = await create();
    expect(await call('DELETE', `/v1/credentials/${id}`)).toEqual({ status: 200, body: {} });
    expect((await call('DELETE', `/v1/credentials/${id}`)).status).toBe(404);
    await create();
    expect((await call('DELETE', '/v1/credentials/offsite')).status).toBe(200);
    expect((await call<{ credential_ids: string[] }>('GET', '/v1/credentials')).body.credential_ids).toEqual([]);
  });
});

describe('GET /v1/credentials/validate/{credential_id} (Validate)', () => {
  it('200 {} when the directory store is reachable and writable; 404 NOT_FOUND when the directory is missing', async () => {
    const root = join(dataDir, 'objects');
    await mkdir(join(root, 'bucket1'), { recursive: true });
    await create({ name: 'local', bucket: 'bucket1', directory_credential: { path: root } });
    expect(await call('GET', '/v1/credentials/validate/local')).toEqual({ status: 200, body: {} });

    await mkdir(join(root, 'nope'));
    await create({ name: 'gone', provider: 'directory', bucket: 'nope', directory_credential: { path: root } });
    await rm(join(root, 'nope'), { recursive: true });
    const missing = await call('GET', '/v1/credentials/validate/gone');
    expect([missing.status, missing.body.code]).toEqual([404, 'NOT_FOUND']);
  });
});

describe('a node without a credential store', () => {
  it('answers 503 UNAVAILABLE on every credential route', async () => {
    const bare = createApp({ engine });
    for (const [method, path] of [
      ['GET', '/v1/credentials'],
      ['POST', '/v1/credentials'],
      ['GET', '/v1/credentials/inspect/x'],
    ] as const) {
      const { status, body } = await call(method, path, undefined, bare);
      expect([status, body.code]).toEqual([503, 'UNAVAILABLE']);
    }
  });
});

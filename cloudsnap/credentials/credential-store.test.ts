import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type LocalKeyring, openDefaultKeyring } from '../../kms/index.js';
import { SqliteStore } from '../../node/index.js';
import { rejection } from '../../test/support/rejection.js';
import { CREDENTIALS_PREFIX, type CredentialRecord, CredentialStore } from './credential-store.js';
import type { CreateCredentialRequest } from './types.js';

const SECRETS = {
  s3: 'S3-SECRET-do-not-leak-0123456789abcdef',
  azure: 'QXp1cmVTZWNyZXRLZXktZG8tbm90LWxlYWs=',
  google: 'GOOG-HMAC-SECRET-do-not-leak-9876',
  json: '{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----do-not-leak"}',
};

let dataDir: string;
let store: SqliteStore;
let keyring: LocalKeyring;
let credentials: CredentialStore;

async function open(): Promise<void> {
  store = new SqliteStore(join(dataDir, 'cluster.db'));
  keyring = await openDefaultKeyring(dataDir);
  credentials = new CredentialStore(store, keyring);
}

async function close(): Promise<void> {
  await store.close();
  await keyring.close();
}

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-credentials-'));
  await open();
});

afterEach(async () => {
  await close();
  await rm(dataDir, { recursive: true, force: true });
});

function s3Request(name = 'backup-s3', extra: Partial<CreateCredentialRequest> = {}): CreateCredentialRequest {
  return {
    name,
    provider: 's3',
    bucket: 'ferry-backups',
    aws_credential: {
      access_key: 'AKIAEXAMPLE',
      secret_key: SECRETS.s3,
      endpoint: 'http://127.0.0.1:7480',
      region: 'us-east-1',
    },
    prefix: '/cluster-a/',
    labels: { site: 'west' },
    ...extra,
  };
}

describe('CredentialStore', () => {
  it('creates a credential with defaults and inspects it by id and name, without its secret', async () => {
    const created = await credentials.create(s3Request());
    expect(created.credential_id).toMatch(/^[0-9a-f-]{36}$/);
    const byId = await credentials.inspect(created.credential_id);
    expect(await credentials.inspect('backup-s3')).toEqual(byId);
    expect(byId).toEqual({
      credential_id: created.credential_id,
      name: 'backup-s3',
      provider: 's3',
      bucket: 'ferry-backups',
      prefix: 'cluster-a',
      kek: 'default',
      labels: { site: 'west' },
      created: created.created,
      aws_credential: { access_key: 'AKIAEXAMPLE', endpoint: 'http://127.0.0.1:7480', region: 'us-east-1' },
    });
    expect(JSON.stringify(byId)).not.toContain(SECRETS.s3);
    expect(await credentials.enumerate()).toEqual([created.credential_id]);
  });

  it('infers the provider from the one block given (OpenStorage requests carry no provider)', async () => {
    const { provider: _p, ...request } = s3Request();
    expect((await credentials.create(request)).provider).toBe('s3');
  });

  it('resolve returns the secrets, also after a restart; inspect of every provider hides them', async () => {
    await credentials.create(s3Request());
    await credentials.create({
      name: 'az',
      bucket: 'container1',
      azure_credential: {
        account_name: 'devstoreaccount1',
        account_key: SECRETS.azure,
        endpoint: 'http://127.0.0.1:10000/devstoreaccount1',
      },
    });
    await credentials.create({
      name: 'gcs',
      bucket: 'gcs-bucket',
      google_credential: {
        access_key: 'GOOGHMACACCESS',
        secret_key: SECRETS.google,
        project_id: 'proj',
        json_key: SECRETS.json,
      },
    });
    await close();
    await open();
    expect((await credentials.resolve('backup-s3')).aws_credential?.secret_key).toBe(SECRETS.s3);
    expect((await credentials.resolve('az')).azure_credential?.account_key).toBe(SECRETS.azure);
    const gcs = await credentials.resolve('gcs');
    expect([gcs.google_credential?.secret_key, gcs.google_credential?.json_key]).toEqual([
      SECRETS.google,
      SECRETS.json,
    ]);
    const shown = JSON.stringify(await credentials.list());
    for (const secret of Object.values(SECRETS)) expect(shown).not.toContain(secret);
    for (const field of ['secret_key', 'account_key', 'json_key']) expect(shown).not.toContain(field);
    expect((await credentials.list()).map((c) => c.name)).toEqual(['az', 'backup-s3', 'gcs']);
  });

  it('never stores a secret in clear: the SQLite rows and files hold none of them', async () => {
    await credentials.create(s3Request());
    await credentials.create({
      name: 'az',
      bucket: 'c',
      azure_credential: { account_name: 'acct1', account_key: SECRETS.azure },
    });
    await credentials.create({
      name: 'gcs',
      bucket: 'b',
      google_credential: { access_key: 'GOOG1', secret_key: SECRETS.google, json_key: SECRETS.json },
    });

    const db = new Database(join(dataDir, 'cluster.db'), { readonly: true });
    const rows = db.prepare('SELECT key, value FROM kv').all() as { key: string; value: string }[];
    db.close();
    const credentialRows = rows.filter((r) => r.key.startsWith(CREDENTIALS_PREFIX));
    expect(credentialRows).toHaveLength(3);
    const raw = rows.map((r) => `${r.key}=${r.value}`).join('\n');
    for (const secret of Object.values(SECRETS)) {
      expect(raw).not.toContain(secret);
      expect(raw).not.toContain(Buffer.from(secret).toString('base64'));
    }
    const record = JSON.parse(credentialRows[0]?.value ?? '{}') as CredentialRecord;
    expect(record.sealed.wrapped_key).toMatchObject({ provider: 'local', kek_id: 'default', kek_version: 1 });

    await close();
    for (const file of (await readdir(dataDir)).filter((f) => f.startsWith('cluster.db'))) {
      const bytes = await readFile(join(dataDir, file));
      for (const secret of Object.values(SECRETS)) expect(bytes.includes(secret)).toBe(false);
    }
    await open();
  });

  it('refuses a second credential of the same name with ALREADY_EXISTS', async () => {
    const first = await credentials.create(s3Request());
    const err = await rejection(credentials.create(s3Request('backup-s3', { bucket: 'other' })));
    expect(err.code).toBe('ALREADY_EXISTS');
    expect(await credentials.enumerate()).toEqual([first.credential_id]);
    const both = await Promise.allSettled([
      credentials.create(s3Request('twin')),
      credentials.create(s3Request('twin')),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  });

  describe('bad input is INVALID_ARGUMENT naming the field, and nothing is stored', () => {
    const cases: [string, unknown, string][] = [
      ['unknown provider', { ...s3Request(), provider: 'ftp' }, 'provider'],
      ['no provider at all', { name: 'x', bucket: 'b' }, 'provider'],
      ['missing bucket name', { ...s3Request(), bucket: undefined }, 'bucket'],
      ['empty bucket name', { ...s3Request(), bucket: '' }, 'bucket'],
      [
        'bad endpoint URL',
        s3Request('x', { aws_credential: { ...s3Request().aws_credential!, endpoint: 'ht!tp://' } }),
        'aws_credential.endpoint',
      ],
      [
        'ftp endpoint',
        s3Request('x', { aws_credential: { ...s3Request().aws_credential!, endpoint: 'ftp://host' } }),
        'aws_credential.endpoint',
      ],
      [
        'endpoint with a password',
        s3Request('x', { aws_credential: { ...s3Request().aws_credential!, endpoint: 'https://u:p@h' } }),
        'aws_credential.endpoint',
      ],
      [
        'missing secret key',
        s3Request('x', { aws_credential: { access_key: 'A', secret_key: '' } }),
        'aws_credential.secret_key',
      ],
      [
        'block of another provider',
        { ...s3Request(), azure_credential: { account_name: 'a', account_key: 'k' } },
        'azure_credential',
      ],
      ['bad name', s3Request('bad name'), 'name'],
      [
        'relative directory path',
        { name: 'd', provider: 'directory', bucket: 'b', directory_credential: { path: 'rel' } },
        'directory_credential.path',
      ],
      ['prefix with ..', s3Request('x', { prefix: 'a/../b' }), 'prefix'],
      ['unknown KEK', s3Request('x', { kek: 'nope' }), 'kek'],
      ['bad KEK name', s3Request('x', { kek: '../k' }), 'kek'],
    ];
    for (const [what, request, field] of cases) {
      it(what, async () => {
        const err = await rejection(credentials.create(request as CreateCredentialRequest));
        expect([err.code, err.field]).toEqual(['INVALID_ARGUMENT', field]);
        expect(err.message.startsWith(`${field}: `)).toBe(true);
        expect(await store.list(CREDENTIALS_PREFIX)).toEqual([]);
      });
    }
  });

  it('delete by id or name; then NOT_FOUND', async () => {
    const a = await credentials.create(s3Request('a'));
    await credentials.create(s3Request('b'));
    await credentials.delete(a.credential_id);
    await credentials.delete('b');
    expect(await credentials.enumerate()).toEqual([]);
    expect((await rejection(credentials.inspect('a'))).code).toBe('NOT_FOUND');
    expect((await rejection(credentials.delete('b'))).code).toBe('NOT_FOUND');
    expect((await rejection(credentials.resolve(a.credential_id))).code).toBe('NOT_FOUND');
  });

  it('an altered record does not decrypt (DATA_CORRUPTION); a destroyed KEK makes secrets unreadable', async () => {
    const { credential_id } = await credentials.create(s3Request());
    const key = `${CREDENTIALS_PREFIX}${credential_id}`;
    const record = (await store.get<CredentialRecord>(key))!;
    const moved = { ...record, credential_id: 'another-id' };
    await store.commit([{ op: 'put', key: `${CREDENTIALS_PREFIX}another-id`, value: moved }]);
    const err = await rejection(credentials.resolve('another-id'));
    expect(err.code).toBe('DATA_CORRUPTION');
    expect(err.message).not.toContain(SECRETS.s3);

    await keyring.destroyKek('default');
    const gone = await rejection(credentials.resolve(credential_id));
    expect(gone.code).toBe('PERMISSION_DENIED');
    expect(gone.message).toMatch(/destroyed/);
  });
});

describe('CredentialStore.validate against the directory store', () => {
  it('lists, writes, reads and deletes a probe under the prefix, leaving nothing behind', async () => {
    const root = join(dataDir, 'objects');
    // The directory store never creates its root: bucket and prefix directories must exist.
    await mkdir(join(root, 'bucket1', 'cluster-a'), { recursive: true });
    await credentials.create({
      name: 'local',
      provider: 'directory',
      bucket: 'bucket1',
      directory_credential: { path: root },
      prefix: 'cluster-a',
    });
    await credentials.validate('local');
    const left = await readdir(join(root, 'bucket1'), { recursive: true });
    expect(left.filter((f) => f.includes('.ferry-validate-'))).toEqual([]);
  });

  it('a directory removed after the credential was created is NOT_FOUND', async () => {
    await mkdir(join(dataDir, 'gone-dir', 'nope'), { recursive: true });
    await credentials.create({
      name: 'missing',
      bucket: 'nope',
      directory_credential: { path: join(dataDir, 'gone-dir') },
    });
    await rm(join(dataDir, 'gone-dir'), { recursive: true });
    const err = await rejection(credentials.validate('missing'));
    expect(err.code).toBe('NOT_FOUND');
  });
});

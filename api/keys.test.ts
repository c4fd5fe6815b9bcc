/**
 * The key routes (Ferry's addition under /v1): list, create, rotate, destroy through `app.request`, against a node in
 * this process (local keyring, directory-store credentials); credentials with `key_provider`; bad input; and the
 * routes answering 503 when the node serves no key operations.
 */
import type { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requestJson } from '../test/support/app-request.js';
import { backup, type KeyHarness, openHarness, volumeWithData } from '../test/support/key-harness.js';
import { createApp } from './app.js';

let h: KeyHarness;
let app: Hono;

beforeEach(async () => {
  h = await openHarness();
  app = createApp({ engine: h.engine, credentials: h.credentials, cloudBackups: h.backups, keys: h.keys });
});

afterEach(async () => {
  await h.close();
});

function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  return requestJson<T>(app, method, path, body);
}

describe('/v1/keys', () => {
  it('creates, lists, rotates (rewrapping the repository) and destroys a KEK', async () => {
    const created = await call('POST', '/v1/keys', { kek: 'team-a' });
    expect(created).toMatchObject({ status: 200, body: { id: 'team-a', version: 1, destroyed: false } });
    expect((await call('POST', '/v1/keys', { kek: 'team-a' })).status).toBe(409);

    const cred = await call('POST', '/v1/credentials', {
      name: 'a',
      bucket: 'backups',
      directory_credential: { path: h.objects, create: true },
      kek: 'team-a',
      key_provider: 'local',
    });
    expect(cred.status).toBe(200);
    expect((await call('GET', '/v1/credentials/inspect/a')).body).toMatchObject({
      kek: 'team-a',
      key_provider: 'local',
    });
    await h.credential('unused', { prefix: 'x' });
    await volumeWithData(h.engine, 'v');
    expect((await backup(h, 'v', 'a')).status).toBe('Done');

    const rotated = await call<{ version: number; repositories: { credential_id: string; to_version: number }[] }>(
      'POST',
      '/v1/keys/rotate',
      { kek: 'team-a', credential_id: 'a' },
    );
    expect(rotated.status).toBe(200);
    expect(rotated.body.version).toBe(2);
    expect(rotated.body.repositories).toEqual([
      expect.objectContaining({ credential_id: cred.body.credential_id, from_version: 1, to_version: 2 }),
    ]);

    const list = await call<{ keks: { id: string; version: number }[]; providers: string[] }>('GET', '/v1/keys');
    expect(list.body.providers).toEqual(['local']);
    expect(list.body.keks.map((k) => [k.id, k.version])).toEqual([
      ['default', 1],
      ['team-a', 2],
    ]);

    const destroyed = await call('POST', '/v1/keys/destroy', { kek: 'team-a' });
    expect(destroyed).toMatchObject({
      status: 200,
      body: { kek: { id: 'team-a', destroyed: true }, credentials: ['a'] },
    });
    const listed = await call('POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'a' });
    expect(listed.status).toBe(403);
    expect(listed.body).toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/destroyed/) });
  });

  it('destroy names the encrypted volumes it would make unreadable, refuses them without force; they show as down', async () => {
    await call('POST', '/v1/keys', { kek: 'team-a' });
    for (const name of ['pay', 'ledger']) {
      const made = await call('POST', '/v1/volumes', {
        name,
        spec: { size: 1048576, encrypted: true },
        labels: { 'ferry.io/kek': 'team-a' },
      });
      expect(made.status).toBe(200);
    }
    await call('POST', '/v1/volumes', { name: 'plain', spec: { size: 1048576 } });

    const dry = await call('POST', '/v1/keys/destroy', { kek: 'team-a', dry_run: true });
    expect(dry).toMatchObject({
      status: 200,
      body: { kek: { id: 'team-a', destroyed: false }, volumes: ['ledger', 'pay'], dry_run: true },
    });
    const refused = await call('POST', '/v1/keys/destroy', { kek: 'team-a' });
    expect(refused.status).toBe(412);
    expect(refused.body).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(refused.body.message).toMatch(/encrypted volumes ledger, pay unreadable, for good/);
    expect(refused.body.message).toMatch(/--force/);
    const still = await call<{ keks: { id: string; destroyed: boolean }[] }>('GET', '/v1/keys');
    expect(still.body.keks).toContainEqual(expect.objectContaining({ id: 'team-a', destroyed: false }));
    const up = await call<{ volume: { status: string } }>('GET', '/v1/volumes/inspect/pay');
    expect(up.body.volume.status).toBe('VOLUME_STATUS_UP');

    const forced = await call('POST', '/v1/keys/destroy', { kek: 'team-a', force: true });
    expect(forced).toMatchObject({ status: 200, body: { kek: { destroyed: true }, volumes: ['ledger', 'pay'] } });
    const down = await call<{ volume: { status: string; error?: string } }>('GET', '/v1/volumes/inspect/pay');
    expect(down.body.volume).toMatchObject({ status: 'VOLUME_STATUS_DOWN', error: 'KEK team-a destroyed' });
    const plain = await call<{ volume: { status: string; error?: string } }>('GET', '/v1/volumes/inspect/plain');
    expect(plain.body.volume.status).toBe('VOLUME_STATUS_UP');
    expect(plain.body.volume.error).toBeUndefined();
    const all = await call<{ volumes: { name: string; volume: { status: string } }[] }>(
      'POST',
      '/v1/volumes/inspectwithfilters',
      {},
    );
    expect(all.body.volumes.map((v) => [v.name, v.volume.status]).sort()).toEqual([
      ['ledger', 'VOLUME_STATUS_DOWN'],
      ['pay', 'VOLUME_STATUS_DOWN'],
      ['plain', 'VOLUME_STATUS_UP'],
    ]);
  });

  it('enumerate without a credential lists what it can read and names each credential it could not', async () => {
    for (const team of ['team-a', 'team-b']) {
      await h.keyring.createKek(team);
      await h.credential(team, { prefix: team, kek: team });
      await volumeWithData(h.engine, `vol-${team}`);
      expect((await backup(h, `vol-${team}`, team)).status).toBe('Done');
    }
    const both = await call<{ backups: { src_volume_name: string }[]; errors?: unknown }>(
      'POST',
      '/v1/cloudbackups/enumerate/filters',
      {},
    );
    expect(both.body.backups.map((b) => b.src_volume_name).sort()).toEqual(['vol-team-a', 'vol-team-b']);
    expect(both.body.errors).toBeUndefined();

    expect((await call('POST', '/v1/keys/destroy', { kek: 'team-a' })).status).toBe(200);
    const partial = await call<{
      backups: { src_volume_name: string; credential_id: string }[];
      errors: { credential_name: string; code: string; message: string }[];
    }>('POST', '/v1/cloudbackups/enumerate/filters', {});
    expect(partial.status).toBe(200);
    expect(partial.body.backups.map((b) => b.src_volume_name)).toEqual(['vol-team-b']);
    expect(partial.body.backups[0]?.credential_id).toBe((await h.credentials.inspect('team-b')).credential_id);
    expect(partial.body.errors).toEqual([
      expect.objectContaining({ credential_name: 'team-a', code: 'PERMISSION_DENIED' }),
    ]);
    expect(partial.body.errors[0]?.message).toMatch(/destroyed/);
    const one = await call('POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'team-a' });
    expect(one.status).toBe(403);
  });

  it('rejects bad input and refusals with the right status', async () => {
    const cases: [string, string, unknown, number, string?][] = [
      ['POST', '/v1/keys', {}, 400, 'kek'],
      ['POST', '/v1/keys', { kek: 'a b' }, 400, 'kek'],
      ['POST', '/v1/keys/rotate', { kek: 'x', key_provider: 'hsm' }, 400, 'key_provider'],
      ['POST', '/v1/keys/rotate', { kek: 'x', extra: 1 }, 400, 'extra'],
      ['POST', '/v1/keys/rotate', { kek: 'missing' }, 404],
      ['POST', '/v1/keys/rotate', { kek: 'default', key_provider: 'vault' }, 412],
      ['POST', '/v1/keys/destroy', { kek: 'default' }, 412],
      ['POST', '/v1/keys/destroy', { kek: 'missing' }, 404],
      ['POST', '/v1/keys/destroy', { kek: 'x', force: 'yes' }, 400, 'force'],
    ];
    for (const [method, path, body, status, field] of cases) {
      const response = await call(method, path, body);
      expect([path, response.status], JSON.stringify(response.body)).toEqual([path, status]);
      if (field !== undefined) expect(response.body.field).toBe(field);
    }
    const cred = await call('POST', '/v1/credentials', {
      name: 'v',
      bucket: 'backups',
      directory_credential: { path: h.objects },
      kek: 'backups',
      key_provider: 'vault',
    });
    expect([cred.status, cred.body.field]).toEqual([400, 'key_provider']);
    const noKek = await call('POST', '/v1/credentials', {
      name: 'v',
      bucket: 'backups',
      directory_credential: { path: h.objects },
      key_provider: 'aws-kms',
    });
    expect([noKek.status, noKek.body.field]).toEqual([400, 'kek']);
  });

  it('answers 503 UNAVAILABLE when the node serves no key operations', async () => {
    app = createApp({ engine: h.engine });
    const response = await call('GET', '/v1/keys');
    expect([response.status, response.body.code]).toEqual([503, 'UNAVAILABLE']);
  });
});

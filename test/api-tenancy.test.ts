/**
 * Tenants and directory credentials through the API (app.request, bearer tokens, a node's parts with the directory
 * roots at <dataDir>/objects): a system.user's credential pointing at the admin's repository cannot enumerate,
 * catalog or restore it (they answered 200 before); a repository opens through credentials of its owner or of users
 * it is shared with; directory paths outside the roots, system paths, ".." and symlink escapes are refused.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerAuth, createApp, createTokenVerifier, mintToken } from '../api/index.js';
import { type KeyHarness, openHarness } from './support/key-harness.js';
import { tenantRequests } from './support/tenant-requests.js';

const SECRET = randomBytes(32);
const MiB = 1024 * 1024;
let h: KeyHarness;
let app: Hono;
let outside: string;
const tokens = new Map<string, string>();

type Who = 'admin' | 'alice' | 'bob';

const { send, ok, waitForTask, backUp } = tenantRequests<Who>(() => ({ app, tokens, engine: h.engine }));

function directory(name: string, path: string, bucket: string, create = false) {
  return { name, bucket, directory_credential: { path, ...(create && { create: true }) } };
}

let adminBackup: string;

beforeAll(async () => {
  h = await openHarness();
  outside = await mkdtemp(join(tmpdir(), 'ferry-tenancy-outside-'));
  const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
  app = createApp({
    engine: h.engine,
    credentials: h.credentials,
    cloudBackups: h.backups,
    authenticate: bearerAuth(verifier),
  });
  tokens.set('admin', await mintToken(SECRET, { sub: 'root', roles: ['system.admin'] }));
  tokens.set('alice', await mintToken(SECRET, { sub: 'alice', roles: ['system.user'], groups: ['team-a'] }));
  tokens.set('bob', await mintToken(SECRET, { sub: 'bob', roles: ['system.user'], groups: ['team-a'] }));
  await ok('admin', 'POST', '/v1/credentials', directory('admins', h.objects, 'backups', true));
  adminBackup = await backUp('admin', 'payroll', 'admins');
});

afterAll(async () => {
  await h?.close();
  await rm(outside, { recursive: true, force: true });
});

describe("a system.user's credential onto the admin's repository", () => {
  it('is refused on enumerate, catalog and restore, and restores nothing', async () => {
    await ok('alice', 'POST', '/v1/credentials', directory('sneaky', h.objects, 'backups'));
    const listed = await send('alice', 'POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'sneaky' });
    expect(listed.status).toBe(403);
    expect(listed.body).toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(String(listed.body.message)).toMatch(/belongs to another owner's credential/);
    const catalog = await send('alice', 'POST', '/v1/cloudbackups/catalog', {
      credential_id: 'sneaky',
      backup_id: adminBackup,
    });
    expect(catalog.status).toBe(403);
    const restore = await send('alice', 'POST', '/v1/cloudbackups/restore', {
      credential_id: 'sneaky',
      backup_id: adminBackup,
      restore_volume_name: 'stolen',
    });
    expect(restore.status).toBe(403);
    expect((await h.engine.listVolumes()).map((v) => v.name)).not.toContain('stolen');
    const verify = await send('alice', 'POST', '/v1/cloudbackups/verify', { credential_id: 'sneaky' });
    expect(verify.status).toBe(403);
    // The admin's own credential still works.
    const mine = await ok<{ backups: { id: string }[] }>('admin', 'POST', '/v1/cloudbackups/enumerate/filters', {
      credential_id: 'admins',
    });
    expect(mine.backups.map((b) => b.id)).toEqual([adminBackup]);
  });

  it('opens once the admin shares its credential with the user at Write', async () => {
    await ok('alice', 'POST', '/v1/credentials', directory('shared-view', h.objects, 'backups'));
    expect(
      (await send('alice', 'POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'shared-view' })).status,
    ).toBe(403);
    await ok('admin', 'PUT', '/v1/ownership/credentials/admins', {
      ownership: { acls: { collaborators: { alice: 'Write' } } },
    });
    const listed = await ok<{ backups: { id: string }[] }>('alice', 'POST', '/v1/cloudbackups/enumerate/filters', {
      credential_id: 'shared-view',
    });
    expect(listed.backups.map((b) => b.id)).toEqual([adminBackup]);
    await ok('admin', 'PUT', '/v1/ownership/credentials/admins', { ownership: { acls: {} } });
  });
});

describe('between two users', () => {
  it("lets a user's second credential onto her own repository work, and refuses another user's", async () => {
    await ok('alice', 'POST', '/v1/credentials', directory('alice-1', join(h.objects, 'alice'), 'backups', true));
    const backup = await backUp('alice', 'alice-vol', 'alice-1');
    await ok('alice', 'POST', '/v1/credentials', directory('alice-2', join(h.objects, 'alice'), 'backups'));
    const again = await ok<{ backups: { id: string }[] }>('alice', 'POST', '/v1/cloudbackups/enumerate/filters', {
      credential_id: 'alice-2',
    });
    expect(again.backups.map((b) => b.id)).toEqual([backup]);

    await ok('bob', 'POST', '/v1/credentials', directory('bobs', join(h.objects, 'alice'), 'backups'));
    const refused = await send('bob', 'POST', '/v1/cloudbackups/restore', {
      credential_id: 'bobs',
      backup_id: backup,
      restore_volume_name: 'bob-copy',
    });
    expect(refused.status).toBe(403);
    // A backup into it through bob's credential fails too, and writes nothing there.
    const { volume_id } = await ok<{ volume_id: string }>('bob', 'POST', '/v1/volumes', {
      name: 'bob-vol',
      spec: { size: 4 * MiB },
    });
    const { task_id } = await ok<{ task_id: string }>('bob', 'POST', '/v1/cloudbackups', {
      volume_id,
      credential_id: 'bobs',
    });
    const job = await waitForTask('bob', task_id);
    expect(job.status).toBe('Failed');
    expect(JSON.stringify(job.info)).toMatch(/belongs to another owner's credential/);
    const listed = await ok<{ backups: { id: string }[] }>('alice', 'POST', '/v1/cloudbackups/enumerate/filters', {
      credential_id: 'alice-1',
    });
    expect(listed.backups.map((b) => b.id)).toEqual([backup]);
  });
});

describe('where directory credentials may point', () => {
  it('refuses "/" + bucket etc for a user and for an admin, and writes nothing there', async () => {
    for (const who of ['alice', 'admin'] as const) {
      const response = await send(who, 'POST', '/v1/credentials', directory(`etc-${who}`, '/', 'etc'));
      expect(response.status, who).toBe(403);
      expect(response.body).toMatchObject({ code: 'PERMISSION_DENIED' });
    }
    expect(existsSync('/etc/config')).toBe(false);
  });

  it('refuses a user outside the roots, saying which roots; lets an admin, but never into system paths', async () => {
    const user = await send('alice', 'POST', '/v1/credentials', directory('out', outside, 'b', true));
    expect(user.status).toBe(403);
    expect(String(user.body.message)).toContain(`(${h.objects})`);
    expect(existsSync(join(outside, 'b'))).toBe(false);

    const admin = await ok<{ credential_id: string }>(
      'admin',
      'POST',
      '/v1/credentials',
      directory('out', outside, 'b', true),
    );
    const inspected = await ok<Record<string, unknown>>(
      'admin',
      'GET',
      `/v1/credentials/inspect/${admin.credential_id}`,
    );
    expect(inspected.directory_credential).toEqual({ path: outside, outside_roots: true });
    await ok('admin', 'GET', '/v1/credentials/validate/out');

    for (const [path, bucket] of [
      ['/etc', 'ferry'],
      ['/usr/lib', 'ferry'],
      ['/var/lib', 'dpkg'],
      ['/proc', 'self'],
      [h.dataDir, 'layers'],
    ]) {
      const refused = await send(
        'admin',
        'POST',
        '/v1/credentials',
        directory('sys', path as string, bucket as string),
      );
      expect(refused.status, `${path}/${bucket}`).toBe(403);
    }
  });

  it('refuses ".." and symlinks out of the root or path, for users and admins', async () => {
    const dots = await send('alice', 'POST', '/v1/credentials', directory('dots', `${h.objects}/../..`, 'etc'));
    expect([dots.status, dots.body.field]).toEqual([400, 'directory_credential.path']);
    await symlink('/etc', join(h.objects, 'to-etc'));
    for (const who of ['alice', 'admin'] as const) {
      const linked = await send(
        who,
        'POST',
        '/v1/credentials',
        directory(`l-${who}`, join(h.objects, 'to-etc'), 'ssl'),
      );
      expect(linked.status, who).toBe(403);
    }
    await symlink(outside, join(h.objects, 'escape'));
    const bucket = await send('alice', 'POST', '/v1/credentials', directory('esc', h.objects, 'escape'));
    expect(bucket.status).toBe(403);
  });
});

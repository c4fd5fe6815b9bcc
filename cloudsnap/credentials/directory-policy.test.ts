/**
 * Where directory credentials may point: under the node's roots for everyone; elsewhere for admins only, never at a
 * system directory, the data directory, through `..` or a symlink; checked at create (exists and writable, or made
 * with `create`, and removed again when the create fails) and again at each use.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import { type LocalKeyring, openDefaultKeyring } from '../../kms/index.js';
import { SqliteStore } from '../../node/index.js';
import { CredentialStore } from './credential-store.js';
import { DirectoryPolicy, directoryRoots } from './directory-policy.js';

let dataDir: string;
let objects: string;
let elsewhere: string;
let store: SqliteStore;
let keyring: LocalKeyring;
let credentials: CredentialStore;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-dirpolicy-'));
  objects = join(dataDir, 'objects');
  elsewhere = await mkdtemp(join(tmpdir(), 'ferry-dirpolicy-elsewhere-'));
  await mkdir(objects);
  store = new SqliteStore(join(dataDir, 'cluster.db'));
  keyring = await openDefaultKeyring(dataDir);
  credentials = new CredentialStore(store, keyring, { directories: { roots: [objects], dataDir } });
});

afterEach(async () => {
  await store.close();
  await keyring.close();
  await rm(dataDir, { recursive: true, force: true });
  await rm(elsewhere, { recursive: true, force: true });
});

async function refusal(promise: Promise<unknown>): Promise<FerryError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FerryError);
  return err as FerryError;
}

function dir(name: string, path: string, bucket: string, extra: { create?: boolean; prefix?: string } = {}) {
  return {
    name,
    bucket,
    directory_credential: { path, ...(extra.create !== undefined && { create: extra.create }) },
    ...(extra.prefix !== undefined && { prefix: extra.prefix }),
  };
}

const user = { admin: false };
const admin = { admin: true };

describe('directory credentials of a system.user', () => {
  it('may point under a root', async () => {
    await mkdir(join(objects, 'team-a'));
    const info = await credentials.create(dir('a', objects, 'team-a'), user);
    expect(info.directory_credential).toEqual({ path: objects });
    expect((await credentials.resolve('a')).directory_credential?.path).toBe(objects);
  });

  it('may not point outside the roots, at "/" + etc, or at the root itself', async () => {
    await mkdir(join(elsewhere, 'b'));
    const outside = await refusal(credentials.create(dir('out', elsewhere, 'b'), user));
    expect(outside.code).toBe('PERMISSION_DENIED');
    expect(outside.message).toContain(`outside the directories this node allows for backups (${objects})`);
    const etc = await refusal(credentials.create(dir('etc', '/', 'etc'), user));
    expect(etc.code).toBe('PERMISSION_DENIED');
    const root = await refusal(credentials.create(dir('root', dataDir, 'objects'), user));
    expect(root.code).toBe('PERMISSION_DENIED');
    expect(await credentials.list()).toEqual([]);
  });

  it('may not use ".." or a symlink that leads out of the root', async () => {
    const dots = await refusal(credentials.create(dir('dots', `${objects}/../..`, 'etc'), user));
    expect([dots.code, dots.field]).toEqual(['INVALID_ARGUMENT', 'directory_credential.path']);
    await symlink('/etc', join(objects, 'to-etc'));
    const viaPath = await refusal(credentials.create(dir('l1', join(objects, 'to-etc'), 'ssl'), user));
    expect(viaPath.code).toBe('PERMISSION_DENIED');
    expect(viaPath.message).toMatch(/resolves to \/etc\/ssl, outside the directory root/);
    await symlink(elsewhere, join(objects, 'escape'));
    const viaBucket = await refusal(credentials.create(dir('l2', objects, 'escape'), user));
    expect(viaBucket.code).toBe('PERMISSION_DENIED');
    // A symlink that stays inside the root is fine.
    await mkdir(join(objects, 'real'));
    await symlink(join(objects, 'real'), join(objects, 'alias'));
    expect((await credentials.create(dir('inside', objects, 'alias'), user)).name).toBe('inside');
  });
});

describe('directory credentials of a system.admin', () => {
  it('may point outside the roots (recorded on the credential)', async () => {
    await mkdir(join(elsewhere, 'b'));
    const info = await credentials.create(dir('out', elsewhere, 'b'), admin);
    expect(info.directory_credential).toEqual({ path: elsewhere, outside_roots: true });
  });

  it('may not point at system directories, the data directory, through ".." or a symlink', async () => {
    for (const [path, bucket] of [
      ['/', 'etc'],
      ['/', 'srv-backups'],
      ['/etc', 'ssl'],
      ['/usr', 'lib'],
      ['/proc', 'self'],
      ['/var/lib', 'dpkg'],
      [dataDir, 'layers'],
    ] as const) {
      const err = await refusal(credentials.create(dir('sys', path, bucket), admin));
      expect(err.code, `${path} ${bucket}`).toBe('PERMISSION_DENIED');
    }
    const dots = await refusal(credentials.create(dir('dots', `${elsewhere}/../${elsewhere}`, 'b'), admin));
    expect(dots.code).toBe('INVALID_ARGUMENT');
    await symlink('/etc', join(elsewhere, 'to-etc'));
    const linked = await refusal(credentials.create(dir('link', join(elsewhere, 'to-etc'), 'ssl'), admin));
    expect(linked.code).toBe('PERMISSION_DENIED');
    expect(linked.message).toMatch(/through a symlink; give the real path/);
    expect(await credentials.list()).toEqual([]);
  });
});

describe('checks at create (issue: a directory credential checked nothing)', () => {
  it('refuses a directory that does not exist, saying how to have it made; makes it (0700) with create', async () => {
    const missing = await refusal(credentials.create(dir('m', objects, 'backups'), user));
    expect([missing.code, missing.field]).toEqual(['INVALID_ARGUMENT', 'directory_credential.path']);
    expect(missing.message).toContain(`${join(objects, 'backups')} does not exist`);
    expect(missing.message).toContain('--create');
    expect(existsSync(join(objects, 'backups'))).toBe(false);

    await credentials.create(dir('m', join(objects, 'team-a'), 'backups', { create: true }), user);
    const made = await stat(join(objects, 'team-a', 'backups'));
    expect(made.isDirectory()).toBe(true);
    expect(made.mode & 0o777).toBe(0o700);
  });

  it('refuses a file, and a directory the node cannot write', async () => {
    const { writeFile, chmod } = await import('node:fs/promises');
    await writeFile(join(objects, 'file'), 'x');
    const file = await refusal(credentials.create(dir('f', objects, 'file'), user));
    expect(file.message).toContain('is not a directory');
    if (process.getuid?.() !== 0) {
      await mkdir(join(objects, 'ro'), { mode: 0o500 });
      const ro = await refusal(credentials.create(dir('ro', objects, 'ro'), user));
      expect(ro.message).toContain('is not writable by the node');
      await chmod(join(objects, 'ro'), 0o700);
    }
  });

  it('leaves nothing behind when the create fails after making the directory', async () => {
    const failing = new CredentialStore(store, keyring, {
      secretsKek: 'no-such-kek',
      directories: { roots: [objects], dataDir },
    });
    const err = await refusal(failing.create(dir('x', join(objects, 'new', 'deeper'), 'b', { create: true }), user));
    expect(err.code).toBe('NOT_FOUND');
    expect(existsSync(join(objects, 'new'))).toBe(false);
    expect(await credentials.list()).toEqual([]);
  });
});

describe('checks at each use', () => {
  it('refuses a credential whose directory was swapped for a symlink out of the root', async () => {
    await mkdir(join(objects, 'team-a'));
    await credentials.create(dir('a', objects, 'team-a'), user);
    await rm(join(objects, 'team-a'), { recursive: true });
    await symlink('/etc', join(objects, 'team-a'));
    const err = await refusal(credentials.resolve('a'));
    expect(err.code).toBe('PERMISSION_DENIED');
    expect(err.message).toMatch(/^credential a: directory_credential\.path: /);
  });

  it('refuses a stored credential outside the roots that no admin made (a record from before the rule)', async () => {
    await mkdir(join(elsewhere, 'b'));
    const open = new CredentialStore(store, keyring, { directories: { roots: [elsewhere], dataDir } });
    await open.create(dir('old', elsewhere, 'b'), user);
    const err = await refusal(credentials.resolve('old'));
    expect(err.code).toBe('PERMISSION_DENIED');
  });
});

describe('the roots', () => {
  it('come from the flag, else FERRY_DIRECTORY_ROOTS (colon-separated), else <data dir>/objects', () => {
    expect(directoryRoots(undefined, '/var/lib/ferry', {})).toEqual(['/var/lib/ferry/objects']);
    expect(directoryRoots(undefined, '/d', { FERRY_DIRECTORY_ROOTS: '/srv/a:/srv/b' })).toEqual(['/srv/a', '/srv/b']);
    expect(directoryRoots('/mnt/x', '/d', { FERRY_DIRECTORY_ROOTS: '/srv/a' })).toEqual(['/mnt/x']);
  });

  it('may not be "/", a system directory, or hold the data directory', () => {
    for (const root of ['/', '/etc', '/usr/local', '/var', 'relative', '/srv/../etc', '/d', '/d/layers']) {
      expect(() => new DirectoryPolicy({ roots: [root], dataDir: '/d' }), root).toThrow(FerryError);
    }
    expect(
      new DirectoryPolicy({ roots: ['/var/lib/ferry/objects', '/srv/backups'], dataDir: '/var/lib/ferry' }).rootList,
    ).toEqual(['/var/lib/ferry/objects', '/srv/backups']);
  });
});

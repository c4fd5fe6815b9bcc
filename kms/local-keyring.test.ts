import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../common/index.js';
import { rejection } from '../test/support/rejection.js';
import { describeKeyProviderConformance } from './conformance.js';
import { decodeKeyring, parseHeader } from './keyring-file.js';
import { LocalKeyring } from './local-keyring.js';

const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-keyring-'));
  dirs.push(dir);
  return dir;
}

async function keyFileIn(dir: string, key: Buffer = randomBytes(32)): Promise<string> {
  const path = join(dir, 'master.key');
  await writeFile(path, key, { mode: 0o600 });
  return path;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describeKeyProviderConformance('local keyring (key file)', async () => {
  const dir = await tempDir();
  const provider = await LocalKeyring.open({ path: join(dir, 'k.bin'), keyFile: await keyFileIn(dir), create: true });
  await provider.createKek('backups');
  return { provider, kek: 'backups', rotate: async () => void (await provider.rotateKek('backups')) };
});

describeKeyProviderConformance('local keyring (passphrase)', async () => {
  const dir = await tempDir();
  const provider = await LocalKeyring.open({ path: join(dir, 'k.bin'), passphrase: 'correct horse', create: true });
  await provider.createKek('backups');
  return { provider, kek: 'backups', rotate: async () => void (await provider.rotateKek('backups')) };
});

describe('LocalKeyring', () => {
  let dir: string;
  let path: string;
  let keyFile: string;
  let masterKey: Buffer;

  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir, 'keyring.bin');
    masterKey = randomBytes(32);
    keyFile = await keyFileIn(dir, masterKey);
  });

  /** The decrypted body of the keyring file, read the way an attacker holding the master key would. */
  async function body(): Promise<ReturnType<typeof decodeKeyring>> {
    const file = await readFile(path);
    return decodeKeyring(parseHeader(file, path), masterKey, file, path);
  }

  it('creates the file 0600, keeps KEKs across reopen, and unwraps after reopen', async () => {
    const keyring = await LocalKeyring.open({ path, keyFile, create: true });
    await keyring.createKek('a');
    await keyring.rotateKek('a');
    await keyring.createKek('b');
    const wrapped = await keyring.wrap('a', Buffer.from('secret'), { x: '1' });
    await keyring.close();
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const again = await LocalKeyring.open({ path, keyFile });
    expect((await again.listKeks()).map((k) => [k.id, k.version, k.destroyed])).toEqual([
      ['a', 2, false],
      ['b', 1, false],
    ]);
    expect(await again.unwrap(wrapped, { x: '1' })).toEqual(Buffer.from('secret'));
    await again.close();
  });

  it('a missing file is NOT_FOUND without create; exactly one of passphrase and keyFile is required', async () => {
    expect((await rejection(LocalKeyring.open({ path, keyFile }))).code).toBe('NOT_FOUND');
    const both = await rejection(LocalKeyring.open({ path, keyFile, passphrase: 'p', create: true }));
    expect(both.code).toBe('INVALID_ARGUMENT');
    expect((await rejection(LocalKeyring.open({ path, create: true }))).code).toBe('INVALID_ARGUMENT');
  });

  it('refuses a keyring file or key file that group or others can read, saying how to fix it', async () => {
    await (await LocalKeyring.open({ path, keyFile, create: true })).close();
    await chmod(path, 0o644);
    const err = await rejection(LocalKeyring.open({ path, keyFile }));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain(`chmod 600 ${path}`);
    expect(err.message).toContain('0644');

    await chmod(path, 0o600);
    await chmod(keyFile, 0o640);
    const keyErr = await rejection(LocalKeyring.open({ path, keyFile }));
    expect(keyErr.code).toBe('FAILED_PRECONDITION');
    expect(keyErr.message).toContain(keyFile);
  });

  it('a wrong passphrase, another key file or an altered file: UNAUTHENTICATED with a clear message', async () => {
    const keyring = await LocalKeyring.open({ path, passphrase: 'right passphrase', create: true });
    await keyring.createKek('a');
    await keyring.close();

    const wrong = await rejection(LocalKeyring.open({ path, passphrase: 'wrong passphrase' }));
    expect(wrong.code).toBe('UNAUTHENTICATED');
    expect(wrong.message).toMatch(/passphrase is wrong/);
    expect(wrong.message).not.toContain('wrong passphrase');

    const kind = await rejection(LocalKeyring.open({ path, keyFile }));
    expect([kind.code, kind.message]).toEqual([
      'FAILED_PRECONDITION',
      `keyring ${path} is protected by a passphrase; open it with that`,
    ]);

    const file = await readFile(path);
    file[20] = (file[20] ?? 0) ^ 1; // inside the salt, which is authenticated
    await writeFile(path, file, { mode: 0o600 });
    expect((await rejection(LocalKeyring.open({ path, passphrase: 'right passphrase' }))).code).toBe('UNAUTHENTICATED');
  });

  it('destroyKek shreds the KEK: its bytes leave the file, unwraps are PERMISSION_DENIED, the name stays taken', async () => {
    const keyring = await LocalKeyring.open({ path, keyFile, create: true });
    await keyring.createKek('tenant-a');
    await keyring.rotateKek('tenant-a');
    await keyring.createKek('tenant-b');
    const wrapped = await keyring.wrap('tenant-a', Buffer.from('dek'), {});
    expect((await body()).keks['tenant-a']?.versions.every((v) => typeof v.key === 'string')).toBe(true);

    await keyring.destroyKek('tenant-a');
    const stored = (await body()).keks['tenant-a'];
    expect(stored?.destroyed).toBeDefined();
    expect(stored?.versions.map((v) => v.key)).toEqual([undefined, undefined]);
    expect(typeof (await body()).keks['tenant-b']?.versions[0]?.key).toBe('string');

    for (const attempt of [
      keyring.unwrap(wrapped, {}),
      keyring.wrap('tenant-a', Buffer.from('x'), {}),
      keyring.describeKek('tenant-a'),
    ]) {
      const err = await rejection(attempt);
      expect(err.code).toBe('PERMISSION_DENIED');
      expect(err.message).toMatch(/KEK "tenant-a" was destroyed .*unreadable/);
    }
    expect((await rejection(keyring.createKek('tenant-a'))).code).toBe('ALREADY_EXISTS');
    expect((await rejection(keyring.rotateKek('tenant-a'))).code).toBe('PERMISSION_DENIED');
    await keyring.close();

    const again = await LocalKeyring.open({ path, keyFile });
    expect((await rejection(again.unwrap(wrapped, {}))).code).toBe('PERMISSION_DENIED');
    expect((await again.listKeks()).find((k) => k.id === 'tenant-a')).toMatchObject({ destroyed: true, version: 2 });
    await again.close();
  });

  it('writes atomically: a new file replaces the old by rename, no temp files stay, a failed write changes nothing', async () => {
    const keyring = await LocalKeyring.open({ path, keyFile, create: true });
    await keyring.createKek('a');
    const inodeBefore = (await stat(path)).ino;
    await keyring.rotateKek('a');
    expect((await stat(path)).ino).not.toBe(inodeBefore);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['keyring.bin', 'master.key']);

    await Promise.all([keyring.rotateKek('a'), keyring.rotateKek('a'), keyring.createKek('b')]);
    expect((await body()).keks.a?.versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);

    await rm(dir, { recursive: true });
    const err = await rejection(keyring.rotateKek('a'));
    expect(err.code).toBe('UNAVAILABLE');
    expect((await keyring.describeKek('a')).version).toBe(4);
    await keyring.close();
  });

  it('never puts key material or the passphrase into error messages or their causes', async () => {
    const passphrase = 'hunter2-very-secret-passphrase';
    const ppPath = join(dir, 'pp.bin');
    const pp = await LocalKeyring.open({ path: ppPath, passphrase, create: true });
    await pp.createKek('k');
    const keyring = await LocalKeyring.open({ path, keyFile, create: true });
    await keyring.createKek('k');
    const dataKey = await keyring.generateDataKey('k', { a: 'b' });
    const kekBytes = Buffer.from((await body()).keks.k?.versions[0]?.key ?? '', 'base64');
    expect(kekBytes).toHaveLength(32);

    const errors = [
      await rejection(LocalKeyring.open({ path: ppPath, passphrase: `${passphrase}x` })),
      await rejection(keyring.unwrap(dataKey.wrapped, { a: 'c' })),
      await rejection(keyring.unwrap({ ...dataKey.wrapped, ciphertext: 'AAAA' }, { a: 'b' })),
      await rejection(keyring.unwrap({ ...dataKey.wrapped, kek_version: 9 }, { a: 'b' })),
      await rejection(keyring.wrap('k', Buffer.alloc(5000), {})),
      await rejection(LocalKeyring.open({ path, keyFile: await keyFileIn(await tempDir()) })),
    ];
    await keyring.destroyKek('k');
    errors.push(await rejection(keyring.unwrap(dataKey.wrapped, { a: 'b' })));

    const secrets = [
      passphrase,
      ...[masterKey, dataKey.plaintext, kekBytes].flatMap((b) => [b.toString('hex'), b.toString('base64')]),
    ];
    for (const err of errors) {
      const texts: string[] = [];
      for (let e: unknown = err; e instanceof Error; e = e.cause) texts.push(e.message, e.stack ?? '');
      const all = texts.join('\n');
      for (const secret of secrets) expect(all).not.toContain(secret);
      expect(isFerryError(err)).toBe(true);
    }
    await pp.close();
    await keyring.close();
  });

  it('unwrap refuses a key wrapped by another provider, and a closed keyring refuses everything', async () => {
    const keyring = await LocalKeyring.open({ path, keyFile, create: true });
    await keyring.createKek('a');
    const wrapped = await keyring.wrap('a', Buffer.from('x'), {});
    expect((await rejection(keyring.unwrap({ ...wrapped, provider: 'vault' }, {}))).code).toBe('FAILED_PRECONDITION');
    await keyring.close();
    expect((await rejection(keyring.unwrap(wrapped, {}))).code).toBe('FAILED_PRECONDITION');
  });
});

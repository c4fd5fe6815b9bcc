import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../common/index.js';
import { DEFAULT_KEK, openDefaultKeyring } from './default-keyring.js';

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-default-keyring-'));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('openDefaultKeyring', () => {
  it('creates master.key (32 bytes) and keyring.bin 0600 in a 0700 directory, with KEK "default"', async () => {
    const keyring = await openDefaultKeyring(dataDir);
    const dir = join(dataDir, 'keyring');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'master.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'keyring.bin'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'master.key'))).toHaveLength(32);
    expect(await keyring.describeKek(DEFAULT_KEK)).toEqual({ id: 'default', version: 1 });
    await keyring.close();
  });

  it('opens the same keys on the next start', async () => {
    const first = await openDefaultKeyring(dataDir);
    const key = await first.generateDataKey(DEFAULT_KEK, { purpose: 'test' });
    await first.close();
    const second = await openDefaultKeyring(dataDir);
    expect(await second.unwrap(key.wrapped, { purpose: 'test' })).toEqual(key.plaintext);
    expect((await second.listKeks()).map((k) => k.id)).toEqual(['default']);
    await second.close();
  });

  it('refuses to make a new master key when the keyring exists without one', async () => {
    await (await openDefaultKeyring(dataDir)).close();
    await rm(join(dataDir, 'keyring', 'master.key'));
    const err = await openDefaultKeyring(dataDir).catch((e: unknown) => e);
    expect(isFerryError(err, 'FAILED_PRECONDITION')).toBe(true);
    expect(err instanceof Error && err.message).toMatch(/restore master\.key/);
  });
});

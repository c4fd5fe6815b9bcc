import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../common/index.js';
import { LocalKeyring } from './local-keyring.js';
import { KeyProviders } from './registry.js';
import { VOLUME_CONTEXT_KEY, type VolumeKeys, volumeKeys } from './volume-keys.js';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err: unknown) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('volume data keys over the key providers', () => {
  let dir: string;
  let keyring: LocalKeyring;
  let keys: VolumeKeys;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-volkeys-'));
    keyring = await LocalKeyring.open({ path: join(dir, 'k.bin'), passphrase: 'test passphrase', create: true });
    await keyring.createKek('default');
    await keyring.createKek('team-a');
    keys = volumeKeys({ providers: new KeyProviders([keyring]).lookup });
  });

  afterEach(async () => {
    await keyring.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('makes a 64-byte XTS key per volume, wrapped under the KEK asked (default: local "default")', async () => {
    const a = await keys.createKey({ volumeId: 'vol-a' });
    const b = await keys.createKey({ volumeId: 'vol-b', kek: 'team-a', keyProvider: 'local' });
    expect(a.key.length).toBe(64);
    expect(a.key.subarray(0, 32).equals(a.key.subarray(32))).toBe(false);
    expect(a.key.equals(b.key)).toBe(false);
    expect(a.encryption).toMatchObject({ cipher: 'aes-256-xts', kek: 'default', key_provider: 'local' });
    expect(b.encryption).toMatchObject({ kek: 'team-a', key_volume_id: 'vol-b' });
    expect(JSON.stringify(a.encryption)).not.toContain(a.key.toString('base64'));
    expect((await keys.unwrapKey(a.encryption)).equals(a.key)).toBe(true);
    expect((await keys.unwrapKey(b.encryption)).equals(b.key)).toBe(true);
  });

  it('binds the volume id: a wrapped key moved to another volume does not unwrap', async () => {
    const { encryption } = await keys.createKey({ volumeId: 'vol-a' });
    const moved = { ...encryption, key_volume_id: 'vol-b' };
    expect(isFerryError(await rejection(keys.unwrapKey(moved)), 'DATA_CORRUPTION')).toBe(true);
    const direct = await keyring.unwrap(encryption.wrapped, { [VOLUME_CONTEXT_KEY]: 'vol-a' });
    expect(direct.length).toBe(64);
  });

  it('after the KEK is destroyed, unwrapping is PERMISSION_DENIED; other KEKs unaffected', async () => {
    const a = await keys.createKey({ volumeId: 'a', kek: 'team-a' });
    const d = await keys.createKey({ volumeId: 'd' });
    await keyring.destroyKek('team-a');
    expect(isFerryError(await rejection(keys.unwrapKey(a.encryption)), 'PERMISSION_DENIED')).toBe(true);
    expect((await keys.unwrapKey(d.encryption)).equals(d.key)).toBe(true);
  });

  it('refuses an unknown provider, a missing provider, a missing KEK name and an unknown KEK', async () => {
    const bad = await rejection(keys.createKey({ volumeId: 'x', keyProvider: 'hsm' }));
    expect(isFerryError(bad, 'INVALID_ARGUMENT') && bad.field).toBe('key_provider');
    const absent = await rejection(keys.createKey({ volumeId: 'x', keyProvider: 'aws-kms', kek: 'alias/a' }));
    expect(isFerryError(absent, 'FAILED_PRECONDITION')).toBe(true);
    expect((absent as Error).message).toContain('FERRY_KMS_REGION');
    const only = volumeKeys({ providers: () => keyring });
    const noKek = await rejection(only.createKey({ volumeId: 'x', keyProvider: 'vault' }));
    expect(isFerryError(noKek, 'INVALID_ARGUMENT') && noKek.field).toBe('kek');
    expect(isFerryError(await rejection(keys.createKey({ volumeId: 'x', kek: 'nope' })), 'NOT_FOUND')).toBe(true);
  });
});

/** Which key providers the environment gives a node, the provider set's lookup, and the counting wrapper. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../common/index.js';
import { CountingKeyProvider } from './counting.js';
import { openDefaultKeyring } from './default-keyring.js';
import { keyProvidersFromEnv, vaultOptionsFromEnv } from './env.js';
import type { LocalKeyring } from './local-keyring.js';
import { KeyProviders, lookupOf } from './registry.js';

let dir: string;
let keyring: LocalKeyring;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-kms-env-'));
  keyring = await openDefaultKeyring(dir);
});

afterAll(async () => {
  await keyring.close();
  await rm(dir, { recursive: true, force: true });
});

function failure(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (err: unknown) {
    if (err instanceof FerryError) return err;
    throw err;
  }
  throw new Error('expected a FerryError');
}

describe('keyProvidersFromEnv', () => {
  it('the local keyring alone when nothing else is configured', () => {
    expect(keyProvidersFromEnv(keyring, {}).names).toEqual(['local']);
  });

  it('Vault with a token or AppRole, namespace and mount; AWS KMS with a region or FERRY_KMS_ENABLE=1', () => {
    const env = {
      FERRY_VAULT_ADDR: 'http://127.0.0.1:8200',
      FERRY_VAULT_TOKEN: 's.x',
      FERRY_VAULT_NAMESPACE: 'team-a',
      FERRY_VAULT_MOUNT: 'ferry-transit',
      FERRY_KMS_REGION: 'eu-west-1',
      FERRY_KMS_ENDPOINT: 'http://127.0.0.1:4599',
    };
    expect(keyProvidersFromEnv(keyring, env).names).toEqual(['local', 'vault', 'aws-kms']);
    expect(vaultOptionsFromEnv(env)).toEqual({
      endpoint: 'http://127.0.0.1:8200',
      token: 's.x',
      namespace: 'team-a',
      mount: 'ferry-transit',
    });
    const approle = { FERRY_VAULT_ADDR: 'http://v:8200', FERRY_VAULT_ROLE_ID: 'r', FERRY_VAULT_SECRET_ID: 's' };
    expect(keyProvidersFromEnv(keyring, approle).names).toEqual(['local', 'vault']);
    expect(keyProvidersFromEnv(keyring, { FERRY_KMS_ENABLE: '1' }).names).toEqual(['local', 'aws-kms']);
    expect(keyProvidersFromEnv(keyring, { FERRY_KMS_ENABLE: '0' }).names).toEqual(['local']);
  });

  it('INVALID_ARGUMENT naming the environment variable for a wrong setting', () => {
    const noAuth = failure(() => keyProvidersFromEnv(keyring, { FERRY_VAULT_ADDR: 'http://v:8200' }));
    expect(noAuth).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'FERRY_VAULT_ROLE_ID' });
    const badUrl = failure(() => keyProvidersFromEnv(keyring, { FERRY_VAULT_ADDR: 'vault', FERRY_VAULT_TOKEN: 't' }));
    expect(badUrl.message).toMatch(/^FERRY_VAULT_ADDR: /);
    const badFlag = failure(() => keyProvidersFromEnv(keyring, { FERRY_KMS_ENABLE: 'yes' }));
    expect(badFlag.field).toBe('FERRY_KMS_ENABLE');
  });
});

describe('KeyProviders', () => {
  it('finds providers by name; a missing one is FAILED_PRECONDITION saying how to enable it', () => {
    const set = new KeyProviders([keyring]);
    expect(set.get('local')).toBe(keyring);
    const missing = failure(() => set.lookup('vault'));
    expect(missing.code).toBe('FAILED_PRECONDITION');
    expect(missing.message).toContain('FERRY_VAULT_ADDR');
    expect(failure(() => lookupOf(keyring)('aws-kms')).message).toContain('FERRY_KMS_REGION');
    expect(failure(() => new KeyProviders([keyring, keyring])).code).toBe('INVALID_ARGUMENT');
  });

  it('CountingKeyProvider counts each call, failed ones too', async () => {
    const counting = new CountingKeyProvider(keyring);
    const wrapped = await counting.wrap('default', Buffer.alloc(32, 1), { repository: 'r' });
    await counting.unwrap(wrapped, { repository: 'r' });
    await counting.unwrap(wrapped, { repository: 'other' }).catch(() => undefined);
    expect(counting.calls).toEqual({ generateDataKey: 0, wrap: 1, unwrap: 2, rewrap: 0, describeKek: 0 });
    expect(counting.total).toBe(3);
    counting.reset();
    expect(counting.total).toBe(0);
  });
});

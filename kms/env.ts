/**
 * Which key providers a node has, from its environment: the local keyring always; Vault Transit when
 * FERRY_VAULT_ADDR is set; AWS KMS when FERRY_KMS_REGION is set, or FERRY_KMS_ENABLE=1 (region and credentials then
 * come from the AWS SDK's standard chains). Nothing is contacted here: a provider is reached on first use.
 */
import { FerryError, isFerryError } from '../common/index.js';
import { AwsKmsProvider } from './aws-kms.js';
import { createKmsClient } from './aws-kms-client.js';
import { KeyProviders } from './registry.js';
import type { KeyProvider } from './types.js';
import { createVaultClient, type VaultClientOptions } from './vault-client.js';
import { VaultTransitProvider } from './vault-transit.js';

/** The environment variables read, for help texts. */
export const KEY_PROVIDER_ENV = [
  'FERRY_VAULT_ADDR',
  'FERRY_VAULT_TOKEN',
  'FERRY_VAULT_ROLE_ID',
  'FERRY_VAULT_SECRET_ID',
  'FERRY_VAULT_NAMESPACE',
  'FERRY_VAULT_MOUNT',
  'FERRY_KMS_REGION',
  'FERRY_KMS_ENABLE',
  'FERRY_KMS_ENDPOINT',
] as const;

type Env = Readonly<Record<string, string | undefined>>;

function value(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** The Vault client options the environment gives, or undefined when FERRY_VAULT_ADDR is not set. */
export function vaultOptionsFromEnv(env: Env): VaultClientOptions | undefined {
  const endpoint = value(env, 'FERRY_VAULT_ADDR');
  if (endpoint === undefined) return undefined;
  const token = value(env, 'FERRY_VAULT_TOKEN');
  const roleId = value(env, 'FERRY_VAULT_ROLE_ID');
  const secretId = value(env, 'FERRY_VAULT_SECRET_ID');
  const namespace = value(env, 'FERRY_VAULT_NAMESPACE');
  const mount = value(env, 'FERRY_VAULT_MOUNT');
  return {
    endpoint,
    ...(token !== undefined && { token }),
    ...(roleId !== undefined && { roleId }),
    ...(secretId !== undefined && { secretId }),
    ...(namespace !== undefined && { namespace }),
    ...(mount !== undefined && { mount }),
  };
}

/** Renames the option named in an INVALID_ARGUMENT after the environment variable that set it. */
const VAULT_ENV_OF: Readonly<Record<string, string>> = {
  endpoint: 'FERRY_VAULT_ADDR',
  token: 'FERRY_VAULT_TOKEN',
  roleId: 'FERRY_VAULT_ROLE_ID',
  secretId: 'FERRY_VAULT_SECRET_ID',
  mount: 'FERRY_VAULT_MOUNT',
};

function vaultFromEnv(env: Env): KeyProvider | undefined {
  const options = vaultOptionsFromEnv(env);
  if (options === undefined) return undefined;
  try {
    return new VaultTransitProvider(createVaultClient(options));
  } catch (err: unknown) {
    if (!isFerryError(err, 'INVALID_ARGUMENT')) throw err;
    const name = VAULT_ENV_OF[err.field ?? ''] ?? 'FERRY_VAULT_*';
    const detail =
      err.field !== undefined && err.message.startsWith(`${err.field}: `)
        ? err.message.slice(err.field.length + 2)
        : err.message;
    throw new FerryError('INVALID_ARGUMENT', `${name}: ${detail}`, { field: name, cause: err });
  }
}

function kmsFromEnv(env: Env): KeyProvider | undefined {
  const region = value(env, 'FERRY_KMS_REGION');
  const enable = value(env, 'FERRY_KMS_ENABLE');
  if (enable !== undefined && enable !== '0' && enable !== '1') {
    throw new FerryError('INVALID_ARGUMENT', 'FERRY_KMS_ENABLE: must be 1 or 0', { field: 'FERRY_KMS_ENABLE' });
  }
  if (region === undefined && enable !== '1') return undefined;
  const endpoint = value(env, 'FERRY_KMS_ENDPOINT');
  return new AwsKmsProvider(
    createKmsClient({
      ...(region !== undefined && { region }),
      ...(endpoint !== undefined && { endpoint }),
    }),
  );
}

/**
 * The node's key providers: `local` (given), plus `vault` and `aws-kms` when the environment configures them.
 * INVALID_ARGUMENT naming the environment variable when a setting is wrong (e.g. FERRY_VAULT_ADDR without a token).
 */
export function keyProvidersFromEnv(local: KeyProvider, env: Env = process.env): KeyProviders {
  const providers: KeyProvider[] = [local];
  const vault = vaultFromEnv(env);
  if (vault !== undefined) providers.push(vault);
  const kms = kmsFromEnv(env);
  if (kms !== undefined) providers.push(kms);
  return new KeyProviders(providers);
}

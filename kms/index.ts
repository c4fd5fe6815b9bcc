/**
 * Public face of the key providers. The conformance suite (`kms/conformance.ts`) is not exported here: it registers
 * vitest tests, so only test files import it, directly.
 */
export { AWS_KMS_PROVIDER, AwsKmsProvider, type AwsKmsProviderOptions, checkKmsKeyId } from './aws-kms.js';
export { createKmsClient, type KmsClientOptions } from './aws-kms-client.js';
export { ClusterKeyring, KEYRING_SECRETS_PREFIX, type SharedSecrets } from './cluster-keyring.js';
export { canonicalJson, checkKekName, MAX_KEK_NAME_LENGTH, MAX_WRAP_BYTES } from './context.js';
export { CountingKeyProvider, type KeyProviderCalls } from './counting.js';
export { DEFAULT_KEK, openDefaultKeyring } from './default-keyring.js';
export { KEY_PROVIDER_ENV, keyProvidersFromEnv, vaultOptionsFromEnv } from './env.js';
export type { ExportedKek, Keyring, LocalKekInfo } from './keyring.js';
export { LOCAL_PROVIDER, LocalKeyring, type LocalKeyringOptions } from './local-keyring.js';
export {
  type AdoptedKeks,
  adoptLocalKeks,
  type KeyringLog,
  type NodeKeyringOptions,
  openNodeKeyring,
} from './node-keyring.js';
export {
  KEY_PROVIDER_NAMES,
  type KeyProviderLookup,
  type KeyProviderName,
  KeyProviders,
  type KeySource,
  lookupOf,
  providerMissing,
} from './registry.js';
export type { DataKey, EncryptionContext, KekInfo, KeyProvider, WrappedKey } from './types.js';
export { createVaultClient, type NodeVaultClient, type VaultClient, type VaultClientOptions } from './vault-client.js';
export { type VaultAuth, VaultSession } from './vault-session.js';
export { VAULT_PROVIDER, VaultTransitProvider } from './vault-transit.js';
export {
  VOLUME_CONTEXT_KEY,
  type VolumeKeyRecord,
  type VolumeKeys,
  type VolumeKeysOptions,
  volumeKeys,
} from './volume-keys.js';

/** Public face of cloud credentials. */
export { checkAccess, type ObjectStoreCredential, type OpenObjectStore, storeCredential } from './access.js';
export { MAX_CREDENTIAL_LABELS, MAX_CREDENTIAL_NAME_LENGTH } from './check.js';
export {
  CREDENTIALS_PREFIX,
  type CredentialRecord,
  CredentialStore,
  type CredentialStoreOptions,
} from './credential-store.js';
export type { SealedSecrets } from './sealing.js';
export * from './types.js';

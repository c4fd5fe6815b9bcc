/** Public face of cloud credentials. */
export { checkAccess, type ObjectStoreCredential, type OpenObjectStore, storeCredential } from './access.js';
export { MAX_CREDENTIAL_LABELS, MAX_CREDENTIAL_NAME_LENGTH } from './check.js';
export {
  CREDENTIALS_PREFIX,
  type CreateCredentialOptions,
  type CredentialRecord,
  CredentialStore,
  type CredentialStoreOptions,
} from './credential-store.js';
export {
  type CheckedDirectory,
  DIRECTORY_ROOTS_ENV,
  type DirectoryCheckOptions,
  DirectoryPolicy,
  type DirectoryPolicyOptions,
  directoryRoots,
  SYSTEM_DIRECTORIES,
} from './directory-policy.js';
export type { SealedSecrets } from './sealing.js';
export * from './types.js';

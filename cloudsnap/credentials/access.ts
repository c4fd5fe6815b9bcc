/**
 * From a credential to an object store, and the access check `validate` runs: list one page, then put, head and
 * delete a small probe object `.ferry-validate-<random>` under the credential's prefix.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';
import type { CallOptions, ObjectStore, StoreCredential } from '../store/index.js';
import type { Credential } from './types.js';

/** What `openObjectStore` (cloudsnap/store) takes. */
export type ObjectStoreCredential = StoreCredential;

/** Opens an object store for a credential (default: cloudsnap/store's openObjectStore). */
export type OpenObjectStore = (credential: ObjectStoreCredential) => ObjectStore | Promise<ObjectStore>;

function withScheme(endpoint: string, disableSsl: boolean | undefined): string {
  return endpoint.includes('://') ? endpoint : `${disableSsl === true ? 'http' : 'https'}://${endpoint}`;
}

function defined(fields: ObjectStoreCredential): ObjectStoreCredential {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as ObjectStoreCredential;
}

/** The object-store settings of a resolved credential (secrets included). */
export function storeCredential(credential: Credential): ObjectStoreCredential {
  const { bucket, prefix } = credential;
  const aws = credential.aws_credential;
  if (credential.provider === 's3' && aws !== undefined) {
    return defined({
      provider: 's3',
      bucket,
      prefix,
      endpoint: aws.endpoint === undefined ? undefined : withScheme(aws.endpoint, aws.disable_ssl),
      region: aws.region,
      access_key: aws.access_key,
      secret_key: aws.secret_key,
      path_style: aws.disable_path_style === undefined ? aws.endpoint !== undefined : !aws.disable_path_style,
    });
  }
  const azure = credential.azure_credential;
  if (credential.provider === 'azure' && azure !== undefined) {
    return defined({
      provider: 'azure',
      bucket,
      prefix,
      endpoint: azure.endpoint,
      access_key: azure.account_name,
      secret_key: azure.account_key,
    });
  }
  const google = credential.google_credential;
  if (credential.provider === 'google' && google !== undefined) {
    return defined({
      provider: 'google',
      bucket,
      prefix,
      endpoint: google.endpoint,
      access_key: google.access_key,
      secret_key: google.secret_key,
    });
  }
  const directory = credential.directory_credential;
  if (credential.provider === 'directory' && directory !== undefined) {
    return defined({ provider: 'directory', bucket: join(directory.path, bucket), prefix });
  }
  throw new FerryError('DATA_CORRUPTION', `credential ${credential.name} has no ${credential.provider} settings`);
}

/**
 * Checks for real that `store` can be listed, written, read and deleted from. Rejects with the store's FerryError
 * (NOT_FOUND for a missing bucket, UNAUTHENTICATED / PERMISSION_DENIED for bad keys, UNAVAILABLE ...).
 */
export async function checkAccess(store: ObjectStore, options: CallOptions = {}): Promise<void> {
  await store.list('', { maxKeys: 1, ...options });
  const key = `.ferry-validate-${randomBytes(8).toString('hex')}`;
  const probe = Buffer.from('ferry credential validation probe\n');
  await store.put(key, probe, options);
  try {
    const info = await store.head(key, options);
    if (info === undefined || info.size !== probe.length) {
      throw new FerryError(
        'UNAVAILABLE',
        `wrote a probe object to ${store.location} but could not read it back; check the store's consistency`,
      );
    }
  } catch (err: unknown) {
    await store.delete([key], options).catch(() => undefined);
    throw err;
  }
  await store.delete([key], options);
}

import { join } from 'node:path';
import { invalidArgument } from '../../common/index.js';
import { DirectoryStore } from './directory.js';
import { normalizeStorePrefix } from './keys.js';
import type { ReadRetryOptions } from './read-retry.js';
import type { ObjectStore } from './types.js';

/** A stored credential, with the API's snake_case field names. */
export interface StoreCredential {
  provider: 'directory' | 's3' | 'azure' | 'google';
  /** Bucket (S3, Google), container (Azure) or directory path (directory). */
  bucket: string;
  /** S3-compatible endpoint URL; Azure blob endpoint including the account for Azurite. Provider default if absent. */
  endpoint?: string;
  /** S3 region; default 'us-east-1'. */
  region?: string;
  /** S3 access key, Google HMAC access ID, or Azure account name. */
  access_key?: string;
  /** S3 secret key, Google HMAC secret, or Azure account key. */
  secret_key?: string;
  /** S3 path-style URLs; default true when an endpoint is set. */
  path_style?: boolean;
  /** Key prefix inside the bucket (a subdirectory for the directory store). */
  prefix?: string;
}

/** Timeouts and retries of the network stores (S3, Google, Azure); every field has a default. */
export interface StoreTuning {
  /** Reads: attempts without progress (default 5), backoff, idle timeout (default 30000 ms); see ReadRetryOptions. */
  read?: ReadRetryOptions;
  /**
   * Milliseconds any other request (put, head, list, delete) may stay idle before it fails and the SDK retries it;
   * default 60000.
   */
  requestTimeoutMs?: number;
}

/**
 * Tuning from the environment: FERRY_STORE_READ_ATTEMPTS, FERRY_STORE_READ_IDLE_TIMEOUT_MS and
 * FERRY_STORE_REQUEST_TIMEOUT_MS (positive integers; unset means the default).
 */
export function storeTuningFromEnv(env: NodeJS.ProcessEnv = process.env): StoreTuning {
  const int = (name: string): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) throw invalidArgument(name, `must be a positive integer (got ${raw})`);
    return n;
  };
  return {
    read: { attempts: int('FERRY_STORE_READ_ATTEMPTS'), idleTimeoutMs: int('FERRY_STORE_READ_IDLE_TIMEOUT_MS') },
    requestTimeoutMs: int('FERRY_STORE_REQUEST_TIMEOUT_MS'),
  };
}

/**
 * Opens the object store a credential names, with each provider's defaults, and `tuning` (default: from the
 * environment, storeTuningFromEnv). A cloud provider's SDK is loaded on its first use (tens of MiB each): a node
 * that backs up to a directory never loads them.
 */
export async function openObjectStore(
  credential: StoreCredential,
  tuning: StoreTuning = storeTuningFromEnv(),
): Promise<ObjectStore> {
  const { read, requestTimeoutMs } = tuning;
  const { provider, bucket, prefix } = credential;
  if (bucket === '') throw invalidArgument('bucket', 'must not be empty');
  switch (provider) {
    case 'directory':
      // The credential's directory must exist; the prefix's directories are made by the first write.
      return new DirectoryStore(join(bucket, normalizeStorePrefix(prefix)), { mustExist: bucket });
    case 's3': {
      const [{ createS3Client }, { S3Store }] = await Promise.all([import('./s3-client.js'), import('./s3.js')]);
      const client = createS3Client({
        endpoint: credential.endpoint,
        region: credential.region ?? 'us-east-1',
        accessKeyId: required(credential.access_key, 'access_key'),
        secretAccessKey: required(credential.secret_key, 'secret_key'),
        forcePathStyle: credential.path_style,
        requestTimeoutMs,
      });
      return new S3Store(client, bucket, { prefix, read });
    }
    case 'google': {
      const { createGcsClient, createGcsStore } = await import('./gcs.js');
      const client = createGcsClient({
        endpoint: credential.endpoint,
        accessId: required(credential.access_key, 'access_key'),
        secret: required(credential.secret_key, 'secret_key'),
        requestTimeoutMs,
      });
      return createGcsStore(client, bucket, { prefix, read });
    }
    case 'azure': {
      const [{ ContainerClient, StorageSharedKeyCredential }, { AzureBlobStore }] = await Promise.all([
        import('@azure/storage-blob'),
        import('./azure.js'),
      ]);
      const account = required(credential.access_key, 'access_key');
      const endpoint = (credential.endpoint ?? `https://${account}.blob.core.windows.net`).replace(/\/+$/, '');
      const container = new ContainerClient(
        `${endpoint}/${encodeURIComponent(bucket)}`,
        new StorageSharedKeyCredential(account, required(credential.secret_key, 'secret_key')),
        { retryOptions: { maxTries: 4, tryTimeoutInMs: requestTimeoutMs ?? 60_000 } },
      );
      return new AzureBlobStore(container, { prefix, read });
    }
    default:
      throw invalidArgument('provider', `must be directory, s3, azure or google (got ${String(provider)})`);
  }
}

function required(value: string | undefined, field: string): string {
  if (value === undefined || value === '') throw invalidArgument(field, 'is required for this provider');
  return value;
}

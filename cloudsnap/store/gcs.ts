import type { S3Client } from '@aws-sdk/client-s3';
import type { ReadRetryOptions } from './read-retry.js';
import { type S3CreateOnly, S3Store } from './s3.js';
import { createS3Client } from './s3-client.js';

/** Google Cloud Storage's S3-interoperable XML API. */
export const GCS_XML_ENDPOINT = 'https://storage.googleapis.com';

/** HMAC key of a Google Cloud Storage service account (Cloud Storage > Settings > Interoperability). */
export interface GcsClientSettings {
  /** HMAC access ID, e.g. 'GOOG1E...'. */
  accessId: string;
  /** HMAC secret. */
  secret: string;
  /** XML API endpoint; default https://storage.googleapis.com (tests point it at another S3 server). */
  endpoint?: string;
  /** Milliseconds a request may stay idle before it fails (and is retried); default 60000. */
  requestTimeoutMs?: number;
}

/** Options of a Google Cloud Storage store. */
export interface GcsStoreOptions {
  /** Object name prefix inside the bucket; default none. */
  prefix?: string;
  /**
   * How create-only puts are sent; default 'x-goog-if-generation-match' (`x-goog-if-generation-match: 0`, GCS's
   * precondition; the XML API honours If-None-Match only on reads). Tests against radosgw set 'if-none-match'.
   */
  createOnly?: S3CreateOnly;
  /** Reads that break or stall: see S3StoreOptions.read. */
  read?: ReadRetryOptions;
}

/** An S3 client for the GCS XML API, signed with SigV4 using an HMAC key (region 'auto'). */
export function createGcsClient(settings: GcsClientSettings): S3Client {
  return createS3Client({
    endpoint: settings.endpoint ?? GCS_XML_ENDPOINT,
    region: 'auto',
    accessKeyId: settings.accessId,
    secretAccessKey: settings.secret,
    forcePathStyle: true,
    requestTimeoutMs: settings.requestTimeoutMs,
  });
}

/**
 * A Google Cloud Storage bucket through the S3 code path. The XML API has no multi-object delete, so deletes are
 * single DELETE requests with bounded concurrency.
 */
export function createGcsStore(client: S3Client, bucket: string, options: GcsStoreOptions = {}): S3Store {
  return new S3Store(client, bucket, {
    prefix: options.prefix,
    createOnly: options.createOnly ?? 'x-goog-if-generation-match',
    multiObjectDelete: false,
    deleteConcurrency: 16,
    scheme: 'gs',
    read: options.read,
  });
}

/**
 * The object stores: the contract and every backend. Inside CloudSnap, and outside it only for the S3 and Google Cloud
 * Storage classes (cloudsnap/index.ts exports the rest): importing this file loads the AWS SDK.
 */
export type { AzureBlobStoreOptions } from './azure.js';
export { AzureBlobStore } from './azure.js';
export type { RequestCounts } from './counting.js';
export { CountingStore } from './counting.js';
export { DirectoryStore } from './directory.js';
export type { GcsClientSettings, GcsStoreOptions } from './gcs.js';
export { createGcsClient, createGcsStore, GCS_XML_ENDPOINT } from './gcs.js';
export { MeteredStore, type StoreObserver, type StoreOperation, type StoreRequest } from './metered.js';
export type { StoreCredential, StoreTuning } from './open.js';
export { openObjectStore, storeTuningFromEnv } from './open.js';
export { PrefixedStore } from './prefixed.js';
export type { ReadRetryOptions } from './read-retry.js';
export type { S3CreateOnly, S3StoreOptions } from './s3.js';
export { S3Store } from './s3.js';
export type { S3ClientSettings } from './s3-client.js';
export { createS3Client } from './s3-client.js';
export type {
  CallOptions,
  GetOptions,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PutOptions,
} from './types.js';

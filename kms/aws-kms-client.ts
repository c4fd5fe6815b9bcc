/**
 * Builds the KMSClient the AWS KMS provider is given. Whatever is not set here comes from the SDK's standard chains:
 * region from AWS_REGION / the shared config file, credentials from the environment, shared files, SSO, web identity
 * or container/instance metadata.
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import { kmsSdk } from './sdk.js';

/** Where KMS is and how to reach it. */
export interface KmsClientOptions {
  /** AWS region, e.g. 'eu-west-1'. Default: the SDK's region chain. */
  region?: string;
  /** Endpoint URL (a VPC endpoint, a test stand-in). Default: the regional KMS endpoint. */
  endpoint?: string;
  /** Static credentials. Default: the SDK's standard credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per call, the first included. Default 3 (the SDK's default). */
  maxAttempts?: number;
  /** Milliseconds to establish a connection. Default 3000. */
  connectionTimeoutMs?: number;
  /** Milliseconds of socket inactivity before a request fails. Default 10000. */
  requestTimeoutMs?: number;
}

/** A KMSClient with bounded timeouts; the SDK's chains fill in what `options` leaves out. */
export function createKmsClient(options: KmsClientOptions = {}): KMSClient {
  const { KMSClient: Client } = kmsSdk();
  return new Client({
    ...(options.region !== undefined && { region: options.region }),
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    ...(options.credentials !== undefined && { credentials: options.credentials }),
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      requestTimeout: options.requestTimeoutMs ?? 10_000,
      // Without this the SDK only logs a warning when requestTimeout passes and keeps waiting on a hung KMS.
      throwOnRequestTimeout: true,
    },
  });
}

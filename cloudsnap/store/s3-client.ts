import { S3Client } from '@aws-sdk/client-s3';

/** Connection settings of an S3 or S3-compatible endpoint. */
export interface S3ClientSettings {
  /** Endpoint URL for S3-compatible servers (radosgw, GCS XML API); AWS S3 when absent. */
  endpoint?: string;
  /** Region to sign for, e.g. 'us-east-1'; S3-compatible servers mostly accept any. */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Path-style URLs (`endpoint/bucket/key`); default true when `endpoint` is set, else false. */
  forcePathStyle?: boolean;
  /** Attempts per call, including the first, with the SDK's standard backoff; default 4. */
  maxAttempts?: number;
  /** Milliseconds to wait for a TCP connection; default 5000. */
  connectionTimeoutMs?: number;
  /** Milliseconds a request may stay idle (no bytes either way) before it fails; default 60000. */
  requestTimeoutMs?: number;
}

/**
 * Builds the S3 client every S3-backed store takes. Checksums are computed and validated only where the API requires
 * them: radosgw 16.2 rejects the trailing CRC32 the SDK otherwise adds to every upload.
 */
export function createS3Client(settings: S3ClientSettings): S3Client {
  return new S3Client({
    region: settings.region,
    endpoint: settings.endpoint,
    forcePathStyle: settings.forcePathStyle ?? settings.endpoint !== undefined,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: settings.maxAttempts ?? 4,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: settings.connectionTimeoutMs ?? 5000,
      requestTimeout: settings.requestTimeoutMs ?? 60_000,
    },
  });
}

import { type ErrorCode, FerryError, isNetworkErrorCode } from '../../common/index.js';

/** What a failed S3 call was about, for the message. */
export interface S3ErrorContext {
  bucket: string;
  /** Full object key in the bucket, when the call named one. */
  key?: string;
  /** The store's location, e.g. `s3://bucket/prefix`. */
  location: string;
  /** The caller's signal: an aborted call rejects with its reason, untranslated. */
  signal?: AbortSignal;
}

/** Name, HTTP status and errno code of an SDK or network error, read through type guards. */
export function describeS3Error(err: unknown): { name: string; status?: number; errno?: string } {
  if (typeof err !== 'object' || err === null) return { name: String(err) };
  const name = 'name' in err && typeof err.name === 'string' ? err.name : 'Error';
  const meta = '$metadata' in err && typeof err.$metadata === 'object' ? err.$metadata : undefined;
  const status =
    meta !== null && meta !== undefined && 'httpStatusCode' in meta && typeof meta.httpStatusCode === 'number'
      ? meta.httpStatusCode
      : undefined;
  const errno = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  return { name, status, errno };
}

/** The Ferry code and advice for an S3 error code (as in a response body or a DeleteObjects `Errors` entry). */
export function classifyS3Error(
  name: string,
  status: number | undefined,
  errno: string | undefined,
  ctx: S3ErrorContext,
): { code: ErrorCode; message: string } {
  const what = ctx.key === undefined ? ctx.location : `${ctx.key} in bucket ${ctx.bucket}`;
  switch (name) {
    case 'NoSuchBucket':
      return { code: 'NOT_FOUND', message: `bucket ${ctx.bucket} does not exist: create it or fix the bucket name` };
    case 'NoSuchKey':
    case 'NotFound':
      return { code: 'NOT_FOUND', message: `${what} does not exist` };
    case 'InvalidAccessKeyId':
      return { code: 'UNAUTHENTICATED', message: `the access key is not known to the endpoint: fix the credential` };
    case 'SignatureDoesNotMatch':
      return { code: 'UNAUTHENTICATED', message: `the secret key does not match the access key: fix the credential` };
    case 'RequestTimeTooSkewed':
      return { code: 'UNAUTHENTICATED', message: `the request was refused for clock skew: fix this host's clock` };
    case 'ExpiredToken':
    case 'InvalidToken':
    case 'AuthorizationHeaderMalformed':
      return { code: 'UNAUTHENTICATED', message: `the endpoint refused the credential (${name}): fix the credential` };
    case 'AccessDenied':
    case 'AllAccessDisabled':
      return {
        code: 'PERMISSION_DENIED',
        message: `access to ${what} denied: grant the credential access to bucket ${ctx.bucket}`,
      };
    case 'PreconditionFailed':
      return { code: 'ALREADY_EXISTS', message: `${what} already exists: choose another key` };
    case 'ConditionalRequestConflict':
      return { code: 'UNAVAILABLE', message: `a concurrent write to ${what} is in progress: retry` };
    case 'InvalidRange':
      return { code: 'INVALID_ARGUMENT', message: `the range reaches past the end of ${what}: read within the object` };
    case 'InvalidBucketName':
      return { code: 'INVALID_ARGUMENT', message: `bucket name ${ctx.bucket} is not valid: fix the bucket name` };
    case 'EntityTooLarge':
      return { code: 'INVALID_ARGUMENT', message: `the object is too large for one put: write smaller objects` };
    case 'SlowDown':
    case 'ServiceUnavailable':
    case 'InternalError':
    case 'RequestTimeout':
    case 'TimeoutError':
    case 'RequestTimeoutException':
      return { code: 'UNAVAILABLE', message: `the endpoint did not serve ${what} (${name}): retry later` };
  }
  if (isNetworkErrorCode(errno)) {
    return { code: 'UNAVAILABLE', message: `cannot reach the S3 endpoint (${errno}): check the endpoint and network` };
  }
  switch (status) {
    case 401:
      return { code: 'UNAUTHENTICATED', message: `the endpoint refused the credential: fix the credential` };
    case 403:
      return {
        code: 'PERMISSION_DENIED',
        message: `access to ${what} denied: check the credential's keys and its access to bucket ${ctx.bucket}`,
      };
    case 404:
      return { code: 'NOT_FOUND', message: `${what} does not exist` };
    case 409:
    case 412:
      return { code: 'ALREADY_EXISTS', message: `${what} already exists: choose another key` };
    case 416:
      return { code: 'INVALID_ARGUMENT', message: `the range reaches past the end of ${what}: read within the object` };
  }
  if (status !== undefined && status >= 500) {
    return { code: 'UNAVAILABLE', message: `the endpoint failed on ${what} (HTTP ${status}): retry later` };
  }
  if (status === undefined) {
    return { code: 'UNAVAILABLE', message: `no answer from the S3 endpoint (${name}): check the endpoint and network` };
  }
  return { code: 'INTERNAL', message: `S3 call on ${what} failed (${name}, HTTP ${status})` };
}

/** The one translation of S3 SDK errors into FerryErrors (an aborted call keeps its abort reason). */
export function translateS3Error(err: unknown, ctx: S3ErrorContext): unknown {
  if (err instanceof FerryError) return err;
  if (ctx.signal?.aborted) return ctx.signal.reason;
  const { name, status, errno } = describeS3Error(err);
  const { code, message } = classifyS3Error(name, status, errno, ctx);
  return new FerryError(code, message, { cause: err });
}

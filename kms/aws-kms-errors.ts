/**
 * Translates what @aws-sdk/client-kms throws into FerryErrors. Service errors are named by their exception type
 * (`err.name`, e.g. NotFoundException); network failures carry a Node error code and no HTTP status.
 */
import { FerryError, isNetworkErrorCode } from '../common/index.js';
import { wrappedKeyMismatch } from './context.js';

/** What a KMS call was about, for messages. */
export interface KmsCall {
  /** The KMS key as the caller named it (key ID, ARN or alias). */
  key: string;
  /** The KMS operation, e.g. 'Encrypt'. */
  op: string;
  /** Where KMS is, e.g. `AWS KMS in eu-west-1` or `AWS KMS at http://127.0.0.1:4566 (eu-west-1)`. */
  where: string;
}

const UNAUTHENTICATED = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'IncompleteSignatureException',
  'MissingAuthenticationTokenException',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'CredentialsProviderError',
]);

const RETRY_LATER = new Set([
  'KMSInternalException',
  'DependencyTimeoutException',
  'KeyUnavailableException',
  'ThrottlingException',
  'ServiceUnavailableException',
  'TimeoutError',
  'RequestTimeout',
]);

function fields(err: unknown): { name: string; code: string; status: number | undefined; message: string } {
  const e = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
  const meta = typeof e.$metadata === 'object' && e.$metadata !== null ? (e.$metadata as Record<string, unknown>) : {};
  return {
    name: err instanceof Error ? err.name : '',
    code: typeof e.code === 'string' ? e.code : '',
    status: typeof meta.httpStatusCode === 'number' ? meta.httpStatusCode : undefined,
    message: err instanceof Error ? err.message : String(err),
  };
}

/** The FerryError for a failed KMS call. */
export function kmsError(err: unknown, call: KmsCall): FerryError {
  const { name, code, status, message } = fields(err);
  const key = `KMS key "${call.key}"`;
  const cause = err;
  if (isNetworkErrorCode(code) || (status === undefined && RETRY_LATER.has(name))) {
    return new FerryError(
      'UNAVAILABLE',
      `${call.where} is unreachable (${code || name}): check the endpoint and network`,
      {
        cause,
      },
    );
  }
  if (message === 'Region is missing') {
    return new FerryError('FAILED_PRECONDITION', 'no AWS region is configured for KMS: set AWS_REGION or pass region', {
      cause,
    });
  }
  switch (name) {
    case 'AccessDeniedException':
      return new FerryError(
        'PERMISSION_DENIED',
        `AWS KMS denied ${call.op} with ${key}: check the key policy and IAM permissions (${call.where})`,
        { cause },
      );
    case 'NotFoundException':
      return new FerryError('NOT_FOUND', `${call.where} has no ${key}: check the key ID, ARN or alias`, { cause });
    case 'InvalidCiphertextException':
    case 'IncorrectKeyException':
      return wrappedKeyMismatch(cause);
    case 'DisabledException':
    case 'KMSInvalidStateException':
      return new FerryError(
        'PERMISSION_DENIED',
        `${key} is disabled or scheduled for deletion: backups under it are unreadable until it is enabled ` +
          `again (or its deletion cancelled) (${message})`,
        { cause },
      );
    case 'ValidationException':
    case 'InvalidKeyUsageException':
      return new FerryError('FAILED_PRECONDITION', `AWS KMS refused ${call.op} with ${key}: ${message}`, { cause });
    case 'LimitExceededException':
      return new FerryError('RESOURCE_EXHAUSTED', `AWS KMS limit reached for ${call.op} with ${key}: ${message}`, {
        cause,
      });
  }
  if (UNAUTHENTICATED.has(name)) {
    return new FerryError(
      'UNAUTHENTICATED',
      `${call.where} did not accept the AWS credentials (${name}): check the access key, secret and region`,
      { cause },
    );
  }
  if (RETRY_LATER.has(name) || (status !== undefined && status >= 500)) {
    return new FerryError('UNAVAILABLE', `${call.where} is unavailable (${name}): try again later`, { cause });
  }
  return new FerryError('INTERNAL', `AWS KMS ${call.op} with ${key} failed: ${message}`, { cause });
}

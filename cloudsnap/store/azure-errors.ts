import { type ErrorCode, FerryError, NETWORK_ERROR_CODES } from '../../common/index.js';

/** What a failed Azure Blob call was about, for the message. */
export interface AzureErrorContext {
  container: string;
  /** Full blob name, when the call named one. */
  blob?: string;
  /** The store's location, e.g. `azure://container/prefix`. */
  location: string;
  /** The caller's signal: an aborted call rejects with its reason, untranslated. */
  signal?: AbortSignal;
}

/** The Azure SDK's own code for a request that never got an answer, besides the network codes. */
const NETWORK_CODES: ReadonlySet<string> = new Set(['REQUEST_SEND_ERROR', ...NETWORK_ERROR_CODES]);

/** Error code (x-ms-error-code or errno) and HTTP status of an Azure SDK error, read through type guards. */
export function describeAzureError(err: unknown): { code?: string; status?: number; name: string } {
  if (typeof err !== 'object' || err === null) return { name: String(err) };
  const name = 'name' in err && typeof err.name === 'string' ? err.name : 'Error';
  // HEAD answers have no body: the SDK leaves `code` unset and puts the x-ms-error-code header in `details`.
  const details = 'details' in err && typeof err.details === 'object' && err.details !== null ? err.details : {};
  const detailsCode = 'errorCode' in details && typeof details.errorCode === 'string' ? details.errorCode : undefined;
  const code = 'code' in err && typeof err.code === 'string' ? err.code : detailsCode;
  const status = 'statusCode' in err && typeof err.statusCode === 'number' ? err.statusCode : undefined;
  return { code, status, name };
}

/** The Ferry code and advice for an Azure Blob error code and status. */
export function classifyAzureError(
  code: string | undefined,
  status: number | undefined,
  ctx: AzureErrorContext,
): { code: ErrorCode; message: string } {
  const what = ctx.blob === undefined ? ctx.location : `${ctx.blob} in container ${ctx.container}`;
  switch (code) {
    case 'ContainerNotFound':
      return {
        code: 'NOT_FOUND',
        message: `container ${ctx.container} does not exist: create it or fix the container name`,
      };
    case 'BlobNotFound':
      return { code: 'NOT_FOUND', message: `${what} does not exist` };
    case 'AuthenticationFailed':
    case 'InvalidAuthenticationInfo':
      return {
        code: 'UNAUTHENTICATED',
        message: `the storage account refused the credential: fix the account name and key`,
      };
    case 'AuthorizationFailure':
    case 'AuthorizationPermissionMismatch':
    case 'AuthorizationResourceTypeMismatch':
    case 'InsufficientAccountPermissions':
      return {
        code: 'PERMISSION_DENIED',
        message: `access to ${what} denied: grant the credential access to container ${ctx.container}`,
      };
    case 'BlobAlreadyExists':
    case 'ConditionNotMet':
      return { code: 'ALREADY_EXISTS', message: `${what} already exists: choose another key` };
    case 'InvalidRange':
      return { code: 'INVALID_ARGUMENT', message: `the range reaches past the end of ${what}: read within the object` };
    case 'InvalidResourceName':
      return { code: 'INVALID_ARGUMENT', message: `container name ${ctx.container} is not valid: fix it` };
    case 'RequestBodyTooLarge':
      return { code: 'INVALID_ARGUMENT', message: `the object is too large for one put: write smaller objects` };
    case 'ServerBusy':
    case 'InternalError':
    case 'OperationTimedOut':
      return { code: 'UNAVAILABLE', message: `the storage account did not serve ${what} (${code}): retry later` };
  }
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return { code: 'UNAVAILABLE', message: `cannot reach the blob endpoint (${code}): check the endpoint and network` };
  }
  switch (status) {
    case 401:
      return { code: 'UNAUTHENTICATED', message: `the storage account refused the credential: fix the credential` };
    case 403:
      return {
        code: 'PERMISSION_DENIED',
        message: `access to ${what} denied: check the account key and its access to container ${ctx.container}`,
      };
    case 404:
      return { code: 'NOT_FOUND', message: `${what} does not exist` };
    case 409:
    case 412:
      return { code: 'ALREADY_EXISTS', message: `${what} already exists: choose another key` };
    case 416:
      return { code: 'INVALID_ARGUMENT', message: `the range reaches past the end of ${what}: read within the object` };
  }
  if (status === undefined || status >= 500) {
    return {
      code: 'UNAVAILABLE',
      message: `the blob endpoint failed on ${what} (${code ?? status ?? 'no answer'}): check it and retry`,
    };
  }
  return { code: 'INTERNAL', message: `Azure Blob call on ${what} failed (${code ?? 'no code'}, HTTP ${status})` };
}

/** The one translation of Azure Blob SDK errors into FerryErrors (an aborted call keeps its abort reason). */
export function translateAzureError(err: unknown, ctx: AzureErrorContext): unknown {
  if (err instanceof FerryError) return err;
  if (ctx.signal?.aborted) return ctx.signal.reason;
  const { code, status } = describeAzureError(err);
  const classified = classifyAzureError(code, status, ctx);
  return new FerryError(classified.code, classified.message, { cause: err });
}

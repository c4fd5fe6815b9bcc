/**
 * The one place where errors become HTTP responses. Every error body is `{ code, message, field? }`; a stack trace
 * never leaves the process.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { type ErrorCode, FerryError } from '../common/index.js';

/**
 * FerryError code -> HTTP status. Follows the grpc-gateway mapping OpenStorage's REST gateway uses:
 * FAILED_PRECONDITION is 412 (the resource is in the wrong state, e.g. attached), RESOURCE_EXHAUSTED is 429 (a
 * quota such as the 64-snapshot limit is reached: delete something, then retry).
 */
export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, ContentfulStatusCode>> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 412,
  RESOURCE_EXHAUSTED: 429,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  UNAVAILABLE: 503,
  DATA_CORRUPTION: 500,
  INTERNAL: 500,
};

/** Status for a request body over the size limit (the only status not derived from a FerryError code). */
export const PAYLOAD_TOO_LARGE = 413;

/** The JSON body of every error response. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** For INVALID_ARGUMENT: the request field at fault, as a dotted path (`spec.size`). */
  field?: string;
}

/** Builds the error body of a FerryError. */
export function errorBody(err: FerryError): ErrorBody {
  const body: ErrorBody = { code: err.code, message: err.message };
  if (err.field !== undefined) body.field = err.field;
  return body;
}

/** Receives unexpected errors (the ones that become a bare 500) for the node's log. */
export type ApiErrorLogger = (msg: string, fields: Record<string, unknown>) => void;

/** Default logger: one JSON line on stderr. */
export const logToStderr: ApiErrorLogger = (msg, fields) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg, ...fields })}\n`);
};

/**
 * Turns anything thrown by a handler into the JSON error response. A FerryError is shown as it is; anything else is
 * logged with its stack and answered as a bare INTERNAL, so no internals leak.
 */
export function errorResponse(c: Context, err: unknown, logError: ApiErrorLogger = logToStderr): Response {
  if (err instanceof FerryError) return c.json(errorBody(err), HTTP_STATUS_BY_CODE[err.code]);
  logError('unhandled API error', {
    method: c.req.method,
    path: c.req.path,
    error: err instanceof Error ? err.message : String(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  return c.json(errorBody(new FerryError('INTERNAL', 'internal error; see the node log')), 500);
}

/** The 404 response for a route that does not exist. */
export function routeNotFound(c: Context): Response {
  return c.json(errorBody(new FerryError('NOT_FOUND', `no such route: ${c.req.method} ${c.req.path}`)), 404);
}

/** The 413 response for a request body over `maxBytes`; it closes the connection. */
export function payloadTooLarge(c: Context, maxBytes: number): Response {
  const err = new FerryError('INVALID_ARGUMENT', `request body is larger than ${maxBytes} bytes`, { field: 'body' });
  // The rest of the body is never read, so this connection cannot carry another request.
  return c.json(errorBody(err), PAYLOAD_TOO_LARGE, { connection: 'close' });
}

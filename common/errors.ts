/**
 * The one error family of Ferry. Every failure that crosses a folder boundary is a FerryError with a stable `code`,
 * a message that says what to do, and the original error (if any) as `cause`. HTTP status mapping lives in `api/`.
 */
export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'FAILED_PRECONDITION',
  'RESOURCE_EXHAUSTED',
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  'UNAVAILABLE',
  'DATA_CORRUPTION',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface FerryErrorOptions {
  /** The error this one translates, kept for logs and debugging. */
  cause?: unknown;
  /** For INVALID_ARGUMENT: the request field at fault (snake_case, as in the API). */
  field?: string;
}

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.field = options.field;
  }
}

export function isFerryError(err: unknown, code?: ErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}

/** INVALID_ARGUMENT naming the field at fault. */
export function invalidArgument(field: string, message: string): FerryError {
  return new FerryError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

export function notFound(message: string): FerryError {
  return new FerryError('NOT_FOUND', message);
}

/** Wraps anything thrown into a FerryError, keeping FerryErrors as they are. */
export function toFerryError(err: unknown, fallbackMessage = 'internal error'): FerryError {
  if (err instanceof FerryError) return err;
  const message = err instanceof Error ? `${fallbackMessage}: ${err.message}` : fallbackMessage;
  return new FerryError('INTERNAL', message, { cause: err });
}

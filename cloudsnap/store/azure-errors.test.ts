import { describe, expect, it } from 'vitest';
import { type ErrorCode, FerryError } from '../../common/index.js';
import { translateAzureError } from './azure-errors.js';

const ctx = { container: 'backups', blob: 'packs/a', location: 'azure://backups/' };

function restError(code: string | undefined, statusCode?: number, detailsCode?: string): Error {
  return Object.assign(new Error(code ?? 'RestError'), {
    name: 'RestError',
    code,
    statusCode,
    details: detailsCode === undefined ? undefined : { errorCode: detailsCode },
  });
}

describe('translateAzureError', () => {
  const cases: [Error, ErrorCode, string][] = [
    [restError('BlobNotFound', 404), 'NOT_FOUND', 'packs/a'],
    [restError('ContainerNotFound', 404), 'NOT_FOUND', 'container backups does not exist'],
    [restError(undefined, 404, 'ContainerNotFound'), 'NOT_FOUND', 'container backups'],
    [restError('AuthenticationFailed', 403), 'UNAUTHENTICATED', 'account'],
    [restError('AuthorizationFailure', 403), 'PERMISSION_DENIED', 'grant'],
    [restError(undefined, 403), 'PERMISSION_DENIED', 'account key'],
    [restError('BlobAlreadyExists', 409), 'ALREADY_EXISTS', 'already exists'],
    [restError('ConditionNotMet', 412), 'ALREADY_EXISTS', 'already exists'],
    [restError('InvalidRange', 416), 'INVALID_ARGUMENT', 'range'],
    [restError('ServerBusy', 503), 'UNAVAILABLE', 'retry'],
    [restError('REQUEST_SEND_ERROR'), 'UNAVAILABLE', 'endpoint'],
    [restError('Odd', 400), 'INTERNAL', 'Odd'],
  ];
  for (const [err, code, text] of cases) {
    it(`${err.message} -> ${code}`, () => {
      const out = translateAzureError(err, ctx);
      expect(out).toBeInstanceOf(FerryError);
      expect((out as FerryError).code).toBe(code);
      expect((out as FerryError).message).toContain(text);
      expect((out as FerryError).cause).toBe(err);
    });
  }

  it('returns the abort reason of an aborted call', () => {
    const signal = AbortSignal.abort();
    expect(translateAzureError(restError(undefined), { ...ctx, signal })).toBe(signal.reason);
  });
});

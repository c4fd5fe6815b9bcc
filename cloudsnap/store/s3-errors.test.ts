import { describe, expect, it } from 'vitest';
import { type ErrorCode, FerryError } from '../../common/index.js';
import { translateS3Error } from './s3-errors.js';

const ctx = { bucket: 'backups', key: 'packs/a', location: 's3://backups/' };

function sdkError(name: string, status?: number, code?: string): Error {
  return Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status }, code });
}

describe('translateS3Error', () => {
  const cases: [Error, ErrorCode, string][] = [
    [sdkError('NoSuchKey', 404), 'NOT_FOUND', 'packs/a'],
    [sdkError('NotFound', 404), 'NOT_FOUND', 'packs/a'],
    [sdkError('NoSuchBucket', 404), 'NOT_FOUND', 'bucket backups does not exist'],
    [sdkError('InvalidAccessKeyId', 403), 'UNAUTHENTICATED', 'access key'],
    [sdkError('SignatureDoesNotMatch', 403), 'UNAUTHENTICATED', 'secret key'],
    [sdkError('AccessDenied', 403), 'PERMISSION_DENIED', 'grant'],
    [sdkError('403', 403), 'PERMISSION_DENIED', 'credential'],
    [sdkError('PreconditionFailed', 412), 'ALREADY_EXISTS', 'already exists'],
    [sdkError('Unknown', 412), 'ALREADY_EXISTS', 'already exists'],
    [sdkError('InvalidRange', 416), 'INVALID_ARGUMENT', 'range'],
    [sdkError('SlowDown', 503), 'UNAVAILABLE', 'retry'],
    [sdkError('Whatever', 502), 'UNAVAILABLE', 'retry'],
    [sdkError('Error', undefined, 'ECONNREFUSED'), 'UNAVAILABLE', 'ECONNREFUSED'],
    [sdkError('TimeoutError'), 'UNAVAILABLE', 'retry'],
    [sdkError('Odd', 400), 'INTERNAL', 'Odd'],
  ];
  for (const [err, code, text] of cases) {
    it(`${err.name} ${String((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode)} -> ${code}`, () => {
      const out = translateS3Error(err, ctx);
      expect(out).toBeInstanceOf(FerryError);
      expect((out as FerryError).code).toBe(code);
      expect((out as FerryError).message).toContain(text);
      expect((out as FerryError).cause).toBe(err);
    });
  }

  it('keeps FerryErrors and returns the abort reason of an aborted call', () => {
    const ferry = new FerryError('NOT_FOUND', 'x');
    expect(translateS3Error(ferry, ctx)).toBe(ferry);
    const signal = AbortSignal.abort();
    expect(translateS3Error(sdkError('AbortError'), { ...ctx, signal })).toBe(signal.reason);
  });
});

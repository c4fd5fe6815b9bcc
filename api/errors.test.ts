import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode, FerryError } from '../common/index.js';
import { openEngine, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';
import { HTTP_STATUS_BY_CODE } from './errors.js';

const EXPECTED_STATUS: Record<ErrorCode, number> = {
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

let dataDir: string;
let engine: VolumeEngine;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-errors-'));
  engine = await openEngine({ dataDir });
});

afterAll(async () => {
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** The real engine, except that listVolumes throws `err`. */
function engineThrowing(err: unknown): VolumeEngine {
  return new Proxy(engine, {
    get(target, property) {
      if (property === 'listVolumes') return () => Promise.reject(err);
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('error mapping', () => {
  it('maps every FerryError code to its documented status', () => {
    expect(Object.keys(HTTP_STATUS_BY_CODE).sort()).toEqual([...ERROR_CODES].sort());
    expect(HTTP_STATUS_BY_CODE).toEqual(EXPECTED_STATUS);
  });

  it.each(ERROR_CODES)('an engine %s becomes that status with body { code, message, field? }', async (code) => {
    const field = code === 'INVALID_ARGUMENT' ? 'spec.size' : undefined;
    const app = createApp({ engine: engineThrowing(new FerryError(code, 'what to do', { field })) });
    const response = await app.request('/v1/volumes');
    expect(response.status).toBe(EXPECTED_STATUS[code]);
    const expected: Record<string, string> = { code, message: 'what to do' };
    if (field !== undefined) expected.field = field;
    expect(await response.json()).toEqual(expected);
  });

  it('hides unexpected errors: 500 INTERNAL without the message or a stack trace, logged with the stack', async () => {
    const logged: Record<string, unknown>[] = [];
    for (const thrown of [new Error('secret /var/lib/ferry/layers'), 'a string', { weird: true }]) {
      const app = createApp({ engine: engineThrowing(thrown), logError: (_msg, fields) => logged.push(fields) });
      const response = await app.request('/v1/volumes');
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({ code: 'INTERNAL', message: 'internal error; see the node log' });
      expect(text).not.toMatch(/secret|stack|at /);
    }
    expect(logged).toHaveLength(3);
    expect(logged[0]).toMatchObject({ method: 'GET', path: '/v1/volumes', error: 'secret /var/lib/ferry/layers' });
    expect(String(logged[0]?.stack)).toMatch(/errors\.test\.ts/);
  });
});

describe('authentication seam', () => {
  it('runs the authenticate middleware before every /v1 route; its FerryError maps like any other', async () => {
    const app = createApp({
      engine,
      authenticate: async (c, next) => {
        if (c.req.header('authorization') !== 'Bearer ok') {
          throw new FerryError('UNAUTHENTICATED', 'send a bearer token');
        }
        await next();
      },
    });
    const refused = await app.request('/v1/volumes');
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ code: 'UNAUTHENTICATED', message: 'send a bearer token' });
    const allowed = await app.request('/v1/volumes', { headers: { authorization: 'Bearer ok' } });
    expect(allowed.status).toBe(200);
  });

  it('has no authentication by default', async () => {
    expect((await createApp({ engine }).request('/v1/volumes')).status).toBe(200);
  });
});

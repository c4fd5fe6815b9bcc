/**
 * The operation helper: a definition's schemas validate the request before its handler runs (parameters, then the
 * query, then the body), failures are the API's INVALID_ARGUMENT body naming the field, the handler gets the parsed
 * values, a router's own middleware runs first, and paths are written once, in full.
 */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FerryError } from '../common/index.js';
import { errorResponse } from './errors.js';
import { addOperations, operationsWith, routerPath } from './operation.js';

const define = operationsWith<{ calls: string[] }>();

const echo = define({
  method: 'put',
  path: '/v1/things/{thing_id}',
  operationId: 'thingUpdate',
  tag: 'Things',
  summary: 'Echoes what it was given.',
  params: { thing_id: z.string().regex(/^[a-z]+$/) },
  query: z.strictObject({
    times: z
      .string()
      .regex(/^[0-9]+$/)
      .transform(Number)
      .optional(),
  }),
  body: z.strictObject({ size: z.union([z.number(), z.string().transform(Number)]), name: z.string() }),
  handler: (c, input, { calls }) => {
    calls.push(input.params.thing_id);
    return c.json({ params: input.params, query: input.query, body: input.body });
  },
});

function app(calls: string[], middleware?: () => void): Hono {
  const routes = new Hono();
  if (middleware !== undefined) {
    routes.use('/things/*', async (_c, next) => {
      middleware();
      await next();
    });
  }
  const root = new Hono();
  root.onError((err, c) => errorResponse(c, err, () => {}));
  root.route('/v1', addOperations(routes, [echo], { calls }));
  return root;
}

async function put(a: Hono, url: string, body: string): Promise<{ status: number; json: unknown }> {
  const res = await a.request(url, { method: 'PUT', body, headers: { 'content-type': 'application/json' } });
  return { status: res.status, json: await res.json() };
}

describe('an operation', () => {
  it('hands its handler the parsed parameters, query and body', async () => {
    const calls: string[] = [];
    const res = await put(app(calls), '/v1/things/abc?times=3', '{"size":"4096","name":"n"}');
    expect(res).toEqual({
      status: 200,
      json: { params: { thing_id: 'abc' }, query: { times: 3 }, body: { size: 4096, name: 'n' } },
    });
    expect(calls).toEqual(['abc']);
  });

  it('refuses bad input with INVALID_ARGUMENT naming the field, before the handler runs', async () => {
    const calls: string[] = [];
    const a = app(calls);
    expect(await put(a, '/v1/things/ABC', '{"size":1,"name":"n"}')).toMatchObject({
      status: 400,
      json: { code: 'INVALID_ARGUMENT', field: 'thing_id' },
    });
    expect(await put(a, '/v1/things/abc?zz=1', '{"size":1,"name":"n"}')).toMatchObject({
      status: 400,
      json: { code: 'INVALID_ARGUMENT', field: 'zz', message: 'zz: unknown field' },
    });
    expect(await put(a, '/v1/things/abc', '{"size":1}')).toMatchObject({ status: 400, json: { field: 'name' } });
    expect(await put(a, '/v1/things/abc', '')).toMatchObject({ status: 400, json: { field: 'body' } });
    expect(await put(a, '/v1/things/abc', '{"size":1,"name":"n","__proto__":{}}')).toMatchObject({
      status: 400,
      json: { field: 'body' },
    });
    expect(calls).toEqual([]);
  });

  it('checks the parameters, then the query, then the body', async () => {
    const a = app([]);
    expect(await put(a, '/v1/things/ABC?zz=1', 'not json')).toMatchObject({ json: { field: 'thing_id' } });
    expect(await put(a, '/v1/things/abc?zz=1', 'not json')).toMatchObject({ json: { field: 'zz' } });
    expect(await put(a, '/v1/things/abc?times=1', 'not json')).toMatchObject({ json: { field: 'body' } });
  });

  it("runs after the router's own middleware", async () => {
    const a = app([], () => {
      throw new FerryError('PERMISSION_DENIED', 'no');
    });
    expect(await put(a, '/v1/things/ABC', 'not json')).toMatchObject({
      status: 403,
      json: { code: 'PERMISSION_DENIED' },
    });
  });

  it('keeps only what the document needs besides its run function', () => {
    const { run, ...described } = echo;
    expect(typeof run).toBe('function');
    expect(Object.keys(described).sort()).toEqual(
      ['body', 'method', 'operationId', 'params', 'path', 'query', 'summary', 'tag'].sort(),
    );
  });
});

describe('an operation with a lookup', () => {
  const lookups: string[] = [];
  const withLookup = define({
    method: 'put',
    path: '/v1/things/{thing_id}/owner',
    operationId: 'thingOwnerSet',
    tag: 'Things',
    summary: 'Finds the thing, then reads the body.',
    params: { thing_id: z.string().regex(/^[a-z]+$/) },
    body: z.strictObject({ owner: z.string() }),
    lookup: async (_c, { params }) => {
      lookups.push(params.thing_id);
      if (params.thing_id !== 'known') throw new FerryError('NOT_FOUND', `no thing ${params.thing_id}`);
      return { id: params.thing_id, found: true };
    },
    handler: (c, { found, body }) => c.json({ found, owner: body.owner }),
  });
  const a = new Hono();
  a.onError((err, c) => errorResponse(c, err, () => {}));
  a.route('/v1', addOperations(new Hono(), [withLookup], { calls: [] }));

  it('finds the target after the parameters and before the body, and hands the handler what it found', async () => {
    expect(await put(a, '/v1/things/known/owner', '{"owner":"alice"}')).toEqual({
      status: 200,
      json: { found: { id: 'known', found: true }, owner: 'alice' },
    });
    // A bad parameter is refused before the lookup; a missing target before a bad body.
    expect(await put(a, '/v1/things/BAD/owner', 'not json')).toMatchObject({
      status: 400,
      json: { field: 'thing_id' },
    });
    expect(await put(a, '/v1/things/other/owner', 'not json')).toMatchObject({
      status: 404,
      json: { code: 'NOT_FOUND' },
    });
    expect(await put(a, '/v1/things/known/owner', 'not json')).toMatchObject({ status: 400, json: { field: 'body' } });
    expect(lookups).toEqual(['known', 'other', 'known']);
  });
});

describe('routerPath', () => {
  it('turns a full OpenAPI path into the path on a router mounted at a prefix', () => {
    expect(routerPath('/v1/volumes/{volume_id}/changed_blocks', '/v1')).toBe('/volumes/:volume_id/changed_blocks');
    expect(routerPath('/healthz', '/')).toBe('/healthz');
  });

  it('refuses a path outside the mount point', () => {
    expect(() => routerPath('/metrics', '/v1')).toThrow(/not under \/v1/);
    expect(() => routerPath('/v10/x', '/v1')).toThrow(/not under \/v1/);
  });
});

/**
 * The OpenAPI document against the app: every route the app registers is documented and every documented operation
 * is a route (both ways, so neither can drift); every operation carries its request and response schemas, the same
 * objects its route validates with; the document is a valid OpenAPI 3.1 document (structure checked offline) and is
 * served; the reference page is self-contained.
 */

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryStore } from '../../node/index.js';
import { type KeyHarness, openHarness } from '../../test/support/key-harness.js';
import { openApiProblems } from '../../test/support/openapi-check.js';
import { createApp } from '../app.js';
import { StoreClusterDirectory } from '../cluster-directory.js';
import { NodeMetrics } from '../metrics.js';
import { API_OPERATIONS } from '../operations.js';
import { DirectorySecrets } from '../pairs/secret-vault.js';
import { PairService } from '../pairs/service.js';
import { ScheduleRecords } from '../schedules/index.js';
import { createVolumeSchema, resourceRefSchema } from '../schemas/index.js';
import { buildOpenApiDocument, escapeHtml, type OpenApiDocument, toJsonSchema } from './index.js';

let h: KeyHarness;
let app: Hono;
let pairs: PairService;

beforeAll(async () => {
  h = await openHarness();
  const cluster = await StoreClusterDirectory.open({ dataDir: h.dataDir, store: new MemoryStore() });
  await cluster.announce('http://127.0.0.1:9001');
  const metrics = new NodeMetrics({ processMetrics: false });
  const store = new MemoryStore();
  const schedules = { records: new ScheduleRecords(store), changed: () => {}, now: () => Date.now() };
  pairs = await PairService.open({
    store,
    vault: new DirectorySecrets(join(h.dataDir, 'pairs')),
    cluster: () => cluster.cluster(),
    localUrl: () => 'http://127.0.0.1:9001',
  });
  app = createApp({
    pairs,
    engine: h.engine,
    credentials: h.credentials,
    cloudBackups: h.backups,
    keys: h.keys,
    cluster,
    metrics,
    schedules,
  });
});

afterAll(async () => {
  await pairs.close();
  await h.close();
});

/** `GET /v1/volumes/:volume_id` -> `GET /v1/volumes/{volume_id}`. */
function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Routes the app answers (middleware, registered for every method, left out). */
function appRoutes(a: Hono): Set<string> {
  return new Set(a.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${openApiPath(r.path)}`));
}

function documentedRoutes(doc: OpenApiDocument): Set<string> {
  const out = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) out.add(`${method.toUpperCase()} ${path}`);
  }
  return out;
}

describe('the OpenAPI document', () => {
  it('lists exactly the routes the app serves', () => {
    const registered = appRoutes(app);
    const documented = documentedRoutes(buildOpenApiDocument(API_OPERATIONS));
    expect(
      [...registered].filter((r) => !documented.has(r)).sort(),
      'routes the app serves that no operation defines: define them with operationsWith (api/operation.ts) and list them in api/operations.ts',
    ).toEqual([]);
    expect(
      [...documented].filter((r) => !registered.has(r)).sort(),
      'operations of api/operations.ts the app does not serve',
    ).toEqual([]);
    expect(documented.size).toBe(API_OPERATIONS.length);
  });

  it('is a valid OpenAPI 3.1 document', () => {
    expect(openApiProblems(buildOpenApiDocument(API_OPERATIONS))).toEqual([]);
  });

  it('finds what is wrong in a broken document (the check itself)', () => {
    const doc = structuredClone(buildOpenApiDocument(API_OPERATIONS)) as unknown as {
      paths: Record<string, Record<string, Record<string, unknown>>>;
      [key: string]: unknown;
    };
    const inspect = doc.paths['/v1/volumes/inspect/{volume_id}']?.get;
    const create = doc.paths['/v1/volumes']?.post;
    if (inspect === undefined || create === undefined) throw new Error('fixture operations missing');
    inspect.parameters = [];
    create.operationId = 'volumeEnumerate';
    create.responses = { '200': { $ref: '#/components/responses/Nowhere' }, '2xx': { description: 'x' } };
    create.tags = ['Undeclared'];
    create.security = [{ apikey: [] }];
    doc.openapi = '3.0.3';
    expect(openApiProblems(doc)).toEqual(
      expect.arrayContaining([
        'openapi: not 3.1.x',
        'paths//v1/volumes/inspect/{volume_id}/get: {volume_id} has no path parameter',
        expect.stringMatching(/operationId volumeEnumerate twice/),
        'paths//v1/volumes/post: response key 2xx',
        'paths//v1/volumes/post/200: a response needs a description',
        'tags: Undeclared is used but not declared',
        'paths//v1/volumes/post: no scheme apikey',
        expect.stringMatching(/\$ref #\/components\/responses\/Nowhere does not resolve/),
      ]),
    );
  });

  it('gives every operation its request and response schemas, from its definition', () => {
    const doc = buildOpenApiDocument(API_OPERATIONS);
    for (const op of API_OPERATIONS) {
      const where = `${op.method.toUpperCase()} ${op.path}`;
      const documented = doc.paths[op.path]?.[op.method];
      if (documented === undefined) throw new Error(`${where} is not documented`);
      // Request: one path parameter per placeholder, each with its schema; the query's names; the body.
      const inPath = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      expect(Object.keys(op.params ?? {}).sort(), where).toEqual(inPath);
      const parameters = documented.parameters ?? [];
      for (const [name, schema] of Object.entries(op.params ?? {})) {
        expect(parameters, where).toContainEqual({ name, in: 'path', required: true, schema: toJsonSchema(schema) });
      }
      const queryNames = parameters.filter((p) => p.in === 'query').map((p) => p.name);
      expect(queryNames.sort(), where).toEqual(Object.keys(op.query?.shape ?? {}).sort());
      if (op.body === undefined) expect(documented.requestBody, where).toBeUndefined();
      else expect(documented.requestBody?.content['application/json'].schema, where).toEqual(toJsonSchema(op.body));
      // Response: the 200 answer has a media type and a schema (the definition's, where it writes one).
      const ok = documented.responses['200'] as { content: Record<string, { schema: unknown }> };
      const [type, media] = Object.entries(ok.content)[0] ?? [];
      expect(type, where).toBe(op.produces ?? 'application/json');
      expect(media?.schema, where).toEqual(
        op.response !== undefined ? toJsonSchema(op.response) : expect.objectContaining({ type: expect.any(String) }),
      );
      // Errors: 400 wherever input is validated, 413 wherever a body is read.
      const validates = op.params !== undefined || op.query !== undefined || op.body !== undefined;
      expect('400' in documented.responses, where).toBe(validates);
      expect('413' in documented.responses, where).toBe(op.body !== undefined);
    }
  });

  it('leaves validation to the definitions: no route reads a body, query or parameter itself', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const files = (await readdir(root, { recursive: true })).filter(
      (f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'),
    );
    const readers: string[] = [];
    for (const file of files) {
      const text = await readFile(join(root, file), 'utf8');
      if (/readJsonBody|readParam\(|readQuery\(|c\.req\.(json|text|param|query|valid)\(/.test(text)) readers.push(file);
    }
    // validate.ts holds the readers; operation.ts is the one caller. The paired clusters' link (pairs/peer-app.ts)
    // is not the API: its routes are answered only on a pair's TLS-PSK connection, and are not documented.
    expect(readers.sort()).toEqual(['operation.ts', 'pairs/peer-app.ts', 'validate.ts']);
  });

  it('is served at /v1/openapi.json and generated from the schemas the routes use', async () => {
    const res = await app.request('/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as OpenApiDocument;
    expect(doc.openapi).toBe('3.1.0');
    const ids = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId));
    expect(new Set(ids).size).toBe(ids.length);
    const create = doc.paths['/v1/volumes']?.post;
    expect(create?.requestBody?.content['application/json'].schema).toEqual(toJsonSchema(createVolumeSchema));
    expect(create?.requestBody?.content['application/json'].schema).toMatchObject({
      additionalProperties: false,
      required: ['name', 'spec'],
    });
    const inspect = doc.paths['/v1/volumes/inspect/{volume_id}']?.get;
    expect(inspect?.parameters).toEqual([
      { name: 'volume_id', in: 'path', required: true, schema: toJsonSchema(resourceRefSchema) },
    ]);
    const size = doc.paths['/v1/cloudbackups/size']?.get;
    expect(size?.parameters?.map((p) => [p.name, p.in, p.required])).toEqual([
      ['backup_id', 'query', true],
      ['credential_id', 'query', true],
    ]);
    expect(JSON.stringify(doc)).not.toContain('$schema');
  });

  it('refuses two definitions of one method and path', () => {
    const first = API_OPERATIONS[0];
    if (first === undefined) throw new Error('no operations');
    expect(() => buildOpenApiDocument([first, { ...first, operationId: 'again' }])).toThrow(/twice/);
  });

  it('documents response schemas that the routes really answer with', async () => {
    for (const op of API_OPERATIONS) {
      // GETs without parameters only; a POST's response schema is checked where its body is built (enumerate's in
      // test/cli-usability.test.ts).
      if (op.response === undefined || op.params !== undefined || op.method !== 'get') continue;
      const res = await app.request(op.path);
      expect(res.status, op.path).toBe(200);
      const parsed = op.response.safeParse(await res.json());
      expect(parsed.success, `${op.path}: ${parsed.success ? '' : z.prettifyError(parsed.error)}`).toBe(true);
    }
  });
});

describe('the reference page', () => {
  it('is one self-contained HTML page listing every operation', async () => {
    const res = await app.request('/v1/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).not.toMatch(/<script|<link|src=|https?:\/\//);
    for (const op of API_OPERATIONS) expect(html).toContain(`id="${op.operationId}"`);
    expect(html).toContain(escapeHtml('"additionalProperties": false'));
  });

  it('escapes what it shows', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});

/**
 * The OpenAPI document against the app: every route the app registers is documented and every documented operation
 * is a route (both ways, so neither can drift); the document is served, valid in shape, and built from the same
 * schema objects the routes validate with; the reference page is self-contained.
 */
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryStore } from '../../node/index.js';
import { type KeyHarness, openHarness } from '../../test/support/key-harness.js';
import { createApp } from '../app.js';
import { StoreClusterDirectory } from '../cluster-directory.js';
import { NodeMetrics } from '../metrics.js';
import { ScheduleRecords } from '../schedules/index.js';
import { createVolumeSchema, resourceRefSchema } from '../schemas/index.js';
import { API_OPERATIONS, buildOpenApiDocument, escapeHtml, type OpenApiDocument, toJsonSchema } from './index.js';

let h: KeyHarness;
let app: Hono;

beforeAll(async () => {
  h = await openHarness();
  const cluster = await StoreClusterDirectory.open({ dataDir: h.dataDir, store: new MemoryStore() });
  await cluster.announce('http://127.0.0.1:9001');
  const metrics = new NodeMetrics({ processMetrics: false });
  const store = new MemoryStore();
  const schedules = { records: new ScheduleRecords(store), changed: () => {}, now: () => Date.now() };
  app = createApp({
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
  it('lists exactly the routes the app registers', () => {
    const registered = appRoutes(app);
    const documented = documentedRoutes(buildOpenApiDocument());
    expect(
      [...registered].filter((r) => !documented.has(r)).sort(),
      'routes missing from the registry: add an entry to api/openapi/registry.ts',
    ).toEqual([]);
    expect(
      [...documented].filter((r) => !registered.has(r)).sort(),
      'registry entries (api/openapi/registry.ts) without a route',
    ).toEqual([]);
    expect(documented.size).toBe(API_OPERATIONS.length);
  });

  it('names every path parameter of a path in its parameters', () => {
    for (const op of API_OPERATIONS) {
      const inPath = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      expect(Object.keys(op.params ?? {}).sort(), op.path).toEqual(inPath);
    }
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

  it('rejects a registry that lists one operation twice', () => {
    const first = API_OPERATIONS[0];
    if (first === undefined) throw new Error('empty registry');
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

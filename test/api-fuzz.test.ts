/**
 * Fuzzing the API's input handling: thousands of malformed requests, from a seeded generator, through `app.request`
 * against every operation of the API (api/operations.ts), on a node in this process with every service. Bad JSON, wrong
 * types, missing and unknown fields, huge bodies and strings, odd path parameters and queries, odd content types.
 * No request may get a 500; every 400 must name a field, and the field at fault when exactly one is.
 *
 * Set FERRY_FUZZ_SEED to replay another run (the seed is in every failure message).
 */
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  API_OPERATIONS,
  type ApiOperation,
  createApp,
  DEFAULT_MAX_BODY_BYTES,
  type JsonSchema,
  ScheduleRecords,
  StoreClusterDirectory,
  toJsonSchema,
} from '../api/index.js';
import { MemoryStore } from '../node/index.js';
import { type KeyHarness, openHarness, volumeWithData } from './support/key-harness.js';

const SEED = Number(process.env.FERRY_FUZZ_SEED ?? 0x5eed_f022);
/** Requests per operation for each kind of fault. */
const ROUNDS = 12;

/** mulberry32: small, fast, good enough to pick faults; the same seed gives the same requests. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(SEED);
const int = (n: number): number => Math.floor(rand() * n);
function pick<T>(items: readonly T[]): T {
  const item = items[int(items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

const ODD_STRINGS = [
  '',
  ' ',
  '..',
  '.',
  '-',
  '@',
  'a@',
  '@b',
  'a@b@c',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '💥',
  'é',
  '\u0000',
  '\u202e',
  'a b',
  'a/b',
  '../../etc/passwd',
  'x'.repeat(10_000),
  'NaN',
  '-1',
  '1e309',
  '0x10',
  'null',
  'true',
  '{}',
  '[]',
  '%',
  '%%',
  "'; DROP TABLE kv; --",
  '<script>',
];

const KEY_STRINGS = ODD_STRINGS.filter((k) => k !== '__proto__');

/** Path segments as they appear raw in a URL (percent-encoded or not). */
const ODD_SEGMENTS = [
  '%00',
  '%2e%2e',
  '%2F',
  'a%2Fb',
  '%ZZ',
  '%E0%A4%A',
  '%C0%AE',
  '%FF',
  '..%00',
  '%20',
  '%40',
  'a%40b',
  '%F0%9F%92%A5',
  ';',
  'a;b=c',
  '~',
  '*',
  'a'.repeat(300),
  '%25',
];

const WRONG_TYPES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  -0,
  '',
  'x',
  '4096',
  [],
  [1, 2],
  {},
  { a: 1 },
  'x'.repeat(300_000),
];

const BAD_JSON = [
  '{',
  '}',
  '{"a":}',
  '{"a":1,}',
  "{'a':1}",
  '{"a":1}{"b":2}',
  '[',
  'nul',
  'NaN',
  'undefined',
  '{"a":"\\x00"}',
  '{"a":"\\ud800"',
  '\u0000',
  '  \n\t ',
  '',
  `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
];

/** Valid JSON objects of odd shape: refused (or not) like any object, never a 500. */
const ODD_OBJECTS = [
  `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`,
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '\uFEFF{}',
  '{"a":1,"a":2}',
];

/** Top-level JSON values that are valid JSON but not objects. */
const NON_OBJECTS = ['null', 'true', '0', '"body"', '[]', '[{}]', '1e999'];

/** A random JSON value, nested up to `depth`. */
function randomJson(depth: number): unknown {
  const kind = int(depth > 0 ? 8 : 5);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return pick([0, -1, 1, 4096, 2 ** 53 + 1, Number.MAX_VALUE, 0.5, 1e-300]);
    case 3:
      return pick(ODD_STRINGS);
    case 4:
      return String.fromCharCode(...Array.from({ length: int(20) }, () => int(0x3000)));
    case 5:
      return Array.from({ length: int(5) }, () => randomJson(depth - 1));
    default: {
      const out: Record<string, unknown> = {};
      // "__proto__" keys have their own case (ODD_OBJECTS): they are refused on `body`, before any field.
      for (let i = int(5); i > 0; i--) out[pick(KEY_STRINGS).slice(0, 40) || 'k'] = randomJson(depth - 1);
      return out;
    }
  }
}

// --- valid base values, from the operation's own JSON Schema, checked with its own zod schema ---

const STRING_CANDIDATES = ['vol1', 'cred1', 'a1', 'Done', 'Stop', 'true', 's3', 'local', '4096', '1', 'default'];
const NUMBER_CANDIDATES = [4096, 1, 50, 0];

function sampleOf(schema: JsonSchema): unknown {
  const anyOf = schema.anyOf as JsonSchema[] | undefined;
  if (anyOf?.[0] !== undefined) return sampleOf(anyOf[0]);
  const enumValues = schema.enum as unknown[] | undefined;
  if (enumValues?.[0] !== undefined) return enumValues[0];
  switch (schema.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
      for (const name of (schema.required ?? []) as string[]) {
        const prop = props[name];
        if (prop !== undefined) out[name] = sampleOf(prop);
      }
      return out;
    }
    case 'boolean':
      return true;
    case 'number':
    case 'integer':
      return 4096;
    case 'array':
      return [];
    default:
      return 'vol1';
  }
}

/** Candidates for the value at `path` of a sample that zod rejects there. */
function candidatesFor(value: unknown): unknown[] {
  if (typeof value === 'number') return NUMBER_CANDIDATES;
  if (typeof value === 'string') return STRING_CANDIDATES;
  return [];
}

function setAt(target: Record<string, unknown>, path: readonly PropertyKey[], value: unknown): void {
  let node: Record<string, unknown> = target;
  for (const key of path.slice(0, -1)) node = node[String(key)] as Record<string, unknown>;
  const last = path[path.length - 1];
  if (last !== undefined) node[String(last)] = value;
}

/** A value the zod schema accepts (the JSON Schema sample, repaired field by field), or undefined. */
function validSample(schema: import('zod').ZodType): unknown {
  const sample = sampleOf(toJsonSchema(schema));
  const box: Record<string, unknown> = { v: sample };
  for (let attempt = 0; attempt < 20; attempt++) {
    const result = schema.safeParse(box.v);
    if (result.success) return box.v;
    const issue = result.error.issues[0];
    if (issue === undefined) return undefined;
    const path = ['v', ...issue.path];
    let current: unknown = box;
    for (const key of path) current = (current as Record<string, unknown>)[String(key)];
    const options = candidatesFor(current);
    const index = options.indexOf(current);
    const next = options[index + 1];
    if (next === undefined) return undefined;
    setAt(box, path, next);
  }
  return undefined;
}

/** Valid bodies the sampler cannot find (a choice of one block among several); checked against the schema. */
const BASE_BODIES: Readonly<Record<string, Record<string, unknown>>> = {
  schedulePolicyCreate: { schedule_policy: { name: 'p1', schedules: [{ retain: 1, periodic: { seconds: 3600 } }] } },
  schedulePolicyUpdate: { schedule_policy: { name: 'p1', schedules: [{ retain: 1, periodic: { seconds: 3600 } }] } },
  cloudBackupGroupCreate: { volume_ids: ['vol1'], credential_id: 'cred1' },
  cloudBackupSchedCreate: {
    cloud_sched_info: {
      src_volume_id: 'vol1',
      credential_id: 'cred1',
      schedules: [{ retain: 1, daily: { hour: 1, minute: 0 } }],
    },
  },
  cloudBackupSchedUpdate: {
    sched_uuid: '00000000-0000-0000-0000-000000000000',
    cloud_sched_info: {
      src_volume_id: 'vol1',
      credential_id: 'cred1',
      schedules: [{ retain: 1, daily: { hour: 1, minute: 0 } }],
    },
  },
};

// --- requests ---

interface FuzzRequest {
  op: ApiOperation;
  kind: string;
  method: string;
  url: string;
  body?: string;
  contentType?: string;
  /** The field the answer must name when it is a 400 (undefined: any field). */
  field?: string;
  /** The statuses allowed besides 400 (undefined: anything but 500). */
  expect400?: boolean;
}

interface Base {
  op: ApiOperation;
  params: Record<string, string>;
  query: Record<string, string> | undefined;
  body: Record<string, unknown> | undefined;
}

function buildUrl(op: ApiOperation, params: Record<string, string>, query?: string): string {
  const path = op.path.replace(/\{([^}]+)\}/g, (_m, name: string) => params[name] ?? 'x');
  return query === undefined || query === '' ? path : `${path}?${query}`;
}

function queryString(query: Record<string, string> | undefined): string {
  return new URLSearchParams(query ?? {}).toString();
}

/** Object paths (dotted) of the base body's fields, nested objects included. */
function fieldPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const out: string[] = [];
  for (const [key, inner] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    out.push(path, ...fieldPaths(inner, path));
  }
  return out;
}

function withField(body: Record<string, unknown>, dotted: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(body);
  setAt(copy, dotted.split('.'), value);
  return copy;
}

function withoutField(body: Record<string, unknown>, dotted: string): Record<string, unknown> {
  const copy = structuredClone(body);
  const parts = dotted.split('.');
  let node: Record<string, unknown> = copy;
  for (const key of parts.slice(0, -1)) node = node[key] as Record<string, unknown>;
  delete node[parts[parts.length - 1] ?? ''];
  return copy;
}

/** Whether a value of the given JSON type is accepted where `current` stands (both number and string are, for sizes). */
function typeAccepted(op: ApiOperation, base: Record<string, unknown>, dotted: string, value: unknown): boolean {
  return op.body?.safeParse(withField(base, dotted, value)).success === true;
}

/** The base's path parameters, each naming a resource that does not exist. */
function missingParams(base: Base): Record<string, string> {
  return Object.fromEntries(Object.keys(base.params).map((name) => [name, 'missing1']));
}

function requestsFor(base: Base): FuzzRequest[] {
  const { op } = base;
  const method = op.method.toUpperCase();
  const url = buildUrl(op, base.params, queryString(base.query));
  const list: Omit<FuzzRequest, 'op'>[] = [];
  const out = { push: (r: Omit<FuzzRequest, 'op'>) => list.push(r) };
  const json = (body: unknown): string => JSON.stringify(body);

  for (let round = 0; round < ROUNDS; round++) {
    // Odd path parameters: 400 naming the parameter when its schema refuses the value.
    for (const [name, schema] of Object.entries(op.params ?? {})) {
      const raw = rand() < 0.5 ? pick(ODD_SEGMENTS) : encodeURIComponent(pick(ODD_STRINGS));
      const params = { ...base.params, [name]: raw };
      let decoded: string | undefined;
      try {
        decoded = decodeURIComponent(raw);
      } catch {
        decoded = undefined;
      }
      const refused = decoded === undefined || !schema.safeParse(decoded).success;
      const body = base.body === undefined ? undefined : json(base.body);
      out.push({
        kind: 'path',
        method,
        url: buildUrl(op, params, queryString(base.query)),
        ...(body !== undefined && { body, contentType: 'application/json' }),
        // A decoded '/', an empty segment or a dot segment (URL parsing resolves %2e%2e) changes the route itself.
        ...(refused &&
          decoded !== undefined &&
          !/^(|\.|\.\.)$/.test(decoded) &&
          !decoded.includes('/') && { field: name }),
      });
    }
    // Odd queries: unknown names are refused where the route reads a query; odd values of known names.
    const oddName = pick(['zzz', 'a[]', '__proto__', 'credential_id[]', '%ZZ', 'x'.repeat(500), '']);
    const oddValue = encodeURIComponent(pick(ODD_STRINGS));
    const known = op.query === undefined ? undefined : pick(Object.keys(op.query.shape));
    const queries = [
      `${queryString(base.query)}&${oddName}=${oddValue}`,
      `${queryString(base.query)}&${queryString(base.query)}`,
      known === undefined ? `${oddName}` : `${queryString(base.query)}&${known}=${oddValue}`,
      pick(['%', '&&&', '=', '==', '?', '%E0%A4%A=1', 'a=%ZZ']),
    ];
    for (const q of queries) {
      // Only reads go out whole: a write would change what later requests find, so writes get a bad body and name
      // resources that do not exist.
      const read = method === 'GET';
      const body = read ? undefined : pick(BAD_JSON);
      out.push({
        kind: 'query',
        method,
        url: buildUrl(op, read ? base.params : missingParams(base), q),
        ...(body !== undefined && { body, contentType: 'application/json' }),
      });
    }
    if (op.query !== undefined && base.query !== undefined) {
      out.push({
        kind: 'query-unknown',
        method,
        url: buildUrl(op, base.params, `${queryString(base.query)}&zzz_${round}=1`),
        field: `zzz_${round}`,
      });
      const required = Object.keys(base.query);
      if (required.length > 0) {
        const missing = pick(required);
        const rest = { ...base.query };
        delete rest[missing];
        out.push({ kind: 'query-missing', method, url: buildUrl(op, base.params, queryString(rest)), field: missing });
      }
    }

    if (op.body === undefined) {
      // Routes without a body ignore one; it must still never break them (sent to resources that do not exist: a
      // DELETE of the fixtures would change what later requests find).
      out.push({
        kind: 'stray-body',
        method,
        url: buildUrl(op, missingParams(base), queryString(base.query)),
        body: pick(BAD_JSON).slice(0, 1000),
        contentType: 'application/json',
      });
      continue;
    }
    // Bad JSON and non-objects: 400 on `body`.
    out.push({ kind: 'bad-json', method, url, body: pick(BAD_JSON), contentType: 'application/json', field: 'body' });
    out.push({
      kind: 'non-object',
      method,
      url,
      body: pick(NON_OBJECTS),
      contentType: 'application/json',
      field: 'body',
    });
    out.push({ kind: 'odd-object', method, url, body: pick(ODD_OBJECTS), contentType: 'application/json' });
    // Random JSON documents: anything but 500, and a named field when refused.
    out.push({
      kind: 'random',
      method,
      url,
      body: json(randomJson(4)),
      contentType: pick(['application/json', 'text/plain']),
    });
    // A body over the limit: 413 on `body`.
    if (round % 4 === 0) {
      const filler = 'x'.repeat(DEFAULT_MAX_BODY_BYTES + int(1000) + 1);
      out.push({
        kind: 'huge',
        method,
        url,
        body: json({ pad: filler }),
        contentType: 'application/json',
        field: 'body',
      });
    }
    if (base.body === undefined) continue;
    // Unknown field at the top, or inside a nested object.
    const objects = [
      '',
      ...fieldPaths(base.body).filter((p) => {
        const v = p.split('.').reduce<unknown>((n, k) => (n as Record<string, unknown>)[k], base.body);
        return (
          v !== null &&
          typeof v === 'object' &&
          !Array.isArray(v) &&
          op.body?.safeParse(withField(base.body ?? {}, `${p}.zz`, 'x')).success === false
        );
      }),
    ];
    const where = pick(objects);
    const unknownName = pick(['zz', 'extra_field', 'Name', 'name ', 'volumeId', '__proto__x', 'constructor']);
    const withUnknown =
      where === ''
        ? { ...base.body, [unknownName]: randomJson(1) }
        : withField(base.body, `${where}.${unknownName}`, 1);
    const unknownRefused = op.body.safeParse(withUnknown).success === false;
    out.push({
      kind: 'unknown-field',
      method,
      url,
      body: json(withUnknown),
      contentType: 'application/json',
      ...(unknownRefused && { field: where === '' ? unknownName : `${where}.${unknownName}` }),
    });
    // Wrong type, or missing, for one field of the valid base.
    const paths = fieldPaths(base.body);
    if (paths.length > 0) {
      const target = pick(paths);
      const value = pick(WRONG_TYPES);
      const accepted = typeAccepted(op, base.body, target, value);
      out.push({
        kind: 'wrong-type',
        method,
        url,
        body: json(withField(base.body, target, value)),
        contentType: 'application/json',
        ...(!accepted && { field: target }),
      });
      const without = withoutField(base.body, target);
      const missingRefused = op.body.safeParse(without).success === false;
      const nested = target.includes('.') ? target : undefined;
      out.push({
        kind: 'missing-field',
        method,
        url,
        body: json(without),
        contentType: 'application/json',
        // A missing required field is named; an optional one missing is fine.
        ...(missingRefused && nested === undefined && { field: target }),
      });
    }
  }
  return list.map((r) => ({ ...r, op }));
}

// --- the run ---

let h: KeyHarness;
let app: Hono;
const bases: Base[] = [];

beforeAll(async () => {
  h = await openHarness();
  await volumeWithData(h.engine, 'vol1', 1024 * 1024);
  await h.engine.createSnapshot('vol1', { name: 'snap1' });
  await h.credential('cred1', {});
  const cluster = await StoreClusterDirectory.open({ dataDir: h.dataDir, store: new MemoryStore() });
  await cluster.announce('http://127.0.0.1:9001');
  app = createApp({
    engine: h.engine,
    credentials: h.credentials,
    cloudBackups: h.backups,
    keys: h.keys,
    cluster,
    schedules: { records: new ScheduleRecords(new MemoryStore()), changed: () => {}, now: () => Date.now() },
    logError: () => {},
  });
  for (const op of API_OPERATIONS) {
    const params: Record<string, string> = {};
    for (const [name, schema] of Object.entries(op.params ?? {})) {
      // Name resources that exist, so handlers get past their look-ups to the body.
      const existing = name === 'credential_id' || op.path.includes('/credentials/') ? 'cred1' : 'vol1';
      const value = schema.safeParse(existing).success ? existing : validSample(schema);
      params[name] = encodeURIComponent(typeof value === 'string' ? value : 'vol1');
    }
    const query = op.query === undefined ? undefined : (validSample(op.query) as Record<string, string> | undefined);
    const override = BASE_BODIES[op.operationId];
    const body =
      op.body === undefined
        ? undefined
        : override !== undefined && op.body.safeParse(override).success
          ? override
          : (validSample(op.body) as Record<string, unknown> | undefined);
    bases.push({ op, params, query, body });
  }
}, 60_000);

afterAll(async () => {
  await h?.close();
});

describe(`API fuzzing (seed ${SEED})`, () => {
  it('finds a valid base request for almost every operation', () => {
    const withBody = bases.filter((b) => b.op.body !== undefined);
    const missing = withBody.filter((b) => b.body === undefined).map((b) => b.op.operationId);
    // Bases make the single-fault requests precise; an operation without one is still fuzzed, less sharply.
    expect(missing, 'operations without a valid base body').toEqual([]);
  });

  it('answers thousands of malformed requests without a 500, naming the field of every 400', async () => {
    const requests = bases.flatMap(requestsFor);
    // Also: methods the API does not define on its paths.
    for (const op of API_OPERATIONS) {
      requests.push({ op, kind: 'method', method: 'PATCH', url: buildUrl(op, {}) });
    }
    expect(requests.length).toBeGreaterThan(3000);
    const statuses = new Map<number, number>();
    const problems: string[] = [];
    for (const req of requests) {
      const init: RequestInit = { method: req.method };
      if (req.body !== undefined && req.method !== 'GET') {
        init.body = req.body;
        if (req.contentType !== undefined) init.headers = { 'content-type': req.contentType };
      }
      const res = await app.request(req.url, init);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const text = await res.text();
      const what = `${req.kind} ${req.method} ${req.url.slice(0, 120)} body=${(req.body ?? '').slice(0, 120)}`;
      if (res.status >= 500 && res.status !== 503) {
        problems.push(`${res.status} for ${what}: ${text.slice(0, 200)}`);
        continue;
      }
      if (res.status < 400 && (req.op.produces ?? 'application/json') !== 'application/json') continue;
      let body: { code?: string; field?: string } = {};
      try {
        body = JSON.parse(text) as { code?: string; field?: string };
      } catch {
        problems.push(`not JSON (${res.status}) for ${what}`);
        continue;
      }
      if (res.status === 400 || res.status === 413) {
        if (body.code !== 'INVALID_ARGUMENT' || typeof body.field !== 'string' || body.field === '') {
          problems.push(`${res.status} without a field for ${what}: ${text.slice(0, 200)}`);
        } else if (req.field !== undefined && body.field !== req.field && !body.field.startsWith(`${req.field}.`)) {
          problems.push(`${res.status} names ${body.field}, not ${req.field}, for ${what}`);
        }
      } else if (req.field !== undefined && !(req.kind === 'path' && res.status === 404)) {
        problems.push(`${res.status} (expected 400 on ${req.field}) for ${what}: ${text.slice(0, 200)}`);
      }
    }
    const summary = [...statuses]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ');
    if (process.env.FERRY_FUZZ_DUMP) console.log(problems.join('\n'));
    expect(problems.slice(0, 20), `seed ${SEED}; ${requests.length} requests; statuses ${summary}`).toEqual([]);
    expect(statuses.get(500) ?? 0).toBe(0);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(1000);
    console.log(`api fuzz: seed ${SEED}, ${requests.length} requests, statuses ${summary}`);
  }, 300_000);
});

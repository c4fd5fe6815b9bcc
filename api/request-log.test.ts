import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEngine, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';
import { createLogger, type Logger } from './log.js';
import { type FinishedRequest, REQUEST_ID_HEADER, requestLog } from './request-log.js';

let dataDir: string;
let engine: VolumeEngine;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-request-log-'));
  engine = await openEngine({ dataDir });
});

afterAll(async () => {
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

function capture(): { logger: Logger; lines: Record<string, unknown>[]; raw: string[] } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = {
    write(text: string): void {
      raw.push(text);
      lines.push(JSON.parse(text) as Record<string, unknown>);
    },
  };
  return { logger: createLogger({ level: 'debug', destination }), lines, raw };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('request ids and the access log', () => {
  it('keeps a sane caller id, replaces anything else with a UUID, and logs one line per request', async () => {
    const { logger, lines } = capture();
    const app = createApp({ engine, logger });
    const given = await app.request('/v1/identities/version', { headers: { [REQUEST_ID_HEADER]: 'trace-7.a_b' } });
    expect(given.headers.get(REQUEST_ID_HEADER)).toBe('trace-7.a_b');
    const bad = await app.request('/v1/identities/version', { headers: { [REQUEST_ID_HEADER]: 'no spaces; please' } });
    expect(bad.headers.get(REQUEST_ID_HEADER)).toMatch(UUID);
    const none = await app.request('/v1/volumes/inspect/missing');
    expect(none.status).toBe(404);
    const id = none.headers.get(REQUEST_ID_HEADER);
    expect(id).toMatch(UUID);
    expect(id).not.toBe(bad.headers.get(REQUEST_ID_HEADER));

    const requests = lines.filter((l) => l.msg === 'request');
    expect(requests.map((l) => [l.level, l.req_id, l.method, l.path, l.status])).toEqual([
      ['info', 'trace-7.a_b', 'GET', '/v1/identities/version', 200],
      ['info', bad.headers.get(REQUEST_ID_HEADER), 'GET', '/v1/identities/version', 200],
      ['info', id, 'GET', '/v1/volumes/inspect/missing', 404],
    ]);
    for (const l of requests) expect(typeof l.ms).toBe('number');
  });

  it('logs probes at debug, never headers or query strings, and tags lines logged inside the request', async () => {
    const { logger, lines, raw } = capture();
    const app = new Hono();
    app.use('*', requestLog({ logger }));
    app.get('/healthz', (c) => c.text('ok'));
    app.get('/work', (c) => {
      logger.info({ step: 1 }, 'working');
      return c.text('done');
    });
    await app.request('/healthz');
    const work = await app.request('/work?token=query-secret', {
      headers: { authorization: 'Bearer header-secret', [REQUEST_ID_HEADER]: 'r-1' },
    });
    expect(await work.text()).toBe('done');
    expect(lines.map((l) => [l.level, l.msg, l.req_id])).toEqual([
      ['debug', 'request', expect.stringMatching(UUID)],
      ['info', 'working', 'r-1'],
      ['info', 'request', 'r-1'],
    ]);
    expect(raw.join('')).not.toMatch(/query-secret|header-secret/);
  });

  it('reports each request to onFinished with its route pattern', async () => {
    const seen: FinishedRequest[] = [];
    const app = new Hono();
    app.use('*', requestLog({ onFinished: (r) => seen.push(r) }));
    app.get('/v1/things/:id', (c) => c.json({ id: c.req.param('id') }, 201));
    await app.request('/v1/things/42');
    await app.request('/elsewhere');
    expect(seen.map((r) => [r.method, r.route, r.status])).toEqual([
      ['GET', '/v1/things/:id', 201],
      ['GET', 'unmatched', 404],
    ]);
    expect(seen.every((r) => r.seconds >= 0)).toBe(true);
  });
});

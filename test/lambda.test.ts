/**
 * The serverless handler driven with API Gateway event fixtures (HTTP API payload v2 and REST API v1, in
 * test/fixtures/lambda/): catalog reads answered in the function from the object store with its one credential, a
 * restore forwarded to a node's API (a real node app in this process, over HTTP) and landing there bit for bit,
 * validation errors, and the answers when no node is configured or the configuration is wrong.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { handle, type LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createApp,
  createServerlessApp,
  type RunningApiServer,
  type ServerlessApp,
  startApiServer,
} from '../api/index.js';
import { backup, digest, type KeyHarness, openHarness, volumeWithData } from './support/key-harness.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'lambda');

let h: KeyHarness;
let node: RunningApiServer;
let serverless: ServerlessApp;
let backupId: string;
const forwarded: { url: string; authorization: string | null }[] = [];

type Result = { statusCode: number; body: string; headers?: Record<string, string> };

/** A fixture event with its placeholders filled in. */
async function event(name: string, fill: Record<string, string> = {}): Promise<LambdaEvent> {
  let text = await readFile(join(FIXTURES, name), 'utf8');
  for (const [key, value] of Object.entries(fill)) text = text.replaceAll(key, value);
  return JSON.parse(text) as LambdaEvent;
}

async function invoke(app: ServerlessApp['app'], e: LambdaEvent): Promise<{ status: number; body: unknown }> {
  const result = (await handle(app)(e)) as Result;
  return { status: result.statusCode, body: JSON.parse(result.body) as unknown };
}

/** A v2 event for `method path` with a JSON body, built from the version fixture. */
async function v2(method: string, path: string, body?: unknown): Promise<LambdaEvent> {
  const e = (await event('http-api-v2-version.json')) as unknown as Record<string, unknown>;
  const ctx = e.requestContext as { http: { method: string; path: string } };
  ctx.http.method = method;
  ctx.http.path = path;
  e.rawPath = path;
  if (body !== undefined) {
    e.body = Buffer.from(JSON.stringify(body)).toString('base64');
    e.isBase64Encoded = true;
    (e.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  return e as unknown as LambdaEvent;
}

beforeAll(async () => {
  h = await openHarness();
  await h.credential('offsite', {});
  await volumeWithData(h.engine, 'vol1');
  const done = await backup(h, 'vol1', 'offsite');
  expect(done.status).toBe('Done');
  backupId = done.backup_id ?? '';
  node = await startApiServer(
    createApp({ engine: h.engine, credentials: h.credentials, cloudBackups: h.backups, keys: h.keys }),
    '127.0.0.1',
    0,
  );
  serverless = await createServerlessApp({
    // The same repository the node writes, read with the function's own copy of the credential.
    credential: { name: 'offsite', bucket: 'backups', directory_credential: { path: h.objects } },
    dataDir: h.dataDir,
    nodeApiUrl: node.url,
    env: {},
    fetch: (input, init) => {
      forwarded.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') });
      return fetch(input, init);
    },
  });
}, 60_000);

afterAll(async () => {
  await serverless?.close();
  await node?.close();
  await h?.close();
});

describe('the serverless handler', () => {
  it('answers version from an HTTP API v2 event', async () => {
    const res = await invoke(serverless.app, await event('http-api-v2-version.json'));
    expect(res).toMatchObject({ status: 200, body: { version: { driver: 'ferry' } } });
  });

  it('enumerates, catalogs and sizes backups itself, from the object store', async () => {
    const before = forwarded.length;
    const listed = await invoke(serverless.app, await event('rest-api-v1-enumerate.json'));
    expect(listed.status).toBe(200);
    expect((listed.body as { backups: { id: string }[] }).backups.map((b) => b.id)).toEqual([backupId]);

    const catalog = await invoke(serverless.app, await event('http-api-v2-catalog.json', { __BACKUP_ID__: backupId }));
    expect(catalog.status).toBe(200);
    const fromNode = await fetch(`${node.url}/v1/cloudbackups/catalog`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ backup_id: backupId, credential_id: 'offsite' }),
    });
    expect(catalog.body).toEqual(await fromNode.json());

    const size = await invoke(serverless.app, await event('http-api-v2-size.json', { __BACKUP_ID__: backupId }));
    expect(size.status).toBe(200);
    expect((size.body as { size: number }).size).toBeGreaterThan(0);
    expect(forwarded.length).toBe(before);
  });

  it('validates what it answers itself with the same schemas (400 naming the field)', async () => {
    const unknown = await invoke(
      serverless.app,
      await v2('POST', '/v1/cloudbackups/catalog', { backup_id: backupId, credential_id: 'offsite', extra: 1 }),
    );
    expect(unknown).toMatchObject({ status: 400, body: { code: 'INVALID_ARGUMENT', field: 'extra' } });
    const wrong = await invoke(
      serverless.app,
      await v2('POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 7 }),
    );
    expect(wrong).toMatchObject({ status: 400, body: { field: 'credential_id' } });
    const other = await invoke(
      serverless.app,
      await v2('POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'elsewhere' }),
    );
    expect(other.status).toBe(404);
  });

  it('forwards a restore to the node, where it lands bit for bit', async () => {
    const res = await invoke(
      serverless.app,
      await event('http-api-v2-restore.json', { __BACKUP_ID__: backupId, __TOKEN__: 'token-1' }),
    );
    expect(res.status).toBe(200);
    const taskId = (res.body as { task_id: string }).task_id;
    expect(forwarded.at(-1)).toEqual({ url: `${node.url}/v1/cloudbackups/restore`, authorization: 'Bearer token-1' });
    // Status goes to the node too: the task is there, not in the function.
    let status = '';
    for (let i = 0; i < 200 && status !== 'Done' && status !== 'Failed'; i++) {
      const s = await invoke(serverless.app, await v2('POST', '/v1/cloudbackups/status', { task_id: taskId }));
      status = (s.body as { statuses: Record<string, { status: string }> }).statuses[taskId]?.status ?? '';
      if (status !== 'Done') await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe('Done');
    expect(await digest(h.engine, 'vol1-restored')).toBe(await digest(h.engine, 'vol1'));
    const volumes = await invoke(serverless.app, await v2('GET', '/v1/volumes'));
    expect((volumes.body as { volume_ids: string[] }).volume_ids).toHaveLength(2);
  });

  it('passes the node’s errors through unchanged', async () => {
    const res = await invoke(serverless.app, await v2('POST', '/v1/volumes', { name: 'x', spec: { size: 1 } }));
    expect(res).toMatchObject({ status: 400, body: { code: 'INVALID_ARGUMENT', field: 'spec.size' } });
  });

  it('answers 503 for what needs a node when none is configured', async () => {
    const alone = await createServerlessApp({
      credential: { name: 'offsite', bucket: 'backups', directory_credential: { path: h.objects } },
      dataDir: h.dataDir,
      env: {},
    });
    try {
      const res = await invoke(
        alone.app,
        await event('http-api-v2-restore.json', { __BACKUP_ID__: backupId, __TOKEN__: 't' }),
      );
      expect(res.status).toBe(503);
      expect((res.body as { message: string }).message).toContain('FERRY_NODE_API_URL');
      const listed = await invoke(alone.app, await event('rest-api-v1-enumerate.json'));
      expect(listed.status).toBe(200);
    } finally {
      await alone.close();
    }
  });

  it('answers 503 naming the node when it does not answer', async () => {
    const gone = await createServerlessApp({
      credential: { name: 'offsite', bucket: 'backups', directory_credential: { path: h.objects } },
      dataDir: h.dataDir,
      nodeApiUrl: 'http://127.0.0.1:9',
      env: {},
    });
    try {
      const res = await invoke(gone.app, await v2('GET', '/v1/volumes'));
      expect(res.status).toBe(503);
      expect((res.body as { message: string }).message).toContain('http://127.0.0.1:9');
    } finally {
      await gone.close();
    }
  });

  it('refuses a credential the schema refuses, naming the field', async () => {
    await expect(
      createServerlessApp({ credential: { name: 'x', bucket: 1 }, dataDir: h.dataDir, env: {} }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'FERRY_CREDENTIAL.bucket' });
  });
});

describe('the Lambda entry point (api/lambda.ts)', () => {
  it('builds the app from the environment once and serves events', async () => {
    vi.resetModules();
    vi.stubEnv(
      'FERRY_CREDENTIAL',
      JSON.stringify({ name: 'offsite', bucket: 'backups', directory_credential: { path: h.objects } }),
    );
    vi.stubEnv('FERRY_DATA_DIR', h.dataDir);
    vi.stubEnv('FERRY_NODE_API_URL', node.url);
    try {
      const { handler } = await import('../api/lambda.js');
      const first = await handler(await event('rest-api-v1-enumerate.json'));
      expect(first.statusCode).toBe(200);
      expect(JSON.parse(first.body)).toMatchObject({ backups: [{ id: backupId }] });
      const second = await handler(await event('http-api-v2-version.json'));
      expect(second.statusCode).toBe(200);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('answers every request 503 naming the variable when the configuration is wrong', async () => {
    vi.resetModules();
    vi.stubEnv('FERRY_CREDENTIAL', '{not json');
    try {
      const { handler } = await import('../api/lambda.js');
      const res = await handler(await event('http-api-v2-version.json'));
      expect(res.statusCode).toBe(503);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'UNAVAILABLE', field: 'FERRY_CREDENTIAL' });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

/** The API over a real HTTP socket (startApiServer + the real engine): what `app.request` cannot show. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type RunningApiServer, startApiServer } from '../api/index.js';
import { openEngine, type VolumeEngine } from '../node/index.js';

let dataDir: string;
let engine: VolumeEngine;
let server: RunningApiServer;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-http-'));
  engine = await openEngine({ dataDir });
  server = await startApiServer(createApp({ engine }), '127.0.0.1', 0);
});

afterAll(async () => {
  await server.close();
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

function streamOf(chunks: number, chunkBytes: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent === chunks) {
        controller.close();
        return;
      }
      sent += 1;
      controller.enqueue(new Uint8Array(chunkBytes).fill(0x20));
    },
  });
}

describe('HTTP API over a socket', () => {
  it('creates and inspects a volume with a protobuf-JSON style body (uint64 size as a string)', async () => {
    const created = await fetch(`${server.url}/v1/volumes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'web', spec: { size: '1073741824', ha_level: '1' }, labels: { app: 'web' } }),
    });
    expect(created.status).toBe(200);
    const { volume_id } = (await created.json()) as { volume_id: string };
    const inspected = await fetch(`${server.url}/v1/volumes/inspect/${volume_id}`);
    expect(inspected.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await inspected.json()).toMatchObject({ volume: { spec: { size: 1073741824, ha_level: 1 } } });
  });

  it('answers 413 to a body over 1 MiB sent with Content-Length, and to one streamed in chunks', async () => {
    const sized = await fetch(`${server.url}/v1/volumes`, { method: 'POST', body: ' '.repeat(1024 * 1024 + 1) });
    expect(sized.status).toBe(413);
    expect(await sized.json()).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'body' });

    const init: RequestInit & { duplex: 'half' } = { method: 'POST', body: streamOf(40, 64 * 1024), duplex: 'half' };
    const streamed = await fetch(`${server.url}/v1/volumes`, init);
    expect(streamed.status).toBe(413);
    expect(await streamed.json()).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'body' });
    expect((await engine.listVolumes()).map((v) => v.name)).toEqual(['web']);
  });

  it('answers unknown routes with the JSON error shape', async () => {
    const response = await fetch(`${server.url}/v2/anything`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ code: 'NOT_FOUND', message: 'no such route: GET /v2/anything' });
  });
});

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../common/index.js';
import { openEngine, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';
import { startApiServer } from './server.js';
import { FERRY_VERSION } from './version.js';

let dataDir: string;
let engine: VolumeEngine;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-server-'));
  engine = await openEngine({ dataDir });
});

afterAll(async () => {
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('GET /v1/identities/version', () => {
  it("reports Ferry's version (equal to package.json) and the OpenStorage SDK version followed", async () => {
    const pkg: unknown = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg).toMatchObject({ version: FERRY_VERSION });
    const response = await createApp({ engine }).request('/v1/identities/version');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      sdk_version: { major: 0, minor: 22, patch: 9, version: '0.22.9' },
      version: { driver: 'ferry', version: FERRY_VERSION, details: { node: process.version } },
    });
  });
});

describe('startApiServer', () => {
  it('serves over HTTP and closes', async () => {
    const server = await startApiServer(createApp({ engine }), '127.0.0.1', 0);
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${server.url}/v1/volumes`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ volume_ids: [] });
    } finally {
      await server.close();
    }
    await expect(fetch(`${server.url}/v1/volumes`)).rejects.toThrow();
  });

  it('refuses to start when the port is taken, leaving the first server answering', async () => {
    const first = await startApiServer(createApp({ engine }), '127.0.0.1', 0);
    try {
      const port = Number(new URL(first.url).port);
      const second = startApiServer(createApp({ engine }), '127.0.0.1', port);
      await expect(second).rejects.toSatisfy(
        (err: unknown) => isFerryError(err, 'UNAVAILABLE') && /already in use/.test(err.message),
      );
      expect((await fetch(`${first.url}/v1/identities/version`)).status).toBe(200);
    } finally {
      await first.close();
    }
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEngine, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';
import { MAX_VOLUME_SIZE } from './schemas/index.js';

let dataDir: string;
let engine: VolumeEngine;
let app: Hono;
let baseline: string;

/** Everything the engine holds, to prove a refused request changed nothing. */
async function state(): Promise<string> {
  const volumes = await engine.listVolumes();
  const snapshots = await Promise.all(volumes.map((v) => engine.listSnapshots(v.id)));
  return JSON.stringify({ volumes, snapshots });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-validation-'));
  engine = await openEngine({ dataDir });
  app = createApp({ engine });
  await engine.createVolume({ name: 'db1', size: 1024 * 1024, labels: { app: 'pg' } });
  await engine.createSnapshot('db1', { name: 's1' });
  baseline = await state();
});

afterAll(async () => {
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function send(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const init: RequestInit = { method };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const response = await app.request(path, init);
  return { status: response.status, body: await response.json() };
}

const size = { size: 8192 };
type Case = [label: string, method: string, path: string, body: unknown, field: string];

const cases: Case[] = [
  // bodies that are not a JSON object
  ['empty body', 'POST', '/v1/volumes', '', 'body'],
  ['bad JSON', 'POST', '/v1/volumes', '{"name":', 'body'],
  ['array body', 'POST', '/v1/volumes', '[]', 'body'],
  ['null body', 'POST', '/v1/volumes', 'null', 'body'],
  // names
  ['missing name', 'POST', '/v1/volumes', { spec: size }, 'name'],
  ['empty name', 'POST', '/v1/volumes', { name: '', spec: size }, 'name'],
  ['overlong name', 'POST', '/v1/volumes', { name: 'a'.repeat(129), spec: size }, 'name'],
  ['name with /', 'POST', '/v1/volumes', { name: 'a/b', spec: size }, 'name'],
  ['name with \\', 'POST', '/v1/volumes', { name: 'a\\b', spec: size }, 'name'],
  ['name ..', 'POST', '/v1/volumes', { name: '..', spec: size }, 'name'],
  ['name with ..', 'POST', '/v1/volumes', { name: 'a..b', spec: size }, 'name'],
  ['name with a control character', 'POST', '/v1/volumes', { name: 'a\u0001b', spec: size }, 'name'],
  ['name with a newline', 'POST', '/v1/volumes', { name: 'ab\n', spec: size }, 'name'],
  ['name with @', 'POST', '/v1/volumes', { name: 'a@b', spec: size }, 'name'],
  ['name with a space', 'POST', '/v1/volumes', { name: 'a b', spec: size }, 'name'],
  ['name starting with -', 'POST', '/v1/volumes', { name: '-a', spec: size }, 'name'],
  ['name as a number', 'POST', '/v1/volumes', { name: 42, spec: size }, 'name'],
  // sizes
  ['missing spec', 'POST', '/v1/volumes', { name: 'v' }, 'spec'],
  ['missing size', 'POST', '/v1/volumes', { name: 'v', spec: {} }, 'spec.size'],
  ['size 0', 'POST', '/v1/volumes', { name: 'v', spec: { size: 0 } }, 'spec.size'],
  ['size "0"', 'POST', '/v1/volumes', { name: 'v', spec: { size: '0' } }, 'spec.size'],
  ['negative size', 'POST', '/v1/volumes', { name: 'v', spec: { size: -4096 } }, 'spec.size'],
  ['negative size string', 'POST', '/v1/volumes', { name: 'v', spec: { size: '-4096' } }, 'spec.size'],
  ['size not a multiple of 4096', 'POST', '/v1/volumes', { name: 'v', spec: { size: 4097 } }, 'spec.size'],
  ['size below 4096', 'POST', '/v1/volumes', { name: 'v', spec: { size: 512 } }, 'spec.size'],
  ['fractional size', 'POST', '/v1/volumes', { name: 'v', spec: { size: 4096.5 } }, 'spec.size'],
  ['size over the maximum', 'POST', '/v1/volumes', { name: 'v', spec: { size: MAX_VOLUME_SIZE + 4096 } }, 'spec.size'],
  ['size string with units', 'POST', '/v1/volumes', { name: 'v', spec: { size: '10G' } }, 'spec.size'],
  ['size as a boolean', 'POST', '/v1/volumes', { name: 'v', spec: { size: true } }, 'spec.size'],
  ['size null', 'POST', '/v1/volumes', { name: 'v', spec: { size: null } }, 'spec.size'],
  // other fields
  ['ha_level 0', 'POST', '/v1/volumes', { name: 'v', spec: { ...size, ha_level: 0 } }, 'spec.ha_level'],
  ['ha_level 4', 'POST', '/v1/volumes', { name: 'v', spec: { ...size, ha_level: 4 } }, 'spec.ha_level'],
  ['shared as a string', 'POST', '/v1/volumes', { name: 'v', spec: { ...size, shared: 'yes' } }, 'spec.shared'],
  ['unknown spec field', 'POST', '/v1/volumes', { name: 'v', spec: { ...size, format: 'ext4' } }, 'spec.format'],
  ['unknown top-level field', 'POST', '/v1/volumes', { name: 'v', spec: size, colour: 'red' }, 'colour'],
  ['labels not an object', 'POST', '/v1/volumes', { name: 'v', spec: size, labels: 'a=b' }, 'labels'],
  ['bad label key', 'POST', '/v1/volumes', { name: 'v', spec: size, labels: { 'bad key': 'x' } }, 'labels.bad key'],
  ['empty label value', 'POST', '/v1/volumes', { name: 'v', spec: size, labels: { k: '' } }, 'labels.k'],
  ['label value not a string', 'POST', '/v1/volumes', { name: 'v', spec: size, labels: { k: 5 } }, 'labels.k'],
  [
    'too many labels',
    'POST',
    '/v1/volumes',
    { name: 'v', spec: size, labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) },
    'labels',
  ],
  // update
  ['update: size not aligned', 'PUT', '/v1/volumes/db1', { spec: { size: 4095 } }, 'spec.size'],
  ['update: shrink', 'PUT', '/v1/volumes/db1', { spec: { size: 4096 } }, 'spec.size'],
  ['update: ha_level out of range', 'PUT', '/v1/volumes/db1', { spec: { ha_level: 4 } }, 'spec.ha_level'],
  ['update: bad label key', 'PUT', '/v1/volumes/db1', { labels: { '-x': 'y' } }, 'labels.-x'],
  ['update: path with a bad id', 'PUT', '/v1/volumes/a%20b', { spec: size }, 'volume_id'],
  // clone
  ['clone: missing parent_id', 'POST', '/v1/volumes/clone', { name: 'c' }, 'parent_id'],
  ['clone: bad parent_id', 'POST', '/v1/volumes/clone', { name: 'c', parent_id: '../db1' }, 'parent_id'],
  ['clone: bad name', 'POST', '/v1/volumes/clone', { name: 'c/d', parent_id: 'db1' }, 'name'],
  [
    'clone: bad label',
    'POST',
    '/v1/volumes/clone',
    { name: 'c', parent_id: 'db1', additional_labels: { k: '' } },
    'additional_labels.k',
  ],
  // snapshots
  ['snapshot: missing volume_id', 'POST', '/v1/volumes/snapshots', { name: 's9' }, 'volume_id'],
  ['snapshot: name with @', 'POST', '/v1/volumes/snapshots', { volume_id: 'db1', name: 'a@b' }, 'name'],
  ['snapshot: empty name', 'POST', '/v1/volumes/snapshots', { volume_id: 'db1', name: '' }, 'name'],
  ['restore: missing snapshot_id', 'POST', '/v1/volumes/snapshots/restore', { volume_id: 'db1' }, 'snapshot_id'],
  [
    'restore: unknown field',
    'POST',
    '/v1/volumes/snapshots/restore',
    { volume_id: 'db1', snapshot_id: 's1', force: true },
    'force',
  ],
  ['filters: unknown field', 'POST', '/v1/volumes/filters', { owner: 'me' }, 'owner'],
  // path parameters
  ['inspect: control character in the id', 'GET', '/v1/volumes/inspect/a%01b', undefined, 'volume_id'],
  ['delete: .. in the id', 'DELETE', '/v1/volumes/db1..x', undefined, 'volume_id'],
  ['inspect: / in the id', 'GET', '/v1/volumes/inspect/db1%2Fs1', undefined, 'volume_id'],
  ['delete: two @', 'DELETE', '/v1/volumes/a@b@c', undefined, 'volume_id'],
];

describe('bad input is 400 INVALID_ARGUMENT naming the field, and changes nothing', () => {
  it.each(cases)('%s', async (_label, method, path, body, field) => {
    const response = await send(method, path, body);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ code: 'INVALID_ARGUMENT', field });
    expect((response.body as { message: string }).message).toMatch(new RegExp(`^${field.replace(/[.]/g, '\\.')}: `));
    expect(await state()).toBe(baseline);
  });
});

describe('request limits and unknown routes', () => {
  it('answers 413 for a body over 1 MiB, naming the body', async () => {
    const huge = JSON.stringify({ name: 'big', spec: size, labels: { k: 'x'.repeat(1024 * 1024) } });
    const response = await send('POST', '/v1/volumes', huge);
    expect(response.status).toBe(413);
    expect(response.body).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'body' });
    expect(await state()).toBe(baseline);
  });

  it('answers 404 in the error shape for unknown routes and methods', async () => {
    for (const [method, path] of [
      ['GET', '/v1/nothing'],
      ['GET', '/'],
      ['POST', '/v1/volumes/inspect/db1'],
      ['PATCH', '/v1/volumes/db1'],
    ] as const) {
      const response = await send(method, path);
      expect(response.status).toBe(404);
      expect(response.body).toEqual({ code: 'NOT_FOUND', message: `no such route: ${method} ${path}` });
    }
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { SqliteStore } from '../cluster/sqlite-store.js';
import { openEngine } from './engine.js';
import type { VolumeEngine } from './types.js';

let dir: string;
let engine: VolumeEngine;
const MiB = 1024 * 1024;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-group-snap-'));
  engine = await openEngine({ dataDir: dir });
  for (const name of ['a', 'b']) await engine.createVolume({ name, size: MiB });
});

afterEach(async () => {
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

async function write(volume: string, byte: number): Promise<void> {
  const dev = await engine.openExport(volume);
  await dev.write(0, Buffer.alloc(4096, byte));
  await dev.close();
}

async function firstByte(exportName: string): Promise<number> {
  const dev = await engine.openExport(exportName);
  const buf = await dev.read(0, 1);
  await dev.close();
  return buf[0] ?? -1;
}

it('snapshots several volumes at one point in time, durably, and later writes do not show in them', async () => {
  await write('a', 1);
  await write('b', 2);
  const snaps = await engine.createSnapshots?.([
    { volume_id: 'a', name: 'g1', labels: { group: 'x' } },
    { volume_id: 'b', name: 'g1', labels: { group: 'x' } },
  ]);
  expect(snaps?.map((s) => [s.volume_name, s.name, s.labels.group])).toEqual([
    ['a', 'g1', 'x'],
    ['b', 'g1', 'x'],
  ]);
  expect(snaps?.[0]?.created).toBe(snaps?.[1]?.created);
  await write('a', 3);
  await write('b', 4);
  expect([await firstByte('a@g1'), await firstByte('b@g1'), await firstByte('a'), await firstByte('b')]).toEqual([
    1, 2, 3, 4,
  ]);
  // Survives a restart.
  await engine.close();
  engine = await openEngine({ dataDir: dir });
  expect((await engine.listSnapshots('b')).map((s) => s.name)).toEqual(['g1']);
  expect(await firstByte('b@g1')).toBe(2);
});

it('takes all or none: a bad member leaves every volume without a new snapshot', async () => {
  await engine.createSnapshot('b', { name: 'taken' });
  const attempt = engine.createSnapshots?.([
    { volume_id: 'a', name: 'taken' },
    { volume_id: 'b', name: 'taken' },
  ]);
  await expect(attempt).rejects.toSatisfy((err: unknown) => isFerryError(err, 'ALREADY_EXISTS'));
  expect(await engine.listSnapshots('a')).toEqual([]);
  const twice = engine.createSnapshots?.([
    { volume_id: 'a', name: 's1' },
    { volume_id: 'a', name: 's2' },
  ]);
  await expect(twice).rejects.toSatisfy((err: unknown) => isFerryError(err, 'INVALID_ARGUMENT'));
  const missing = engine.createSnapshots?.([
    { volume_id: 'a', name: 's1' },
    { volume_id: 'nope', name: 's1' },
  ]);
  await expect(missing).rejects.toSatisfy((err: unknown) => isFerryError(err, 'NOT_FOUND'));
  expect(await engine.listSnapshots('a')).toEqual([]);
});

it('uses the store given to the engine', async () => {
  const store = new SqliteStore(join(dir, 'other.db'));
  const other = await openEngine({ dataDir: join(dir, 'other'), store });
  await other.createVolume({ name: 'c', size: MiB });
  await other.createSnapshots?.([{ volume_id: 'c', name: 'g' }]);
  expect((await store.list('')).some((kv) => JSON.stringify(kv.value).includes('"name":"g"'))).toBe(true);
  await other.close();
  await store.close();
});

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { openDefaultKeyring } from '../../kms/index.js';
import { DelegatingStore } from '../../test/support/delegating-store.js';
import { DirectoryStore } from '../store/directory.js';
import type { PutOptions } from '../store/types.js';
import { RAW } from './chunk-codec.js';
import { Repository } from './repository.js';
import { readMarker } from './running-markers.js';

const KiB = 1024;
let dir: string;
let bucket: string;
let repo: Repository;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-pack-writer-'));
  bucket = join(dir, 'bucket');
  await mkdir(bucket);
  // Packs of 64 KiB: four 16 KiB chunks fill one.
  repo = await Repository.openOrInit(new DirectoryStore(bucket), await openDefaultKeyring(dir), 'default', {
    chunkSize: 16 * KiB,
    packSize: 64 * KiB,
  });
});

afterEach(async () => {
  repo.forget();
  await rm(dir, { recursive: true, force: true });
});

/** A chunk as a worker hands it over (codec byte | payload), and its keyed id. */
function chunk(): { id: Buffer; body: Buffer } {
  const data = randomBytes(16 * KiB);
  return { id: repo.keys.id(data), body: Buffer.concat([Buffer.from([RAW]), data]) };
}

const files = async (sub: string): Promise<string[]> => readdir(join(bucket, sub)).catch(() => []);

it('writes its marker first, ships full packs, checkpoints the index every indexEvery packs, and removes the marker last', async () => {
  const writer = repo.packWriter({ backupId: 'b1', volumeId: 'v', started: new Date(), indexEvery: 2 });
  await writer.start();
  expect((await readMarker(repo, 'running/b1'))?.volume).toBe('v');
  const chunks = Array.from({ length: 18 }, chunk);
  for (const c of chunks) {
    expect(writer.stored(c.id) || writer.has(c.id)).toBe(false);
    await writer.add(c.id, c.body);
  }
  await writer.finish();
  // 18 chunks of 16 KiB: four full packs and a last one of two chunks; 5 packs in 3 index objects (2 + 2 + 1).
  expect(writer.stats.packs).toBe(5);
  expect((await repo.packIds()).size).toBe(5);
  expect(await files('index')).toHaveLength(3);
  for (const c of chunks) expect(repo.index.get(c.id)).toBeDefined();
  await writer.confirmReused();
  await writer.close();
  expect(await files('running')).toEqual([]);
  // A later writer finds them stored: a backup would reuse them.
  const next = repo.packWriter({ backupId: 'b2', volumeId: 'v', started: new Date() });
  await next.start();
  expect(next.stored((chunks[0] as { id: Buffer }).id)).toBe(true);
  await next.close();
});

it('refuses to confirm a reused pack that is gone, and marks it missing', async () => {
  const first = repo.packWriter({ backupId: 'b1', volumeId: 'v', started: new Date() });
  await first.start();
  const c = chunk();
  await first.add(c.id, c.body);
  await first.finish();
  await first.close();
  const packId = repo.index.get(c.id)?.pack.id as string;
  await repo.deletePack(packId);
  const second = repo.packWriter({ backupId: 'b2', volumeId: 'v', started: new Date() });
  await second.start();
  expect(second.stored(c.id)).toBe(true);
  const err = await second.confirmReused().catch((e: unknown) => e);
  expect(isFerryError(err, 'FAILED_PRECONDITION')).toBe(true);
  expect(repo.missingPacks.has(packId)).toBe(true);
  expect(second.stored(c.id)).toBe(false);
  await second.close();
});

it('on abort, drops the packs it had not stored from the index', async () => {
  const writer = repo.packWriter({ backupId: 'b1', volumeId: 'v', started: new Date(), uploadConcurrency: 1 });
  await writer.start();
  const chunks = Array.from({ length: 4 }, chunk);
  // The fourth chunk fills the pack: it is shipped (indexed at once, stored by an upload that has not run yet).
  for (const c of chunks) await writer.add(c.id, c.body);
  expect(repo.index.get((chunks[0] as { id: Buffer }).id)).toBeDefined();
  writer.abort();
  expect(repo.index.get((chunks[0] as { id: Buffer }).id)).toBeUndefined();
  await writer.close();
  expect(await files('running')).toEqual([]);
});

it('close waits for an upload still in flight after an abort: nothing reaches the store afterwards', async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let putsDone = 0;
  // Pack uploads wait for the gate: the abort finds one in flight.
  class GatedStore extends DelegatingStore {
    override async put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
      if (key.startsWith('packs/')) await gate;
      await super.put(key, body, options);
      if (key.startsWith('packs/')) putsDone++;
    }
  }
  const gated = await Repository.openOrInit(
    new GatedStore(new DirectoryStore(bucket)),
    await openDefaultKeyring(dir),
    'default',
    {
      chunkSize: 16 * KiB,
      packSize: 64 * KiB,
    },
  );
  const writer = gated.packWriter({ backupId: 'b2', volumeId: 'v', started: new Date(), uploadConcurrency: 1 });
  await writer.start();
  for (let i = 0; i < 4; i++) {
    const data = randomBytes(16 * KiB);
    await writer.add(gated.keys.id(data), Buffer.concat([Buffer.from([RAW]), data]));
  }
  writer.abort();
  let closed = false;
  const closing = writer.close().then(() => {
    closed = true;
  });
  await new Promise((r) => setImmediate(r));
  expect(closed).toBe(false);
  release();
  await closing;
  expect(putsDone).toBe(1);
  expect(await files('running')).toEqual([]);
  gated.forget();
});

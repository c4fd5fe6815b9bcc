import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { SqliteStore, VolumeEngine } from '../../node/index.js';
import { openStageFixture, type StageFixture } from '../../test/support/stage-fixture.js';
import type { Repository } from '../repo/repository.js';
import type { LastBackup } from '../state.js';
import { commitBackup } from './commit.js';
import { ManifestBuilder } from './manifest.js';
import { planBackup, takeSnapshot } from './plan.js';

const MiB = 1024 * 1024;
let fixture: StageFixture;
let dir: string;
let engine: VolumeEngine;
let store: SqliteStore;
let repo: Repository;

beforeEach(async () => {
  fixture = await openStageFixture('ferry-commit-');
  ({ dir, engine, store, repo } = fixture);
});

afterEach(() => fixture.close());

const stats = () => ({ bytes_scanned: 8 * MiB, bytes_new: 0, chunks: 128, chunks_new: 0, chunks_zero: 128 });

it('writes the record and the last backup, then removes the marker and closes the device', async () => {
  const plan = await planBackup({ engine, repo, store, volume: 'db', full: false, started: new Date() });
  const snapshot = await takeSnapshot(engine, repo, plan);
  const writer = repo.packWriter({ backupId: plan.id, volumeId: plan.volume.id, started: plan.started });
  await writer.start();
  expect(await readdir(join(dir, 'bucket', 'running'))).toEqual([plan.id]);
  await writer.finish();
  const io = { device: await engine.openExport(`db@${snapshot.name}`) };
  const manifest = new ManifestBuilder({ repo, base: undefined, baseChunks: 0, touched: [], size: snapshot.size });
  const record = await commitBackup({
    engine,
    repo,
    store,
    plan,
    snapshot,
    io,
    writer,
    manifest,
    stats: stats(),
    labels: { a: 'b' },
  });
  expect(io.device).toBeUndefined();
  expect(record).toMatchObject({ id: plan.id, full: true, chunks_total: 0, labels: { a: 'b' } });
  expect(record.stats).toMatchObject({ ...stats(), packs: 0, bytes_uploaded: 0 });
  expect((await repo.listBackups()).map((b) => b.id)).toEqual([plan.id]);
  expect(await store.get<LastBackup>(plan.lastKey)).toEqual({ backup_id: plan.id, snapshot_id: snapshot.id });
  expect(await readdir(join(dir, 'bucket', 'running')).catch(() => [])).toEqual([]);
});

import { afterEach, beforeEach, expect, it } from 'vitest';
import type { SqliteStore, VolumeEngine } from '../../node/index.js';
import { openStageFixture, type StageFixture } from '../../test/support/stage-fixture.js';
import { backupVolume } from '../backup.js';
import type { Repository } from '../repo/repository.js';
import { lastBackupKey } from '../state.js';
import { planBackup, takeSnapshot } from './plan.js';

const _MiB = 1024 * 1024;
let fixture: StageFixture;
let engine: VolumeEngine;
let store: SqliteStore;
let repo: Repository;

beforeEach(async () => {
  fixture = await openStageFixture('ferry-plan-');
  ({ engine, store, repo } = fixture);
});

afterEach(() => fixture.close());

const input = (full = false) => ({ engine, repo, store, volume: 'db', full, started: new Date() });

it('plans a full backup when there is no last backup, and names its snapshot after it', async () => {
  const plan = await planBackup(input());
  expect(plan.base).toBeUndefined();
  expect(plan.last).toBeUndefined();
  expect(plan.lastKey).toBe(lastBackupKey(repo.id, plan.volume.id));
  const snap = await takeSnapshot(engine, repo, plan);
  expect(snap.name).toBe(`cloudsnap-${plan.id}`);
  expect(snap.labels).toMatchObject({ 'ferry.io/backup': plan.id, 'ferry.io/repository': repo.id });
});

it('diffs against the last backup unless asked for a full one, and removes only its own orphan snapshots', async () => {
  const first = await backupVolume({ engine, repo, store }, { volume: 'db' });
  // A crashed backup's snapshot of this repository, and one of another repository's backups.
  await engine.createSnapshot('db', { name: 'cloudsnap-crashed', labels: { 'ferry.io/repository': repo.id } });
  await engine.createSnapshot('db', { name: 'cloudsnap-other', labels: { 'ferry.io/repository': 'another' } });
  const plan = await planBackup(input());
  expect(plan.base?.record.id).toBe(first.id);
  expect(plan.base?.snapshotId).toBe(plan.last?.snapshot_id);
  const names = (await engine.listSnapshots('db')).map((s) => s.name).sort();
  expect(names).toEqual(['cloudsnap-other', `cloudsnap-${first.id}`].sort());
  expect((await planBackup(input(true))).base).toBeUndefined();
});

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type KeyProvider, openDefaultKeyring } from '../../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../../node/index.js';
import { backupVolume } from '../backup.js';
import { restoreBackup } from '../restore.js';
import { DirectoryStore } from '../store/directory.js';
import { collectGarbage } from './gc.js';
import { Repository } from './repository.js';
import { verifyBackups } from './verify.js';

const MiB = 1024 * 1024;

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

describe('delete, garbage collection and verify', () => {
  let dir: string;
  let engine: VolumeEngine;
  let store: SqliteStore;
  let keys: KeyProvider;
  let repo: Repository;
  let bucket: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-gc-'));
    store = new SqliteStore(join(dir, 'cluster.db'));
    engine = await openEngine({ dataDir: dir, store });
    keys = await openDefaultKeyring(dir);
    bucket = join(dir, 'bucket');
    await mkdir(bucket);
    repo = await Repository.openOrInit(new DirectoryStore(bucket), keys, 'default', { packSize: MiB });
    await engine.createVolume({ name: 'v', size: 16 * MiB });
  });

  afterEach(async () => {
    await engine.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function write(offset: number, length: number): Promise<void> {
    const dev = await engine.openExport('v');
    await dev.write(offset, randomBytes(length));
    await dev.close();
  }

  it('deletes only unreferenced packs, only after the grace period, and never breaks another backup', async () => {
    await write(0, 4 * MiB);
    const first = await backupVolume({ engine, repo, store }, { volume: 'v' });
    await write(0, 4 * MiB);
    const second = await backupVolume({ engine, repo, store }, { volume: 'v' });
    const packsBefore = (await files(join(bucket, 'packs'))).length;
    await repo.deleteBackupRecord(first.id);
    let t = Date.now();
    const clock = (): Date => new Date(t);
    const mark = await collectGarbage(repo, { now: clock, graceMs: 60_000 });
    expect(mark.condemned).toBeGreaterThan(0);
    expect(mark.deleted).toBe(0);
    t += 30_000;
    expect((await collectGarbage(repo, { now: clock, graceMs: 60_000 })).deleted).toBe(0);
    t += 60_000;
    const sweep = await collectGarbage(repo, { now: clock, graceMs: 60_000 });
    expect(sweep.deleted).toBe(mark.condemned);
    expect((await files(join(bucket, 'packs'))).length).toBe(packsBefore - sweep.deleted);
    const fresh = await Repository.open(new DirectoryStore(bucket), keys);
    const restored = await restoreBackup({ engine, repo: fresh }, { backupId: second.id, volumeName: 'back' });
    expect(restored.status).toBe('up');
    expect((await verifyBackups(fresh, { dataPercent: 100 })).problems).toEqual([]);
  });

  it('keeps condemned packs while a backup that started before the condemnation runs', async () => {
    await write(0, 2 * MiB);
    const first = await backupVolume({ engine, repo, store }, { volume: 'v' });
    await repo.deleteBackupRecord(first.id);
    let t = Date.now();
    const clock = (): Date => new Date(t);
    await collectGarbage(repo, { now: clock, graceMs: 1000 });
    const marker = 'running/20000101T000000.000Z-deadbeef';
    await repo.putSealedJson(marker, { started: new Date(t - 10).toISOString() });
    t += 5000;
    expect((await collectGarbage(repo, { now: clock, graceMs: 1000 })).deleted).toBe(0);
    await repo.deleteObjects([marker]);
    expect((await collectGarbage(repo, { now: clock, graceMs: 1000 })).deleted).toBeGreaterThan(0);
  });

  it('verify finds a tampered chunk, a missing pack and names the backup', async () => {
    await write(0, 2 * MiB);
    const rec = await backupVolume({ engine, repo, store }, { volume: 'v' });
    expect((await verifyBackups(repo, { dataPercent: 100 })).problems).toEqual([]);
    const packs = await files(join(bucket, 'packs'));
    const body = await readFile(packs[0] as string);
    body[200] = (body[200] ?? 0) ^ 0xff;
    await writeFile(packs[0] as string, body);
    const bad = await verifyBackups(repo, { dataPercent: 100 });
    expect(bad.problems.length).toBeGreaterThan(0);
    expect(bad.problems[0]?.backups).toEqual([rec.id]);
    expect(bad.problems[0]?.message).toContain('failed authentication');
    await rm(packs[0] as string);
    const missing = await verifyBackups(repo);
    expect(missing.problems.some((p) => p.message.includes('missing'))).toBe(true);
  });
});

describe('index consolidation', () => {
  it('merges many index objects into one, and every backup still restores', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-gc-index-'));
    const store = new SqliteStore(join(dir, 'cluster.db'));
    const engine = await openEngine({ dataDir: dir, store });
    try {
      const keys = await openDefaultKeyring(dir);
      const bucket = join(dir, 'bucket');
      await mkdir(bucket);
      const repo = await Repository.openOrInit(new DirectoryStore(bucket), keys, 'default', { packSize: 64 * 1024 });
      await engine.createVolume({ name: 'v', size: 8 * MiB });
      const dev = await engine.openExport('v');
      await dev.write(0, randomBytes(5 * MiB));
      await dev.close();
      const rec = await backupVolume({ engine, repo, store }, { volume: 'v', indexEvery: 1 });
      expect((await readdir(join(bucket, 'index'))).length).toBeGreaterThan(64);
      await collectGarbage(repo);
      expect((await readdir(join(bucket, 'index'))).length).toBe(1);
      const fresh = await Repository.open(new DirectoryStore(bucket), keys);
      expect((await restoreBackup({ engine, repo: fresh }, { backupId: rec.id, volumeName: 'r' })).status).toBe('up');
    } finally {
      await engine.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('unindexed packs', () => {
  it('collects a pack that no index names (a backup died before its checkpoint), after the grace period', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-gc-orphan-'));
    try {
      const keys = await openDefaultKeyring(dir);
      const bucket = join(dir, 'bucket');
      await mkdir(bucket);
      const repo = await Repository.openOrInit(new DirectoryStore(bucket), keys, 'default');
      const { PackBuilder } = await import('./pack.js');
      const { packKey } = await import('./layout.js');
      const orphan = new PackBuilder(repo.keys);
      const data = randomBytes(65536);
      orphan.add(repo.keys.id(data), data);
      await repo.putPack(orphan.ref.id, orphan.finish());
      let t = Date.now();
      const clock = (): Date => new Date(t);
      expect((await collectGarbage(repo, { now: clock, graceMs: 1000 })).condemned).toBe(1);
      t += 2000;
      const sweep = await collectGarbage(repo, { now: clock, graceMs: 1000 });
      expect(sweep.deleted).toBe(1);
      expect(await repo.packExists(orphan.ref.id)).toBe(false);
      expect(await new DirectoryStore(bucket).head(packKey(orphan.ref.id))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

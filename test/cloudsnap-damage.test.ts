/**
 * Tampering with a repository's metadata, against the directory store and a Ceph RGW: an altered or deleted index
 * object is reported and rebuilt from the packs' own headers, and never stops a restore, a verify or a new backup;
 * after an index object is lost, an incremental backup and garbage collection keep every backup restorable
 * bit-identical; a lying index object never makes collection delete a live pack; a damaged backup record hides only
 * that backup; a backup never commits while a pack holding chunks it reuses is gone.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume, Repository, restoreBackup } from '../cloudsnap/index.js';
import { encodeIndex } from '../cloudsnap/repo/chunk-index.js';
import { sealObject } from '../cloudsnap/repo/envelope.js';
import { collectGarbage } from '../cloudsnap/repo/gc.js';
import { packKey } from '../cloudsnap/repo/layout.js';
import { verifyBackups } from '../cloudsnap/repo/verify.js';
import { createS3Client, DirectoryStore, type ObjectStore, S3Store } from '../cloudsnap/store/index.js';
import { isFerryError } from '../common/errors.js';
import { type LocalKeyring, openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { type CephRgw, startCephRgw } from './support/ceph-rgw.js';

const MiB = 1024 * 1024;

let dir: string;
let cluster: SqliteStore;
let engine: VolumeEngine;
let keyring: LocalKeyring;
let rgw: CephRgw | undefined;
let buckets = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-damage-'));
  cluster = new SqliteStore(join(dir, 'cluster.db'));
  engine = await openEngine({ dataDir: dir, store: cluster });
  keyring = await openDefaultKeyring(dir);
  rgw = await startCephRgw();
}, 60_000);

afterAll(async () => {
  await engine?.close();
  await cluster?.close();
  await keyring?.close();
  await rgw?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A new, empty store of each kind. */
const backends: Array<[string, () => Promise<ObjectStore>]> = [
  [
    'directory store',
    async () => {
      const root = join(dir, `bucket-${++buckets}`);
      await mkdir(root);
      return new DirectoryStore(root);
    },
  ],
  [
    'Ceph RGW',
    async () => {
      const r = rgw as CephRgw;
      const client = createS3Client({
        endpoint: r.endpoint,
        region: 'us-east-1',
        accessKeyId: r.accessKeyId,
        secretAccessKey: r.secretAccessKey,
      });
      const bucket = `ferry-damage-${++buckets}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return new S3Store(client, bucket, { prefix: 'repo' });
    },
  ],
];

let volumes = 0;

/** A new volume with `mib` MiB of random data at its start; returns its name. */
async function volumeWith(mib: number): Promise<string> {
  const name = `v${++volumes}`;
  await engine.createVolume({ name, size: 8 * MiB });
  await writeRandom(name, 0, mib * MiB);
  return name;
}

async function writeRandom(name: string, offset: number, length: number): Promise<void> {
  const dev = await engine.openExport(name);
  await dev.write(offset, randomBytes(length));
  await dev.close();
}

async function digest(name: string): Promise<string> {
  const dev = await engine.openExport(name);
  const h = createHash('sha256').update(await dev.read(0, dev.size));
  await dev.close();
  return h.digest('hex');
}

async function keysUnder(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await store.list(prefix)).objects.map((o) => o.key);
}

/** Flips one byte of an object near its end (its authentication tag). */
async function alter(store: ObjectStore, key: string): Promise<void> {
  const body = await store.get(key);
  body[body.length - 5] = (body[body.length - 5] ?? 0) ^ 0x55;
  await store.put(key, body);
}

let restores = 0;

/** Restores `backupId` through a fresh instance and returns the digest of the new volume. */
async function restoredDigest(store: ObjectStore, backupId: string): Promise<string> {
  const repo = await Repository.open(store, keyring);
  const name = `r${++restores}`;
  await restoreBackup({ engine, repo }, { backupId, volumeName: name });
  return digest(name);
}

async function newRepo(store: ObjectStore): Promise<Repository> {
  return Repository.openOrInit(store, keyring, 'default', { packSize: MiB });
}

describe.each(backends)('a damaged index on the %s', (_name, newStore) => {
  it('an altered index object is reported and rebuilt; restores, verify and new backups go on', async () => {
    const store = await newStore();
    const volume = await volumeWith(3);
    const first = await backupVolume({ engine, repo: await newRepo(store), store: cluster }, { volume, indexEvery: 1 });
    const before = await digest(volume);
    const indexObjects = await keysUnder(store, 'index/');
    expect(indexObjects.length).toBeGreaterThan(1);
    const altered = indexObjects[0] as string;
    await alter(store, altered);

    // A restore through a new instance: the damage is found at load, reported, and rebuilt from the packs.
    const repo = await Repository.open(store, keyring);
    const name = `r${++restores}`;
    await restoreBackup({ engine, repo }, { backupId: first.id, volumeName: name });
    expect(await digest(name)).toBe(before);
    expect(repo.takeNotices().join('\n')).toContain(`index object ${altered} is damaged`);
    const after = await keysUnder(store, 'index/');
    expect(after).not.toContain(altered);
    expect(after.length).toBe(indexObjects.length);

    // Altered again (another object), then verify and an incremental backup, each through a new instance.
    await alter(store, after[0] as string);
    // Verify runs to its end; it may report the damaged index object itself (which loses nothing), never data.
    const checked = await verifyBackups(await Repository.open(store, keyring), { dataPercent: 100 });
    expect(JSON.stringify(checked.problems)).not.toMatch(/"kind":"(?!index")/);
    await alter(store, (await keysUnder(store, 'index/'))[0] as string);
    await writeRandom(volume, 5 * MiB, MiB);
    const second = await backupVolume(
      { engine, repo: await Repository.open(store, keyring), store: cluster },
      { volume },
    );
    expect(second.full).toBe(false);
    expect(await restoredDigest(store, second.id)).toBe(await digest(volume));
    expect(await restoredDigest(store, first.id)).toBe(before);

    // And garbage collection over an altered index object runs, and deletes nothing any backup needs.
    await alter(store, (await keysUnder(store, 'index/'))[0] as string);
    const collected = await collectGarbage(await Repository.open(store, keyring), { graceMs: 0 });
    expect(collected.live_chunks).toBeGreaterThan(0);
    expect(await restoredDigest(store, second.id)).toBe(await digest(volume));
  });

  it.each([
    ['the instance that made the first backup', true],
    ['a new instance', false],
  ])('backup, delete the index, incremental (%s), gc: every backup restores bit-identical', async (_how, same) => {
    const store = await newStore();
    const volume = await volumeWith(4);
    const repo = await newRepo(store);
    const first = await backupVolume({ engine, repo, store: cluster }, { volume, indexEvery: 1 });
    const firstDigest = await digest(volume);
    await store.delete(await keysUnder(store, 'index/'));

    await writeRandom(volume, 0, MiB);
    const second = await backupVolume(
      { engine, repo: same ? repo : await Repository.open(store, keyring), store: cluster },
      { volume },
    );
    const secondDigest = await digest(volume);

    let t = Date.now();
    const now = (): Date => new Date(t);
    for (let run = 0; run < 3; run++) {
      await collectGarbage(await Repository.open(store, keyring), { now, graceMs: 1000 });
      t += 5000;
    }
    expect(await restoredDigest(store, first.id)).toBe(firstDigest);
    expect(await restoredDigest(store, second.id)).toBe(secondDigest);
    // The stored index names every pack again (the lost objects were rebuilt from pack headers): nothing to report.
    const check = await Repository.open(store, keyring);
    await check.refreshIndex();
    expect(check.takeNotices()).toEqual([]);
  });
});

describe('a check that must change nothing (directory store)', () => {
  it('reads what a damaged index object described from the packs, in memory only', async () => {
    const store = await backends[0]?.[1]();
    if (store === undefined) throw new Error('no directory store');
    const volume = await volumeWith(3);
    await backupVolume({ engine, repo: await newRepo(store), store: cluster }, { volume, indexEvery: 1 });
    const healthy = await Repository.open(store, keyring);
    await healthy.refreshIndex();
    const before = await keysUnder(store, 'index/');
    await alter(store, before[0] as string);

    const reader = await Repository.open(store, keyring);
    await reader.refreshIndex(undefined, { write: false });
    expect(reader.index.size).toBe(healthy.index.size);
    expect(reader.takeNotices().join('\n')).toMatch(/is damaged .*not repaired yet/);
    expect(await keysUnder(store, 'index/')).toEqual(before);
    // The next load that may write repairs it.
    await reader.refreshIndex();
    expect(await keysUnder(store, 'index/')).not.toContain(before[0]);
  });
});

describe('garbage collection against a lying index (directory store)', () => {
  it('never deletes a pack a live manifest references, whatever a (validly sealed) index object says', async () => {
    const store = await backends[0]?.[1]();
    if (store === undefined) throw new Error('no directory store');
    const volume = await volumeWith(2);
    const repo = await newRepo(store);
    const record = await backupVolume({ engine, repo, store: cluster }, { volume });
    const expected = await digest(volume);
    // Rewrite every index object so that it names each pack with no chunks: the index now says nothing is live.
    const empty = [];
    for (const key of await keysUnder(store, 'packs/')) {
      const salt = await store.get(key, { range: { offset: 8, length: 32 } });
      empty.push({ ref: { id: key.slice(key.lastIndexOf('/') + 1), salt }, blobs: Buffer.alloc(0) });
    }
    for (const key of await keysUnder(store, 'index/')) {
      await store.put(key, sealObject(repo.keys, key, encodeIndex(empty)));
    }
    const packsBefore = await keysUnder(store, 'packs/');
    let t = Date.now();
    const now = (): Date => new Date(t);
    for (let run = 0; run < 3; run++) {
      const result = await collectGarbage(await Repository.open(store, keyring), { now, graceMs: 1000 });
      expect(result.deleted).toBe(0);
      t += 5000;
    }
    expect(await keysUnder(store, 'packs/')).toEqual(packsBefore);
    expect(await restoredDigest(store, record.id)).toBe(expected);
  });
});

describe('a damaged backup record (directory store)', () => {
  it('hides only that backup; gc collects nothing until it is deleted; an incremental on it is a full backup', async () => {
    const store = await backends[0]?.[1]();
    if (store === undefined) throw new Error('no directory store');
    const volume = await volumeWith(2);
    const repo = await newRepo(store);
    const a = await backupVolume({ engine, repo, store: cluster }, { volume });
    const aDigest = await digest(volume);
    await writeRandom(volume, 0, MiB);
    const b = await backupVolume({ engine, repo, store: cluster }, { volume });
    await writeRandom(volume, 2 * MiB, MiB);
    const c = await backupVolume({ engine, repo, store: cluster }, { volume });
    await alter(store, `backups/${c.id}`);

    const fresh = await Repository.open(store, keyring);
    const scan = await fresh.scanBackups();
    expect(scan.records.map((r) => r.id)).toEqual([a.id, b.id]);
    expect(scan.damaged.map((d) => d.id)).toEqual([c.id]);
    expect(scan.damaged[0]?.reason).toContain('failed authentication');
    expect((await fresh.listBackups()).map((r) => r.id)).toEqual([a.id, b.id]);
    expect(await restoredDigest(store, a.id)).toBe(aDigest);

    // While a record is damaged, what its manifest references is unknown: nothing is condemned or deleted.
    await fresh.deleteBackupRecord(b.id);
    const blocked = await collectGarbage(fresh, { graceMs: 0 });
    expect(blocked.damaged_backups).toHaveLength(1);
    expect(blocked.damaged_backups[0]).toContain(c.id);
    expect(blocked.condemned + blocked.deleted).toBe(0);

    // The next backup of the volume had the damaged one as its base: it reads every block instead.
    await writeRandom(volume, 4 * MiB, MiB);
    const d = await backupVolume({ engine, repo: await Repository.open(store, keyring), store: cluster }, { volume });
    expect(d.full).toBe(true);
    expect(await restoredDigest(store, d.id)).toBe(await digest(volume));

    await fresh.deleteBackupRecord(c.id);
    expect((await fresh.scanBackups()).damaged).toEqual([]);
    const collected = await collectGarbage(fresh, { graceMs: 0 });
    expect(collected.damaged_backups).toEqual([]);
    expect(collected.live_chunks).toBeGreaterThan(0);
  });
});

describe('a backup whose reused chunks are gone (directory store)', () => {
  it('does not commit while a pack it reuses is missing, and a new attempt uploads those chunks again', async () => {
    const store = await backends[0]?.[1]();
    if (store === undefined) throw new Error('no directory store');
    const source = await volumeWith(2);
    const repo = await newRepo(store);
    await backupVolume({ engine, repo, store: cluster }, { volume: source });
    // A second volume with the same data: every chunk of its backup is reused from the first one's packs.
    const copy = `v${++volumes}`;
    await engine.createVolume({ name: copy, size: 8 * MiB });
    const from = await engine.openExport(source);
    const to = await engine.openExport(copy);
    await to.write(0, await from.read(0, 2 * MiB));
    await from.close();
    await to.close();
    const lost = (await keysUnder(store, 'packs/'))[0] as string;
    await store.delete([lost]);

    const failed = await backupVolume({ engine, repo, store: cluster }, { volume: copy }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isFerryError(failed, 'FAILED_PRECONDITION')).toBe(true);
    expect(String(failed)).toContain(lost);
    expect((await Repository.open(store, keyring).then((r) => r.listBackups())).length).toBe(1);

    const again = await backupVolume(
      { engine, repo: await Repository.open(store, keyring), store: cluster },
      { volume: copy },
    );
    expect(again.stats.chunks_new).toBeGreaterThan(0);
    expect(await restoredDigest(store, again.id)).toBe(await digest(copy));
    expect(await store.head(packKey(lost.slice(lost.lastIndexOf('/') + 1)))).toBeUndefined();
  });
});

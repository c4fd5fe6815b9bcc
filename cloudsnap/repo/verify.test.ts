/**
 * Verify against a real engine, the local keyring and a directory store: tampering of every kind (a chunk inside a
 * pack, a pack's trailing header, a truncated pack, a deleted pack, a manifest page, an index object, a record) is
 * found in one run, each problem naming its object and what it affects; chunks shared by two backups are read once
 * (GETs counted through CountingStore); a restore of a truncated pack fails with DATA_CORRUPTION naming it.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { type KeyProvider, openDefaultKeyring } from '../../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../../node/index.js';
import { backupVolume } from '../backup.js';
import { restoreBackup } from '../restore.js';
import { CountingStore } from '../store/counting.js';
import { DirectoryStore } from '../store/directory.js';
import type { GetOptions, ObjectStore } from '../store/types.js';
import { decodeIndex } from './chunk-index.js';
import { openObject } from './envelope.js';
import { packKey, pageKey } from './layout.js';
import { decodeRoot } from './manifest.js';
import { type BackupRecord, Repository } from './repository.js';
import { type VerifyProblem, type VerifyResult, verifyBackups, verifyReport } from './verify.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** A directory store that records the byte ranges read of each key. */
class RecordingStore extends DirectoryStore {
  readonly reads = new Map<string, Array<[number, number]>>();
  override async get(key: string, options?: GetOptions): Promise<Buffer> {
    const body = await super.get(key, options);
    const list = this.reads.get(key) ?? [];
    list.push([options?.range?.offset ?? 0, body.length]);
    this.reads.set(key, list);
    return body;
  }
}

describe('verify', () => {
  let dir: string;
  let engine: VolumeEngine;
  let cluster: SqliteStore;
  let keys: KeyProvider;
  let bucket: string;
  let repo: Repository;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-verify-'));
    cluster = new SqliteStore(join(dir, 'cluster.db'));
    engine = await openEngine({ dataDir: dir, store: cluster });
    keys = await openDefaultKeyring(dir);
    bucket = join(dir, 'bucket');
    await mkdir(bucket);
    // Small packs and leaves: a few MiB of data make several of each.
    repo = await Repository.openOrInit(new DirectoryStore(bucket), keys, 'default', { packSize: MiB, leafChunks: 16 });
    await engine.createVolume({ name: 'v', size: 16 * MiB });
  });

  afterEach(async () => {
    await engine.close();
    await cluster.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function write(offset: number, length: number): Promise<void> {
    const dev = await engine.openExport('v');
    await dev.write(offset, randomBytes(length));
    await dev.close();
  }

  /** Two backups: A of 6 MiB of data, B after 64 KiB of it changed (B shares every other chunk with A). */
  async function twoBackups(): Promise<[BackupRecord, BackupRecord]> {
    await write(0, 6 * MiB);
    const a = await backupVolume({ engine, repo, store: cluster }, { volume: 'v' });
    await write(3 * MiB, CHUNK);
    const b = await backupVolume({ engine, repo, store: cluster }, { volume: 'v' });
    return [a, b];
  }

  /** A fresh repository instance over `store` (no cached index or records). */
  function fresh(store: ObjectStore = new DirectoryStore(bucket)): Promise<Repository> {
    return Repository.open(store, keys);
  }

  /** Each index object's packs: pack id -> index key and blob entries. */
  async function indexedPacks(): Promise<Map<string, { index: string; blobs: Buffer }>> {
    const out = new Map<string, { index: string; blobs: Buffer }>();
    for (const name of await readdir(join(bucket, 'index'))) {
      const key = `index/${name}`;
      const body = openObject(repo.keys, key, await readFile(join(bucket, key)));
      for (const p of decodeIndex(body, key)) out.set(p.ref.id, { index: key, blobs: Buffer.from(p.blobs) });
    }
    return out;
  }

  it('passes a sound repository, reading each pack once, whole, and each shared chunk once', async () => {
    const [a, b] = await twoBackups();
    const recording = new RecordingStore(bucket);
    const counting = new CountingStore(recording);
    const opened = await fresh(counting);
    const before = counting.counts.get;
    recording.reads.clear();
    const result = await verifyBackups(opened, { dataPercent: 100 });
    expect(result.problems).toEqual([]);
    expect(result.backups).toBe(2);
    expect(result.chunks).toBe(a.chunks_total + b.chunks_total);
    expect(result.chunks_unique).toBe(a.chunks_total + 1);
    expect(result.chunks_read).toBe(result.chunks_unique);
    const packs = await indexedPacks();
    expect(result.packs).toBe(packs.size);
    expect(result.packs_read).toBe(packs.size);
    // Every pack read once, all of it, in ranges that neither overlap nor leave gaps.
    let packGets = 0;
    for (const id of packs.keys()) {
      const key = packKey(id);
      const ranges = [...(recording.reads.get(key) ?? [])].sort((x, y) => x[0] - y[0]);
      packGets += ranges.length;
      let at = 0;
      for (const [offset, length] of ranges) {
        expect(offset).toBe(at);
        at += length;
      }
      expect(at).toBe((await readFile(join(bucket, key))).length);
    }
    expect(result.bytes_read).toBe(result.bytes_to_read);
    // GETs: the config, 2 records, the pages, the index objects and the packs' ranges; nothing twice.
    const indexObjects = (await readdir(join(bucket, 'index'))).length;
    expect(counting.counts.get - before).toBe(1 + 2 + result.pages + indexObjects + packGets);
    for (const [key, ranges] of recording.reads)
      if (!key.startsWith('packs/')) expect([key, ranges.length]).toEqual([key, 1]);

    // Verifying A alone reads the same packs: B's extra chunk is in a pack of its own.
    const onlyA = new CountingStore(new DirectoryStore(bucket));
    const ra = await verifyBackups(await fresh(onlyA), { dataPercent: 100, backupIds: [a.id] });
    expect(ra.chunks_read).toBe(a.chunks_total);
    expect(ra.problems).toEqual([]);
  });

  it('finds every kind of tampering in one run, each with the object and what it affects', async () => {
    const [a, b] = await twoBackups();
    const packs = await indexedPacks();
    // Packs holding A's data (not B's new chunk, which is alone in B's pack).
    const shared = [...packs.entries()].filter(([, p]) => p.blobs.length / 44 > 1);
    expect(shared.length).toBeGreaterThanOrEqual(4);
    const [chunkPack, trailerPack, truncatedPack, deletedPack] = shared.map(([id, p]) => ({ id, ...p }));
    if (
      chunkPack === undefined ||
      trailerPack === undefined ||
      truncatedPack === undefined ||
      deletedPack === undefined
    )
      throw new Error('too few packs');
    const path = (id: string): string => join(bucket, packKey(id));

    // 1. A byte inside the second blob of one pack.
    const second = chunkPack.blobs.readUInt32LE(44 + 32);
    const body = await readFile(path(chunkPack.id));
    body[second + 10] = (body[second + 10] ?? 0) ^ 0x55;
    await writeFile(path(chunkPack.id), body);
    // 2. A byte of another pack's trailing header (its blobs untouched).
    const trailer = await readFile(path(trailerPack.id));
    trailer[trailer.length - 30] = (trailer[trailer.length - 30] ?? 0) ^ 0x01;
    await writeFile(path(trailerPack.id), trailer);
    // 3. A third pack cut in the middle of its last blob.
    const lastBlob = truncatedPack.blobs.length / 44 - 1;
    const cut = truncatedPack.blobs.readUInt32LE(lastBlob * 44 + 32) + 100;
    await truncate(path(truncatedPack.id), cut);
    // 4. A fourth pack deleted.
    await rm(path(deletedPack.id));
    // 5. A leaf page of A's manifest (shared with B: B changed another leaf), altered.
    const rootA = decodeRoot(
      openObject(repo.keys, pageKey(a.root), await readFile(join(bucket, pageKey(a.root)))),
      'root',
    );
    const leafId = (rootA.leaves.get(5) as Buffer).toString('hex');
    const leafPath = join(bucket, pageKey(leafId));
    const leaf = await readFile(leafPath);
    leaf[leaf.length - 5] = (leaf[leaf.length - 5] ?? 0) ^ 0x10;
    await writeFile(leafPath, leaf);

    const result = await verifyBackups(await fresh(), { dataPercent: 100 });
    const byObject = new Map(result.problems.map((p) => [p.object, p]));
    const find = (object: string) => {
      const p = byObject.get(object);
      expect(p, `no problem for ${object} in ${JSON.stringify(result.problems, null, 1)}`).toBeDefined();
      return p as NonNullable<typeof p>;
    };

    const damaged = find(packKey(chunkPack.id));
    expect(damaged).toMatchObject({ code: 'DATA_CORRUPTION', kind: 'pack', chunks: 1 });
    expect(damaged.message).toContain('failed authentication');
    expect(damaged.chunk_ids).toEqual([chunkPack.blobs.subarray(44, 76).toString('hex')]);
    expect(damaged.ranges).toHaveLength(damaged.backups.length);
    expect(damaged.ranges.every((r) => r.length === CHUNK)).toBe(true);

    const header = find(packKey(trailerPack.id));
    expect(header.message).toContain('trailing header');
    expect(header.backups.length).toBeGreaterThan(0);

    const truncated = find(packKey(truncatedPack.id));
    expect(truncated.message).toContain('truncated');
    expect(truncated.chunks).toBe(1);

    const missing = find(packKey(deletedPack.id));
    expect(missing.message).toContain('missing');
    expect(missing.chunks).toBe(deletedPack.blobs.length / 44);
    expect(missing.ranges.length).toBeGreaterThan(0);

    const page = find(pageKey(leafId));
    expect(page.kind).toBe('manifest');
    expect(page.backups).toEqual([a.id, b.id].sort());
    expect(page.ranges).toEqual(
      [a.id, b.id].sort().map((backup) => ({ backup, offset: 5 * 16 * CHUNK, length: 16 * CHUNK })),
    );
    expect(result.problems).toHaveLength(5);
    expect(result.problems.every((p) => p.code === 'DATA_CORRUPTION')).toBe(true);

    // Without reading data: the missing and truncated packs and the page are still found (from one listing).
    const meta = await verifyBackups(await fresh());
    expect(meta.chunks_read).toBe(0);
    expect(meta.problems.map((p) => p.object).sort()).toEqual(
      [packKey(truncatedPack.id), packKey(deletedPack.id), pageKey(leafId)].sort(),
    );
  });

  it('reports damaged records and index objects; chunks of a pack no index names are found in its header', async () => {
    const [a, b] = await twoBackups();
    const packs = await indexedPacks();
    // Every index object that names a pack of A's goes; so does B's record.
    const lostIndex = [...new Set([...packs.values()].map((p) => p.index))];
    const first = lostIndex[0] as string;
    const sealed = await readFile(join(bucket, first));
    sealed[sealed.length - 3] = (sealed[sealed.length - 3] ?? 0) ^ 0x20;
    await writeFile(join(bucket, first), sealed);
    for (const key of lostIndex.slice(1)) await rm(join(bucket, key));
    const record = join(bucket, 'backups', b.id);
    const rec = await readFile(record);
    rec[rec.length - 2] = (rec[rec.length - 2] ?? 0) ^ 0x01;
    await writeFile(record, rec);

    const result = await verifyBackups(await fresh(), { dataPercent: 100 });
    const kinds = result.problems.map((p) => [p.kind, p.object]);
    expect(kinds).toContainEqual(['record', `backups/${b.id}`]);
    expect(kinds).toContainEqual(['index', first]);
    expect(result.problems.find((p) => p.kind === 'record')?.backups).toEqual([b.id]);
    // A's chunks are all found through pack headers and read: nothing is lost.
    expect(result.chunks_read).toBe(a.chunks_total);
    expect(result.problems.some((p) => p.kind === 'chunk')).toBe(false);
    const unindexed = result.problems.filter((p) => p.kind === 'index' && p.object.startsWith('packs/'));
    expect(unindexed.length).toBe(packs.size - 1);
    expect(unindexed.every((p) => p.backups.includes(a.id))).toBe(true);
  });

  it('a restore from a truncated pack fails with DATA_CORRUPTION naming the pack', async () => {
    const [a] = await twoBackups();
    // A pack of A's data (B's one new chunk has a pack of its own).
    const [id] = [...(await indexedPacks()).entries()].find(([, p]) => p.blobs.length > 44) as [string, unknown];
    await truncate(join(bucket, packKey(id)), 1000);
    const err = await restoreBackup({ engine, repo: await fresh() }, { backupId: a.id, volumeName: 'back' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isFerryError(err, 'DATA_CORRUPTION'), String(err)).toBe(true);
    expect((err as Error).message).toContain(packKey(id));
    expect((err as Error).message).toContain('truncated');
  });

  it('checks a backup whose manifest names one leaf page at two places', async () => {
    const same = randomBytes(MiB);
    const dev = await engine.openExport('v');
    await dev.write(0, same);
    await dev.write(2 * MiB, same);
    await dev.write(4 * MiB, randomBytes(MiB));
    await dev.close();
    const rec = await backupVolume({ engine, repo, store: cluster }, { volume: 'v' });
    const result = await verifyBackups(await fresh(), { dataPercent: 100 });
    expect(result.problems).toEqual([]);
    expect(result.chunks).toBe(rec.chunks_total);
    expect(result.chunks).toBe(48);
    expect(result.chunks_unique).toBe(32);
    expect(result.chunks_read).toBe(32);
    expect(result.pages).toBe(3);
  });

  it('samples packs at --data-percent', async () => {
    await twoBackups();
    const packs = (await indexedPacks()).size;
    const half = await verifyBackups(await fresh(), { dataPercent: 50 });
    expect(half.packs_read).toBe(Math.ceil(packs / 2));
    expect(half.problems).toEqual([]);
  });
});

describe('verifyReport', () => {
  it('adds the counts of several repositories and keeps a bounded list of problems', () => {
    const problem = (n: number): VerifyProblem => ({
      code: 'DATA_CORRUPTION',
      kind: 'pack',
      object: `packs/00/${n}`,
      message: 'damaged',
      backups: ['b'],
      ranges: Array.from({ length: 50 }, (_, i) => ({ backup: 'b', offset: i * 2 * CHUNK, length: CHUNK })),
      chunks: 50,
      chunk_ids: Array.from({ length: 20 }, (_, i) => String(i)),
    });
    const result = (problems: number): VerifyResult => ({
      backups: 1,
      pages: 2,
      chunks: 3,
      chunks_unique: 3,
      chunks_read: 3,
      index_objects: 1,
      packs: 1,
      packs_to_read: 1,
      packs_read: 1,
      bytes_to_read: 10,
      bytes_read: 10,
      data_percent: 100,
      problems: Array.from({ length: problems }, (_, i) => problem(i)),
    });
    const report = verifyReport([result(150), result(100)]);
    expect(report).toMatchObject({ backups: 2, pages: 4, bytes_read: 20, problems_total: 250, data_percent: 100 });
    expect(report.problems).toHaveLength(200);
    expect(report.problems[0]).toMatchObject({ chunks: 50, ranges_truncated: true });
    expect(report.problems[0]?.ranges).toHaveLength(20);
    expect(report.problems[0]?.chunk_ids).toHaveLength(5);
    expect(JSON.stringify(report).length).toBeLessThan(1024 * 1024);
  });
});

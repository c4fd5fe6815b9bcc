import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../common/index.js';
import { type KeyProvider, openDefaultKeyring } from '../kms/index.js';
import { type BlockDevice, openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { backupVolume } from './backup.js';
import { Repository } from './repo/repository.js';
import { restoreBackup } from './restore.js';
import { CountingStore } from './store/counting.js';
import { DirectoryStore } from './store/directory.js';

const MiB = 1024 * 1024;

async function digest(engine: VolumeEngine, name: string): Promise<string> {
  const dev = await engine.openExport(name);
  const h = createHash('sha256');
  for (let o = 0; o < dev.size; o += 4 * MiB) h.update(await dev.read(o, Math.min(4 * MiB, dev.size - o)));
  await dev.close();
  return h.digest('hex');
}

function text(length: number, seed: number): Buffer {
  const words = ['ferry', 'volume', 'snapshot', 'backup', 'restore', 'chunk', 'pack', 'the', 'of', 'and'];
  let s = '';
  let i = seed;
  while (s.length < length) {
    i = (i * 1103515245 + 12345) >>> 0;
    s += `${words[i % words.length]}${i % 7 === 0 ? '\n' : ' '}`;
  }
  return Buffer.from(s.slice(0, length));
}

describe('cloudsnap backup and restore (directory store, local keyring)', () => {
  let dir: string;
  let engine: VolumeEngine;
  let store: SqliteStore;
  let keys: KeyProvider;
  let objects: CountingStore;
  let repo: Repository;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-cloudsnap-'));
    store = new SqliteStore(join(dir, 'cluster.db'));
    engine = await openEngine({ dataDir: dir, store });
    keys = await openDefaultKeyring(dir);
    await mkdir(join(dir, 'bucket'));
    objects = new CountingStore(new DirectoryStore(join(dir, 'bucket')));
    repo = await Repository.openOrInit(objects, keys, 'default', { packSize: 4 * MiB });
  });

  afterEach(async () => {
    await engine.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function fill(dev: BlockDevice): Promise<void> {
    await dev.write(0, randomBytes(3 * MiB));
    await dev.write(8 * MiB, text(5 * MiB, 1));
    await dev.write(20 * MiB + 4096, randomBytes(70_000));
    await dev.write(31 * MiB, Buffer.alloc(MiB));
  }

  it('backs up, restores bit-identical with holes kept, and an incremental uploads about what changed', async () => {
    await engine.createVolume({ name: 'db', size: 32 * MiB });
    const dev = await engine.openExport('db');
    await fill(dev);
    await dev.flush();
    const full = await backupVolume({ engine, repo, store }, { volume: 'db' });
    expect(full.full).toBe(true);
    const fullDigest = await (async () => {
      await dev.close();
      return digest(engine, 'db');
    })();
    const restored = await restoreBackup({ engine, repo }, { backupId: full.id, volumeName: 'db-restored' });
    expect(restored.status).toBe('up');
    expect(await digest(engine, 'db-restored')).toBe(fullDigest);
    const page = await engine.changedBlocks('db-restored', {});
    const allocated = page.extents.reduce((n, e) => n + e.length, 0);
    expect(allocated).toBeLessThanOrEqual(3 * MiB + 5 * MiB + 2 * 65536);

    const dev2 = await engine.openExport('db');
    const before = objects.counts.bytesUp;
    for (let i = 0; i < 5; i++) await dev2.write(i * 5 * MiB + 8192, randomBytes(4096));
    await dev2.close();
    const inc = await backupVolume({ engine, repo, store }, { volume: 'db' });
    expect(inc.full).toBe(false);
    expect(inc.base_backup).toBe(full.id);
    const uploaded = objects.counts.bytesUp - before;
    // 5 changed 64 KiB chunks, plus manifest pages, index and record.
    expect(uploaded).toBeLessThan(5 * 65536 + 256 * 1024);
    const incDigest = await digest(engine, 'db');
    await restoreBackup({ engine, repo }, { backupId: inc.id, volumeName: 'db-inc' });
    expect(await digest(engine, 'db-inc')).toBe(incDigest);
    // Each backup stands alone: delete the full one, the incremental still restores.
    await repo.deleteBackupRecord(full.id);
    const again = await Repository.open(new DirectoryStore(join(dir, 'bucket')), keys);
    await restoreBackup({ engine, repo: again }, { backupId: inc.id, volumeName: 'db-inc2' });
    expect(await digest(engine, 'db-inc2')).toBe(incDigest);
    // The node keeps only the snapshot of the last backup.
    expect((await engine.listSnapshots('db')).map((s) => s.name)).toEqual([`cloudsnap-${inc.id}`]);
  });

  it('backs up right through a device that returns reads in buffers of its own (ignoring `into`)', async () => {
    // A first backup leaves the reused read buffers full of its data; the second must not pick any of it up.
    await engine.createVolume({ name: 'first', size: 8 * MiB });
    const first = await engine.openExport('first');
    await first.write(0, randomBytes(8 * MiB));
    await first.close();
    await backupVolume({ engine, repo, store }, { volume: 'first' });
    await engine.createVolume({ name: 'own', size: 8 * MiB });
    const own = await engine.openExport('own');
    await own.write(MiB, text(3 * MiB, 7));
    await own.close();
    const ownReads = new Proxy(engine, {
      get(target, prop) {
        if (prop === 'openExport') {
          return async (name: string): Promise<BlockDevice> => {
            const dev = await target.openExport(name);
            return new Proxy(dev, {
              get(d, p) {
                if (p === 'read') return (offset: number, length: number) => d.read(offset, length);
                const v: unknown = Reflect.get(d, p);
                return typeof v === 'function' ? v.bind(d) : v;
              },
            });
          };
        }
        const v: unknown = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const record = await backupVolume({ engine: ownReads, repo, store }, { volume: 'own' });
    await restoreBackup({ engine, repo }, { backupId: record.id, volumeName: 'own-restored' });
    expect(await digest(engine, 'own-restored')).toBe(await digest(engine, 'own'));
  });

  it('stores identical blocks once across volumes and backups, and never stores zero blocks', async () => {
    const data = randomBytes(4 * MiB);
    for (const name of ['a', 'b']) {
      await engine.createVolume({ name, size: 16 * MiB });
      const dev = await engine.openExport(name);
      await dev.write(0, data);
      await dev.write(8 * MiB, Buffer.alloc(2 * MiB));
      await dev.close();
    }
    const ra = await backupVolume({ engine, repo, store }, { volume: 'a' });
    const rb = await backupVolume({ engine, repo, store }, { volume: 'b' });
    expect(ra.stats.chunks_new).toBe(64);
    expect(rb.stats.chunks_new).toBe(0);
    expect(ra.stats.chunks_zero).toBe(32);
    const full = await backupVolume({ engine, repo, store }, { volume: 'a', full: true });
    expect(full.full).toBe(true);
    expect(full.stats.chunks_new).toBe(0);
  });

  it('detects tampering and missing packs, naming the backup and the object, and never returns wrong data', async () => {
    await engine.createVolume({ name: 'v', size: 8 * MiB });
    const dev = await engine.openExport('v');
    await dev.write(0, randomBytes(2 * MiB));
    await dev.close();
    const rec = await backupVolume({ engine, repo, store }, { volume: 'v' });
    const packsDir = join(dir, 'bucket', 'packs');
    const sub = (await readdir(packsDir))[0] as string;
    const packFile = join(packsDir, sub, (await readdir(join(packsDir, sub)))[0] as string);
    const body = await readFile(packFile);
    body[100] = (body[100] ?? 0) ^ 1;
    await writeFile(packFile, body);
    const err = await restoreBackup({ engine, repo }, { backupId: rec.id, volumeName: 'bad' }).catch((e: unknown) => e);
    expect(isFerryError(err, 'DATA_CORRUPTION')).toBe(true);
    expect((err as Error).message).toContain(rec.id);
    expect((err as Error).message).toContain('packs/');
    // It names the chunk too, and says what failed.
    expect((err as Error).message).toMatch(/^chunk [0-9a-f]{16} of backup \S+ in packs\/\S+ failed authentication/);
    // The partial volume is marked and cannot be attached.
    expect((await engine.inspectVolume('bad')).status).toBe('restoring');
    const attach = await engine.openExport('bad').catch((e: unknown) => e);
    expect(isFerryError(attach, 'FAILED_PRECONDITION')).toBe(true);
    await rm(packFile);
    const missing = await restoreBackup({ engine, repo }, { backupId: rec.id, volumeName: 'bad2' }).catch(
      (e: unknown) => e,
    );
    expect(isFerryError(missing, 'DATA_CORRUPTION')).toBe(true);
    expect((missing as Error).message).toContain('missing');
    expect((await stat(join(dir, 'bucket', 'config'))).isFile()).toBe(true);
  });

  it('refuses a repository when the key does not match', async () => {
    const other = await openDefaultKeyring(join(dir, 'elsewhere'));
    const err = await Repository.open(new DirectoryStore(join(dir, 'bucket')), other).catch((e: unknown) => e);
    expect(isFerryError(err)).toBe(true);
  });
});

describe('restore on another node', () => {
  it('restores bit-identical on a second node that has the credential and the key', async () => {
    const { cp } = await import('node:fs/promises');
    const root = await mkdtemp(join(tmpdir(), 'ferry-two-nodes-'));
    const bucket = join(root, 'bucket');
    await mkdir(bucket);
    const nodeA = join(root, 'a');
    const nodeB = join(root, 'b');
    const storeA = new SqliteStore(join(root, 'a.db'));
    const storeB = new SqliteStore(join(root, 'b.db'));
    const a = await openEngine({ dataDir: nodeA, store: storeA });
    const b = await openEngine({ dataDir: nodeB, store: storeB });
    try {
      const keysA = await openDefaultKeyring(nodeA);
      const repoA = await Repository.openOrInit(new DirectoryStore(bucket), keysA, 'default');
      await a.createVolume({ name: 'src', size: 16 * MiB });
      const dev = await a.openExport('src');
      await dev.write(MiB, randomBytes(3 * MiB));
      await dev.write(9 * MiB, text(2 * MiB, 7));
      await dev.close();
      const rec = await backupVolume({ engine: a, repo: repoA, store: storeA }, { volume: 'src' });
      // Node B gets the key the operator's way: the keyring (key file and keyring) copied to it.
      await cp(join(nodeA, 'keyring'), join(nodeB, 'keyring'), { recursive: true });
      const keysB = await openDefaultKeyring(nodeB);
      const repoB = await Repository.open(new DirectoryStore(bucket), keysB);
      await restoreBackup({ engine: b, repo: repoB }, { backupId: rec.id, volumeName: 'dst' });
      expect(await digest(b, 'dst')).toBe(await digest(a, 'src'));
      // A node without the key cannot open the repository.
      const stranger = await openDefaultKeyring(join(root, 'c'));
      const refused = await Repository.open(new DirectoryStore(bucket), stranger).catch((e: unknown) => e);
      expect(isFerryError(refused)).toBe(true);
    } finally {
      await a.close();
      await b.close();
      await storeA.close();
      await storeB.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

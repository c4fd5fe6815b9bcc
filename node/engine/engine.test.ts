import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { memoryVolumeKeys } from '../../test/support/memory-volume-keys.js';
import { SqliteStore } from '../cluster/sqlite-store.js';
import { openEngine } from './engine.js';
import type { BlockDevice, CreateVolumeRequest, Extent, VolumeEngine } from './types.js';

const MiB = 1024 * 1024;

/** Deterministic PRNG so a failure replays. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function covered(extents: readonly Extent[], offset: number): boolean {
  return extents.some((e) => offset >= e.offset && offset < e.offset + e.length);
}

async function allChanged(engine: VolumeEngine, vol: string, base?: string, target?: string): Promise<Extent[]> {
  const out: Extent[] = [];
  let offset: number | undefined = 0;
  while (offset !== undefined) {
    const page = await engine.changedBlocks(vol, {
      base_snapshot_id: base,
      target_snapshot_id: target,
      offset,
      limit: 7,
    });
    out.push(...page.extents);
    offset = page.next_offset;
  }
  return out;
}

// Every case runs twice: plaintext volumes, and volumes encrypted at rest (AES-XTS per granule).
for (const encrypted of [false, true]) {
  describe(encrypted ? 'engine (encrypted volumes)' : 'engine', () => {
    let dir: string;
    let engine: VolumeEngine;
    const keys = memoryVolumeKeys();
    const open = (): Promise<VolumeEngine> => openEngine({ dataDir: dir, keys });
    const create = (request: CreateVolumeRequest) => engine.createVolume({ ...request, encrypted });

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ferry-engine-'));
      engine = await open();
    });

    afterEach(async () => {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('reads zeros where nothing was written and returns what was written, at any alignment', async () => {
      await create({ name: 'v', size: 8 * MiB });
      const dev = await engine.openExport('v');
      expect((await dev.read(0, 8192)).equals(Buffer.alloc(8192))).toBe(true);
      const data = Buffer.from('hello, ferry');
      await dev.write(4095, data);
      const back = await dev.read(4090, 20);
      expect(back.subarray(5, 5 + data.length).equals(data)).toBe(true);
      expect(back.subarray(0, 5).equals(Buffer.alloc(5))).toBe(true);
      // Into a caller's (dirty) buffer: holes come back as zeros there too, and bytes past the read stay untouched.
      const into = Buffer.alloc(12288, 0xab);
      const got = await dev.read(0, 8192, into);
      expect(got.buffer).toBe(into.buffer);
      expect(got.length).toBe(8192);
      const want = Buffer.alloc(8192);
      data.copy(want, 4095);
      expect(into.subarray(0, 8192).equals(want)).toBe(true);
      expect(into.subarray(8192).equals(Buffer.alloc(4096, 0xab))).toBe(true);
      await expect(dev.read(0, 8192, Buffer.alloc(4096))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await dev.close();
    });

    it('matches a byte-for-byte model through random writes, zeroes, snapshots, restores, clones and deletes', async () => {
      const size = 4 * MiB;
      const rand = rng(42);
      await create({ name: 'm', size });
      const model = Buffer.alloc(size);
      const snapModels = new Map<string, Buffer>();
      let dev: BlockDevice = await engine.openExport('m');
      let seq = 0;
      for (let step = 0; step < 400; step++) {
        const r = rand();
        if (r < 0.5) {
          const len = 1 + Math.floor(rand() * 3 * 4096 * (rand() < 0.2 ? 40 : 1));
          const off = Math.floor(rand() * (size - len));
          const buf = Buffer.alloc(len, step % 251);
          buf.writeUInt32LE(step, 0);
          await dev.write(off, buf);
          buf.copy(model, off);
        } else if (r < 0.6) {
          const len = Math.floor(rand() * 20 * 4096);
          const off = Math.floor(rand() * (size - len));
          await dev.writeZeroes(off, len);
          model.fill(0, off, off + len);
        } else if (r < 0.7 && snapModels.size < 64) {
          const name = `s${seq++}`;
          await engine.createSnapshot('m', { name });
          snapModels.set(name, Buffer.from(model));
        } else if (r < 0.78 && snapModels.size > 0) {
          const names = [...snapModels.keys()];
          const name = names[Math.floor(rand() * names.length)] as string;
          await engine.deleteSnapshot(`m@${name}`);
          snapModels.delete(name);
        } else if (r < 0.82 && snapModels.size > 0) {
          const names = [...snapModels.keys()];
          const name = names[Math.floor(rand() * names.length)] as string;
          await dev.close();
          await engine.restoreSnapshot('m', `m@${name}`);
          (snapModels.get(name) as Buffer).copy(model);
          dev = await engine.openExport('m');
        } else if (r < 0.85 && snapModels.size > 0) {
          const names = [...snapModels.keys()];
          const name = names[Math.floor(rand() * names.length)] as string;
          const clone = `c${seq++}`;
          await engine.cloneVolume({ parent_id: `m@${name}`, name: clone });
          const cdev = await engine.openExport(clone);
          expect((await cdev.read(0, size)).equals(snapModels.get(name) as Buffer)).toBe(true);
          await cdev.write(0, Buffer.alloc(4096, 7));
          await cdev.close();
          if (rand() < 0.5) await engine.deleteVolume(clone);
        } else {
          const len = 1 + Math.floor(rand() * 64 * 4096);
          const off = Math.floor(rand() * (size - len));
          expect((await dev.read(off, len)).equals(model.subarray(off, off + len))).toBe(true);
        }
        if (step % 50 === 49) {
          expect((await dev.read(0, size)).equals(model)).toBe(true);
          for (const [name, m] of snapModels) {
            const sdev = await engine.openExport(`m@${name}`);
            expect((await sdev.read(0, size)).equals(m), `snapshot ${name} at step ${step}`).toBe(true);
            await sdev.close();
          }
        }
      }
      await dev.close();
      // Reopen from disk: everything flushed on close must be there.
      await engine.close();
      engine = await open();
      const again = await engine.openExport('m');
      expect((await again.read(0, size)).equals(model)).toBe(true);
      await again.close();
    });

    it('reports exactly the changed granules between snapshots and against the live volume', async () => {
      const size = 64 * MiB;
      await create({ name: 'cbt', size });
      const dev = await engine.openExport('cbt');
      await dev.write(0, Buffer.alloc(3 * MiB, 1));
      const s1 = await engine.createSnapshot('cbt', { name: 's1' });
      const writes: Extent[] = [
        { offset: 5 * 4096, length: 512 },
        { offset: 10 * MiB + 100, length: 70_000 },
        { offset: 63 * MiB, length: MiB },
      ];
      for (const w of writes) await dev.write(w.offset, Buffer.alloc(w.length, 9));
      await dev.writeZeroes(20 * MiB, 2 * 4096);
      const s2 = await engine.createSnapshot('cbt', { name: 's2' });
      const diff = await allChanged(engine, 'cbt', s1.id, s2.id);
      for (const w of writes) {
        expect(covered(diff, w.offset)).toBe(true);
        expect(covered(diff, w.offset + w.length - 1)).toBe(true);
      }
      expect(covered(diff, 20 * MiB)).toBe(true);
      const total = diff.reduce((n, e) => n + e.length, 0);
      // 1 granule + 18 granules (70,000 bytes straddling) + 256 granules + 2 zeroed granules
      expect(total).toBe((1 + 18 + 256 + 2) * 4096);
      expect(await allChanged(engine, 'cbt', s2.id)).toEqual([]);
      await dev.write(40 * MiB, Buffer.alloc(4096, 3));
      expect(await allChanged(engine, 'cbt', s2.id)).toEqual([{ offset: 40 * MiB, length: 4096 }]);
      // Deleting the snapshot in the middle keeps the diff of the others exact.
      const s3 = await engine.createSnapshot('cbt', { name: 's3' });
      await engine.deleteSnapshot(s2.id);
      const merged = await allChanged(engine, 'cbt', s1.id, s3.id);
      expect(merged.reduce((n, e) => n + e.length, 0)).toBe(total + 4096);
      // No base: the allocation map.
      const alloc = await allChanged(engine, 'cbt');
      expect(alloc[0]).toEqual({ offset: 0, length: 3 * MiB });
      await dev.close();
    });

    it('deletes a snapshot at once and reclaims its layer in the background, which close waits for', async () => {
      await create({ name: 'bg', size: 16 * MiB });
      const dev = await engine.openExport('bg');
      await dev.write(0, Buffer.alloc(4 * MiB, 1));
      await engine.createSnapshot('bg', { name: 'a' });
      await dev.write(MiB, Buffer.alloc(64 * 1024, 2));
      await engine.createSnapshot('bg', { name: 'b' });
      await dev.write(2 * MiB, Buffer.alloc(4096, 3));
      await dev.flush();
      const layerFiles = async (): Promise<number> => (await readdir(join(dir, 'layers'))).length;
      const before = await layerFiles();
      const first = await engine.openExport('bg@b');
      const wantB = await first.read(0, 4 * MiB);
      await first.close();
      await engine.deleteSnapshot('bg@a');
      // Gone from lists and exports as soon as the call returns, whatever the background still does.
      expect((await engine.listSnapshots('bg')).map((s) => s.name)).toEqual(['b']);
      await expect(engine.openExport('bg@a')).rejects.toSatisfy((e: unknown) => isFerryError(e, 'NOT_FOUND'));
      await engine.settled?.();
      // Snapshot a's layer absorbed its only child (b's, smaller): one layer's files fewer, every view unchanged.
      expect(await layerFiles()).toBeLessThan(before);
      const b = await engine.openExport('bg@b');
      expect((await b.read(0, 4 * MiB)).equals(wantB)).toBe(true);
      await b.close();
      const live = await dev.read(0, 4 * MiB);
      expect(live.readUInt8(MiB)).toBe(2);
      expect(live.readUInt8(2 * MiB)).toBe(3);
      expect(live.readUInt8(3 * MiB)).toBe(1);
      // A collection still pending when the engine closes is finished first.
      await engine.createSnapshot('bg', { name: 'c' });
      await engine.deleteSnapshot('bg@b');
      await dev.close();
      await engine.close();
      const closedWith = await layerFiles();
      engine = await open();
      expect(await layerFiles()).toBe(closedWith);
      expect((await engine.listSnapshots('bg')).map((s) => s.name)).toEqual(['c']);
    });

    it('refuses bad input with INVALID_ARGUMENT naming the field and changes nothing', async () => {
      const bad: Array<[string, () => Promise<unknown>, string]> = [
        ['empty name', () => create({ name: '', size: MiB }), 'name'],
        ['slash', () => create({ name: 'a/b', size: MiB }), 'name'],
        ['dotdot', () => create({ name: 'a..b', size: MiB }), 'name'],
        ['control', () => create({ name: 'a\nb', size: MiB }), 'name'],
        ['long', () => create({ name: 'x'.repeat(129), size: MiB }), 'name'],
        ['zero', () => create({ name: 'a', size: 0 }), 'spec.size'],
        ['negative', () => create({ name: 'a', size: -4096 }), 'spec.size'],
        ['unaligned', () => create({ name: 'a', size: 4097 }), 'spec.size'],
        ['huge', () => create({ name: 'a', size: 2 ** 52 }), 'spec.size'],
      ];
      for (const [what, fn, field] of bad) {
        const err = await fn().catch((e: unknown) => e);
        expect(isFerryError(err, 'INVALID_ARGUMENT'), what).toBe(true);
        expect(isFerryError(err) && err.field, what).toBe(field);
      }
      expect(await engine.listVolumes()).toEqual([]);
      await create({ name: 'a', size: MiB });
      const again = await create({ name: 'a', size: MiB });
      expect(again.created).toBe(false);
      const dup = await create({ name: 'a', size: 2 * MiB }).catch((e: unknown) => e);
      expect(isFerryError(dup, 'ALREADY_EXISTS')).toBe(true);
      const shrink = await engine.updateVolume('a', { size: 4096 }).catch((e: unknown) => e);
      expect(isFerryError(shrink, 'INVALID_ARGUMENT')).toBe(true);
      expect((await engine.inspectVolume('a')).size).toBe(MiB);
      const missing = await engine.inspectVolume('nope').catch((e: unknown) => e);
      expect(isFerryError(missing, 'NOT_FOUND')).toBe(true);
      const dev = await engine.openExport('a');
      const past = await dev.write(MiB - 10, Buffer.alloc(20)).catch((e: unknown) => e);
      expect(isFerryError(past, 'INVALID_ARGUMENT')).toBe(true);
      await dev.close();
    });

    it('enforces 64 snapshots, one writer, read-only snapshots, and grows online', async () => {
      await create({ name: 'lim', size: MiB });
      for (let i = 0; i < 64; i++) await engine.createSnapshot('lim', { name: `s${i}` });
      const err = await engine.createSnapshot('lim', { name: 's64' }).catch((e: unknown) => e);
      expect(isFerryError(err, 'RESOURCE_EXHAUSTED')).toBe(true);
      expect((err as Error).message).toContain('delete one first');
      // The snapshots backups keep do not take the user's slots; they have a bound of their own.
      for (let i = 0; i < 16; i++) {
        await engine.createSnapshot('lim', { name: `b${i}`, labels: { 'ferry.io/backup': `backup-${i}` } });
      }
      const full = await engine
        .createSnapshot('lim', { name: 'b16', labels: { 'ferry.io/backup': 'backup-16' } })
        .catch((e: unknown) => e);
      expect(isFerryError(full, 'RESOURCE_EXHAUSTED')).toBe(true);
      expect((full as Error).message).toContain('16 backup snapshots');
      await engine.deleteSnapshot('lim@b0');
      await engine.createSnapshot('lim', { name: 'b16', labels: { 'ferry.io/backup': 'backup-16' } });
      const w1 = await engine.openExport('lim');
      const w2 = await engine.openExport('lim').catch((e: unknown) => e);
      expect(isFerryError(w2, 'FAILED_PRECONDITION')).toBe(true);
      const ro = await engine.openExport('lim@s3');
      const wr = await ro.write(0, Buffer.alloc(512)).catch((e: unknown) => e);
      expect(isFerryError(wr, 'PERMISSION_DENIED')).toBe(true);
      await ro.close();
      await engine.updateVolume('lim', { size: 2 * MiB });
      expect((await engine.inspectVolume('lim')).size).toBe(2 * MiB);
      await w1.close();
      const big = await engine.openExport('lim');
      await big.write(2 * MiB - 4096, Buffer.alloc(4096, 1));
      await big.close();
    });

    it('stays thin: a large volume with little written uses little disk', async () => {
      await create({ name: 'thin', size: 1024 ** 4 });
      const dev = await engine.openExport('thin');
      for (let i = 0; i < 10; i++) await dev.write(i * 97 * 1024 ** 3, Buffer.alloc(MiB, 1));
      await dev.flush();
      const info = await engine.inspectVolume('thin');
      expect(info.bytes_used).toBe(10 * MiB);
      const { execFileSync } = await import('node:child_process');
      const used = Number(execFileSync('du', ['-sk', dir]).toString().split('\t')[0]) * 1024;
      expect(used).toBeLessThan(20 * MiB);
      await dev.close();
    });
  });
}

describe('trim', () => {
  it('gives the disk space of trimmed data back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-trim-'));
    const engine = await openEngine({ dataDir: dir });
    try {
      const { execFileSync } = await import('node:child_process');
      const du = (): number =>
        Number(
          execFileSync('du', ['-sk', join(dir, 'layers')])
            .toString()
            .split('\t')[0],
        ) * 1024;
      await engine.createVolume({ name: 't', size: 256 * MiB });
      const dev = await engine.openExport('t');
      await dev.write(0, Buffer.alloc(64 * MiB, 5));
      await dev.flush();
      expect(du()).toBeGreaterThan(60 * MiB);
      await dev.trim(0, 64 * MiB);
      await dev.flush();
      expect(du()).toBeLessThan(4 * MiB);
      expect((await dev.read(0, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
      expect(await dev.blockStatus(0, 64 * MiB)).toEqual([{ length: 64 * MiB, state: 'zero' }]);
      await dev.close();
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('reconnect', () => {
  it('lets a writer in at once while the previous one is still closing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-reopen-'));
    const engine = await openEngine({ dataDir: dir });
    try {
      await engine.createVolume({ name: 'r', size: MiB });
      const first = await engine.openExport('r');
      await first.write(0, Buffer.alloc(4096, 1));
      const closing = first.close();
      const second = await engine.openExport('r');
      await closing;
      expect((await second.read(0, 1))[0]).toBe(1);
      await second.close();
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('orphan layer records (S4)', () => {
  it('starts, dropping layer records whose parent is gone when nothing it holds needs them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-orphan-'));
    try {
      let engine = await openEngine({ dataDir: dir });
      await engine.createVolume({ name: 'o', size: 8 * MiB });
      let dev = await engine.openExport('o');
      await dev.write(0, Buffer.alloc(MiB, 3));
      await dev.flush();
      await dev.close();
      await engine.close();
      // A coordinator's commit named a new head over a layer that this node abandoned and then collected.
      const store = new SqliteStore(join(dir, 'cluster.db'));
      const prefix = (await store.list<{ id: string }>('/ferry/local/'))[0]?.key.replace(/[^/]+$/, '') ?? '';
      expect(prefix).toMatch(/^\/ferry\/local\/.+\/layers\/$/);
      await store.commit([
        {
          op: 'put',
          key: `${prefix}aaaaaaaaaaaaaaa1`,
          value: { id: 'aaaaaaaaaaaaaaa1', parent: 'ffffffffffffff00', frozen: false },
        },
        {
          op: 'put',
          key: `${prefix}aaaaaaaaaaaaaaa2`,
          value: { id: 'aaaaaaaaaaaaaaa2', parent: 'aaaaaaaaaaaaaaa1', frozen: false },
        },
      ]);
      await store.close();
      const warnings: string[] = [];
      const onWarning = (w: Error): void => {
        warnings.push(w.message);
      };
      process.on('warning', onWarning);
      engine = await openEngine({ dataDir: dir });
      await new Promise((resolve) => setImmediate(resolve));
      process.off('warning', onWarning);
      expect(warnings.join('\n')).toMatch(/layer aaaaaaaaaaaaaaa2 names a missing parent ffffffffffffff00/);
      dev = await engine.openExport('o');
      expect((await dev.read(0, MiB)).equals(Buffer.alloc(MiB, 3))).toBe(true);
      await dev.close();
      await engine.close();
      const after = new SqliteStore(join(dir, 'cluster.db'));
      const keys = (await after.list('/ferry/local/')).map((e) => e.key);
      await after.close();
      expect(keys.some((k) => k.endsWith('aaaaaaaaaaaaaaa1') || k.endsWith('aaaaaaaaaaaaaaa2'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start, naming them, when a volume it holds tops an orphan layer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-orphan-'));
    try {
      const engine = await openEngine({ dataDir: dir });
      await engine.createVolume({ name: 'p', size: 8 * MiB });
      await engine.close();
      const store = new SqliteStore(join(dir, 'cluster.db'));
      const prefix = (await store.list<{ id: string }>('/ferry/local/'))[0]?.key.replace(/[^/]+$/, '') ?? '';
      const [volume] = await store.list<{ top: string }>('/ferry/volumes/');
      if (volume === undefined) throw new Error('no volume record');
      await store.commit([
        {
          op: 'put',
          key: `${prefix}bbbbbbbbbbbbbbb1`,
          value: { id: 'bbbbbbbbbbbbbbb1', parent: 'ffffffffffffff01', frozen: false },
        },
        { op: 'put', key: volume.key, value: { ...volume.value, top: 'bbbbbbbbbbbbbbb1' } },
      ]);
      await store.close();
      await expect(openEngine({ dataDir: dir })).rejects.toThrow(
        /layer bbbbbbbbbbbbbbb1 names a missing parent ffffffffffffff01: volume p tops it/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

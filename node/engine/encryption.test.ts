import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { native } from '../../common/native/index.js';
import { type MemoryVolumeKeys, memoryVolumeKeys } from '../../test/support/memory-volume-keys.js';
import { openEngine } from './engine.js';
import { Layer } from './layer.js';
import type { VolumeEngine } from './types.js';

const MiB = 1024 * 1024;
const MARKER = Buffer.from('FERRY-PLAINTEXT-MARKER!');

/** A buffer of `length` bytes made of the marker, so any 4 KiB of it holds the marker in the clear. */
function markerData(length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let at = 0; at < length; at += MARKER.length) MARKER.copy(b, at);
  return b;
}

async function allFiles(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(join(e.parentPath, e.name)));
  }
  return out;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err: unknown) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('encryption at rest', () => {
  let dir: string;
  let keys: MemoryVolumeKeys;
  let engine: VolumeEngine;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-xts-'));
    keys = memoryVolumeKeys();
    engine = await openEngine({ dataDir: dir, keys });
  });

  afterEach(async () => {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps no plaintext and no data key on disk, through writes, snapshots, merges and clones', async () => {
    await engine.createVolume({ name: 'sec', size: 32 * MiB, encrypted: true });
    await engine.createVolume({ name: 'plain', size: MiB });
    const dev = await engine.openExport('sec');
    const data = markerData(8 * MiB);
    await dev.write(0, data);
    await dev.write(9 * MiB + 100, markerData(10_000)); // partial granules at both ends
    await engine.createSnapshot('sec', { name: 's1' });
    await dev.write(2 * MiB + 7, markerData(5000)); // read-decrypt-modify-encrypt of granules the top lacks
    await dev.write(2 * MiB + 9, Buffer.from('x')); // ... and of one it holds
    await engine.createSnapshot('sec', { name: 's2' });
    await engine.deleteSnapshot('sec@s1'); // merge: raw ciphertext moves between layers
    await engine.cloneVolume({ parent_id: 'sec@s2', name: 'copy' });
    await dev.flush();
    const plain = await engine.openExport('plain');
    await plain.write(0, markerData(8192));
    await plain.close();

    const files = await allFiles(dir);
    const found = files.filter((f) => f.includes(MARKER)).length;
    // The plaintext volume's marker is on disk (the scan works); the encrypted volume's is not.
    expect(found).toBe(1);
    for (const key of keys.issued) {
      for (const form of [key, Buffer.from(key.toString('hex')), Buffer.from(key.toString('base64'))]) {
        expect(files.some((f) => f.includes(form))).toBe(false);
      }
    }

    const model = Buffer.alloc(32 * MiB);
    data.copy(model, 0);
    markerData(10_000).copy(model, 9 * MiB + 100);
    markerData(5000).copy(model, 2 * MiB + 7);
    model.write('x', 2 * MiB + 9);
    expect((await dev.read(0, 32 * MiB)).equals(model)).toBe(true);
    await dev.close();
    const copy = await engine.openExport('copy');
    expect((await copy.read(0, 32 * MiB)).equals(model)).toBe(true);
    await copy.close();
  });

  it('writes an uncached write of whole granules as page-aligned ciphertext past the page cache', async () => {
    await engine.createVolume({ name: 'sec', size: 8 * MiB, encrypted: true });
    const dev = await engine.openExport('sec');
    const writes = vi.spyOn(Layer.prototype, 'writeData');
    try {
      const data = markerData(MiB);
      await dev.write(MiB, data, { uncached: true });
      expect(writes).toHaveBeenCalledTimes(1);
      const [sealed, at, length, position, uncached] = writes.mock.calls[0] as Parameters<Layer['writeData']>;
      expect([at, length, position, uncached]).toEqual([0, MiB, MiB, true]);
      expect(native.alignmentGap(sealed.subarray(0, length), 4096)).toBe(0);
      expect(sealed.includes(MARKER)).toBe(false);
      // This machine's file systems take O_DIRECT (node/engine/layer.test.ts): the bytes went past the cache.
      expect((writes.mock.contexts[0] as Layer).directBytes).toBe(MiB);
      // A write that is not whole granules still goes through the cache, read-modify-write.
      await dev.write(3 * MiB + 100, markerData(10_000), { uncached: true });
      expect(writes.mock.calls[1]?.[4]).toBeUndefined();
      expect((await dev.read(MiB, MiB)).equals(data)).toBe(true);
      expect((await dev.read(3 * MiB + 100, 10_000)).equals(markerData(10_000))).toBe(true);
    } finally {
      writes.mockRestore();
      await dev.close();
    }
    for (const file of await allFiles(dir)) expect(file.includes(MARKER)).toBe(false);
  });

  it('reads holes and zeroed granules as zeros, and gives trimmed space back', async () => {
    await engine.createVolume({ name: 't', size: 256 * MiB, encrypted: true });
    const dev = await engine.openExport('t');
    const du = (): number =>
      Number(
        execFileSync('du', ['-sk', join(dir, 'layers')])
          .toString()
          .split('\t')[0],
      ) * 1024;
    await dev.write(0, Buffer.alloc(64 * MiB, 5));
    await dev.flush();
    expect(du()).toBeGreaterThan(60 * MiB);
    await dev.trim(4096 + 10, 64 * MiB - 8192);
    await dev.flush();
    expect(du()).toBeLessThan(4 * MiB);
    const head = await dev.read(0, 8192);
    expect(head.subarray(0, 4096 + 10).equals(Buffer.alloc(4096 + 10, 5))).toBe(true);
    expect(head.subarray(4096 + 10).equals(Buffer.alloc(8192 - 4096 - 10))).toBe(true);
    expect((await dev.read(MiB, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
    expect((await dev.read(200 * MiB, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
    const status = await dev.blockStatus(0, 256 * MiB);
    expect(status[0]).toEqual({ length: 2 * 4096, state: 'data' });
    await dev.close();
  });

  it('keeps every one of many concurrent small writes into one granule', async () => {
    await engine.createVolume({ name: 'c', size: MiB, encrypted: true });
    const dev = await engine.openExport('c');
    await dev.write(0, Buffer.alloc(4096, 1));
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => dev.write(4096 * 3 + i * 512, Buffer.alloc(512, 10 + i))), // top lacks it
    );
    await Promise.all(Array.from({ length: 8 }, (_, i) => dev.write(i * 512, Buffer.alloc(512, 20 + i)))); // top holds it
    const back = await dev.read(0, 4 * 4096);
    for (let i = 0; i < 8; i++) {
      expect(back[i * 512]).toBe(20 + i);
      expect(back[3 * 4096 + i * 512 + 511]).toBe(10 + i);
    }
    await dev.close();
  });

  it('refuses to open a volume whose KEK was destroyed, naming the KEK; other volumes are unaffected', async () => {
    await engine.createVolume({ name: 'a', size: MiB, encrypted: true, labels: { 'ferry.io/kek': 'team-a' } });
    await engine.createVolume({ name: 'b', size: MiB, encrypted: true, labels: { 'ferry.io/kek': 'team-b' } });
    for (const name of ['a', 'b']) {
      const dev = await engine.openExport(name);
      await dev.write(0, Buffer.alloc(4096, 3));
      await dev.close();
    }
    await engine.createSnapshot('a', { name: 'snap' });
    keys.destroy('team-a');
    for (const name of ['a', 'a@snap']) {
      const err = await rejection(engine.openExport(name));
      expect(isFerryError(err, 'PERMISSION_DENIED'), name).toBe(true);
      expect((err as Error).message).toContain('KEK "team-a"');
      expect((err as Error).message).toContain(`encrypted volume ${name} cannot be opened`);
    }
    const info = await engine.inspectVolume('a');
    expect([info.attached, info.encrypted, info.encryption]).toEqual([
      false,
      true,
      { kek: 'team-a', key_provider: 'local' },
    ]);
    const b = await engine.openExport('b');
    expect((await b.read(0, 1))[0]).toBe(3);
    await b.close();
    await engine.deleteVolume('a');
  });

  it('gives clones their origin key and labels; unwraps once per open; survives a restart', async () => {
    const labels = { 'ferry.io/kek': 'k1' };
    const { volume } = await engine.createVolume({ name: 'o', size: MiB, encrypted: true, labels });
    expect(volume.labels).toEqual({ 'ferry.io/kek': 'k1', 'ferry.io/encrypted': 'true' });
    expect(keys.calls).toEqual({ create: 1, unwrap: 0 });
    const dev = await engine.openExport('o');
    await dev.write(100, Buffer.from('origin'));
    await dev.close();
    expect(keys.calls.unwrap).toBe(1);
    const live = await engine.cloneVolume({ parent_id: 'o', name: 'c1' });
    await engine.createSnapshot('o', { name: 's' });
    const fromSnap = await engine.cloneVolume({ parent_id: 'o@s', name: 'c2', labels: { app: 'x' } });
    for (const c of [live, fromSnap]) {
      expect(c.encrypted).toBe(true);
      expect(c.labels['ferry.io/encrypted']).toBe('true');
      expect(c.labels['ferry.io/kek']).toBe('k1');
    }
    expect(keys.calls.create).toBe(1);
    await engine.restoreSnapshot('o', 'o@s');
    await engine.deleteVolume('o');
    await engine.close();
    engine = await openEngine({ dataDir: dir, keys });
    for (const name of ['c1', 'c2']) {
      const c = await engine.openExport(name);
      expect((await c.read(100, 6)).toString()).toBe('origin');
      await c.close();
    }
  });

  it('takes encryption from the label, keeps the label fixed, and refuses mismatches', async () => {
    const byLabel = await engine.createVolume({ name: 'l', size: MiB, labels: { 'ferry.io/encrypted': 'true' } });
    expect(byLabel.volume.encrypted).toBe(true);
    const cases: Array<[string, () => Promise<unknown>, string, string?]> = [
      [
        'label false',
        () => engine.createVolume({ name: 'x', size: MiB, labels: { 'ferry.io/encrypted': 'no' } }),
        'INVALID_ARGUMENT',
        'labels.ferry.io/encrypted',
      ],
      [
        'remove label',
        () => engine.updateVolume('l', { labels: { 'ferry.io/encrypted': '' } }),
        'INVALID_ARGUMENT',
        'labels.ferry.io/encrypted',
      ],
      ['same name, plaintext', () => engine.createVolume({ name: 'l', size: MiB }), 'ALREADY_EXISTS'],
      [
        'encrypted clone of plaintext',
        async () => {
          await engine.createVolume({ name: 'p', size: MiB });
          return engine.cloneVolume({ parent_id: 'p', name: 'pc', labels: { 'ferry.io/encrypted': 'true' } });
        },
        'INVALID_ARGUMENT',
        'labels.ferry.io/encrypted',
      ],
      [
        'label on plaintext',
        () => engine.updateVolume('p', { labels: { 'ferry.io/encrypted': 'true' } }),
        'INVALID_ARGUMENT',
        'labels.ferry.io/encrypted',
      ],
    ];
    for (const [what, fn, code, field] of cases) {
      const err = await rejection(fn());
      expect(isFerryError(err) && err.code, what).toBe(code);
      if (field !== undefined) expect(isFerryError(err) && err.field, what).toBe(field);
    }
    expect((await engine.createVolume({ name: 'l', size: MiB, encrypted: true })).created).toBe(false);
    await engine.updateVolume('l', { labels: { 'ferry.io/encrypted': 'true', app: 'y' } });
    expect((await engine.listVolumes()).map((v) => v.name)).toEqual(['l', 'p']);
  });

  it('without a key resolver: encrypted volumes can be neither created nor opened', async () => {
    await engine.createVolume({ name: 'e', size: MiB, encrypted: true });
    await engine.close();
    engine = await openEngine({ dataDir: dir });
    expect(isFerryError(await rejection(engine.openExport('e')), 'FAILED_PRECONDITION')).toBe(true);
    const err = await rejection(engine.createVolume({ name: 'f', size: MiB, encrypted: true }));
    expect(isFerryError(err, 'FAILED_PRECONDITION')).toBe(true);
    expect((await engine.listVolumes()).map((v) => v.name)).toEqual(['e']);
  });
});

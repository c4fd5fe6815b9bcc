/**
 * The real engine behind the real NBD server, driven by clients nobody here wrote (nbdcopy, nbdinfo, nbdsh,
 * qemu-img): a volume's life from first write through snapshot, diff, clone, restore and snapshot deletion.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdServer, openEngine, type VolumeEngine } from '../node/index.js';
import { ok, run, TOOL_ENV } from './support/run.js';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const ENV = TOOL_ENV;
const DATA: [number, number][] = [
  [0, 2 * MiB],
  [40 * MiB + 8192, 300 * 1024],
  [128 * MiB, 5 * MiB],
  [SIZE - 64 * 1024, 64 * 1024],
];

interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

async function dataRanges(uri: string): Promise<[number, number][]> {
  const map = JSON.parse(await ok('nbdinfo', ['--map', '--json', uri])) as MapEntry[];
  return map.filter((e) => (e.type & 1) === 0).map((e) => [e.offset, e.length]);
}

describe('engine over NBD with real clients', () => {
  let dir: string;
  let engine: VolumeEngine;
  let server: NbdServer;
  let base: string;
  let source: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-e2e-'));
    engine = await openEngine({ dataDir: join(dir, 'node') });
    server = new NbdServer(engine);
    const { port } = await server.listen('127.0.0.1', 0);
    base = `nbd://127.0.0.1:${port}`;
    source = join(dir, 'source.raw');
    const f = await open(source, 'w');
    await f.truncate(SIZE);
    for (const [off, len] of DATA) await f.write(randomBytes(len), 0, len, off);
    await f.close();
    await engine.createVolume({ name: 'vol', size: SIZE });
  });

  afterAll(async () => {
    await server.close();
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('nbdcopy writes a sparse image; block status shows data exactly where it was written', async () => {
    await ok('nbdcopy', [source, `${base}/vol`]);
    const ranges = await dataRanges(`${base}/vol`);
    const aligned = DATA.map(([o, l]): [number, number] => {
      const s = Math.floor(o / 4096) * 4096;
      return [s, Math.ceil((o + l) / 4096) * 4096 - s];
    });
    expect(ranges).toEqual(aligned);
    const info = await engine.inspectVolume('vol');
    expect(info.bytes_used).toBe(aligned.reduce((n, [, l]) => n + l, 0));
  });

  it('a snapshot reads back bit-identical through nbdcopy and qemu-img, holes kept, after the volume changes', async () => {
    await engine.createSnapshot('vol', { name: 's1' });
    await ok('nbdsh', [
      '-u',
      `${base}/vol`,
      '-c',
      'h.pwrite(b"\\x07" * 65536, 64 * 1048576); h.trim(1048576, 0); h.zero(1048576, 128 * 1048576); h.flush()',
    ]);
    const back = join(dir, 's1.raw');
    await ok('nbdcopy', [`${base}/vol@s1`, back]);
    expect((await readFile(back)).equals(await readFile(source))).toBe(true);
    expect((await stat(back)).blocks * 512).toBeLessThan(16 * MiB);
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/vol@s1`]);
    const live = join(dir, 'live.raw');
    await ok('qemu-img', ['convert', '-O', 'raw', `${base}/vol`, live]);
    const expected = await readFile(source);
    expected.fill(0, 0, MiB);
    expected.fill(7, 64 * MiB, 64 * MiB + 65536);
    expected.fill(0, 128 * MiB, 129 * MiB);
    expect((await readFile(live)).equals(expected)).toBe(true);
  });

  it('the changed blocks since the snapshot are exactly what nbdsh changed', async () => {
    const s1 = await engine.inspectSnapshot('vol@s1');
    const page = await engine.changedBlocks('vol', { base_snapshot_id: s1.id });
    expect(page.extents).toEqual([
      { offset: 0, length: MiB },
      { offset: 64 * MiB, length: 65536 },
      { offset: 128 * MiB, length: MiB },
    ]);
  });

  it('refuses writes to the snapshot export and a second writer on the volume', async () => {
    const write = await run('nbdsh', ['-u', `${base}/vol@s1`, '-c', 'h.pwrite(b"x" * 512, 0)']);
    expect(write.code).not.toBe(0);
    const holder = spawn('nbdsh', ['-u', `${base}/vol`, '-c', 'import time; time.sleep(3)'], { env: ENV });
    await new Promise((r) => setTimeout(r, 800));
    const second = await run('qemu-img', [
      'info',
      '--image-opts',
      `driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=${base.split(':')[2]},export=vol`,
    ]);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('already attached');
    await new Promise((r) => holder.on('close', r));
  });

  it('refuses a volume that is restoring with the reason, and the engine says why it cannot open', async () => {
    await engine.createVolume({ name: 'incoming', size: MiB, restoring: true });
    const info = await run('nbdinfo', [`${base}/incoming`], { ...ENV, LIBNBD_DEBUG: '1' });
    expect(info.code).not.toBe(0);
    expect(info.stderr).toMatch(/server error message: volume incoming is restoring: its restore has not completed/);
    expect(await engine.openProblem?.('incoming')).toMatch(/volume incoming is restoring/);
    const writer = await engine.openForRestore('incoming');
    expect((await engine.inspectVolume('incoming')).attached_by).toEqual([
      { client: 'restore', since: expect.any(String) },
    ]);
    await writer.close();
    await engine.completeRestore('incoming');
    expect(await engine.openProblem?.('incoming')).toBeUndefined();
    expect((await engine.inspectVolume('incoming')).attached_by).toBeUndefined();
    await engine.deleteVolume('incoming');
  });

  it('clones the snapshot, restores the volume from it, and deletes it without disturbing the clone', async () => {
    await engine.cloneVolume({ parent_id: 'vol@s1', name: 'copy' });
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/copy`]);
    await engine.restoreSnapshot('vol', 'vol@s1');
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/vol`]);
    await engine.deleteSnapshot('vol@s1');
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/copy`]);
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/vol`]);
    expect((await engine.listExports()).sort()).toEqual(['copy', 'vol']);
  });
});

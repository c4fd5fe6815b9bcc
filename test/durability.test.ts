import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BlockDevice, openEngine, type VolumeEngine } from '../node/index.js';

const MiB = 1024 * 1024;
const driver = join(import.meta.dirname, 'support', 'crash-driver.ts');

interface Expect {
  live: string;
  a: string;
  b: string;
  after?: string;
}

/** Runs the driver; with `killOnExpect`, SIGKILLs it as soon as it reports (an external kill -9). */
function runDriver(
  dir: string,
  scenario: string,
  point: string,
  killOnExpect: boolean,
): Promise<{ expect: Expect; signal: string | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', driver, dir, scenario, point], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let expected: Expect | undefined;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /EXPECT (.*)\n/.exec(out);
      if (m !== null && expected === undefined) {
        expected = JSON.parse(m[1] as string) as Expect;
        if (killOnExpect) child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (expected === undefined) reject(new Error(`driver reported nothing: ${err}`));
      else resolve({ expect: expected, signal, out });
    });
  });
}

async function digest(dev: BlockDevice, length = dev.size): Promise<string> {
  const h = createHash('sha256');
  for (let o = 0; o < length; o += 4 * MiB) h.update(await dev.read(o, Math.min(4 * MiB, length - o)));
  await dev.close();
  return h.digest('hex');
}

describe('crash consistency (kill -9 of a process running the engine)', () => {
  let dir: string;
  let engine: VolumeEngine | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-crash-'));
  });

  afterEach(async () => {
    await engine?.close();
    engine = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function reopen(): Promise<VolumeEngine> {
    engine = await openEngine({ dataDir: dir });
    return engine;
  }

  for (const mode of ['flush', 'fua']) {
    it(`keeps a write acknowledged after ${mode === 'fua' ? 'FUA' : 'a flush'} when killed mid-way through later writes`, async () => {
      const { expect: want, signal } = await runDriver(dir, 'flushed-write', mode, true);
      expect(signal).toBe('SIGKILL');
      const e = await reopen();
      const dev = await e.openExport('vol');
      const region = await dev.read(8 * MiB, 2 * MiB);
      await dev.close();
      expect(region.readUInt32LE(0)).toBe((9 * 2654435761) >>> 0);
      expect(region.readUInt32LE(2 * MiB - 4)).toBe((9 * 2654435761 + (2 * MiB - 4) * 40503) >>> 0);
      expect(want.after).toBeDefined();
      expect(await digest(await e.openExport('vol@a'))).toBe(want.a);
      expect(await digest(await e.openExport('vol@b'))).toBe(want.b);
    });
  }

  const cases: Array<[string, string, (e: VolumeEngine, want: Expect) => Promise<'old' | 'new'>]> = [
    ['snapshot-create', 'snapshot.before-commit', snapshotCreated],
    ['snapshot-create', 'snapshot.after-commit', snapshotCreated],
    ['snapshot-delete', 'snapshot-delete.after-commit', snapshotDeleted],
    ['snapshot-delete', 'absorb.midway', snapshotDeleted],
    ['snapshot-delete', 'absorb.after-commit', snapshotDeleted],
    ['snapshot-delete-newest', 'merge.midway', newestDeleted],
    ['snapshot-delete-newest', 'merge.after-commit', newestDeleted],
    ['clone', 'clone.before-commit', cloned],
    ['clone', 'clone.after-commit', cloned],
    ['resize', 'update.before-commit', resized],
    ['resize', 'update.after-commit', resized],
    ['restore', 'restore.before-commit', restored],
    ['restore', 'restore.after-commit', restored],
    ['volume-delete', 'volume-delete.after-commit', volumeDeleted],
    ['volume-delete', 'layer-delete.after-commit', volumeDeleted],
  ];

  for (const [scenario, point, check] of cases) {
    it(`${scenario} killed at ${point} leaves the old or the new state`, async () => {
      const { expect: want, signal, out } = await runDriver(dir, scenario, point, false);
      expect(out).not.toContain('FINISHED');
      expect(signal).toBe('SIGKILL');
      const e = await reopen();
      const outcome = await check(e, want);
      expect(['old', 'new']).toContain(outcome);
      // Start-up garbage collection leaves no layer files that no record names.
      await e.close();
      const e2 = await reopen();
      await check(e2, want);
    });
  }

  async function snapshotCreated(e: VolumeEngine, want: Expect): Promise<'old' | 'new'> {
    expect(await digest(await e.openExport('vol'))).toBe(want.live);
    const names = (await e.listSnapshots('vol')).map((s) => s.name);
    if (names.includes('c')) {
      expect(await digest(await e.openExport('vol@c'))).toBe(want.live);
      return 'new';
    }
    expect(names).toEqual(['a', 'b']);
    return 'old';
  }

  async function snapshotDeleted(e: VolumeEngine, want: Expect): Promise<'old' | 'new'> {
    expect(await digest(await e.openExport('vol'))).toBe(want.live);
    expect(await digest(await e.openExport('vol@b'))).toBe(want.b);
    const names = (await e.listSnapshots('vol')).map((s) => s.name);
    if (names.includes('a')) {
      expect(await digest(await e.openExport('vol@a'))).toBe(want.a);
      return 'old';
    }
    expect(names).toEqual(['b']);
    return 'new';
  }

  async function newestDeleted(e: VolumeEngine, want: Expect): Promise<'old' | 'new'> {
    expect(await digest(await e.openExport('vol'))).toBe(want.live);
    expect(await digest(await e.openExport('vol@a'))).toBe(want.a);
    const names = (await e.listSnapshots('vol')).map((s) => s.name);
    if (names.includes('b')) {
      expect(await digest(await e.openExport('vol@b'))).toBe(want.b);
      return 'old';
    }
    expect(names).toEqual(['a']);
    return 'new';
  }

  async function cloned(e: VolumeEngine, want: Expect): Promise<'old' | 'new'> {
    expect(await digest(await e.openExport('vol'))).toBe(want.live);
    const vols = (await e.listVolumes()).map((v) => v.name);
    if (vols.includes('copy')) {
      expect(await digest(await e.openExport('copy'))).toBe(want.b);
      return 'new';
    }
    return 'old';
  }

  async function resized(e: VolumeEngine, want: Expect): Promise<'old' | 'new'> {
    const size = (await e.inspectVolume('vol')).size;
    expect(await digest(await e.openExport('vol'), 16 * MiB)).toBe(want.live);
    if (size === 32 * MiB) return 'new';
    expect(size).toBe(16 * MiB);
    return 'old';
  }

  async function restored(e: VolumeEngine, want: Expect): Promise<'old' | 'new'> {
    expect(await digest(await e.openExport('vol@a'))).toBe(want.a);
    expect(await digest(await e.openExport('vol@b'))).toBe(want.b);
    const live = await digest(await e.openExport('vol'));
    if (live === want.a) return 'new';
    expect(live).toBe(want.live);
    return 'old';
  }

  async function volumeDeleted(e: VolumeEngine, want: Expect): Promise<'old' | 'new'> {
    expect(await digest(await e.openExport('keep'))).toBe(want.a);
    const vols = (await e.listVolumes()).map((v) => v.name);
    if (vols.includes('vol')) {
      expect(await digest(await e.openExport('vol'))).toBe(want.live);
      return 'old';
    }
    expect(vols).toEqual(['keep']);
    return 'new';
  }

  it('removes layer files that no record names at start-up', async () => {
    await runDriver(dir, 'snapshot-create', 'snapshot.before-commit', false);
    const e = await reopen();
    await e.deleteVolume('vol');
    await e.close();
    engine = undefined;
    const e2 = await reopen();
    expect(await e2.listVolumes()).toEqual([]);
    expect(await readdir(join(dir, 'layers'))).toEqual([]);
  });
});

/**
 * End to end through the built CLI: `node dist/cli/main.js node start` on free loopback ports and a temp data dir,
 * then `ferry volume ...` commands against it. Needs `npm run build` first (the test script does it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';
import { freePort } from './support/ports.js';

const GiB = 1024 ** 3;

let dataDir: string;
let testNode: TestNode | undefined;
let apiUrl: string;
let nbdUrl: string;

function ferry(...args: string[]): Promise<CliResult> {
  return runFerry(apiUrl, args);
}

function ferryJson<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  return runFerryJson<T>(apiUrl, args);
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-volume-'));
  testNode = await startTestNode(dataDir);
  apiUrl = testNode.apiUrl;
  nbdUrl = testNode.nbdUrl;
  expect(apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(nbdUrl).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+$/);
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Writes `pattern` over [offset, offset+length) of an export with qemu-io, when it is installed. */
function qemuWrite(exportName: string, offset: number, length: number, pattern: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      'qemu-io',
      ['-f', 'raw', '-c', `write -P ${pattern} ${offset} ${length}`, `${nbdUrl}/${exportName}`],
      { timeout: 30_000 },
      (error) => resolve(error === null),
    );
  });
}

const HAS_QEMU_IO = existsSync('/usr/bin/qemu-io');

describe('ferry volume', () => {
  it('creates (idempotently), lists as a table, and inspects a volume', async () => {
    const created = await ferry(
      'volume',
      'create',
      'vol1',
      '--size',
      '1G',
      '--label',
      'app=pg',
      '--label',
      'tier=gold',
    );
    expect(created.code).toBe(0);
    const id = /Volume successfully created: (\S+)/.exec(created.stdout)?.[1];
    expect(id).toBeDefined();
    const again = await ferryJson<{ volume_id: string }>(
      'volume',
      'create',
      'vol1',
      '--size',
      '1GiB',
      '--label',
      'app=pg',
    );
    expect(again.volume_id).toBe(id);

    const list = await ferry('volume', 'list');
    expect(list.code).toBe(0);
    const [header, row, ...rest] = list.stdout.trimEnd().split('\n');
    expect(header?.split(/\s+/)).toEqual(['ID', 'NAME', 'SIZE', 'USED', 'HA', 'SNAPSHOTS', 'STATUS']);
    expect(row).toMatch(new RegExp(`^${id}\\s+vol1\\s+1 GiB\\s+0 B\\s+1\\s+0\\s+up - detached$`));
    expect(rest).toEqual([]);

    const listJson = await ferryJson<{ volumes: { volume: { id: string } }[] }>('volume', 'list');
    expect(listJson.volumes.map((v) => v.volume.id)).toEqual([id]);

    const inspect = await ferry('volume', 'inspect', 'vol1');
    expect(inspect.stdout).toMatch(/Name\s+:\s+vol1/);
    expect(inspect.stdout).toMatch(/Size\s+:\s+1 GiB \(1073741824 bytes\)/);
    expect(inspect.stdout).toMatch(/Labels\s+:\s+app=pg,tier=gold/);
    const inspectJson = await ferryJson<{ volume: { id: string; spec: { size: number } } }>('volume', 'inspect', id!);
    expect(inspectJson.volume).toMatchObject({ id, spec: { size: GiB } });
  });

  it('resizes, and refuses to shrink with exit 2 naming the field', async () => {
    await ferry('volume', 'create', 'grow', '--size', '1G');
    const resized = await ferry('volume', 'resize', 'grow', '--size', '2G');
    expect([resized.code, resized.stdout.trim()]).toEqual([0, 'Volume grow resized to 2 GiB']);
    const shrink = await ferry('volume', 'resize', 'grow', '--size', '1G');
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toMatch(/^error: spec\.size: volumes cannot shrink/);
    const view = await ferryJson<{ volume: { spec: { size: number } } }>('volume', 'inspect', 'grow');
    expect(view.volume.spec.size).toBe(2 * GiB);
  });

  it('takes, lists, restores and deletes snapshots, diffs and clones', async () => {
    await ferry('volume', 'create', 'data', '--size', '64M');
    if (HAS_QEMU_IO) expect(await qemuWrite('data', 0, 4096, 0x11)).toBe(true);
    const snap = await ferry('volume', 'snapshot', 'create', 'data', '--name', 'before', '--label', 'kind=manual');
    expect(snap.code).toBe(0);
    const snapId = /Volume snap successful: (\S+)/.exec(snap.stdout)?.[1];
    expect(snapId).toBeDefined();
    if (HAS_QEMU_IO) expect(await qemuWrite('data', 1024 * 1024, 8192, 0x22)).toBe(true);

    const list = await ferry('volume', 'snapshot', 'list', 'data');
    expect(list.stdout).toMatch(new RegExp(`${snapId}\\s+before\\s+data@before\\s+64 MiB`));
    const listJson = await ferryJson<{ volumes: { volume: { id: string; readonly: boolean } }[] }>(
      'volume',
      'snapshot',
      'list',
      'data',
    );
    expect(listJson.volumes.map((v) => [v.volume.id, v.volume.readonly])).toEqual([[snapId, true]]);

    const diff = await ferryJson<{ extents: { offset: number; length: number }[]; size: number }>(
      'volume',
      'diff',
      'data',
      '--base',
      'before',
    );
    expect(diff.size).toBe(64 * 1024 ** 2);
    if (HAS_QEMU_IO) {
      expect(diff.extents).toEqual([{ offset: 1024 * 1024, length: 8192 }]);
      const all = await ferry('volume', 'diff', 'data');
      expect(all.stdout).toMatch(/2 extents, 12 KiB changed of 64 MiB/);
    }

    const clone = await ferry('volume', 'clone', 'data@before', '--name', 'data-copy');
    expect(clone.code).toBe(0);
    const cloneView = await ferryJson<{ volume: { source: { parent: string } } }>('volume', 'inspect', 'data-copy');
    expect(cloneView.volume.source.parent).toBe(snapId);

    const restored = await ferry('volume', 'snapshot', 'restore', 'data', '--snapshot', 'before');
    expect(restored.code).toBe(0);
    if (HAS_QEMU_IO) {
      const after = await ferryJson<{ extents: unknown[] }>('volume', 'diff', 'data', '--base', snapId!);
      expect(after.extents).toEqual([]);
    }

    const notSnapshot = await ferry('volume', 'snapshot', 'delete', 'data');
    expect(notSnapshot.code).toBe(2);
    expect(notSnapshot.stderr).toMatch(/^error: "data" is a volume, not a snapshot/);
    const deleted = await ferry('volume', 'snapshot', 'delete', 'data@before');
    expect([deleted.code, deleted.stdout.trim()]).toEqual([0, 'Snapshot data@before successfully deleted']);
    expect(await ferryJson('volume', 'snapshot', 'list', 'data')).toEqual({ volumes: [] });
  });

  it('deletes a volume by name', async () => {
    await ferry('volume', 'create', 'gone', '--size', '4096');
    const deleted = await ferry('volume', 'delete', 'gone');
    expect([deleted.code, deleted.stdout.trim()]).toEqual([0, 'Volume gone successfully deleted']);
    const missing = await ferry('volume', 'inspect', 'gone');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: no volume or snapshot "gone"/);
  });
});

describe('ferry errors and exit codes', () => {
  it('exits 2 for bad usage and INVALID_ARGUMENT, 1 for other failures, with "error: " on stderr', async () => {
    const badSize = await ferry('volume', 'create', 'x', '--size', '10X');
    expect(badSize.code).toBe(2);
    expect(badSize.stderr).toMatch(/^error: .*10X/);
    const missingOption = await ferry('volume', 'create', 'x');
    expect(missingOption.code).toBe(2);
    expect(missingOption.stderr).toMatch(/^error: required option '--size <size>'/);
    const unknownCommand = await ferry('volume', 'frobnicate');
    expect(unknownCommand.code).toBe(2);
    const badName = await ferry('volume', 'create', 'a@b', '--size', '1G');
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/^error: name: /);
    const unaligned = await ferry('volume', 'create', 'odd', '--size', '4097');
    expect(unaligned.code).toBe(2);
    expect(unaligned.stderr).toMatch(/^error: .*"4097" is not a whole number of 4 KiB blocks$/m);

    await ferry('volume', 'create', 'taken', '--size', '1G');
    const conflict = await ferry('volume', 'create', 'taken', '--size', '2G');
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^error: volume taken already exists/);
    expect(await ferryJson<{ volumes: unknown[] }>('volume', 'list')).toMatchObject({
      volumes: expect.not.arrayContaining([expect.objectContaining({ name: 'odd' })]),
    });
  });

  it('exits 1 with a hint when the API cannot be reached', async () => {
    const port = await freePort();
    const result = await ferry('--api', `http://127.0.0.1:${port}`, 'volume', 'list');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: cannot reach the Ferry API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });

  it('documents the exit codes in the help epilogue, and --json on every command', async () => {
    const help = await ferry('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit status:\n {2}0 {2}success\n {2}1 .*\n {2}2 /);
    const sub = await ferry('volume', 'snapshot', 'create', '--help');
    expect(sub.stdout).toMatch(/--json/);
    const version = await ferry('--version');
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

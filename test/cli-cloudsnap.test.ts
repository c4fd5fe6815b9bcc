/**
 * End to end through the built CLI against a real `ferry node start` (temp data dir, free loopback ports): a
 * directory credential, a volume written with `nbdcopy`, `ferry cloudsnap backup --wait`, `list`, `status`,
 * `catalog`, `restore --wait`, then `qemu-img compare` of both volumes over NBD. Needs `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudBackupInfoView } from '../api/index.js';
import { formatSize } from '../common/index.js';
import { type CliResult, runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';

const MiB = 1024 * 1024;

let dataDir: string;
let testNode: TestNode | undefined;
let apiUrl: string;
let nbdUrl: string;

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function ferry(...args: string[]): Promise<CliResult> {
  return runFerry(apiUrl, args);
}

function ferryJson<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  return runFerryJson<T>(apiUrl, args);
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-cloudsnap-'));
  await mkdir(join(dataDir, 'objects', 'backups'), { recursive: true });
  testNode = await startTestNode(join(dataDir, 'node'));
  apiUrl = testNode.apiUrl;
  nbdUrl = testNode.nbdUrl;
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('ferry cloudsnap', () => {
  it('backs a volume up, lists it, restores it, and the copy compares equal over NBD', async () => {
    const created = await ferry(
      'credentials',
      'create',
      'local',
      '--provider',
      'directory',
      '--path',
      join(dataDir, 'objects'),
      '--bucket',
      'backups',
    );
    expect(created.code, created.stderr).toBe(0);
    expect((await ferry('volume', 'create', 'src', '--size', '16M')).code).toBe(0);

    // An image with data, text and holes; nbdcopy keeps the holes as holes.
    const image = Buffer.alloc(16 * MiB);
    randomBytes(3 * MiB).copy(image, 0);
    Buffer.from('ferry cloudsnap '.repeat(65536)).copy(image, 9 * MiB);
    randomBytes(4096).copy(image, 16 * MiB - 4096);
    const raw = join(dataDir, 'src.raw');
    await writeFile(raw, image);
    const copy = await run('nbdcopy', [raw, `${nbdUrl}/src`]);
    expect(copy.code, copy.stderr).toBe(0);

    const backup = await ferryJson<{ status: string; backup_id: string; task_id: string; bytes_done: number }>(
      'cloudsnap',
      'backup',
      'src',
      '--cred',
      'local',
      '--label',
      'app=test',
      '--wait',
    );
    expect(backup.status).toBe('Done');
    expect(backup.bytes_done).toBeGreaterThanOrEqual(4 * MiB);

    const list = await ferry('cloudsnap', 'list', '--cred', 'local');
    expect(list.code).toBe(0);
    const [header, row] = list.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^BACKUP ID\s+VOLUME\s+COMPLETED\s+SIZE\s+STORED\s+ADDED\s+TYPE\s+LABELS$/);
    expect(row?.split(/\s{2,}/).slice(0, 2)).toEqual([backup.backup_id, 'src']);
    // STORED: the data the backup holds (3 MiB random, 1 MiB of text, 4 KiB at the end, in whole 64 KiB chunks);
    // ADDED: what it uploaded, the text compressed to almost nothing.
    const [listed] = (await ferryJson<{ backups: CloudBackupInfoView[] }>('cloudsnap', 'list', '--cred', 'local'))
      .backups;
    expect(listed?.bytes_stored).toBe(4 * MiB + 64 * 1024);
    expect(listed?.bytes_uploaded).toBeGreaterThan(3 * MiB);
    expect(listed?.bytes_uploaded).toBeLessThan(4 * MiB);
    expect(row).toMatch(
      new RegExp(
        `16 MiB\\s+4.1 MiB\\s+${formatSize(listed?.bytes_uploaded ?? 0).replace('.', '\\.')}\\s+full\\s+app=test$`,
      ),
    );
    const all = await ferryJson<{ backups: { id: string; credential: string }[] }>('cloudsnap', 'list');
    expect(all.backups.map((b) => [b.id, b.credential])).toEqual([[backup.backup_id, 'local']]);

    const status = await ferry('cloudsnap', 'status', backup.task_id);
    expect(status.stdout).toMatch(/^Status\s+:\s+Done$/m);
    const watched = await ferry('cloudsnap', 'status', backup.task_id, '--watch');
    expect(watched.code).toBe(0);
    expect(watched.stderr).toMatch(new RegExp(`^Backup ${backup.task_id} Done`, 'm'));
    const catalog = await ferry('cloudsnap', 'catalog', backup.backup_id, '--cred', 'local');
    expect(catalog.stdout).toMatch(/^0\s+3145728\s+3 MiB$/m);
    expect(catalog.stdout).toMatch(/3 extents/);

    const restore = await ferry('cloudsnap', 'restore', backup.backup_id, '--cred', 'local', '--name', 'dst', '--wait');
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout).toMatch(new RegExp(`^Restore of ${backup.backup_id} into dst done: `));
    const compare = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `${nbdUrl}/src`, `${nbdUrl}/dst`]);
    expect(compare.stdout + compare.stderr).toMatch(/Images are identical/);
    expect(compare.code).toBe(0);

    const again = await ferry('cloudsnap', 'restore', backup.backup_id, '--cred', 'local', '--name', 'dst', '--wait');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: volume dst already exists/);

    const verify = await ferry('cloudsnap', 'verify', '--cred', 'local', '--data-percent', '100', '--wait');
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^Verified 1 backups: .*: no problems$/m);
    // Progress on stderr as plain lines (not a terminal), ending with the job's final status.
    expect(verify.stderr).toMatch(/^Verify \S+ Done: .* packs/m);
    const started = await ferry('cloudsnap', 'verify', '--cred', 'local');
    expect(started.stdout).toMatch(/^Verify started: task \S+/);

    // A damaged pack: verify --wait lists it with the backup and volume range it affects, and exits 1.
    const bucket = join(dataDir, 'objects', 'backups');
    const packs = (await readdir(join(bucket, 'packs'), { recursive: true, withFileTypes: true })).filter((e) =>
      e.isFile(),
    );
    const pack = packs[0] as (typeof packs)[number];
    const path = join(pack.parentPath, pack.name);
    const body = await readFile(path);
    body[100] = (body[100] ?? 0) ^ 0xff;
    await writeFile(path, body);
    const bad = await ferry('cloudsnap', 'verify', '--cred', 'local', '--data-percent', '100', '--wait');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/: 1 problem$/m);
    expect(bad.stdout).toContain(`1. pack packs/${pack.name.slice(0, 2)}/${pack.name}: chunks in this pack failed`);
    expect(bad.stdout).toMatch(
      new RegExp(`^   affects backup ${backup.backup_id} \\(volume bytes 0 B\\+64 KiB\\); 1 chunk$`, 'm'),
    );
    expect(bad.stderr).toMatch(/^error: verify found 1 problem$/m);
    body[100] = (body[100] ?? 0) ^ 0xff;
    await writeFile(path, body);
    const deleted = await ferry('cloudsnap', 'delete', backup.backup_id, '--cred', 'local');
    expect(deleted.code).toBe(0);
    expect((await ferryJson<{ backups: unknown[] }>('cloudsnap', 'list', '--cred', 'local')).backups).toEqual([]);
  });

  it('repair index rebuilds lost index objects from the packs', async () => {
    expect((await ferry('volume', 'create', 'rep', '--size', '8M')).code).toBe(0);
    const raw = join(dataDir, 'rep.raw');
    await writeFile(raw, randomBytes(4 * MiB));
    const copy = await run('nbdcopy', [raw, `${nbdUrl}/rep`]);
    expect(copy.code, copy.stderr).toBe(0);
    const backup = await ferryJson<{ status: string }>('cloudsnap', 'backup', 'rep', '--cred', 'local', '--wait');
    expect(backup.status).toBe('Done');
    const index = join(dataDir, 'objects', 'backups', 'index');
    for (const name of await readdir(index)) await rm(join(index, name));

    const repaired = await ferry('cloudsnap', 'repair', 'index', '--cred', 'local');
    expect(repaired.code, repaired.stderr).toBe(0);
    expect(repaired.stdout).toMatch(/0 damaged index objects, [1-9]\d* packs indexed again from their headers/);
    expect((await readdir(index)).length).toBeGreaterThan(0);
    const again = await ferryJson<{ repositories: { packs_reindexed: number }[] }>(
      'cloudsnap',
      'repair',
      'index',
      '--cred',
      'local',
    );
    expect(again.repositories[0]?.packs_reindexed).toBe(0);
    const bad = await ferry('cloudsnap', 'repair', 'packs', '--cred', 'local');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/only `index` can be repaired/);
  });
});

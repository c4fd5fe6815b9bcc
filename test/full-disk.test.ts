/**
 * A full data directory, on a real node whose data directory is a small ext4 file system made here (a loop-mounted
 * 256 MiB file, unmounted and removed after; needs root and loop devices). It is filled through NBD writes, then to
 * the last block by a filler file, and the node must: refuse writes with ENOSPC, say so in /readyz, /metrics and
 * `ferry status`, refuse creates with RESOURCE_EXHAUSTED naming the space, delete snapshots and volumes (which frees
 * the space), start again after kill -9 on the full disk, and leave the other volume's data bit-identical.
 * Needs `npm run build`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeStatusReport } from '../cli/index.js';
import { runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';
import { ok, run } from './support/run.js';

const MiB = 1024 * 1024;
let base: string;
let mnt: string;
let dataDir: string;
let mounted = false;
let node: TestNode | undefined;
let keepHash: string;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function freeBytes(): Promise<number> {
  const s = await statfs(mnt);
  return s.bavail * s.bsize;
}

/** Writes random 1 MiB blocks into `url` up to `to` (default: its end) or the first error; says where and why it stopped. */
async function fillThroughNbd(
  url: string,
  to?: number,
): Promise<{ written: number; error: { errno: string; message: string } | null }> {
  const script = [
    'import os, json',
    'off = 0',
    `size = ${to ?? 'h.get_size()'}`,
    'err = None',
    'while off < size:',
    '    try:',
    `        h.pwrite(os.urandom(${MiB}), off)`,
    '    except nbd.Error as e:',
    "        err = {'errno': e.errno, 'message': e.string}",
    '        break',
    `    off += ${MiB}`,
    "print(json.dumps({'written': off, 'error': err}))",
  ].join('\n');
  return JSON.parse(await ok('nbdsh', ['-u', url, '-c', script]));
}

/** Fills the file system to its last block with a file outside the data directory (what another program might do). */
async function fillToTheBrim(name: string): Promise<void> {
  const result = await run('dd', ['if=/dev/zero', `of=${join(mnt, name)}`, 'bs=1M', 'conv=fsync']);
  expect(result.stderr).toMatch(/No space left on device/);
  expect(await freeBytes()).toBeLessThan(MiB);
}

let token: string | undefined;

/** An admin token minted with the node's admin secret (the same secret across restarts: the data dir keeps it). */
async function adminToken(): Promise<string> {
  if (token !== undefined) return token;
  const result = await runFerry((node as TestNode).apiUrl, [
    'auth',
    'token',
    '--sub',
    'admin',
    '--roles',
    'system.admin',
  ]);
  expect(result.code, result.stderr).toBe(0);
  token = result.stdout.trim();
  return token;
}

async function api(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${(node as TestNode).apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${await adminToken()}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${(node as TestNode).apiUrl}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function readKeep(): Promise<string> {
  const back = join(base, `keep-${randomBytes(4).toString('hex')}.img`);
  await ok('nbdcopy', [`${(node as TestNode).nbdUrl}/keep`, back]);
  const hash = sha256(await readFile(back));
  await rm(back);
  return hash;
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-full-disk-'));
  mnt = join(base, 'mnt');
  await mkdir(mnt);
  const image = join(base, 'fs.img');
  await ok('truncate', ['-s', '256M', image]);
  await ok('mkfs.ext4', ['-q', '-m', '0', image]);
  await ok('mount', ['-o', 'loop', image, mnt]);
  mounted = true;
  dataDir = join(mnt, 'ferry');
  node = await startTestNode(dataDir);
  // The other volume, written before the disk fills.
  const keep = randomBytes(32 * MiB);
  keepHash = sha256(keep);
  await writeFile(join(base, 'keep.img'), keep);
  expect((await runFerry(node.apiUrl, ['volume', 'create', 'keep', '--size', '32M'])).code).toBe(0);
  await ok('nbdcopy', [join(base, 'keep.img'), `${node.nbdUrl}/keep`]);
  await rm(join(base, 'keep.img'));
}, 120_000);

afterAll(async () => {
  await node?.stop();
  if (mounted) await ok('umount', [mnt]);
  await rm(base, { recursive: true, force: true });
});

describe('a full data directory', () => {
  it('refuses writes with ENOSPC once full, and reports it in /readyz, /metrics and ferry status', async () => {
    const n = node as TestNode;
    const ready = await readyz();
    expect(ready.status).toBe(200);
    expect(ready.body.space).toMatchObject({ state: 'ok', reserve_held: true, warn_percent: 90 });

    expect((await runFerry(n.apiUrl, ['volume', 'create', 'fill', '--size', '1G'])).code).toBe(0);
    // A snapshot holds the first 64 MiB, which the volume then overwrites: deleting it is what gives space back later.
    expect(await fillThroughNbd(`${n.nbdUrl}/fill`, 64 * MiB)).toEqual({ written: 64 * MiB, error: null });
    expect((await runFerry(n.apiUrl, ['volume', 'snapshot', 'create', 'fill', '--name', 'old'])).code).toBe(0);
    const first = await fillThroughNbd(`${n.nbdUrl}/fill`);
    expect(first.written).toBeLessThan(200 * MiB);
    expect(first.written).toBeGreaterThan(64 * MiB);
    expect(first.error).toMatchObject({ errno: 'ENOSPC' });
    expect(first.error?.message).toMatch(/No space left on device/);

    const full = await readyz();
    expect(full.status).toBe(503);
    expect(full.body.checks).toMatchObject({ data_dir: expect.stringMatching(/^out of space: .* free of .*MiB/) });
    expect(full.body.space).toMatchObject({ state: 'full', reserve_held: true });

    const metrics = await (await fetch(`${n.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/^ferry_data_dir_state\{state="full"\} 1$/m);
    expect(metrics).toMatch(/^ferry_data_dir_state\{state="ok"\} 0$/m);
    expect(metrics).toMatch(/^ferry_data_dir_free_bytes \d+$/m);
    expect(metrics).toMatch(/^ferry_data_dir_warn_percent 90$/m);

    const status = await runFerry(n.apiUrl, ['status']);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^Ready {4}: no: not ready: data_dir \(out of space/m);
    expect(status.stdout).toMatch(/^Space {4}: full: .* free of .* \(\d+(\.\d)?% used\) in .*; warn at 90% used/m);
    const json = JSON.parse((await runFerry(n.apiUrl, ['--json', 'status'])).stdout) as NodeStatusReport;
    expect(json.space?.state).toBe('full');
  });

  it('refuses creates with RESOURCE_EXHAUSTED naming the space', async () => {
    const created = await api('POST', '/v1/volumes', { name: 'more', spec: { size: MiB } });
    expect(created.status).toBe(429);
    expect(created.body.code).toBe('RESOURCE_EXHAUSTED');
    expect(created.body.message).toMatch(
      /^volume more cannot be created: the data directory .* is full: .* free of .*MiB \(.*% used; .*\); delete snapshots or volumes/,
    );
    const snap = await api('POST', '/v1/volumes/snapshots', { volume_id: 'keep', name: 's' });
    expect(snap.body.code).toBe('RESOURCE_EXHAUSTED');
    const clone = await api('POST', '/v1/volumes/clone', { name: 'copy', parent_id: 'keep' });
    expect(clone.body.code).toBe('RESOURCE_EXHAUSTED');
    const cli = await runFerry((node as TestNode).apiUrl, ['volume', 'create', 'more', '--size', '1M']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/is full: .* free of/);
  });

  it('deletes a snapshot and gives its space back with the disk filled to the last block', async () => {
    const n = node as TestNode;
    await fillToTheBrim('filler-1');

    const before = await freeBytes();
    const deleted = await runFerry(n.apiUrl, ['volume', 'snapshot', 'delete', 'fill@old']);
    expect(deleted.stderr).toBe('');
    expect(deleted.code).toBe(0);
    await until('the snapshot to give its space back', async () => (await freeBytes()) > before + 32 * MiB);
  });

  it('starts again after kill -9 on a full disk, and deletes the volume that filled it', async () => {
    await fillToTheBrim('filler-2');
    await (node as TestNode).kill('SIGKILL');
    node = await startTestNode(dataDir);
    const n = node;
    const full = await readyz();
    expect(full.status).toBe(503);
    expect(full.body.space).toMatchObject({ state: 'full' });
    expect(await readKeep()).toBe(keepHash);

    const before = await freeBytes();
    const deleted = await runFerry(n.apiUrl, ['volume', 'delete', 'fill']);
    expect(deleted.stderr).toBe('');
    expect(deleted.code).toBe(0);
    expect(await freeBytes()).toBeGreaterThan(before + 32 * MiB);
  });

  it('is ready again once space returns, takes new volumes, and the other volume reads back identical', async () => {
    await rm(join(mnt, 'filler-1'));
    await rm(join(mnt, 'filler-2'));
    await until('the node to be ready again', async () => (await readyz()).status === 200);
    expect((await readyz()).body.space).toMatchObject({ state: 'ok', reserve_held: true });
    const n = node as TestNode;
    expect((await runFerry(n.apiUrl, ['volume', 'create', 'more', '--size', '1M'])).code).toBe(0);
    expect(await readKeep()).toBe(keepHash);
    const status = await runFerryJson<NodeStatusReport>(n.apiUrl, ['status']);
    expect(status.ready).toBe(true);
    expect(status.space?.state).toBe('ok');
  });
});

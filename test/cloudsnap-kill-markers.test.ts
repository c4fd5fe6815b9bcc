/**
 * kill -9 of a node in the middle of a backup leaves its `running/` marker, which would hold garbage collection's
 * sweeps back for 24 hours: the node, started again on the same data directory, clears it (and says so in its log).
 * Through the built CLI and a real `ferry node start`; needs `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFerry, startTestNode, type TestNode } from './support/cli-node.js';

const MiB = 1024 * 1024;

let dir: string;
let node: TestNode | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-kill-markers-'));
  await mkdir(join(dir, 'objects', 'backups'), { recursive: true });
});

afterAll(async () => {
  await node?.stop();
  await rm(dir, { recursive: true, force: true });
});

function nbdcopy(from: string, to: string): Promise<number> {
  return new Promise((resolve) => {
    execFile('nbdcopy', [from, to], { timeout: 60_000 }, (error) => resolve(error === null ? 0 : 1));
  });
}

/** The markers in the bucket (by backup id: the directory store's temporary files of a put are left out). */
async function markers(): Promise<string[]> {
  const names = await readdir(join(dir, 'objects', 'backups', 'running')).catch(() => []);
  return names.filter((n) => /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}$/.test(n));
}

describe('running markers after kill -9', () => {
  it('a node started again clears the marker its killed process left', async () => {
    node = await startTestNode(join(dir, 'node'));
    const ferry = (...args: string[]) => runFerry((node as TestNode).apiUrl, args);
    const cred = await ferry(
      'credentials',
      'create',
      'local',
      '--provider',
      'directory',
      '--path',
      join(dir, 'objects'),
      '--bucket',
      'backups',
    );
    expect(cred.code, cred.stderr).toBe(0);
    expect((await ferry('volume', 'create', 'big', '--size', '256M')).code).toBe(0);
    const raw = join(dir, 'big.raw');
    await writeFile(raw, randomBytes(192 * MiB));
    expect(await nbdcopy(raw, `${node.nbdUrl}/big`)).toBe(0);
    await rm(raw);

    const started = await ferry('cloudsnap', 'backup', 'big', '--cred', 'local');
    expect(started.code, started.stderr).toBe(0);
    // Killed as soon as the backup's marker is there, long before 192 MiB are read and uploaded.
    for (let i = 0; i < 3000 && (await markers()).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await node.kill('SIGKILL');
    const left = await markers();
    expect(left).toHaveLength(1);

    const again = await startTestNode(join(dir, 'node'));
    node = again;
    const cleared = (): { backups?: string[] } | undefined =>
      again.log
        .map((l) => JSON.parse(l) as { msg?: string; backups?: string[] })
        .find((l) => l.msg?.startsWith('cleared running markers'));
    for (let i = 0; i < 400 && cleared() === undefined; i++) await new Promise((r) => setTimeout(r, 25));
    expect(cleared()?.backups).toEqual(left);
    expect(await markers()).toEqual([]);
  });
});

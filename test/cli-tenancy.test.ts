/**
 * Tenancy through a real `ferry node start` and the built CLI: the directory roots come from FERRY_DIRECTORY_ROOTS
 * (made 0700 at start); a system.user's directory credentials go under them only, never at "/" + etc; an admin may
 * point elsewhere; a user's credential onto the admin's repository lists, catalogs and restores nothing. Needs
 * `npm run build`.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFerry, startTestNode, type TestNode } from './support/cli-node.js';

let dataDir: string;
let roots: string;
let outside: string;
let node: TestNode;
let alice: string;

/** `ferry ...` as alice (FERRY_TOKEN; no admin secret reachable). */
function asAlice(args: string[]) {
  return runFerry(node.apiUrl, args, { FERRY_TOKEN: alice, FERRY_DATA_DIR: '/nonexistent' });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-tenancy-'));
  outside = await mkdtemp(join(tmpdir(), 'ferry-cli-tenancy-outside-'));
  roots = join(dataDir, 'tenants');
  node = await startTestNode(join(dataDir, 'node'), { FERRY_DIRECTORY_ROOTS: roots });
  const minted = await runFerry(node.apiUrl, ['auth', 'token', '--sub', 'alice', '--roles', 'system.user']);
  expect(minted.code, minted.stderr).toBe(0);
  alice = minted.stdout.trim();
});

afterAll(async () => {
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const dir = (name: string, path: string, bucket: string, ...more: string[]) => [
  'credentials',
  'create',
  name,
  '--provider',
  'directory',
  '--path',
  path,
  '--bucket',
  bucket,
  ...more,
];

describe('directory roots on a real node', () => {
  it('makes the roots 0700 at start and logs them', async () => {
    expect((await stat(roots)).mode & 0o777).toBe(0o700);
    const line = node.log.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'directory roots');
    expect(line).toMatchObject({ roots: [roots] });
  });

  it('lets a user create under the roots only, and refuses "/" + etc to everyone', async () => {
    const mine = await asAlice(dir('alices', roots, 'alice', '--create'));
    expect(mine.code, mine.stderr).toBe(0);
    const out = await asAlice(dir('out', outside, 'b', '--create'));
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`outside the directories this node allows for backups (${roots})`);
    expect(existsSync(join(outside, 'b'))).toBe(false);
    for (const as of [asAlice, (args: string[]) => runFerry(node.apiUrl, args)]) {
      const etc = await as(dir('etc', '/', 'etc'));
      expect(etc.code).toBe(1);
      expect(etc.stderr).toMatch(/^error: directory_credential\.path: "\/" is refused/);
    }
    const admin = await runFerry(node.apiUrl, dir('admins', outside, 'b', '--create'));
    expect(admin.code, admin.stderr).toBe(0);
  });

  it("backs up to an admin's directory outside the roots; gives a user's credential onto a repository nothing", async () => {
    const made = await runFerry(node.apiUrl, ['volume', 'create', 'payroll', '--size', '1M']);
    expect(made.code, made.stderr).toBe(0);
    const outsideBackup = await runFerry(node.apiUrl, ['cloudsnap', 'backup', 'payroll', '--cred', 'admins', '--wait']);
    expect(outsideBackup.code, outsideBackup.stderr).toBe(0);
    expect(existsSync(join(outside, 'b', 'config'))).toBe(true);
    // An admin's repository under the roots, and alice's own credential pointing at it.
    expect((await runFerry(node.apiUrl, dir('admins-in', roots, 'shared', '--create'))).code).toBe(0);
    const backup = await runFerry(node.apiUrl, [
      '--json',
      'cloudsnap',
      'backup',
      'payroll',
      '--cred',
      'admins-in',
      '--wait',
    ]);
    expect(backup.code, backup.stderr).toBe(0);
    const backupId = String((JSON.parse(backup.stdout) as { backup_id: string }).backup_id);
    expect((await asAlice(dir('sneaky', roots, 'shared'))).code).toBe(0);
    const list = await asAlice(['cloudsnap', 'list', '--cred', 'sneaky']);
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/belongs to another owner's credential/);
    expect((await asAlice(['cloudsnap', 'catalog', backupId, '--cred', 'sneaky'])).code).toBe(1);
    const restore = await asAlice(['cloudsnap', 'restore', backupId, '--cred', 'sneaky', '--name', 'stolen']);
    expect(restore.code).toBe(1);
    expect((await runFerry(node.apiUrl, ['volume', 'inspect', 'stolen'])).code).not.toBe(0);
  });
});

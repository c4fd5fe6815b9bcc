/**
 * End to end through the built CLI against a real `ferry node start` (temp data dir, free loopback ports):
 * `ferry keys create|list|rotate|destroy`, two teams' credentials on one bucket with their own KEKs, backups of an
 * empty volume under each, rotation of team-b (its restore still works), and destruction of team-a (its restore fails
 * saying the key was destroyed). Needs `npm run build` first.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';

let dataDir: string;
let testNode: TestNode | undefined;
let apiUrl: string;

function ferry(...args: string[]): Promise<CliResult> {
  return runFerry(apiUrl, args);
}

function ferryJson<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  return runFerryJson<T>(apiUrl, args);
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-keys-'));
  for (const team of ['team-a', 'team-b', 'team-c', 'team-d'])
    await mkdir(join(dataDir, 'objects', 'shared', team), { recursive: true });
  testNode = await startTestNode(dataDir, { FERRY_VAULT_ADDR: '', FERRY_KMS_REGION: '' });
  apiUrl = testNode.apiUrl;
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** A directory credential TEAM (bucket `shared`, prefix TEAM) under KEK TEAM, and a 1 MiB volume vol-TEAM. */
async function teamCredentialAndVolume(team: string): Promise<void> {
  const where = ['--path', join(dataDir, 'objects'), '--bucket', 'shared', '--prefix', team];
  await ferryJson('credentials', 'create', team, '--provider', 'directory', ...where, '--kek', team);
  await ferryJson('volume', 'create', `vol-${team}`, '--size', '1M');
}

describe('ferry keys', () => {
  it('create, list, rotate and destroy; restores across a rotation work, under a destroyed KEK they fail', async () => {
    for (const team of ['team-a', 'team-b']) {
      const created = await ferry('keys', 'create', team);
      expect([created.code, created.stdout.trim()]).toEqual([0, `KEK ${team} created (version 1)`]);
      await teamCredentialAndVolume(team);
    }
    const ids: Record<string, string> = {};
    for (const team of ['team-a', 'team-b']) {
      const done = await ferryJson<{ backup_id: string; status: string }>(
        'cloudsnap',
        'backup',
        `vol-${team}`,
        '--cred',
        team,
        '--wait',
      );
      expect(done.status).toBe('Done');
      ids[team] = done.backup_id;
    }

    const rotated = await ferry('keys', 'rotate', 'team-b', '--cred', 'team-b');
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/^KEK team-b \(local\) is at version 2$/m);
    expect(rotated.stdout).toMatch(/\s1\s+2\s+rewrapped$/m);

    const list = await ferry('keys', 'list');
    expect(list.stdout).toMatch(/^KEK\s+VERSION\s+STATE\s+CREATED$/m);
    expect(list.stdout).toMatch(/^team-b\s+2\s+active\s/m);
    expect(list.stdout).toMatch(/^Key providers: local$/m);

    const unconfirmed = await ferry('keys', 'destroy', 'team-a');
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/add --yes/);
    const destroyed = await ferry('keys', 'destroy', 'team-a', '--yes');
    expect([destroyed.code, destroyed.stdout.trim()]).toEqual([
      0,
      'KEK team-a destroyed: the backups under it (credentials: team-a) are unreadable',
    ]);
    expect((await ferryJson<{ keks: { id: string; destroyed: boolean }[] }>('keys', 'list')).keks).toContainEqual(
      expect.objectContaining({ id: 'team-a', destroyed: true }),
    );

    const lost = await ferry(
      'cloudsnap',
      'restore',
      ids['team-a'] ?? '',
      '--cred',
      'team-a',
      '--name',
      'a-copy',
      '--wait',
    );
    expect(lost.code).toBe(1);
    expect(lost.stderr).toMatch(/KEK "team-a" was destroyed/);
    expect(lost.stderr).toMatch(/unreadable/);
    const kept = await ferry(
      'cloudsnap',
      'restore',
      ids['team-b'] ?? '',
      '--cred',
      'team-b',
      '--name',
      'b-copy',
      '--wait',
    );
    expect(kept.code).toBe(0);
  });

  it('a failed rotate changes nothing (--json prints the error); destroy names encrypted volumes and needs --force; list shows what it can', async () => {
    for (const team of ['team-c', 'team-d']) {
      expect((await ferry('keys', 'create', team)).code).toBe(0);
      await teamCredentialAndVolume(team);
      const done = await ferryJson<{ status: string }>('cloudsnap', 'backup', `vol-${team}`, '--cred', team, '--wait');
      expect(done.status).toBe('Done');
    }
    await ferryJson('volume', 'create', 'pay-c', '--size', '1M', '--encrypted', '--kek', 'team-c');

    // A repository that cannot be rewrapped (its config altered): refused, twice, and the KEK stays at version 1.
    const configPath = join(dataDir, 'objects', 'shared', 'team-c', 'config');
    const good = await readFile(configPath);
    const altered = JSON.parse(good.toString('utf8')) as { mac: string };
    await writeFile(configPath, JSON.stringify({ ...altered, mac: '0'.repeat(64) }));
    for (let run = 0; run < 2; run++) {
      const failed = await ferry('--json', 'keys', 'rotate', 'team-c');
      expect(failed.code).toBe(1);
      const printed = JSON.parse(failed.stdout) as { error: { code: string; message: string } };
      expect(printed.error.code).toBe('DATA_CORRUPTION');
      expect(printed.error.message).toMatch(/was not rotated, nothing changed/);
      expect(failed.stderr).toMatch(/^error: KEK team-c \(local\) was not rotated/);
    }
    const keks = await ferryJson<{ keks: { id: string; version: number }[] }>('keys', 'list');
    expect(keks.keks.find((k) => k.id === 'team-c')?.version).toBe(1);
    await writeFile(configPath, good);

    const unconfirmed = await ferry('keys', 'destroy', 'team-c');
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(
      /makes the backups under it \(credentials: team-c\) and encrypted volume pay-c unreadable, for good; add --yes/,
    );
    const refused = await ferry('keys', 'destroy', 'team-c', '--yes');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/encrypted volume pay-c unreadable, for good: delete it first, or .*--force/);
    expect((await ferry('volume', 'list')).stdout).toMatch(/\spay-c\s.*\sup - detached$/m);

    const destroyed = await ferry('keys', 'destroy', 'team-c', '--yes', '--force');
    expect([destroyed.code, destroyed.stdout.trim()]).toEqual([
      0,
      'KEK team-c destroyed: the backups under it (credentials: team-c) and encrypted volume pay-c are unreadable',
    ]);
    expect((await ferry('volume', 'list')).stdout).toMatch(/\spay-c\s.*\sdown - KEK team-c destroyed$/m);
    expect((await ferry('volume', 'inspect', 'pay-c')).stdout).toMatch(/^Status\s+:\s+down - KEK team-c destroyed$/m);

    // Every credential without --cred: team-d's backup is listed; team-c is named on stderr, not hiding it.
    const listed = await ferry('cloudsnap', 'list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/\svol-team-d\s.*\steam-d$/m);
    expect(listed.stdout).not.toMatch(/vol-team-c/);
    expect(listed.stderr).toMatch(/^warning: credential team-c not listed: .*destroyed/m);
    const json = await ferry('--json', 'cloudsnap', 'list');
    const body = JSON.parse(json.stdout) as { backups: { credential: string }[]; errors: { credential: string }[] };
    expect(body.backups.map((b) => b.credential)).toContain('team-d');
    expect(body.errors.map((e) => e.credential)).toContain('team-c');
  });
});

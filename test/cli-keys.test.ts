/**
 * End to end through the built CLI against a real `ferry node start` (temp data dir, free loopback ports):
 * `ferry keys create|list|rotate|destroy`, two teams' credentials on one bucket with their own KEKs, backups of an
 * empty volume under each, rotation of team-b (its restore still works), and destruction of team-a (its restore fails
 * saying the key was destroyed). Needs `npm run build` first.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
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
  for (const team of ['team-a', 'team-b']) await mkdir(join(dataDir, 'objects', 'shared', team), { recursive: true });
  testNode = await startTestNode(dataDir, { FERRY_VAULT_ADDR: '', FERRY_KMS_REGION: '' });
  apiUrl = testNode.apiUrl;
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('ferry keys', () => {
  it('create, list, rotate and destroy; restores across a rotation work, under a destroyed KEK they fail', async () => {
    for (const team of ['team-a', 'team-b']) {
      const created = await ferry('keys', 'create', team);
      expect([created.code, created.stdout.trim()]).toEqual([0, `KEK ${team} created (version 1)`]);
      await ferryJson(
        'credentials',
        'create',
        team,
        '--provider',
        'directory',
        '--path',
        join(dataDir, 'objects'),
        '--bucket',
        'shared',
        '--prefix',
        team,
        '--kek',
        team,
      );
      await ferryJson('volume', 'create', `vol-${team}`, '--size', '1M');
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
});

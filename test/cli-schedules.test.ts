/**
 * `ferry policy ...`, `ferry cloudsnap schedules ...` and `ferry cloudsnap backup --group` through the built CLI
 * against a real `ferry node start` (temp data dir, free loopback ports). The scheduler's timing is covered by
 * api/schedules/scheduler.test.ts with a hand-driven clock; here: the commands, their output and exit codes.
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
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-schedules-'));
  await mkdir(join(dataDir, 'objects', 'backups'), { recursive: true });
  testNode = await startTestNode(join(dataDir, 'node'));
  apiUrl = testNode.apiUrl;
  const cred = await ferry(
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
  expect(cred.code, cred.stderr).toBe(0);
  for (const name of ['db', 'logs']) expect((await ferry('volume', 'create', name, '--size', '4M')).code).toBe(0);
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('ferry policy', () => {
  it('creates, lists, inspects, updates and deletes a policy with pxctl-style flags', async () => {
    const created = await ferry(
      'policy',
      'create',
      'nightly',
      '--daily',
      '02:00,7',
      '--weekly',
      'sun@03:30,4',
      '--keep-monthly',
      '12',
    );
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('Schedule policy nightly created');
    const { policy } = await ferryJson<{ policy: Record<string, unknown> }>('policy', 'inspect', 'nightly');
    expect(policy).toMatchObject({
      name: 'nightly',
      schedules: [
        { daily: { hour: 2, minute: 0 }, retain: 7 },
        { weekly: { day: 'Sunday', hour: 3, minute: 30 }, retain: 4 },
      ],
      retention: { monthly: 12 },
    });
    const table = await ferry('policy', 'list');
    expect(table.stdout).toMatch(/NAME\s+INTERVALS\s+GFS/);
    expect(table.stdout).toContain('daily 02:00 keep 7; weekly Sun 03:30 keep 4');
    expect(table.stdout).toContain('monthly 12');
    expect((await ferry('policy', 'update', 'nightly', '--periodic', '60,24')).code).toBe(0);
    const inspect = await ferry('policy', 'inspect', 'nightly');
    expect(inspect.stdout).toContain('every 60 min keep 24');
    expect((await ferry('policy', 'delete', 'nightly')).code).toBe(0);
    const gone = await ferry('policy', 'inspect', 'nightly');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error: no schedule policy nightly/);
  });

  it('rejects bad flags as usage errors (exit 2)', async () => {
    for (const args of [
      ['policy', 'create', 'p'],
      ['policy', 'create', 'p', '--daily', '25:00,7'],
      ['policy', 'create', 'p', '--daily', '02:00'],
      ['policy', 'create', 'p', '--weekly', 'someday@02:00,1'],
      ['policy', 'create', 'p', '--periodic', '60,0'],
      ['policy', 'create', 'p', '--monthly', '32@00:00,1'],
    ]) {
      const r = await ferry(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/error/);
    }
  });
});

describe('ferry cloudsnap schedules', () => {
  it('creates schedules with intervals or a policy, lists them with the next run, deletes them', async () => {
    expect((await ferry('policy', 'create', 'hourly', '--periodic', '60,24', '--keep-daily', '7')).code).toBe(0);
    const own = await ferryJson<{ backup_schedule_id: string }>(
      'cloudsnap',
      'schedules',
      'create',
      'db',
      '--cred',
      'local',
      '--daily',
      '01:15,3',
      '--max-backups',
      '5',
      '--label',
      'tier=gold',
    );
    const viaPolicy = await ferryJson<{ backup_schedule_id: string }>(
      'cloudsnap',
      'schedules',
      'create',
      'logs',
      '--cred',
      'local',
      '--policy',
      'hourly',
    );
    const { cloud_sched_list } = await ferryJson<{ cloud_sched_list: Record<string, Record<string, unknown>> }>(
      'cloudsnap',
      'schedules',
      'list',
    );
    expect(cloud_sched_list[own.backup_schedule_id]).toMatchObject({ max_backups: 5, labels: { tier: 'gold' } });
    expect(String(cloud_sched_list[own.backup_schedule_id]?.next_run)).toMatch(/T01:15:00.000Z$/);
    expect(cloud_sched_list[viaPolicy.backup_schedule_id]).toMatchObject({ policy_name: 'hourly' });
    const table = await ferry('cloudsnap', 'schedules', 'list');
    expect(table.stdout).toMatch(/^ID\s+VOLUME\s+CREDENTIAL\s+SCHEDULE\s+RETENTION\s+NEXT RUN\s+LAST$/m);
    expect(table.stdout).toMatch(
      new RegExp(`^${own.backup_schedule_id}\\s+db\\s+local\\s+daily 01:15\\s+keep 3 daily; at most 5\\s`, 'm'),
    );
    expect(table.stdout).toMatch(
      new RegExp(
        `^${viaPolicy.backup_schedule_id}\\s+logs\\s+local\\s+policy hourly: every 60 min\\s+keep 24 periodic; GFS daily 7\\s`,
        'm',
      ),
    );
    // Update moves the schedule to the policy: same id, its intervals now the policy's.
    const updated = await ferry(
      'cloudsnap',
      'schedules',
      'update',
      own.backup_schedule_id,
      '--volume',
      'db',
      '--cred',
      'local',
      '--policy',
      'hourly',
    );
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toContain(`Backup schedule ${own.backup_schedule_id} updated`);
    const after = await ferryJson<{ cloud_sched_list: Record<string, Record<string, unknown>> }>(
      'cloudsnap',
      'schedules',
      'list',
    );
    expect(after.cloud_sched_list[own.backup_schedule_id]).toMatchObject({ policy_name: 'hourly', schedules: [] });
    const inUse = await ferry('policy', 'delete', 'hourly');
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toContain('is used by 2 schedule');
    for (const id of [own.backup_schedule_id, viaPolicy.backup_schedule_id]) {
      expect((await ferry('cloudsnap', 'schedules', 'delete', id)).code).toBe(0);
    }
    expect(
      Object.keys((await ferryJson<{ cloud_sched_list: object }>('cloudsnap', 'schedules', 'list')).cloud_sched_list),
    ).toEqual([]);
    const both = await ferry(
      'cloudsnap',
      'schedules',
      'create',
      'db',
      '--cred',
      'local',
      '--policy',
      'hourly',
      '--daily',
      '01:00,1',
    );
    expect(both.code).toBe(2);
  });
});

describe('deleting what a schedule uses', () => {
  it('volume delete and credentials delete refuse naming the schedule; --with-schedules deletes both', async () => {
    expect((await ferry('volume', 'create', 'scratch', '--size', '4M')).code).toBe(0);
    const cred = await ferry(
      'credentials',
      'create',
      'spare',
      '--provider',
      'directory',
      '--path',
      join(dataDir, 'objects'),
      '--bucket',
      'backups',
    );
    expect(cred.code, cred.stderr).toBe(0);
    const onVolume = await ferryJson<{ backup_schedule_id: string }>(
      'cloudsnap',
      'schedules',
      'create',
      'scratch',
      '--cred',
      'local',
      '--daily',
      '01:00,1',
    );
    const onCred = await ferryJson<{ backup_schedule_id: string }>(
      'cloudsnap',
      'schedules',
      'create',
      'db',
      '--cred',
      'spare',
      '--daily',
      '01:00,1',
    );
    const refused = await ferry('volume', 'delete', 'scratch');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`volume scratch is used by cloud backup schedule ${onVolume.backup_schedule_id}`);
    expect(refused.stderr).toContain('--with-schedules');
    const deleted = await ferry('volume', 'delete', 'scratch', '--with-schedules');
    expect([deleted.code, deleted.stdout.trim()]).toEqual([
      0,
      `Volume scratch successfully deleted, with its cloud backup schedule ${onVolume.backup_schedule_id}`,
    ]);
    const credRefused = await ferry('credentials', 'delete', 'spare');
    expect(credRefused.code).toBe(1);
    expect(credRefused.stderr).toContain(
      `credential spare is used by cloud backup schedule ${onCred.backup_schedule_id}`,
    );
    expect((await ferry('credentials', 'delete', 'spare', '--with-schedules')).code).toBe(0);
    const left = await ferryJson<{ cloud_sched_list: object }>('cloudsnap', 'schedules', 'list');
    expect(Object.keys(left.cloud_sched_list)).not.toContain(onVolume.backup_schedule_id);
    expect(Object.keys(left.cloud_sched_list)).not.toContain(onCred.backup_schedule_id);
    expect((await ferry('credentials', 'inspect', 'spare')).code).toBe(1);
  });
});

describe('ferry cloudsnap backup --group', () => {
  it('backs several volumes up at one point in time and waits for all of them', async () => {
    const result = await ferryJson<{
      group_cloud_backup_id: string;
      task_ids: string[];
      statuses: Array<Record<string, unknown>>;
    }>('cloudsnap', 'backup', '--group', 'db,logs', '--group-id', 'g1', '--cred', 'local', '--wait');
    expect(result.group_cloud_backup_id).toBe('g1');
    expect(result.task_ids).toEqual(['g1:db', 'g1:logs']);
    expect(result.statuses.map((s) => [s.status, s.group_id])).toEqual([
      ['Done', 'g1'],
      ['Done', 'g1'],
    ]);
    const text = await ferry('cloudsnap', 'backup', '--group', 'db,logs', '--cred', 'local');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^Group backup \S+ started: tasks \S+:db, \S+:logs/);
    const neither = await ferry('cloudsnap', 'backup', '--cred', 'local');
    expect(neither.code).toBe(2);
  });
});

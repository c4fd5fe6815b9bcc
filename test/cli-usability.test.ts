/**
 * What a new user meets at the CLI, against a real `ferry node start` (built CLI, temp data dir, loopback ports):
 * errors in CLI words (commands, not API routes; human sizes), a refused token that says which admin secret signed
 * it, `volume delete` asking before it deletes snapshots, aliases and `-o` formats, empty lists that say so, the USED,
 * STORED and ADDED columns, schedules by name with their retention, and catalog/status/restore/delete without --cred. Needs
 * `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { enumerateCloudBackupsResponseSchema } from '../api/index.js';
import { type CliResult, MAIN, runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';

const MiB = 1024 * 1024;

// Each CLI run starts a Node.js process; on a loaded machine a test of 30 of them outlasts vitest's default.
vi.setConfig({ testTimeout: 180_000 });

let dir: string;
let nodeDataDir: string;
let testNode: TestNode | undefined;
let apiUrl: string;

function ferry(...args: string[]): Promise<CliResult> {
  return runFerry(apiUrl, args);
}

function ferryJson<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  return runFerryJson<T>(apiUrl, args);
}

function run(file: string, args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

/** Runs `ferry ...args` on a pseudo-terminal (util-linux `script`), typing `input`. */
function ferryOnTerminal(args: string[], input: string): Promise<CliResult> {
  const line = [process.execPath, MAIN, ...args].join(' ');
  return run('script', ['-qec', line, '/dev/null'], input, { FERRY_API_URL: apiUrl, FERRY_DATA_DIR: nodeDataDir });
}

/** Writes `bytes` of random data at offset 0 of a volume over NBD. */
async function writeVolume(volume: string, bytes: number): Promise<void> {
  const raw = join(dir, `${volume}.raw`);
  await writeFile(raw, randomBytes(bytes));
  const copy = await run('nbdcopy', ['--destination-is-zero', raw, `${testNode?.nbdUrl}/${volume}`]);
  expect(copy.code, copy.stderr).toBe(0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-cli-usability-'));
  await mkdir(join(dir, 'objects', 'offsite'), { recursive: true });
  await mkdir(join(dir, 'objects', 'other'), { recursive: true });
  nodeDataDir = join(dir, 'node');
  testNode = await startTestNode(nodeDataDir);
  apiUrl = testNode.apiUrl;
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a fresh node', () => {
  it('says "no volumes", "no backups", ... instead of printing an empty table', async () => {
    for (const [args, text] of [
      [['volume', 'list'], 'no volumes'],
      [['credentials', 'list'], 'no credentials'],
      [['cloudsnap', 'list'], 'no backups'],
      [['cloudsnap', 'status'], 'no backup or restore jobs'],
      [['cloudsnap', 'schedules', 'list'], 'no schedules'],
      [['policy', 'list'], 'no policies'],
    ] as const) {
      const result = await ferry(...args);
      expect([result.code, result.stdout, result.stderr], args.join(' ')).toEqual([0, `${text}\n`, '']);
    }
    expect((await ferry('volume', 'create', 'empty', '--size', '1M')).code).toBe(0);
    expect((await ferry('volume', 'snapshot', 'list', 'empty')).stdout).toBe('no snapshots\n');
    expect(await ferryJson('volume', 'snapshot', 'list', 'empty')).toEqual({ volumes: [] });
    expect((await ferry('volume', 'delete', 'empty')).code).toBe(0);
  });
});

describe('errors that reach the person', () => {
  it('name the command to run, not an API route', async () => {
    for (const [args, command] of [
      [['volume', 'inspect', 'nope'], '`ferry volume list`'],
      [['credentials', 'inspect', 'nope'], '`ferry credentials list`'],
      [['policy', 'inspect', 'nope'], '`ferry policy list`'],
      [['cloudsnap', 'status', 'nope'], '`ferry cloudsnap list`'],
      [
        ['cloudsnap', 'schedules', 'delete', '00000000-0000-4000-8000-000000000000'],
        '`ferry cloudsnap schedules list`',
      ],
    ] as const) {
      const result = await ferry(...args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toContain(command);
      expect(result.stderr, args.join(' ')).not.toMatch(/(GET|POST|PUT|DELETE) \/v1/);
    }
  });

  it('show sizes for people, and a --size above the largest says what the largest is', async () => {
    expect((await ferry('volume', 'create', 'big', '--size', '200G')).code).toBe(0);
    const again = await ferry('volume', 'create', 'big', '--size', '100G');
    expect([again.code, again.stderr]).toEqual([
      1,
      'error: volume big already exists with size 200 GiB; pick another name or use that size\n',
    ]);
    const shrink = await ferry('volume', 'resize', 'big', '--size', '100G');
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toContain('volumes cannot shrink: big is 200 GiB');
    const huge = await ferry('volume', 'create', 'huge', '--size', '100P');
    expect(huge.code).toBe(2);
    expect(huge.stderr).toContain('"100P" is above the largest size allowed, 64 TiB');
    expect(huge.stderr).not.toContain('whole number');
    expect((await ferry('volume', 'delete', 'big')).code).toBe(0);
  });

  it('a refused token says which admin secret signed it and how to point the CLI at the right one', async () => {
    const other = join(dir, 'other-node');
    await mkdir(join(other, 'auth'), { recursive: true });
    await writeFile(join(other, 'auth', 'admin.secret'), randomBytes(32).toString('hex'), { mode: 0o600 });
    const wrong = await runFerry(apiUrl, ['volume', 'list'], { FERRY_DATA_DIR: other });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('signature does not verify');
    expect(wrong.stderr).toContain(
      `the CLI signed its token with the admin secret ${join(other, 'auth', 'admin.secret')}`,
    );
    expect(wrong.stderr).toContain('set --data-dir or FERRY_DATA_DIR to that directory');
    expect(wrong.stderr).toContain('--token or FERRY_TOKEN');

    const none = await runFerry(apiUrl, ['volume', 'list'], { FERRY_DATA_DIR: join(dir, 'nowhere') });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no admin secret could be read at ${join(dir, 'nowhere', 'auth', 'admin.secret')}`);

    const flag = await runFerry(apiUrl, ['--data-dir', nodeDataDir, 'volume', 'list'], { FERRY_DATA_DIR: other });
    expect([flag.code, flag.stderr]).toEqual([0, '']);

    const token = await runFerry(apiUrl, ['volume', 'list'], { FERRY_TOKEN: 'not-a-token' });
    expect(token.code).toBe(1);
    expect(token.stderr).toContain('(the token came from FERRY_TOKEN)');
  });
});

describe('ferry volume delete of a volume with snapshots', () => {
  it('asks on a terminal, refuses without one unless --yes', async () => {
    expect((await ferry('volume', 'create', 'snappy', '--size', '1M')).code).toBe(0);
    expect((await ferry('volume', 'snapshot', 'create', 'snappy', '--name', 'one')).code).toBe(0);

    const piped = await ferry('volume', 'delete', 'snappy');
    expect(piped.code).toBe(2);
    expect(piped.stderr).toBe(
      'error: volume snappy has 1 snapshot (one), deleted with it; pass --yes to go ahead (stdin is not a terminal to ask on)\n',
    );
    const no = await ferryOnTerminal(['volume', 'delete', 'snappy'], 'n\n');
    expect(no.code).toBe(1);
    expect(no.stdout).toContain('Delete volume snappy and its 1 snapshot (one)? [y/N]');
    expect(no.stdout).toContain('error: nothing was deleted (the answer was not yes)');
    expect((await ferry('volume', 'inspect', 'snappy')).code).toBe(0);

    const yes = await ferryOnTerminal(['vol', 'rm', 'snappy'], 'y\n');
    expect(yes.code, yes.stdout).toBe(0);
    expect(yes.stdout).toContain('Volume snappy successfully deleted');
    expect((await ferry('volume', 'inspect', 'snappy')).code).toBe(1);

    expect((await ferry('volume', 'create', 'snappy', '--size', '1M')).code).toBe(0);
    expect((await ferry('volume', 'snapshot', 'create', 'snappy', '--name', 'two')).code).toBe(0);
    const forced = await ferry('volume', 'rm', 'snappy', '--yes');
    expect([forced.code, forced.stdout]).toEqual([0, 'Volume snappy successfully deleted\n']);
  });
});

describe('aliases, -o formats and the USED column', () => {
  it('lists volumes with what they use, their snapshots included, as a table, wide, JSON or YAML', async () => {
    expect((await ferry('volume', 'create', 'used', '--size', '16M')).code).toBe(0);
    await writeVolume('used', 3 * MiB);
    // After a snapshot the volume's own layer is empty: USED still counts the data the snapshot holds.
    expect((await ferry('volume', 'snapshot', 'create', 'used', '--name', 's1')).code).toBe(0);
    const table = await ferry('volume', 'list');
    const [header, row] = table.stdout.trimEnd().split('\n');
    expect(header?.split(/\s+/)).toEqual(['ID', 'NAME', 'SIZE', 'USED', 'HA', 'SNAPSHOTS', 'STATUS']);
    expect(row).toMatch(/^\S+\s+used\s+16 MiB\s+3 MiB\s+1\s+1\s+up - detached$/);
    expect((await ferry('vol', 'ls')).stdout).toBe(table.stdout);

    const wide = await ferry('-o', 'wide', 'vol', 'ls');
    expect(wide.stdout.split('\n')[0]?.split(/\s+/)).toEqual([
      ...['ID', 'NAME', 'SIZE', 'USED', 'HA', 'SNAPSHOTS', 'STATUS'],
      ...['ENCRYPTED', 'CREATED', 'REPLICAS', 'LABELS'],
    ]);
    const json = await ferry('--json', 'volume', 'list');
    expect((await ferry('volume', 'list', '-o', 'json')).stdout).toBe(json.stdout);
    const parsed = JSON.parse(json.stdout) as { volumes: { volume: { bytes_used_total: number } }[] };
    expect(parsed.volumes[0]?.volume.bytes_used_total).toBe(3 * MiB);
    const yaml = await ferry('-o', 'yaml', 'vol', 'ls');
    const fromYaml = await run(
      '/usr/bin/python3',
      ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'],
      yaml.stdout,
    );
    expect(JSON.parse(fromYaml.stdout)).toEqual(parsed);

    const both = await ferry('--json', '-o', 'yaml', 'volume', 'list');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give one of --json and -o yaml');
    expect((await ferry('volume', 'rm', 'used', '--yes')).code).toBe(0);
  });
});

describe('ferry cloudsnap for people', () => {
  it('shows what each backup stored and added, finds the credential from the backup id, schedules by name', async () => {
    for (const name of ['offsite', 'other']) {
      const args = ['--provider', 'directory', '--path', join(dir, 'objects'), '--bucket', name];
      expect((await ferry('credentials', 'create', name, ...args)).code).toBe(0);
    }
    const volumeId = (await ferryJson<{ volume_id: string }>('volume', 'create', 'pg', '--size', '32M')).volume_id;
    await writeVolume('pg', 2 * MiB);
    const job = await ferryJson<{ backup_id: string; task_id: string }>(
      ...['cloudsnap', 'backup', 'pg', '--cred', 'offsite', '--wait'],
    );

    const page = enumerateCloudBackupsResponseSchema.parse(await ferryJson('cloudsnap', 'list', '--cred', 'offsite'));
    const [info] = page.backups;
    expect(info?.bytes_stored).toBe(2 * MiB);
    expect(info?.bytes_new).toBe(2 * MiB);
    // Random data does not compress: what was added is the data plus the packs' framing.
    expect(info?.bytes_uploaded).toBeGreaterThan(2 * MiB);
    expect(info?.bytes_uploaded).toBeLessThan(2.1 * MiB);
    const list = await ferry('cloudsnap', 'list', '--cred', 'offsite');
    expect(list.stdout.split('\n')[0]).toMatch(
      /^BACKUP ID\s+VOLUME\s+COMPLETED\s+SIZE\s+STORED\s+ADDED\s+TYPE\s+LABELS$/,
    );
    expect(list.stdout).toMatch(
      new RegExp(`^${job.backup_id}\\s+pg\\s+\\S+\\s+32 MiB\\s+2 MiB\\s+2 MiB\\s+full\\s+-$`, 'm'),
    );
    const wide = await ferry('-o', 'wide', 'cloudsnap', 'ls');
    expect(wide.stdout.split('\n')[0]).toMatch(/\sNEW\s+STARTED\s+BASE\s+CREDENTIAL$/);

    const catalog = await ferry('cloudsnap', 'catalog', job.backup_id);
    expect(catalog.code, catalog.stderr).toBe(0);
    expect(catalog.stdout).toContain(`Backup ${job.backup_id} of pg: 2 MiB of 32 MiB`);
    const status = await ferry('cloudsnap', 'status', job.backup_id);
    expect(status.code, status.stderr).toBe(0);
    // restore finds the credential the same way.
    const restored = await ferry('cloudsnap', 'restore', job.backup_id, '--name', 'pg-copy', '--wait');
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`Restore of ${job.backup_id} into pg-copy done`);
    expect(status.stdout).toMatch(new RegExp(`^Task\\s+:\\s+${job.task_id}$`, 'm'));
    // Another node that reads the same repository (with a copy of the keyring) never ran that job: it shows the
    // backup itself.
    await cp(join(nodeDataDir, 'keyring'), join(dir, 'second-node', 'keyring'), { recursive: true });
    const second = await startTestNode(join(dir, 'second-node'));
    try {
      const args = ['--provider', 'directory', '--path', join(dir, 'objects'), '--bucket', 'offsite'];
      expect((await runFerry(second.apiUrl, ['credentials', 'create', 'mirror', ...args])).code).toBe(0);
      const elsewhere = await runFerry(second.apiUrl, ['cloudsnap', 'status', job.backup_id]);
      expect(elsewhere.code, elsewhere.stderr).toBe(0);
      expect(elsewhere.stdout).toMatch(new RegExp(`^Backup\\s+:\\s+${job.backup_id}$`, 'm'));
      expect(elsewhere.stdout).toMatch(/^Status\s+:\s+Done \(committed\)$/m);
      expect(elsewhere.stdout).toMatch(/^Credential\s+:\s+mirror$/m);
      expect(elsewhere.stdout).toMatch(/^Stored\s+:\s+2 MiB$/m);
    } finally {
      await second.stop();
    }

    const unknown = await ferry('cloudsnap', 'catalog', '20260101T000000.000Z-00000000');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no backup 20260101T000000.000Z-00000000 under any of the 2 credentials');

    // A second credential on the same repository: the backup id no longer says which one.
    const same = ['--provider', 'directory', '--path', join(dir, 'objects'), '--bucket', 'offsite'];
    expect((await ferry('credentials', 'create', 'offsite-too', ...same)).code).toBe(0);
    const ambiguous = await ferry('cloudsnap', 'catalog', job.backup_id);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain(
      'is in the repositories of credentials offsite, offsite-too; say which with --cred',
    );
    expect((await ferry('cloudsnap', 'catalog', job.backup_id, '--cred', 'offsite-too')).code).toBe(0);
    // delete too asks which, and deletes nothing meanwhile.
    const unsure = await ferry('cloudsnap', 'delete', job.backup_id);
    expect(unsure.code).toBe(2);
    expect(unsure.stderr).toContain('say which with --cred');
    expect((await ferry('cloudsnap', 'list', '--cred', 'offsite')).stdout).toContain(job.backup_id);

    const credentialId = (await ferryJson<{ credential_id: string }>('credentials', 'inspect', 'offsite'))
      .credential_id;
    const policy = ['nightly', '--daily', '02:00,7', '--weekly', 'sun@03:00,4', '--keep-monthly', '12'];
    expect((await ferry('policy', 'create', ...policy)).code).toBe(0);
    const byPolicy = await ferryJson<{ backup_schedule_id: string }>(
      ...['cloudsnap', 'schedules', 'create', volumeId, '--cred', credentialId, '--policy', 'nightly'],
    );
    const own = await ferryJson<{ backup_schedule_id: string }>(
      ...['cloudsnap', 'schedules', 'create', 'pg', '--cred', 'other', '--periodic', '60,24', '--max-backups', '30'],
    );
    const schedules = await ferry('cloudsnap', 'schedules', 'ls');
    expect(schedules.stdout.split('\n')[0]).toMatch(
      /^ID\s+VOLUME\s+CREDENTIAL\s+SCHEDULE\s+RETENTION\s+NEXT RUN\s+LAST$/,
    );
    expect(schedules.stdout).toMatch(
      new RegExp(
        `^${byPolicy.backup_schedule_id}\\s+pg\\s+offsite\\s+policy nightly: daily 02:00, weekly Sun 03:00\\s+keep 7 daily, 4 weekly; GFS monthly 12\\s`,
        'm',
      ),
    );
    expect(schedules.stdout).toMatch(
      new RegExp(`^${own.backup_schedule_id}\\s+pg\\s+other\\s+every 60 min\\s+keep 24 periodic; at most 30\\s`, 'm'),
    );
    expect(schedules.stdout).not.toContain(credentialId);
  }, 240_000);
});

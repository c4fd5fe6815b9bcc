/**
 * End to end through the built CLI: a real `ferry node start` (temp data dir, free loopback ports), then
 * `ferry credentials ...` against it with a directory credential, and an S3 credential whose secret comes from the
 * environment. Needs `npm run build` first (the test script does it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from './support/cli-node.js';

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const SECRET = 'cli-secret-key-that-must-never-be-printed-0042';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let dataDir: string;
let objects: string;
let node: TestNode | undefined;
let apiUrl: string;
/** Everything each node printed (restarts included), checked for the secret at the end. */
const nodeOutput: string[][] = [];
/** Everything the CLI printed. */
const printed: string[] = [];

function ferry(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      // FERRY_DATA_DIR: the CLI mints its admin token from the node's admin secret (authentication is on).
      { env: { ...process.env, FERRY_API_URL: apiUrl, FERRY_DATA_DIR: dataDir, ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        printed.push(stdout, stderr);
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function ferryJson<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  const result = await ferry(['--json', ...args]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as T;
}

async function startNode(): Promise<void> {
  node = await startTestNode(dataDir);
  apiUrl = node.apiUrl;
  nodeOutput.push(node.log, node.stderr);
}

beforeAll(async () => {
  expect(existsSync(MAIN), `${MAIN} is missing: run npm run build`).toBe(true);
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-credentials-'));
  objects = join(dataDir, 'objects');
  await mkdir(join(objects, 'backups'), { recursive: true });
  await startNode();
});

afterAll(async () => {
  await node?.stop();
  for (const text of [...nodeOutput.flat(), ...printed]) expect(text).not.toContain(SECRET);
  await rm(dataDir, { recursive: true, force: true });
});

describe('ferry credentials', () => {
  it('creates, lists, inspects, validates and deletes a directory credential', async () => {
    const created = await ferry([
      'credentials',
      'create',
      'local',
      '--provider',
      'directory',
      '--path',
      objects,
      '--bucket',
      'backups',
      '--label',
      'site=a',
    ]);
    expect(created.code).toBe(0);
    const id = /Credential successfully created: (\S+)/.exec(created.stdout)?.[1];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const list = await ferry(['credentials', 'list']);
    expect(list.code).toBe(0);
    const [header, row] = list.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+PROVIDER\s+BUCKET\s+ENDPOINT$/);
    expect(row?.split(/\s{2,}/)).toEqual([id, 'local', 'directory', 'backups', objects]);

    const listed = await ferryJson<{ credentials: { credential_id: string; name: string }[] }>('credentials', 'list');
    expect(listed.credentials.map((c) => [c.credential_id, c.name])).toEqual([[id, 'local']]);

    const inspect = await ferry(['credentials', 'inspect', 'local']);
    expect(inspect.stdout).toMatch(/^Credential ID\s+:\s+[0-9a-f-]{36}$/m);
    expect(inspect.stdout).toMatch(/^Labels\s+:\s+site=a$/m);
    expect((await ferryJson('credentials', 'inspect', id ?? '')).directory_credential).toEqual({ path: objects });

    const validated = await ferry(['credentials', 'validate', 'local']);
    expect([validated.code, validated.stderr]).toEqual([0, '']);
    expect(validated.stdout).toMatch(/validated/);
    expect(await ferryJson('credentials', 'validate', id ?? '')).toEqual({});
    expect(await readdir(join(objects, 'backups'))).toEqual([]);

    const deleted = await ferry(['credentials', 'delete', 'local']);
    expect([deleted.code, deleted.stdout.trim()]).toEqual([0, 'Credential local successfully deleted']);
    expect((await ferryJson<{ credentials: unknown[] }>('credentials', 'list')).credentials).toEqual([]);
    const again = await ferry(['credentials', 'delete', 'local']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: no credential with id or name "local"/);
  });

  it('checks a directory at create: a missing one is refused unless --create makes it (0700)', async () => {
    const args = ['credentials', 'create', 'fresh', '--provider', 'directory', '--path', objects, '--bucket', 'fresh'];
    const refused = await ferry(args);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${join(objects, 'fresh')} does not exist`);
    expect(refused.stderr).toContain('--create');
    expect(existsSync(join(objects, 'fresh'))).toBe(false);
    await ferryJson(...args, '--create');
    expect((await stat(join(objects, 'fresh'))).mode & 0o777).toBe(0o700);
    await ferryJson('credentials', 'validate', 'fresh');
    await ferryJson('credentials', 'delete', 'fresh');
  });

  it('validate of a directory removed since fails with exit 1 and says what is missing', async () => {
    await mkdir(join(objects, 'nope'));
    await ferryJson('credentials', 'create', 'gone', '--provider', 'directory', '--path', objects, '--bucket', 'nope');
    await rm(join(objects, 'nope'), { recursive: true });
    const result = await ferry(['credentials', 'validate', 'gone']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: .*nope/);
    await ferryJson('credentials', 'delete', 'gone');
  });

  it('takes the secret from FERRY_SECRET_KEY, never prints it, and keeps it across a node restart', async () => {
    const created = await ferry(
      [
        '--json',
        'credentials',
        'create',
        'offsite',
        '--provider',
        's3',
        '--bucket',
        'b1',
        '--access-key',
        'AKIACLI',
        '--endpoint',
        '127.0.0.1:1',
        '--disable-ssl',
        '--prefix',
        'c1',
      ],
      { FERRY_SECRET_KEY: SECRET },
    );
    expect(created.code).toBe(0);
    const info = await ferryJson<Record<string, unknown>>('credentials', 'inspect', 'offsite');
    expect(info.aws_credential).toEqual({ access_key: 'AKIACLI', endpoint: '127.0.0.1:1', disable_ssl: true });
    expect(JSON.stringify(info)).not.toContain(SECRET);

    await node?.stop();
    await startNode();
    expect((await ferryJson<Record<string, unknown>>('credentials', 'inspect', 'offsite')).name).toBe('offsite');
    // Nothing listens on port 1: validation reaches the S3 client with the decrypted keys and fails as UNAVAILABLE.
    const validate = await ferry(['credentials', 'validate', 'offsite']);
    expect(validate.code).toBe(1);
    expect(validate.stderr).toMatch(/^error: /);
    await ferryJson('credentials', 'delete', 'offsite');
  });

  it('usage errors exit 2: a missing key, an unknown provider, an invalid endpoint', async () => {
    const noKey = await ferry(
      ['credentials', 'create', 'x', '--provider', 's3', '--bucket', 'b', '--secret-key', 's'],
      {
        FERRY_ACCESS_KEY: '',
      },
    );
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/--access-key \(or env FERRY_ACCESS_KEY\) is required for provider s3/);

    const badProvider = await ferry(['credentials', 'create', 'x', '--provider', 'ftp', '--bucket', 'b']);
    expect(badProvider.code).toBe(2);

    const badEndpoint = await ferry(
      ['credentials', 'create', 'x', '--provider', 's3', '--bucket', 'b', '--access-key', 'a', '--endpoint', 'ftp://h'],
      { FERRY_SECRET_KEY: SECRET },
    );
    expect(badEndpoint.code).toBe(2);
    expect(badEndpoint.stderr).toMatch(/^error: aws_credential\.endpoint: must be an http\(s\) URL/);
    expect((await ferryJson<{ credentials: unknown[] }>('credentials', 'list')).credentials).toEqual([]);
  });
});

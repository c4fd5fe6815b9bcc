/**
 * No secret in any log line: a real `ferry node start` (temp data dir, free loopback ports) with its key provider in
 * the Vault stand-in (AppRole login with a distinctive secret id) and a full run through the built CLI: an Azure
 * credential on Azurite with a distinctive account key (the key from FERRY_SECRET_KEY), an S3 credential whose store
 * cannot be reached (validation fails, so error paths log too; then it is deleted), a volume written over NBD,
 * backup, list, status, restore, verify, keys create/list/rotate (a local KEK), requests carrying a bearer token and
 * a Vault token, probes and a scrape. Then everything the node printed (stdout and stderr, through shutdown) and
 * everything the CLI printed is searched for each secret, the node's admin secret, and anything shaped like a bearer
 * token, JWT or Vault token. Needs `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Azurite, startAzurite } from './support/azurite.js';
import { type CliResult, runFerry, startTestNode, type TestNode } from './support/cli-node.js';
import { freePort } from './support/ports.js';
import { startVaultTransitStandin, type VaultTransitStandin } from './support/vault-transit-standin.js';

const canary = (what: string): string => `${what}${randomBytes(9).toString('hex')}`;

/** Every secret of the run; none may appear in anything printed. */
const SECRETS = {
  azureKey: Buffer.from(canary('azure-account-key-canary-')).toString('base64'),
  s3Secret: canary('s3secretkeycanary'),
  vaultSecretId: canary('vault-secret-id-canary-'),
  bearer: `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.${canary('jwtsignaturecanary')}`,
  vaultHeader: canary('hvs.headertokencanary'),
};
const S3_ACCESS_KEY = canary('AKIACANARY');
/** Shapes of credentials that must never be printed, whatever their value. */
const SHAPES = [/Bearer\s+(?!\[Redacted\])\S/i, /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\./, /hvs\.[A-Za-z0-9_-]{12,}/];

const MiB = 1024 * 1024;
let dataDir: string;
let azurite: Azurite | undefined;
let vault: VaultTransitStandin | undefined;
let testNode: TestNode | undefined;
let apiUrl: string;
/** Everything the CLI printed. */
const printed: string[] = [];

async function ferry(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const result = await runFerry(apiUrl, args, env);
  printed.push(result.stdout, result.stderr);
  return result;
}

async function ferryJson<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  const result = await ferry(['--json', ...args]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

function run(file: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-logs-no-secrets-'));
  azurite = await startAzurite({ account: { name: 'ferrycanary', key: SECRETS.azureKey } });
  const container = new ContainerClient(
    `${azurite.endpoint}/backups`,
    new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey),
  );
  await container.create();
  vault = await startVaultTransitStandin();
  vault.addAppRole({ roleId: 'ferry-node', secretId: SECRETS.vaultSecretId, token: { ttl: 3600, keys: ['ferry-*'] } });
  const created = await fetch(`${vault.endpoint}/v1/transit/keys/ferry-canary`, {
    method: 'POST',
    headers: { 'x-vault-token': vault.rootToken, 'content-type': 'application/json' },
    body: JSON.stringify({ derived: true }),
  });
  expect(created.ok).toBe(true);
  testNode = await startTestNode(join(dataDir, 'node'), {
    FERRY_VAULT_ADDR: vault.endpoint,
    FERRY_VAULT_ROLE_ID: 'ferry-node',
    FERRY_VAULT_SECRET_ID: SECRETS.vaultSecretId,
    FERRY_KMS_REGION: '',
    FERRY_LOG_LEVEL: 'debug',
  });
  apiUrl = testNode.apiUrl;
}, 60_000);

afterAll(async () => {
  await testNode?.stop();
  await azurite?.stop();
  await vault?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('logs of a full run', () => {
  it('hold request ids and job events but no secret and no token', async () => {
    const node = testNode as TestNode;
    const az = await ferry(
      [
        'credentials',
        'create',
        'az',
        '--provider',
        'azure',
        '--bucket',
        'backups',
        '--access-key',
        'ferrycanary',
        '--endpoint',
        (azurite as Azurite).endpoint,
        '--key-provider',
        'vault',
        '--kek',
        'ferry-canary',
      ],
      { FERRY_SECRET_KEY: SECRETS.azureKey },
    );
    expect(az.code, az.stderr).toBe(0);
    const closedPort = await freePort();
    const s3 = await ferry([
      'credentials',
      'create',
      'unreachable',
      '--provider',
      's3',
      '--bucket',
      'b',
      '--endpoint',
      `http://127.0.0.1:${closedPort}`,
      '--access-key',
      S3_ACCESS_KEY,
      '--secret-key',
      SECRETS.s3Secret,
    ]);
    expect(s3.code, s3.stderr).toBe(0);
    expect((await ferry(['credentials', 'validate', 'unreachable'])).code).not.toBe(0);
    // Gone before `keys rotate`, which would visit its repository too.
    expect((await ferry(['credentials', 'delete', 'unreachable'])).code).toBe(0);
    expect((await ferry(['credentials', 'list'])).code).toBe(0);
    expect((await ferry(['credentials', 'inspect', 'az'])).code).toBe(0);

    expect((await ferry(['volume', 'create', 'vol', '--size', '4M'])).code).toBe(0);
    const raw = join(dataDir, 'vol.raw');
    await writeFile(raw, Buffer.concat([randomBytes(MiB), Buffer.alloc(3 * MiB)]));
    const copy = await run('nbdcopy', [raw, `${node.nbdUrl}/vol`]);
    expect(copy.code, copy.stderr).toBe(0);

    const backup = await ferryJson<{ status: string; backup_id: string; task_id: string }>(
      'cloudsnap',
      'backup',
      'vol',
      '--cred',
      'az',
      '--wait',
    );
    expect(backup.status).toBe('Done');
    expect((await ferry(['cloudsnap', 'list', '--cred', 'az'])).stdout).toContain(backup.backup_id);
    expect((await ferry(['cloudsnap', 'status', backup.task_id])).code).toBe(0);
    const restore = await ferry(['cloudsnap', 'restore', backup.backup_id, '--cred', 'az', '--name', 'copy', '--wait']);
    expect(restore.code, restore.stderr).toBe(0);
    expect((await ferry(['cloudsnap', 'verify', '--cred', 'az', '--wait'])).code).toBe(0);
    expect((await ferry(['keys', 'create', 'local-canary'])).code).toBe(0);
    expect((await ferry(['keys', 'list'])).code).toBe(0);
    const rotated = await ferry(['keys', 'rotate', 'local-canary']);
    expect(rotated.code, rotated.stderr).toBe(0);

    // A client that sends tokens (a bearer token as the auth layer will take, a Vault token by mistake).
    const headers = { authorization: `Bearer ${SECRETS.bearer}`, 'x-vault-token': SECRETS.vaultHeader };
    const inspect = await fetch(`${apiUrl}/v1/volumes/inspect/vol`, { headers });
    expect(inspect.headers.get('x-request-id')).toBeTruthy();
    await fetch(`${apiUrl}/v1/credentials`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bad name!', provider: 's3', aws_credential: { secret_key: SECRETS.s3Secret } }),
    });
    expect((await fetch(`${apiUrl}/readyz`, { headers })).status).toBe(200);
    const metrics = await (await fetch(`${apiUrl}/metrics`, { headers })).text();
    expect(metrics).toMatch(/^ferry_object_store_requests_total\{provider="azure",operation="put"\} [1-9]/m);
    expect(metrics).toMatch(/^ferry_cloudsnap_bytes_total\{optype="Backup",volume="vol"\} [1-9]/m);
    expect(metrics).toMatch(/^ferry_cloudsnap_jobs_total\{optype="Restore",status="Done"\} 1$/m);
    printed.push(metrics);

    await node.stop();
    const nodeOutput = [...node.log, ...node.stderr];
    const lines = node.log.map((line) => JSON.parse(line) as Record<string, unknown>);
    // The search looks at real lines: request lines with ids, the job events, and the shutdown.
    expect(lines.some((l) => l.msg === 'request' && l.path === '/v1/volumes/inspect/vol')).toBe(true);
    expect(lines.filter((l) => l.msg === 'request').every((l) => typeof l.req_id === 'string')).toBe(true);
    expect(lines.filter((l) => l.msg === 'job ended').map((l) => [l.optype, l.status])).toEqual([
      ['Backup', 'Done'],
      ['Restore', 'Done'],
      ['Verify', 'Done'],
    ]);
    expect(lines.at(-1)).toMatchObject({ msg: 'ferry node stopped' });
    expect(nodeOutput.join('\n')).toContain(backup.backup_id);

    const everything = [...nodeOutput, ...printed].join('\n');
    // The node's admin secret (when authentication is on, the CLI mints its tokens from it).
    const adminSecret = join(dataDir, 'node', 'auth', 'admin.secret');
    if (existsSync(adminSecret)) {
      const secret = (await readFile(adminSecret, 'utf8')).trim();
      expect(secret.length).toBeGreaterThanOrEqual(16);
      expect(everything.includes(secret), 'the admin secret was printed').toBe(false);
    }
    for (const [name, secret] of Object.entries(SECRETS)) {
      expect(everything.includes(secret), `${name} was printed`).toBe(false);
    }
    expect(nodeOutput.join('\n').includes(S3_ACCESS_KEY), 'the S3 access key reached the node log').toBe(false);
    for (const shape of SHAPES) expect(everything).not.toMatch(shape);
  }, 120_000);
});

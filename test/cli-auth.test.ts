/**
 * Authentication end to end with the built CLI and a real `ferry node start`: on by default (the admin secret is
 * created 0600 and the CLI uses it), user tokens from `ferry auth token` see only their own, sharing with
 * `ferry auth share`, no secret or token in the node's log, and `--auth-off` with its warning. Needs `npm run build`.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAdminSecret } from '../api/index.js';
import { runFerry, startTestNode, type TestNode } from './support/cli-node.js';

let dataDir: string;
let node: TestNode;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-auth-'));
  node = await startTestNode(dataDir);
});

afterAll(async () => {
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function token(args: string[]): Promise<string> {
  const result = await runFerry(node.apiUrl, ['auth', 'token', ...args]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout.trim();
}

/** `ferry --json ...` as the holder of `jwt` (FERRY_TOKEN; no admin secret reachable). */
async function as<T>(jwt: string, args: string[]): Promise<{ code: number; body: T; stderr: string }> {
  const result = await runFerry(node.apiUrl, ['--json', ...args], { FERRY_TOKEN: jwt, FERRY_DATA_DIR: '/nonexistent' });
  return {
    code: result.code,
    body: (result.stdout === '' ? {} : JSON.parse(result.stdout)) as T,
    stderr: result.stderr,
  };
}

describe('authentication on by default', () => {
  it('creates the admin secret 0600, logs its path only, and the CLI on the node works without a token', async () => {
    const path = join(dataDir, 'auth', 'admin.secret');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const line = node.log
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'authentication on');
    expect(line).toMatchObject({ admin_secret_path: path, admin_secret_created: true });
    const created = await runFerry(node.apiUrl, ['volume', 'create', 'admins', '--size', '1M']);
    expect(created.code, created.stderr).toBe(0);

    const anonymous = await fetch(`${node.apiUrl}/v1/volumes`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="ferry"');
    expect((await fetch(`${node.apiUrl}/v1/identities/version`)).status).toBe(200);
    const noSecret = await runFerry(node.apiUrl, ['volume', 'list'], { FERRY_DATA_DIR: join(dataDir, 'none') });
    expect(noSecret.code).toBe(1);
    expect(noSecret.stderr).toMatch(/^error: missing bearer token/);
  });

  it('gives each user token its own volumes, shares on request, and never logs a secret or a token', async () => {
    const alice = await token(['--sub', 'alice', '--roles', 'system.user', '--groups', 'team-a', '--ttl', '10m']);
    const bob = await token(['--sub', 'bob', '--groups', 'team-b']);
    const viewer = await token(['--sub', 'vic', '--roles', 'system.view', '--groups', 'team-b']);
    expect((await as<{ sub: string }>(alice, ['auth', 'whoami'])).body).toMatchObject({
      sub: 'alice',
      roles: ['system.user'],
      groups: ['team-a'],
    });
    expect((await as(alice, ['volume', 'create', 'alices', '--size', '1M'])).code).toBe(0);
    expect((await as(bob, ['volume', 'create', 'bobs', '--size', '1M'])).code).toBe(0);
    const names = async (jwt: string) =>
      (await as<{ volumes: { name: string }[] }>(jwt, ['volume', 'list'])).body.volumes.map((v) => v.name).sort();
    expect(await names(alice)).toEqual(['alices']);
    expect(await names(bob)).toEqual(['bobs']);
    expect(await names(viewer)).toEqual([]);
    const denied = await as(bob, ['volume', 'inspect', 'alices']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toBe('error: bob has no Read access to volume alices; ask its owner\n');

    const shared = await as<{ ownership: unknown }>(alice, [
      'auth',
      'share',
      'volume',
      'alices',
      '--group',
      'team-b=Read',
    ]);
    expect(shared.stderr).toBe('');
    expect(shared.body.ownership).toEqual({ owner: 'alice', acls: { groups: { 'team-b': 'Read' } } });
    expect(await names(bob)).toEqual(['alices', 'bobs']);
    expect(await names(viewer)).toEqual(['alices']);
    expect((await as(viewer, ['volume', 'resize', 'alices', '--size', '2M'])).code).toBe(1);
    expect((await as(bob, ['volume', 'delete', 'alices'])).code).toBe(1);
    expect((await as(alice, ['auth', 'unshare', 'volume', 'alices', '--group', 'team-b'])).code).toBe(0);
    expect(await names(bob)).toEqual(['bobs']);
    const everything = await runFerry(node.apiUrl, ['--json', 'volume', 'list']);
    expect((JSON.parse(everything.stdout) as { volumes: unknown[] }).volumes).toHaveLength(3);

    const secret = (await readFile(join(dataDir, 'auth', 'admin.secret'), 'utf8')).trim();
    const log = node.log.join('\n');
    for (const hidden of [secret, alice, bob, viewer]) expect(log).not.toContain(hidden);
  });
});

describe('authentication before the body, on a real node', () => {
  it('answers a POST declaring 256 MiB without a token with 401 before any body byte, then closes', async () => {
    const { hostname, port } = new URL(node.apiUrl);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      let received = '';
      socket.on('connect', () =>
        socket.write(
          `POST /v1/volumes HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${256 * 1024 * 1024}\r\n\r\n`,
        ),
      );
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
      });
      // The server ends the connection itself: no body was sent, none is waited for.
      socket.on('end', () => resolve(received));
      socket.on('error', reject);
      socket.setTimeout(15_000, () => reject(new Error(`no end of connection; got: ${received}`)));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(answer).toContain('"code":"UNAUTHENTICATED"');
  });
});

describe('token lifetime', () => {
  it('refuses a 100-year token signed with the admin secret, and ferry auth token refuses --ttl beyond 24h', async () => {
    const secret = await readAdminSecret(dataDir);
    if (secret === undefined) throw new Error('no admin secret');
    const now = Math.floor(Date.now() / 1000);
    const century = await new SignJWT({ roles: ['system.admin'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .setIssuer('ferry')
      .setIssuedAt(now)
      .setExpirationTime(now + 100 * 365 * 86400)
      .sign(secret);
    const refused = await fetch(`${node.apiUrl}/v1/volumes`, { headers: { authorization: `Bearer ${century}` } });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { message: string }).message).toMatch(/live at most 24h/);

    const tooLong = await runFerry(node.apiUrl, ['auth', 'token', '--sub', 'alice', '--ttl', '7d']);
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.stdout).toBe('');
    expect(tooLong.stderr).toMatch(/"7d" is longer than the longest token lifetime nodes accept \(24h\)/);
    expect(tooLong.stderr).toContain('--auth-max-token-ttl');

    // A CLI told of a longer limit mints it; this node (24h) still refuses the token.
    const week = await runFerry(node.apiUrl, ['auth', 'token', '--sub', 'alice', '--ttl', '7d'], {
      FERRY_AUTH_MAX_TOKEN_TTL: '30d',
    });
    expect(week.code, week.stderr).toBe(0);
    const weekly = await fetch(`${node.apiUrl}/v1/volumes`, {
      headers: { authorization: `Bearer ${week.stdout.trim()}` },
    });
    expect(weekly.status).toBe(401);
    const day = await token(['--sub', 'alice', '--ttl', '24h']);
    expect((await fetch(`${node.apiUrl}/v1/volumes`, { headers: { authorization: `Bearer ${day}` } })).status).toBe(
      200,
    );
  });
});

describe('--auth-off', () => {
  it('serves without tokens and says so in the log', async () => {
    const offDir = await mkdtemp(join(tmpdir(), 'ferry-cli-auth-off-'));
    const off = await startTestNode(offDir, { FERRY_AUTH: 'off' });
    try {
      const warning = off.log.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 'warn');
      expect(warning).toMatchObject({ reason: 'FERRY_AUTH=off' });
      expect(String(warning?.msg)).toMatch(/^authentication is OFF/);
      expect((await fetch(`${off.apiUrl}/v1/volumes`)).status).toBe(200);
      await expect(stat(join(offDir, 'auth', 'admin.secret'))).rejects.toThrow();
    } finally {
      await off.stop();
      await rm(offDir, { recursive: true, force: true });
    }
  });
});

/**
 * NBD access end to end with a real `ferry node start` and real clients: `ferry auth nbd-key` hands each user a
 * TLS-PSK key; over nbds:// a user lists and opens only their own volumes (and those shared with them); local
 * plaintext stays trusted on a loopback node; `--nbd-tls require` refuses plaintext; a refused open says why (who
 * holds the volume and since when, a destroyed KEK), and `ferry volume inspect` shows it. Needs `npm run build`.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFerry, startTestNode, type TestNode } from './support/cli-node.js';
import { ok, run, TOOL_ENV } from './support/run.js';

const MiB = 1024 * 1024;
/** libnbd 1.14 prints the server's error text only in its debug output (nbdinfo, nbdsh: LIBNBD_DEBUG=1). */
const DEBUG_ENV = { ...TOOL_ENV, LIBNBD_DEBUG: '1' };

let dir: string;
let node: TestNode;
const tokens = new Map<string, string>();

async function ferry(args: string[], as?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = as === undefined ? {} : { FERRY_TOKEN: tokens.get(as) ?? '', FERRY_DATA_DIR: '/nonexistent' };
  return runFerry(node.apiUrl, args, env);
}

async function ferryOk(args: string[], as?: string): Promise<string> {
  const result = await ferry(args, as);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** `host:port` of the node's NBD server. */
function nbdHostPort(): string {
  return node.nbdUrl.replace(/^nbd:\/\//, '');
}

async function nbdKey(user: string): Promise<string> {
  const file = join(dir, `${user}.psk`);
  const out = JSON.parse(await ferryOk(['--json', 'auth', 'nbd-key', '--out', file], user)) as { identity: string };
  expect(out.identity).toBe(user);
  return file;
}

function tlsUri(user: string, file: string, exportName = ''): string {
  return `nbds://${user}@${nbdHostPort()}/${exportName}?tls-psk-file=${file}`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-cli-nbd-tls-'));
  node = await startTestNode(join(dir, 'data'));
  for (const [user, roles] of [
    ['alice', 'system.user'],
    ['bob', 'system.user'],
  ]) {
    const jwt = await ferryOk(['auth', 'token', '--sub', user as string, '--roles', roles as string]);
    tokens.set(user as string, jwt.trim());
  }
  await ferryOk(['volume', 'create', 'alice-vol', '--size', '8M'], 'alice');
  await ferryOk(['volume', 'snapshot', 'create', 'alice-vol', '--name', 's1'], 'alice');
  await ferryOk(['volume', 'create', 'bob-vol', '--size', '8M'], 'bob');
});

afterAll(async () => {
  await node?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('NBD over TLS-PSK on a node', () => {
  it('ferry auth nbd-key writes a 0600 psk file of the caller; the key works, a wrong one does not', async () => {
    const file = await nbdKey('alice');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toMatch(/^alice:[0-9a-f]{64}$/);
    const info = JSON.parse(await ok('nbdinfo', ['--json', tlsUri('alice', file, 'alice-vol')])) as { TLS: boolean };
    expect(info.TLS).toBe(true);

    const wrong = join(dir, 'wrong.psk');
    await writeFile(wrong, `alice:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const refused = await run('nbdinfo', [tlsUri('alice', wrong, 'alice-vol')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/gnutls|TLS/i);
    // The key is never logged.
    const key = (await readFile(file, 'utf8')).trim().split(':')[1] ?? '';
    expect(node.log.join('\n')).not.toContain(key);
  });

  it("lists only the user's own exports over TLS; local plaintext still sees every one", async () => {
    const names = async (uri: string): Promise<string[]> => {
      const listing = JSON.parse(await ok('nbdinfo', ['--list', '--json', uri])) as {
        exports: { 'export-name': string }[];
      };
      return listing.exports.map((e) => e['export-name']).sort();
    };
    expect(await names(tlsUri('alice', await nbdKey('alice')))).toEqual(['alice-vol', 'alice-vol@s1']);
    expect(await names(tlsUri('bob', await nbdKey('bob')))).toEqual(['bob-vol']);
    expect(await names(node.nbdUrl)).toEqual(['alice-vol', 'alice-vol@s1', 'bob-vol']);
  });

  it("refuses another user's volume with the reason, and opens it once it is shared", async () => {
    const file = await nbdKey('bob');
    const denied = await run('nbdinfo', [tlsUri('bob', file, 'alice-vol')], DEBUG_ENV);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/server error message: bob has no Write access to volume alice-vol/);
    await ferryOk(['auth', 'share', 'volume', 'alice-vol', '--user', 'bob=Read'], 'alice');
    // Read access opens the snapshot (read-only), not the volume.
    await ok('nbdinfo', [tlsUri('bob', file, 'alice-vol@s1')]);
    const stillDenied = await run('nbdinfo', [tlsUri('bob', file, 'alice-vol')], DEBUG_ENV);
    expect(stillDenied.stderr).toMatch(/bob has no Write access to volume alice-vol/);
  });

  it('nbdcopy writes and reads back over TLS', async () => {
    const file = await nbdKey('alice');
    const source = join(dir, 'source.img');
    const back = join(dir, 'back.img');
    const data = randomBytes(8 * MiB);
    await writeFile(source, data);
    await ok('nbdcopy', [source, tlsUri('alice', file, 'alice-vol')]);
    await ok('nbdcopy', [tlsUri('alice', file, 'alice-vol'), back]);
    expect((await readFile(back)).equals(data)).toBe(true);
  });
});

describe('a refused open says why', () => {
  it('a second writer sees who holds the volume and since when; ferry volume inspect shows the holder', async () => {
    const holder: ChildProcessWithoutNullStreams = spawn(
      'nbdsh',
      ['-u', `${node.nbdUrl}/bob-vol`, '-c', 'import sys\nprint("ready", flush=True)\nsys.stdin.readline()'],
      { env: TOOL_ENV },
    );
    const exited = new Promise<number | null>((resolve) => holder.on('close', resolve));
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      holder.on('close', () => reject(new Error('nbdsh holder exited early')));
    });
    try {
      const reason = /volume bob-vol is already attached by 127\.0\.0\.1:\d+ since \d{4}-\d\d-\d\dT[\d:.]+Z/;
      const info = await run('nbdinfo', [`${node.nbdUrl}/bob-vol`], DEBUG_ENV);
      expect(info.code).not.toBe(0);
      expect(info.stderr).toMatch(reason);
      // nbdcopy sets libnbd's debug flag itself: --verbose, not LIBNBD_DEBUG.
      const source = join(dir, 'small.img');
      await writeFile(source, Buffer.alloc(MiB, 1));
      const copy = await run('nbdcopy', ['--verbose', source, `${node.nbdUrl}/bob-vol`]);
      expect(copy.code).not.toBe(0);
      expect(copy.stderr).toMatch(reason);
      const qemu = await run('qemu-img', ['info', `${node.nbdUrl}/bob-vol`]);
      expect(qemu.code).not.toBe(0);
      expect(qemu.stderr).toMatch(reason);

      const inspect = await ferryOk(['volume', 'inspect', 'bob-vol'], 'bob');
      expect(inspect).toMatch(/Attached by\s+:\s+127\.0\.0\.1:\d+ since \d{4}-/);
      const json = JSON.parse(await ferryOk(['--json', 'volume', 'inspect', 'bob-vol'], 'bob')) as {
        volume: { attached_by: { client: string; since: string }[] };
      };
      expect(json.volume.attached_by).toHaveLength(1);
      expect(info.stderr).toContain(json.volume.attached_by[0]?.client);
    } finally {
      holder.stdin.end('\n');
    }
    expect(await exited).toBe(0);
    await expect
      .poll(async () => (await ferryOk(['volume', 'inspect', 'bob-vol'], 'bob')).includes('Attached by'))
      .toBe(false);
  });

  it('a volume whose KEK was destroyed says so over NBD and in ferry volume inspect', async () => {
    await ferryOk(['keys', 'create', 'team-a']);
    await ferryOk(['volume', 'create', 'pay', '--size', '8M', '--encrypted', '--kek', 'team-a']);
    await ok('nbdinfo', [`${node.nbdUrl}/pay`]);
    const destroyed = await ferry(['keys', 'destroy', 'team-a', '--yes', '--force']);
    if (destroyed.code !== 0) await ferryOk(['keys', 'destroy', 'team-a', '--yes']);
    const info = await run('nbdinfo', [`${node.nbdUrl}/pay`], DEBUG_ENV);
    expect(info.code).not.toBe(0);
    expect(info.stderr).toMatch(/server error message: encrypted volume pay cannot be opened: .*KEK "team-a"/);
    const qemu = await run('qemu-img', ['info', `${node.nbdUrl}/pay`]);
    expect(qemu.stderr).toMatch(/KEK "team-a"/);
    const inspect = await ferryOk(['volume', 'inspect', 'pay']);
    expect(inspect).toMatch(/Cannot open\s+:\s+encrypted volume pay cannot be opened: .*KEK "team-a"/);
  });
});

describe('--nbd-tls require', () => {
  let strict: TestNode;

  beforeAll(async () => {
    strict = await startTestNode(join(dir, 'strict'), { FERRY_NBD_TLS: 'require' });
  });

  afterAll(async () => {
    await strict?.stop();
  });

  it('refuses plaintext even from this host, and serves TLS', async () => {
    const plain = await run('nbdinfo', ['--list', strict.nbdUrl], DEBUG_ENV);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/this server requires TLS/);
    const created = await runFerry(strict.apiUrl, ['volume', 'create', 'v', '--size', '1M']);
    expect(created.code, created.stderr).toBe(0);
    const file = join(dir, 'strict-admin.psk');
    const keyed = await runFerry(strict.apiUrl, ['--json', 'auth', 'nbd-key', '--out', file]);
    expect(keyed.code, keyed.stderr).toBe(0);
    const { identity } = JSON.parse(keyed.stdout) as { identity: string };
    const host = strict.nbdUrl.replace(/^nbd:\/\//, '');
    const listing = await ok('nbdinfo', ['--list', `nbds://${identity}@${host}/?tls-psk-file=${file}`]);
    expect(listing).toMatch(/export="v"/);
    const line = strict.log.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'nbd tls');
    expect(line).toMatchObject({ mode: 'require' });
  });

  it('rejects an unknown mode at start', async () => {
    const bad = await runFerry(node.apiUrl, ['node', 'start', '--data-dir', join(dir, 'bad'), '--nbd-tls', 'maybe']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/"maybe" is not an NBD TLS mode; use off, optional or require/);
  });

  it('refuses to start requiring TLS without an admin secret to derive keys from (authentication off)', async () => {
    const args = ['node', 'start', '--data-dir', join(dir, 'no-secret'), '--auth-off', '--nbd-tls', 'require'];
    const bad = await runFerry(node.apiUrl, [...args, '--api-addr', '127.0.0.1:0', '--nbd-addr', '127.0.0.1:0']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/NBD TLS require needs TLS keys, which derive from the admin secret/);
  });
});

/**
 * `ferry node start` in cluster mode (issue 22): bad cluster settings start nothing and name their flag or variable;
 * the first node of a new cluster writes its cluster secret (0600) and says where; a node joining without it, or
 * with another one, fails saying what to do; clusters on one etcd do not see each other (key namespace).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReadyProcess, runFerry, spawnFerryUntilReady } from './support/cli-node.js';
import { type EtcdServer, startEtcd } from './support/etcd.js';
import { freePort } from './support/ports.js';

let root: string;
let etcd: EtcdServer;
const running: ReadyProcess[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ferry-cluster-start-'));
  etcd = await startEtcd();
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.kill('SIGKILL')));
  await etcd?.destroy();
  await rm(root, { recursive: true, force: true });
});

async function ports(): Promise<string[]> {
  const [api, nbd, repl] = [await freePort(), await freePort(), await freePort()];
  return ['--api-addr', `127.0.0.1:${api}`, '--nbd-addr', `127.0.0.1:${nbd}`, '--repl-addr', `127.0.0.1:${repl}`];
}

async function start(dataDir: string, args: string[]): Promise<ReadyProcess> {
  const node = await spawnFerryUntilReady(
    ['node', 'start', '--data-dir', dataDir, ...(await ports()), ...args],
    'ferry node ready',
    { FERRY_HEARTBEAT_SECONDS: '2' },
  );
  running.push(node);
  return node;
}

async function failStart(dataDir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const result = await runFerry(
    'http://127.0.0.1:1',
    ['node', 'start', '--data-dir', dataDir, ...(await ports()), ...args],
    env,
  );
  expect(result.code).not.toBe(0);
  return result.stderr;
}

describe('bad cluster settings start nothing and name the flag', () => {
  it.each([
    {
      args: ['--kvdb', 'http://127.0.0.1:2379', '--cluster-id', 'c'],
      env: {},
      says: '--kvdb: "http://127.0.0.1:2379" is not etcd:URL',
    },
    {
      args: ['--kvdb', 'etcd:http://127.0.0.1:2379/x', '--cluster-id', 'c'],
      env: {},
      says: '--kvdb: "http://127.0.0.1:2379/x" must be',
    },
    {
      args: [],
      env: { FERRY_KVDB: 'etcd:http://127.0.0.1:2379' },
      says: 'FERRY_KVDB needs a cluster id: --cluster-id',
    },
    {
      args: ['--kvdb', 'etcd:http://127.0.0.1:2379', '--cluster-id', 'no spaces'],
      env: {},
      says: '--cluster-id: "no spaces" must be',
    },
    { args: ['--labels', 'rack'], env: {}, says: '--labels: "rack" is not key=value' },
    { args: [], env: { FERRY_NODE_LABELS: 'rack=r1,rack=r2' }, says: 'FERRY_NODE_LABELS: label "rack" is given twice' },
    { args: ['--cluster-id', 'c'], env: {}, says: '--cluster-id needs --kvdb' },
    { args: [], env: { FERRY_HEARTBEAT_SECONDS: '0' }, says: 'FERRY_HEARTBEAT_SECONDS: "0" must be' },
  ])('$says', async ({ args, env, says }) => {
    const dataDir = join(root, `bad-${Math.random().toString(36).slice(2)}`);
    expect(await failStart(dataDir, args, env)).toContain(says);
    expect(existsSync(dataDir)).toBe(false);
  });
});

it('the first node writes the cluster secret; a joining node needs that file; clusters on one etcd are apart', async () => {
  const kvdb = ['--kvdb', `etcd:${etcd.url}`];
  expect(
    await failStart(join(root, 'unreachable'), ['--kvdb', 'etcd:http://127.0.0.1:1', '--cluster-id', 'x']),
  ).toContain('cannot reach etcd at http://127.0.0.1:1 (--kvdb, env FERRY_KVDB)');
  const first = join(root, 'first');
  const a = await start(first, [...kvdb, '--cluster-id', 'alpha', '--labels', 'rack=r1']);
  const secretPath = join(first, 'cluster.secret');
  expect((await stat(secretPath)).mode & 0o777).toBe(0o600);
  expect(a.log.some((line) => line.includes('created its cluster secret') && line.includes(secretPath))).toBe(true);
  expect(a.log.join('\n')).not.toContain((await readFile(secretPath, 'utf8')).trim());

  const joiner = join(root, 'joiner');
  const missing = await failStart(joiner, [...kvdb, '--cluster-id', 'alpha']);
  expect(missing).toContain(
    'cluster "alpha" already exists on etcd and this node has no cluster secret: copy cluster.secret',
  );
  const wrongFile = join(root, 'wrong.secret');
  await writeFile(wrongFile, 'x'.repeat(40), { mode: 0o600 });
  expect(await failStart(joiner, [...kvdb, '--cluster-id', 'alpha', '--cluster-secret-file', wrongFile])).toContain(
    "does not open with this node's cluster secret",
  );
  await writeFile(wrongFile, 'short', { mode: 0o600 });
  expect(await failStart(joiner, [...kvdb, '--cluster-id', 'alpha', '--cluster-secret-file', wrongFile])).toContain(
    'holds 5 bytes; it needs at least 32',
  );

  const b = await start(joiner, [...kvdb, '--cluster-id', 'alpha', '--cluster-secret-file', secretPath]);
  const other = await start(join(root, 'other'), [...kvdb, '--cluster-id', 'beta']);
  // The CLI mints its token from the data directory's admin secret (each node has its own here).
  const nodeIds = async (proc: ReadyProcess, dataDir: string): Promise<string[]> => {
    const listed = await runFerry(String(proc.ready.api), ['--json', 'node', 'list'], { FERRY_DATA_DIR: dataDir });
    expect(listed.code, listed.stderr).toBe(0);
    return (JSON.parse(listed.stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id);
  };
  const idOf = async (dataDir: string) => (await readFile(join(dataDir, 'node-id'), 'utf8')).trim();
  expect(await nodeIds(b, joiner)).toEqual([await idOf(first), await idOf(joiner)].sort());
  expect(await nodeIds(other, join(root, 'other'))).toEqual([await idOf(join(root, 'other'))]);
  // Each node holds its certificate from the cluster CA, private to it.
  expect((await stat(join(joiner, 'repl', 'node.key'))).mode & 0o777).toBe(0o600);
  expect(await readFile(join(first, 'repl', 'ca.pem'), 'utf8')).toBe(
    await readFile(join(joiner, 'repl', 'ca.pem'), 'utf8'),
  );
});

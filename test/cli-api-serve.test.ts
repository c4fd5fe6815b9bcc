/**
 * `ferry api serve`: the API as a stand-alone process next to a real node. It lists the node's backups straight from
 * the object store, forwards the rest (here a volume list and a restore) to the node, and checks tokens like the node.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runFerry, spawnFerryUntilReady, startTestNode, type TestNode } from './support/cli-node.js';
import { freePort } from './support/ports.js';

let dataDir: string;
let node: TestNode | undefined;
let stopServe: (() => Promise<void>) | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-serve-'));
  node = await startTestNode(dataDir);
});

afterAll(async () => {
  await stopServe?.();
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Starts `ferry api serve` and resolves with its URL once it logs "ferry api ready". */
async function serve(env: NodeJS.ProcessEnv): Promise<string> {
  const port = await freePort();
  const api = await spawnFerryUntilReady(['api', 'serve', '--api-addr', `127.0.0.1:${port}`], 'ferry api ready', env);
  stopServe = api.stop;
  return String(api.ready.api);
}

it('answers the catalog from the bucket, forwards the rest to the node, and wants a token', async () => {
  const nodeUrl = (node as TestNode).apiUrl;
  const objects = join(dataDir, 'objects');
  await mkdir(join(objects, 'backups'), { recursive: true });
  const ferry = (...args: string[]) => runFerry(nodeUrl, args);
  expect(
    (
      await ferry(
        'credentials',
        'create',
        'offsite',
        '--provider',
        'directory',
        '--path',
        objects,
        '--bucket',
        'backups',
      )
    ).code,
  ).toBe(0);
  expect((await ferry('volume', 'create', 'db', '--size', '4M')).code).toBe(0);
  const backup = await ferry('cloudsnap', 'backup', 'db', '--cred', 'offsite', '--wait');
  expect(backup.code, backup.stderr).toBe(0);

  const apiUrl = await serve({
    FERRY_DATA_DIR: dataDir,
    FERRY_NODE_API_URL: nodeUrl,
    FERRY_CREDENTIAL: JSON.stringify({ name: 'offsite', bucket: 'backups', directory_credential: { path: objects } }),
  });
  const env = { FERRY_DATA_DIR: dataDir };
  // Listed by the stand-alone process from the object store (the node has the same backup).
  const listed = await runFerry(apiUrl, ['--json', 'cloudsnap', 'list', '--cred', 'offsite'], env);
  expect(listed.code, listed.stderr).toBe(0);
  const fromNode = await ferry('--json', 'cloudsnap', 'list', '--cred', 'offsite');
  expect(JSON.parse(listed.stdout)).toEqual(JSON.parse(fromNode.stdout));
  expect(JSON.stringify(JSON.parse(listed.stdout))).toContain('"db"');
  // Forwarded to the node.
  const volumes = await runFerry(apiUrl, ['volume', 'list'], env);
  expect(volumes.code, volumes.stderr).toBe(0);
  expect(volumes.stdout).toMatch(/\bdb\b/);
  // No token, no answer.
  const anonymous = await fetch(`${apiUrl}/v1/cloudbackups/enumerate/filters`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ credential_id: 'offsite' }),
  });
  expect(anonymous.status).toBe(401);
});

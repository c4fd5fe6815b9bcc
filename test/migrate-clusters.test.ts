/**
 * Issue 24 with real clusters on both sides: two sites, each its own etcd and two `ferry node start` processes. The
 * pair is made on one node of each site and used from the other nodes (its key sealed in each site's etcd); a volume
 * with two replicas, attached on the source's second node while an NBD client writes, migrates when asked through the
 * first node (the API forwards the start to the node it is attached on), and arrives with two replicas, readable from
 * any node of the destination with every acknowledged write.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.js';
import { run, TOOL_ENV } from './support/run.js';

let dir: string;
let dc1: TestCluster;
let dc2: TestCluster;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-migrate-sites-'));
  [dc1, dc2] = await Promise.all([startCluster({ nodes: 2 }), startCluster({ nodes: 2 })]);
}, 180_000);

afterAll(async () => {
  await dc1?.cleanup();
  await dc2?.cleanup();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function ferry(site: TestCluster, i: number, args: string[]): Promise<string> {
  const result = await site.ferry(i, args);
  expect(result.stderr, `ferry ${args.join(' ')}`).toBe('');
  expect(result.code, `ferry ${args.join(' ')}: ${result.stdout}`).toBe(0);
  return result.stdout;
}

async function ferryJson<T>(site: TestCluster, i: number, args: string[]): Promise<T> {
  return JSON.parse(await ferry(site, i, ['--json', ...args])) as T;
}

const BLOCK = 64 * 1024;
const BLOCKS = 1024;
/** 64 KiB blocks at random, each with a sequence number, every acknowledged one logged, until a write is refused. */
const WRITER = `
import os, random
r = random.Random(11)
acks = open(os.environ['ACKS'], 'w', buffering=1)
seq = 0
while True:
    b = r.randrange(${BLOCKS})
    seq += 1
    try:
        h.pwrite(seq.to_bytes(8, 'little') * ${BLOCK / 8}, b * ${BLOCK})
        if seq % 16 == 0:
            h.flush()
    except Exception as e:
        acks.write('refused %s\\n' % e)
        break
    acks.write('%d %d\\n' % (b, seq))
`;

/** The number of blocks not holding their last acknowledged write (zeros where none was). */
const CHECKER = `
import os
last = {}
for line in open(os.environ['ACKS']):
    p = line.split()
    if p[0] != 'refused':
        last[int(p[0])] = int(p[1])
bad = sum(1 for b in range(${BLOCKS})
          if h.pread(${BLOCK}, b * ${BLOCK}) != (last[b].to_bytes(8, 'little') * ${BLOCK / 8} if b in last else bytes(${BLOCK})))
print(bad, len(last))
`;

it('migrates a replicated volume between two clusters of two nodes, attached and written on the whole time', async () => {
  const dest = dc2.nodes[0];
  const src = dc1.nodes[1];
  if (dest === undefined || src === undefined) throw new Error('no nodes');
  const { result } = await ferryJson<{ result: { token: string } }>(dc2, 1, ['cluster', 'pair', 'token']);
  await ferry(dc1, 0, ['cluster', 'pair', 'create', 'dc2', '--remote', dest.apiUrl, '--pair-token', result.token]);
  // The other node of each site serves the pair too (the key sealed in its etcd, loaded by watch).
  const seen = await ferryJson<{ status: string }[]>(dc1, 1, ['cluster', 'pair', 'list']);
  expect(seen.map((p) => p.status)).toEqual(['Ready']);
  expect((await ferryJson<{ status: string }[]>(dc2, 1, ['cluster', 'pair', 'list'])).map((p) => p.status)).toEqual([
    'Ready',
  ]);

  await ferry(dc1, 0, ['volume', 'create', 'db', '--size', `${(BLOCK * BLOCKS) / 1024 / 1024}M`, '--repl', '2']);
  const acks = join(dir, 'acks.txt');
  const writer = spawn('nbdsh', ['-u', `${src.nbdUrl}/db`, '-c', WRITER], {
    env: { ...TOOL_ENV, ACKS: acks },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const writerDone = new Promise<number>((resolve) => writer.once('exit', (code) => resolve(code ?? -1)));
  for (let i = 0; i < 200; i++) {
    if ((await readFile(acks, 'utf8').catch(() => '')).split('\n').length > 100) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  // Asked through node 0; the volume is attached on node 1, which runs the migration.
  const [done] = await ferryJson<{ status: string; node_id: string; pass: number }[]>(dc1, 0, [
    'migrate',
    'start',
    'db',
    '--pair',
    'dc2',
    '--wait',
  ]);
  expect(done?.status).toBe('Done');
  expect(done?.node_id).toBe(src.id);
  expect(await writerDone).toBe(0);

  const inspect = await ferryJson<{ volume: { spec: { ha_level: number }; replicas: { state: string }[] } }>(dc2, 1, [
    'volume',
    'inspect',
    'db',
  ]);
  expect(inspect.volume.spec.ha_level).toBe(2);
  expect(inspect.volume.replicas.map((r) => r.state)).toEqual(['in-sync', 'in-sync']);
  // Read through the destination's other node.
  const check = await run('nbdsh', ['-u', `${dc2.nodes[1]?.nbdUrl}/db`, '-c', CHECKER], { ...TOOL_ENV, ACKS: acks });
  expect(check.code, check.stderr).toBe(0);
  const [bad, written] = check.stdout.trim().split(' ').map(Number);
  expect(bad).toBe(0);
  expect(written).toBeGreaterThan(50);
  const source = await ferryJson<{ volume: { readonly: boolean; migrated_to: string } }>(dc1, 0, [
    'volume',
    'inspect',
    'db',
  ]);
  expect([source.volume.readonly, source.volume.migrated_to]).toEqual([true, 'dc2/db']);
}, 240_000);

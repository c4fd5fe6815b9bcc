/**
 * Issue 22, end to end: three real nodes on a real etcd, replication over mutual TLS between the node processes, and
 * real NBD clients. A volume of repl 2 written through node A (nbdcopy) reads back bit-identical through node B and
 * node C; a snapshot and a clone of it read back through the nodes that do not coordinate it; `ferry volume
 * ha-update --repl 3` under a running writer (nbdsh, on A) fills node C while the writes go on, and afterwards every
 * node reads the same bytes: the image, with the writer's last value in every block it wrote.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ClusterNode, startCluster, type TestCluster } from './support/cluster.js';
import { run as runTool, TOOL_ENV } from './support/run.js';

const run = promisify(execFile);
const step = (what: string): void => void process.stderr.write(`[e2e ${new Date().toISOString()}] ${what}\n`);
const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
/** The writer's blocks (64 KiB) lie in the first half of the volume. */
const BLOCK = 64 * 1024;
const REGION = 16 * MiB;

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-repl-e2e-'));
  cluster = await startCluster({ nodes: 3, labels: [{ rack: 'r1' }, { rack: 'r2' }, { rack: 'r3' }] });
}, 180_000);

afterAll(async () => {
  await cluster?.cleanup();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function node(i: number): ClusterNode {
  return cluster.nodes[i] as ClusterNode;
}

async function ferry(i: number, args: string[]): Promise<string> {
  const result = await cluster.ferry(i, args);
  expect(result.stderr, `ferry ${args.join(' ')}`).toBe('');
  expect(result.code).toBe(0);
  return result.stdout;
}

/** What node `i`'s NBD export `name` holds, read with nbdcopy. */
async function readThrough(i: number, name: string): Promise<Buffer> {
  const out = join(dir, `read-${i}-${name.replace('@', '-')}.img`);
  await run('nbdcopy', [`${node(i).nbdUrl}/${name}`, out]);
  const data = await readFile(out);
  await rm(out);
  return data;
}

interface Replicas {
  volume: { replicas: { node_id: string; state: string }[]; attached_on?: string };
}

async function replicasOf(i: number, name: string): Promise<Replicas['volume']['replicas']> {
  return (JSON.parse(await ferry(i, ['--json', 'volume', 'inspect', name])) as Replicas).volume.replicas;
}

/** Writes 64 KiB blocks (byte value = the write's number mod 251, plus 1) over REGION until STOP exists. */
const WRITER = `
import os, json, time
stop = os.environ['STOP']
blocks = int(os.environ['REGION']) // ${BLOCK}
last = {}
i = 0
while i < 64 or not os.path.exists(stop):
    b = (i * 37) % blocks
    v = i % 251 + 1
    h.pwrite(bytes([v]) * ${BLOCK}, b * ${BLOCK})
    last[b] = v
    i += 1
    if i % 32 == 0:
        h.flush()
        time.sleep(0.02)
h.flush()
print(json.dumps({'writes': i, 'last': last}))
`;

it('a repl-2 volume written through A reads the same through B and C, with a snapshot, a clone and an ha-update 2 -> 3 under a running writer', async () => {
  const [a, b, c] = [node(0), node(1), node(2)];
  step('create');
  await ferry(0, ['volume', 'create', 'db', '--size', '32M', '--repl', '2', '--nodes', `${a.id},${b.id}`]);
  expect((await replicasOf(2, 'db')).map((r) => [r.node_id, r.state])).toEqual([
    [a.id, 'in-sync'],
    [b.id, 'in-sync'],
  ]);

  // Written through A: random data with a hole in the middle.
  const image = Buffer.alloc(SIZE);
  randomBytes(12 * MiB).copy(image, 0);
  randomBytes(8 * MiB).copy(image, 20 * MiB);
  const imageFile = join(dir, 'image.raw');
  await writeFile(imageFile, image);
  step('write through A');
  await run('nbdcopy', [imageFile, `${a.nbdUrl}/db`]);
  expect((await readThrough(1, 'db')).equals(image)).toBe(true);

  // A snapshot taken on B, read through C (no replica there: a remote holder answers); a clone of it, read on A.
  step('snapshot on B');
  await ferry(1, ['volume', 'snapshot', 'create', 'db', '--name', 's1']);
  step('clone on C');
  await ferry(2, ['volume', 'clone', 'db@s1', '--name', 'db-copy']);
  expect((await replicasOf(0, 'db-copy')).map((r) => r.node_id).sort()).toEqual([a.id, b.id].sort());
  expect((await readThrough(2, 'db@s1')).equals(image)).toBe(true);
  expect((await readThrough(0, 'db-copy')).equals(image)).toBe(true);

  // A running writer on A while C is added and filled.
  step('writer');
  const stop = join(dir, 'stop');
  let writerEnded = false;
  const writer = runTool('nbdsh', ['-u', `${a.nbdUrl}/db`, '-c', WRITER], {
    ...TOOL_ENV,
    STOP: stop,
    REGION: String(REGION),
  }).finally(() => {
    writerEnded = true;
  });
  // The writer holds the volume on A: a second writer on B is refused, naming A.
  for (;;) {
    const attached = (JSON.parse(await ferry(1, ['--json', 'volume', 'inspect', 'db'])) as Replicas).volume;
    if (attached.attached_on === a.id) break;
    if (writerEnded) throw new Error(`the writer exited early: ${(await writer).stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  step('second writer on B');
  // libnbd prints the server's refusal message only in its debug output.
  const refused = await run('nbdinfo', [`${b.nbdUrl}/db`], { env: { ...process.env, LIBNBD_DEBUG: '1' } }).then(
    () => 'opened',
    (e: { stderr?: string }) => e.stderr ?? '',
  );
  expect(refused).toMatch(new RegExp(`attached on node ${a.id}`));

  step('ha-update');
  await ferry(2, ['volume', 'ha-update', 'db', '--repl', '3', '--node', c.id]);
  for (;;) {
    const replicas = await replicasOf(1, 'db');
    const added = replicas.find((r) => r.node_id === c.id);
    expect(added?.state).not.toBe('out-of-sync');
    if (added?.state === 'in-sync') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  step('stop writer');
  await writeFile(stop, '');
  const written = await writer;
  expect(written.code, written.stderr).toBe(0);
  const { writes, last } = JSON.parse(written.stdout) as { writes: number; last: Record<string, number> };
  expect(writes).toBeGreaterThanOrEqual(64);
  const expected = Buffer.from(image);
  for (const [block, value] of Object.entries(last))
    expected.fill(value, Number(block) * BLOCK, (Number(block) + 1) * BLOCK);

  expect((await replicasOf(0, 'db')).map((r) => r.state)).toEqual(['in-sync', 'in-sync', 'in-sync']);
  // Each node reads its own replica.
  for (const i of [0, 1, 2]) expect((await readThrough(i, 'db')).equals(expected), `read through node ${i}`).toBe(true);
  // The snapshot did not move.
  expect((await readThrough(1, 'db@s1')).equals(image)).toBe(true);
}, 300_000);

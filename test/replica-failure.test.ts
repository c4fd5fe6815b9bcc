/**
 * Issue 23, end to end: a replica's node dies while its volume is attached (docs/REPLICATION.md, R7, R8). Two real
 * nodes on a real etcd; a repl-2 volume written through node A by a running nbdsh writer; kill -9 of node B. The
 * writer goes on (every write and flush acknowledged: nbdsh would exit non-zero on an error), A records B out of sync
 * (inspect: VOLUME_STATUS_DEGRADED, B `out-of-sync` with since and reason), and A reads back every acknowledged write.
 * Then, with the volume attached nowhere, B is started again: it is brought back in sync with no client attaching
 * (R19), and B reads back every acknowledged write too.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ClusterNode, startCluster, type TestCluster } from './support/cluster.js';
import { run as runTool, TOOL_ENV } from './support/run.js';

const step = (what: string): void => void process.stderr.write(`[e2e ${new Date().toISOString()}] ${what}\n`);
const MiB = 1024 * 1024;
const BLOCK = 64 * 1024;
const REGION = 8 * MiB;

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-fail-e2e-'));
  cluster = await startCluster({ nodes: 2 });
}, 180_000);

afterAll(async () => {
  await cluster?.cleanup();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function node(i: number): ClusterNode {
  return cluster.nodes[i] as ClusterNode;
}

interface Inspected {
  volume: {
    status: string;
    attached_on?: string;
    replicas: { node_id: string; state: string; since?: string; reason?: string }[];
  };
}

async function inspect(i: number, name: string): Promise<Inspected['volume']> {
  const result = await cluster.ferry(i, ['--json', 'volume', 'inspect', name]);
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as Inspected).volume;
}

/**
 * Writes 64 KiB blocks (byte value = the write's number mod 251, plus 1) over REGION until STOP exists, flushing
 * every 16 writes and then recording how many writes are flushed in PROGRESS.
 */
const WRITER = `
import os, json, time
stop = os.environ['STOP']
progress = os.environ['PROGRESS']
blocks = int(os.environ['REGION']) // ${BLOCK}
last = {}
i = 0
while i < 64 or not os.path.exists(stop):
    b = (i * 37) % blocks
    v = i % 251 + 1
    h.pwrite(bytes([v]) * ${BLOCK}, b * ${BLOCK})
    last[b] = v
    i += 1
    if i % 16 == 0:
        h.flush()
        with open(progress + '.tmp', 'w') as f:
            f.write(str(i))
        os.rename(progress + '.tmp', progress)
        time.sleep(0.01)
h.flush()
print(json.dumps({'writes': i, 'last': last}))
`;

async function flushed(progress: string): Promise<number> {
  return Number(await readFile(progress, 'utf8').catch(() => '0'));
}

it('a repl-2 volume keeps taking writes through A when B is killed, and shows DEGRADED with B out-of-sync', async () => {
  const [a, b] = [node(0), node(1)];
  step('create');
  const created = await cluster.ferry(0, ['volume', 'create', 'db', '--size', '16M', '--repl', '2']);
  expect(created.code, created.stderr).toBe(0);
  expect((await inspect(0, 'db')).status).toBe('VOLUME_STATUS_UP');

  step('writer on A');
  const stop = join(dir, 'stop');
  const progress = join(dir, 'progress');
  let writerEnded = false;
  const writer = runTool('nbdsh', ['-u', `${a.nbdUrl}/db`, '-c', WRITER], {
    ...TOOL_ENV,
    STOP: stop,
    PROGRESS: progress,
    REGION: String(REGION),
  }).finally(() => {
    writerEnded = true;
  });
  while ((await flushed(progress)) < 64) {
    if (writerEnded) throw new Error(`the writer exited early: ${(await writer).stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  step('kill -9 B');
  await cluster.kill(1);
  const atKill = await flushed(progress);
  let degraded: Inspected['volume'] | undefined;
  for (;;) {
    const v = await inspect(0, 'db');
    if (v.replicas.find((r) => r.node_id === b.id)?.state === 'out-of-sync') {
      degraded = v;
      break;
    }
    if (writerEnded) throw new Error(`the writer stopped: ${(await writer).stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(degraded.status).toBe('VOLUME_STATUS_DEGRADED');
  expect(Object.fromEntries(degraded.replicas.map((r) => [r.node_id, r.state]))).toEqual({
    [a.id]: 'in-sync',
    [b.id]: 'out-of-sync',
  });
  const gone = degraded.replicas.find((r) => r.node_id === b.id);
  expect(typeof gone?.since).toBe('string');
  expect(gone?.reason?.length ?? 0).toBeGreaterThan(0);

  step('writer goes on');
  while ((await flushed(progress)) < atKill + 128) {
    if (writerEnded) throw new Error(`the writer stopped: ${(await writer).stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await writeFile(stop, '');
  const written = await writer;
  expect(written.code, written.stderr).toBe(0);
  const { last } = JSON.parse(written.stdout) as { writes: number; last: Record<string, number> };

  step('read back through A');
  const check = `
import os, json
last = json.loads(os.environ['LAST'])
bad = [b for b, v in last.items() if h.pread(${BLOCK}, int(b) * ${BLOCK}) != bytes([v]) * ${BLOCK}]
print(json.dumps(bad))
`;
  const read = await runTool('nbdsh', ['-u', `${a.nbdUrl}/db`, '-c', check], {
    ...TOOL_ENV,
    LAST: JSON.stringify(last),
  });
  expect(read.code, read.stderr).toBe(0);
  expect(JSON.parse(read.stdout)).toEqual([]);
  expect((await inspect(0, 'db')).status).toBe('VOLUME_STATUS_DEGRADED');

  // R19: the volume is attached nowhere now; B comes back and is brought back in sync without any client attaching.
  step('restart B, nobody attached');
  await cluster.restart(1);
  for (let i = 0; ; i++) {
    const v = await inspect(0, 'db');
    if (v.status === 'VOLUME_STATUS_UP' && v.attached_on === undefined) break;
    if (i > 600) throw new Error(`B was not brought back in sync: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  step('read back through B');
  const throughB = await runTool('nbdsh', ['-u', `${b.nbdUrl}/db`, '-c', check], {
    ...TOOL_ENV,
    LAST: JSON.stringify(last),
  });
  expect(throughB.code, throughB.stderr).toBe(0);
  expect(JSON.parse(throughB.stdout)).toEqual([]);
}, 300_000);

/**
 * Issue 23, end to end: the coordinator's node dies (kill -9) and another node takes the volume over (F2-F5). Two
 * real nodes on a real etcd, replication over mutual TLS between the processes, real NBD clients (nbdsh). A writer
 * on node A writes and flushes a pattern and stays connected; A is killed; a client on node B retries its attach
 * while A's lease lives, then reads every flushed write and writes. Prints the time from the kill to B's first
 * acknowledged write (the failover figure; not asserted: the machine is shared).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ClusterNode, startCluster, type TestCluster } from './support/cluster.js';
import { run, TOOL_ENV } from './support/run.js';

const step = (what: string): void => void process.stderr.write(`[failover ${new Date().toISOString()}] ${what}\n`);
const BLOCK = 64 * 1024;
const BLOCKS = 64;

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-failover-e2e-'));
  cluster = await startCluster({ nodes: 2 });
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

/** Block b holds byte value b % 251 + 1 (flushed), then the writer stays attached until READY's reader kills A. */
const WRITER = `
import os, time
for b in range(${BLOCKS}):
    h.pwrite(bytes([b % 251 + 1]) * ${BLOCK}, b * ${BLOCK})
h.flush()
open(os.environ['READY'], 'w').close()
while True:
    time.sleep(0.1)
`;

/** Checks every flushed block, then writes one block and prints when the write was acknowledged. */
const TAKER = `
import json, time
bad = [b for b in range(${BLOCKS}) if h.pread(${BLOCK}, b * ${BLOCK}) != bytes([b % 251 + 1]) * ${BLOCK}]
h.pwrite(bytes([0xee]) * ${BLOCK}, ${BLOCKS} * ${BLOCK})
acked = time.time()
h.flush()
print(json.dumps({'bad': bad, 'acked': acked}))
`;

interface Inspected {
  volume: { replicas: { node_id: string; state: string; reason?: string }[]; attached_on?: string };
}

it('kill -9 of the coordinator: node B takes over, serves every flushed write, and takes writes', async () => {
  const [a, b] = [node(0), node(1)];
  await ferry(0, ['volume', 'create', 'db', '--size', '16M', '--repl', '2', '--nodes', `${a.id},${b.id}`]);
  const ready = join(dir, 'ready');
  step('writer on A');
  const writer = spawn('nbdsh', ['-u', `${a.nbdUrl}/db`, '-c', WRITER], { env: { ...TOOL_ENV, READY: ready } });
  let writerErr = '';
  writer.stderr.on('data', (d: Buffer) => {
    writerErr += d.toString();
  });
  const writerExit = new Promise<void>((resolve) => writer.on('close', () => resolve()));
  try {
    for (;;) {
      if (
        await stat(ready).then(
          () => true,
          () => false,
        )
      )
        break;
      if (writer.exitCode !== null) throw new Error(`the writer exited early: ${writerErr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    step('kill -9 of A');
    await cluster.kill(0);
    const killedAt = Date.now() / 1000;
    let attempts = 0;
    let answer: { bad: number[]; acked: number } | undefined;
    let last = '';
    while (answer === undefined) {
      attempts++;
      const result = await run('nbdsh', ['-u', `${b.nbdUrl}/db`, '-c', TAKER]);
      if (result.code === 0) answer = JSON.parse(result.stdout) as { bad: number[]; acked: number };
      else last = result.stderr;
      if (attempts > 600) throw new Error(`node B never took the volume over: ${last}`);
      if (answer === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = answer.acked - killedAt;
    step(`failover: ${seconds.toFixed(2)} s from the kill of A to B's first acknowledged write (${attempts} attaches)`);
    expect(answer.bad).toEqual([]);
    const inspected = JSON.parse(await ferry(1, ['--json', 'volume', 'inspect', 'db'])) as Inspected;
    const byNode = Object.fromEntries(inspected.volume.replicas.map((r) => [r.node_id, r.state]));
    expect(byNode).toEqual({ [a.id]: 'out-of-sync', [b.id]: 'in-sync' });
    // Node B serves the write it acknowledged and the flushed ones on a new connection too.
    const again = await run('nbdsh', [
      '-u',
      `${b.nbdUrl}/db`,
      '-c',
      `print(h.pread(${BLOCK}, ${BLOCKS} * ${BLOCK}) == bytes([0xee]) * ${BLOCK}, h.pread(${BLOCK}, 0) == bytes([1]) * ${BLOCK})`,
    ]);
    expect(again.stdout.trim()).toBe('True True');
  } finally {
    writer.kill('SIGKILL');
    await writerExit;
  }
}, 300_000);

/**
 * Cluster benchmark (issue 22). Prints tables and writes JSON.
 *
 *   npm run bench:cluster -- [--only io,fill] [--seconds 8] [--fill-mib 1024] [--dir DIR] [--out FILE]
 *
 * Starts a real etcd and two `ferry node start` processes on loopback, as a user starts them (bench/cluster-nodes.ts),
 * and measures through NBD on node 1, with fio's nbd engine at iodepth 16:
 * io:   a volume with one replica (on node 1) against one with two (nodes 1 and 2): sequential 1 MiB writes, 4 KiB
 *       random writes, sequential 1 MiB and 4 KiB random reads on node 1 (which holds a replica of both). Each job
 *       runs twice per volume, in opposite order, best of each; p99 completion latency from fio. Ratios are
 *       repl 2 / repl 1. Both volumes are fresh at the first write job; reads run over what the writes left.
 * fill: `ferry volume ha-update --repl 2` of a volume holding `--fill-mib` MiB of random data, from `ha-update` until
 *       the new replica is in-sync, against nbdcopy of the same volume from node 1's NBD export to a fresh volume on
 *       node 2's (what a full copy between the two nodes costs). Ratio: fill throughput / nbdcopy throughput.
 * ceiling: what the replication transport alone carries between two processes on this machine (bench/transport-
 *       ceiling.ts: 1 MiB WRITEs at depth 16 to a replica that stores nothing, and a plain node:tls stream), with
 *       the ratio repl 2 could reach against this run's repl 1 if replication cost nothing but the transport.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { type BenchCluster, type BenchNode, startBenchCluster } from './cluster-nodes.js';
import { type FioJob, type FioResult, runFio } from './fio.js';
import { printTable, type Row, writeJson } from './report.js';
import { measureTransportCeiling } from './transport-ceiling.js';

const run = promisify(execFile);
const MiB = 1024 ** 2;

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string', default: 'io,fill,ceiling' },
    dir: { type: 'string', default: tmpdir() },
    seconds: { type: 'string', default: '8' },
    'fill-mib': { type: 'string', default: '1024' },
    out: { type: 'string', default: 'bench/results/cluster.json' },
  },
});
const only = new Set((opts.only ?? '').split(','));
const results: Record<string, unknown> = { date: new Date().toISOString() };

const IO_JOBS: FioJob[] = [
  { name: 'seq-write-1M', rw: 'write', bs: '1M', iodepth: 16 },
  { name: 'rand-write-4k', rw: 'randwrite', bs: '4k', iodepth: 16 },
  { name: 'seq-read-1M', rw: 'read', bs: '1M', iodepth: 16 },
  { name: 'rand-read-4k', rw: 'randread', bs: '4k', iodepth: 16 },
];

const GOALS: Record<string, string> = {
  'seq-write-1M': '>= 0.7x',
  'rand-write-4k': '>= 0.5x',
  'seq-read-1M': '>= 0.95x',
  'rand-read-4k': '>= 0.95x',
};

/** What `ferry --json volume inspect` prints (the API's inspect answer). */
interface VolumeView {
  volume?: { replicas?: { node_id: string; state: string }[] };
}

function node(cluster: BenchCluster, i: number): BenchNode {
  return cluster.nodes[i] as BenchNode;
}

async function createVolume(cluster: BenchCluster, name: string, size: string, nodes: string[]): Promise<void> {
  await cluster.ferry(
    0,
    ['volume', 'create', name, '--size', size, '--repl', String(nodes.length)].concat(['--nodes', nodes.join(',')]),
  );
}

async function benchIo(cluster: BenchCluster): Promise<void> {
  const seconds = Number(opts.seconds);
  const [a, b] = [node(cluster, 0), node(cluster, 1)];
  await createVolume(cluster, 'repl1', '2G', [a.id]);
  await createVolume(cluster, 'repl2', '2G', [a.id, b.id]);
  const uri = (name: string): string => `${a.nbdUrl}/${name}`;
  const best = (x: FioResult, y: FioResult): FioResult => (x.bw >= y.bw ? x : y);
  const rows: Row[] = [];
  for (const job of IO_JOBS) {
    const one1 = await runFio(uri('repl1'), job, '1G', seconds);
    const two1 = await runFio(uri('repl2'), job, '1G', seconds);
    const two2 = await runFio(uri('repl2'), job, '1G', seconds);
    const one2 = await runFio(uri('repl1'), job, '1G', seconds);
    const [one, two] = [best(one1, one2), best(two1, two2)];
    rows.push({
      job: `${job.name} qd${job.iodepth}`,
      'repl1 MiB/s': one.bw / MiB,
      'repl1 IOPS': Math.round(one.iops),
      'repl2 MiB/s': two.bw / MiB,
      'repl2 IOPS': Math.round(two.iops),
      'repl2/repl1': two.bw / one.bw,
      goal: GOALS[job.name] ?? '',
      'repl1 p99 us': Math.round(one.p99Us),
      'repl2 p99 us': Math.round(two.p99Us),
    });
  }
  printTable(`fio through NBD on node 1, ${seconds}s per job, 1 GiB region, iodepth 16`, rows);
  results.io = rows;
}

async function benchCeiling(): Promise<void> {
  const seconds = Number(opts.seconds);
  const { replication, tls } = await measureTransportCeiling(seconds);
  const io = results.io as Row[] | undefined;
  const repl1 = io?.find((r) => String(r.job).startsWith('seq-write-1M'))?.['repl1 MiB/s'];
  const row = (what: string, c: typeof replication): Row => ({
    what,
    'MiB/s': c.mibPerSecond,
    'sender CPU ms/MiB': c.senderCpuMsPerMiB,
    'receiver CPU ms/MiB': c.receiverCpuMsPerMiB,
    'MiB/s / repl1 seq-write': typeof repl1 === 'number' ? c.mibPerSecond / repl1 : 'run io too',
  });
  const rows = [
    row('replication transport, 1 MiB WRITEs qd16, null replica', replication),
    row('node:tls stream, 1 MiB writes, no framing', tls),
  ];
  printTable(`the transport alone between two processes, ${seconds}s each (a ceiling for repl 2)`, rows);
  results.ceiling = rows;
}

/** A file of `mib` MiB of random data (incompressible, no holes). */
async function randomImage(path: string, mib: number): Promise<void> {
  const file = await open(path, 'w');
  const chunk = Buffer.alloc(4 * MiB);
  try {
    for (let done = 0; done < mib * MiB; done += chunk.length) {
      randomFillSync(chunk);
      await file.write(chunk, 0, Math.min(chunk.length, mib * MiB - done));
    }
  } finally {
    await file.close();
  }
}

async function waitInSync(cluster: BenchCluster, name: string, nodeId: string): Promise<void> {
  for (;;) {
    // The API, not the CLI: a CLI process per poll would add its start-up to the measured time.
    const view = await cluster.get<VolumeView>(0, `/v1/volumes/inspect/${name}`);
    const replica = view.volume?.replicas?.find((r) => r.node_id === nodeId);
    if (replica === undefined) throw new Error(`volume ${name} has no replica on ${nodeId}: ${JSON.stringify(view)}`);
    if (replica.state === 'in-sync') return;
    if (replica.state === 'out-of-sync') throw new Error(`the new replica of ${name} went out of sync`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function benchFill(cluster: BenchCluster, base: string): Promise<void> {
  const mib = Number(opts['fill-mib']);
  const [a, b] = [node(cluster, 0), node(cluster, 1)];
  const image = join(base, 'fill.img');
  await randomImage(image, mib);
  await createVolume(cluster, 'fill-src', `${mib}M`, [a.id]);
  await run('nbdcopy', [image, `${a.nbdUrl}/fill-src`]);
  await rm(image);

  await createVolume(cluster, 'copy-dst', `${mib}M`, [b.id]);
  const copyStart = process.hrtime.bigint();
  await run('nbdcopy', [`${a.nbdUrl}/fill-src`, `${b.nbdUrl}/copy-dst`]);
  const copySeconds = Number(process.hrtime.bigint() - copyStart) / 1e9;

  const fillStart = process.hrtime.bigint();
  await cluster.ferry(0, ['volume', 'ha-update', 'fill-src', '--repl', '2', '--node', b.id]);
  await waitInSync(cluster, 'fill-src', b.id);
  const fillSeconds = Number(process.hrtime.bigint() - fillStart) / 1e9;

  const rows: Row[] = [
    {
      what: `${mib} MiB of data, node 1 -> node 2`,
      'ha-update 1->2 s': fillSeconds,
      'ha-update MiB/s': mib / fillSeconds,
      'nbdcopy s': copySeconds,
      'nbdcopy MiB/s': mib / copySeconds,
      'fill/nbdcopy': copySeconds / fillSeconds,
      goal: '>= 0.8x',
    },
  ];
  printTable('filling a new replica vs nbdcopy between the two nodes', rows);
  results.fill = rows;
}

async function main(): Promise<void> {
  const base = await mkdtemp(join(opts.dir ?? tmpdir(), 'ferry-bench-cluster-'));
  const cluster = await startBenchCluster(base, 2);
  try {
    if (only.has('io')) await benchIo(cluster);
    if (only.has('fill')) await benchFill(cluster, base);
  } finally {
    await cluster.stop();
    await rm(base, { recursive: true, force: true });
  }
  if (only.has('ceiling')) await benchCeiling();
  await writeJson(opts.out ?? 'bench/results/cluster.json', results);
}

await main();

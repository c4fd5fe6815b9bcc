/**
 * Engine benchmarks (issue 2). Prints tables and writes JSON.
 *
 *   npm run bench:engine -- [--only fio,xts,cbt,scale] [--dir DIR] [--seconds 8] [--volumes 1000] [--snapshots 64]
 *
 * fio:   fio --ioengine=nbd against Ferry's NBD export and against `nbdkit file` on a file in the same directory,
 *        same jobs, two rounds in opposite order, best of each, in one run; ratios are Ferry / nbdkit. A third
 *        column runs the same job against Ferry's NBD server with a null device: the protocol's own ceiling.
 * xts:   the cost of encryption at rest: the same fio jobs against a plaintext and an encrypted volume (AES-256-XTS
 *        per 4 KiB granule, data key from a local keyring) of one engine, two rounds in opposite order, best of
 *        each; ratios are encrypted / plaintext.
 * cbt:   changed-block diff of a 64 GiB thin volume after 1% of its 64 KiB blocks were rewritten since a snapshot.
 * scale: 1,000 volumes with 64 snapshots each on one engine: create and list times, memory (RSS after GC).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KeyProviders, openDefaultKeyring, volumeKeys } from '../kms/index.js';
import { NbdServer, openEngine, type VolumeEngine } from '../node/index.js';
import { type FioJob, type FioResult, runFio } from './fio.js';
import { NullProvider } from './null-provider.js';
import { printTable, type Row, writeJson } from './report.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string', default: 'fio,xts,cbt,scale' },
    dir: { type: 'string', default: tmpdir() },
    seconds: { type: 'string', default: '8' },
    volumes: { type: 'string', default: '1000' },
    snapshots: { type: 'string', default: '64' },
    out: { type: 'string', default: 'bench/results/engine.json' },
  },
});
const only = new Set((opts.only ?? '').split(','));
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ host: '127.0.0.1', port }, () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on port ${port}`);
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  g?.();
}

async function benchFio(base: string): Promise<void> {
  const seconds = Number(opts.seconds);
  const engine = await openEngine({ dataDir: join(base, 'ferry') });
  await engine.createVolume({ name: 'bench', size: 2 * GiB });
  const server = new NbdServer(engine);
  const { port } = await server.listen('127.0.0.1', 0);
  const nullServer = new NbdServer(new NullProvider(2 * GiB));
  const { port: nullPort } = await nullServer.listen('127.0.0.1', 0);
  const image = join(base, 'nbdkit.img');
  await truncate(image, 0).catch(() => undefined);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(image, '');
  await truncate(image, 2 * GiB);
  const kitPort = await freePort();
  const kit: ChildProcess = spawn(
    'nbdkit',
    ['-f', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(kitPort), 'file', image],
    {
      stdio: 'ignore',
    },
  );
  try {
    await waitForPort(kitPort);
    const jobs = FIO_JOBS;
    const rows: Row[] = [];
    const best = (a: FioResult, b: FioResult): FioResult => (a.bw >= b.bw ? a : b);
    for (const job of jobs) {
      // Two rounds in opposite order, best of each: neither side always runs first (fresh blocks, warm cache).
      const ferry1 = await runFio(`nbd://127.0.0.1:${port}/bench`, job, '1G', seconds);
      const nbdkit1 = await runFio(`nbd://127.0.0.1:${kitPort}/`, job, '1G', seconds);
      const nbdkit2 = await runFio(`nbd://127.0.0.1:${kitPort}/`, job, '1G', seconds);
      const ferry2 = await runFio(`nbd://127.0.0.1:${port}/bench`, job, '1G', seconds);
      const ferry = best(ferry1, ferry2);
      const nbdkit = best(nbdkit1, nbdkit2);
      const ceiling = await runFio(`nbd://127.0.0.1:${nullPort}/null`, job, '1G', seconds);
      rows.push({
        job: `${job.name} qd${job.iodepth}`,
        'ferry MiB/s': ferry.bw / MiB,
        'ferry IOPS': Math.round(ferry.iops),
        'nbdkit MiB/s': nbdkit.bw / MiB,
        'nbdkit IOPS': Math.round(nbdkit.iops),
        'ferry/nbdkit': ferry.bw / nbdkit.bw,
        'NBD server, null device MiB/s': ceiling.bw / MiB,
        'ferry lat us': ferry.latUs,
        'nbdkit lat us': nbdkit.latUs,
      });
    }
    printTable(
      `fio through NBD, ${seconds}s per job, 1 GiB region (goal: seq >= 0.8x, 4k random >= 0.5x nbdkit)`,
      rows,
    );
    results.fio = rows;
  } finally {
    kit.kill('SIGTERM');
    await server.close();
    await nullServer.close();
    await engine.close();
  }
}

const FIO_JOBS: FioJob[] = [
  { name: 'seq-write-1M', rw: 'write', bs: '1M', iodepth: 16 },
  { name: 'seq-read-1M', rw: 'read', bs: '1M', iodepth: 16 },
  { name: 'rand-write-4k', rw: 'randwrite', bs: '4k', iodepth: 16 },
  { name: 'rand-read-4k', rw: 'randread', bs: '4k', iodepth: 16 },
];

async function benchXts(base: string): Promise<void> {
  const seconds = Number(opts.seconds);
  const dataDir = join(base, 'xts');
  const keyring = await openDefaultKeyring(dataDir);
  const engine = await openEngine({ dataDir, keys: volumeKeys({ providers: new KeyProviders([keyring]).lookup }) });
  await engine.createVolume({ name: 'plain', size: 2 * GiB });
  await engine.createVolume({ name: 'xts', size: 2 * GiB, encrypted: true });
  const server = new NbdServer(engine);
  const { port } = await server.listen('127.0.0.1', 0);
  try {
    const rows: Row[] = [];
    const best = (a: FioResult, b: FioResult): FioResult => (a.bw >= b.bw ? a : b);
    for (const job of FIO_JOBS) {
      const plain1 = await runFio(`nbd://127.0.0.1:${port}/plain`, job, '1G', seconds);
      const xts1 = await runFio(`nbd://127.0.0.1:${port}/xts`, job, '1G', seconds);
      const xts2 = await runFio(`nbd://127.0.0.1:${port}/xts`, job, '1G', seconds);
      const plain2 = await runFio(`nbd://127.0.0.1:${port}/plain`, job, '1G', seconds);
      const plain = best(plain1, plain2);
      const xts = best(xts1, xts2);
      rows.push({
        job: `${job.name} qd${job.iodepth}`,
        'plaintext MiB/s': plain.bw / MiB,
        'plaintext IOPS': Math.round(plain.iops),
        'encrypted MiB/s': xts.bw / MiB,
        'encrypted IOPS': Math.round(xts.iops),
        'encrypted/plaintext': xts.bw / plain.bw,
        'plaintext lat us': plain.latUs,
        'encrypted lat us': xts.latUs,
      });
    }
    printTable(
      `encryption at rest: fio through NBD, ${seconds}s per job, 1 GiB region, plaintext vs AES-256-XTS`,
      rows,
    );
    results.xts = rows;
  } finally {
    await server.close();
    await engine.close();
    await keyring.close();
  }
}

async function benchCbt(base: string): Promise<void> {
  const engine = await openEngine({ dataDir: join(base, 'cbt') });
  const size = 64 * GiB;
  const block = 64 * 1024;
  await engine.createVolume({ name: 'big', size });
  const dev = await engine.openExport('big');
  await dev.write(0, Buffer.alloc(64 * MiB, 1));
  const s1 = await engine.createSnapshot('big', { name: 's1' });
  const blocks = size / block;
  const chosen = new Set<number>();
  while (chosen.size < Math.round(blocks * 0.01)) chosen.add(Math.floor(Math.random() * blocks));
  const data = Buffer.alloc(block, 7);
  for (const b of chosen) await dev.write(b * block, data);
  await dev.flush();
  const s2 = await engine.createSnapshot('big', { name: 's2' });
  const rows: Row[] = [];
  const timeDiff = async (label: string, target?: string): Promise<void> => {
    const t0 = performance.now();
    let offset: number | undefined = 0;
    let extents = 0;
    let bytes = 0;
    let pages = 0;
    while (offset !== undefined) {
      const page = await engine.changedBlocks('big', {
        base_snapshot_id: s1.id,
        target_snapshot_id: target,
        offset,
        limit: 10_000,
      });
      extents += page.extents.length;
      bytes += page.extents.reduce((n, e) => n + e.length, 0);
      offset = page.next_offset;
      pages++;
    }
    const ms = performance.now() - t0;
    rows.push({
      diff: label,
      'changed blocks': chosen.size,
      extents,
      'changed MiB': bytes / MiB,
      pages,
      'time ms': ms,
    });
    if (bytes !== chosen.size * block) throw new Error(`diff reported ${bytes} bytes, expected ${chosen.size * block}`);
  };
  await timeDiff('s1 -> s2', s2.id);
  await timeDiff('s1 -> live');
  printTable('changed-block diff, 64 GiB thin volume, 1% of 64 KiB blocks rewritten (goal: < 1 s)', rows);
  results.cbt = rows;
  await dev.close();
  await engine.close();
}

async function benchScale(base: string): Promise<void> {
  const volumes = Number(opts.volumes);
  const snapshots = Number(opts.snapshots);
  const dataDir = join(base, 'scale');
  let engine: VolumeEngine = await openEngine({ dataDir });
  gc();
  const rssStart = process.memoryUsage().rss;
  let t0 = performance.now();
  for (let i = 0; i < volumes; i++) await engine.createVolume({ name: `vol-${i}`, size: 10 * GiB });
  const createVolumes = performance.now() - t0;
  t0 = performance.now();
  for (let i = 0; i < volumes; i++) {
    for (let j = 0; j < snapshots; j++) await engine.createSnapshot(`vol-${i}`, { name: `snap-${j}` });
  }
  const createSnapshots = performance.now() - t0;
  t0 = performance.now();
  const listed = await engine.listVolumes();
  const listVolumes = performance.now() - t0;
  t0 = performance.now();
  let snapCount = 0;
  for (const v of listed) snapCount += (await engine.listSnapshots(v.id)).length;
  const listSnapshots = performance.now() - t0;
  gc();
  const rssLoaded = process.memoryUsage().rss;
  await engine.close();
  t0 = performance.now();
  engine = await openEngine({ dataDir });
  const reopen = performance.now() - t0;
  gc();
  const rssReopened = process.memoryUsage().rss;
  await engine.close();
  const rows: Row[] = [
    { measure: `create ${volumes} volumes`, value: createVolumes, unit: 'ms' },
    { measure: `create ${volumes * snapshots} snapshots`, value: createSnapshots, unit: 'ms' },
    { measure: 'per snapshot', value: createSnapshots / (volumes * snapshots), unit: 'ms' },
    { measure: `list ${listed.length} volumes`, value: listVolumes, unit: 'ms' },
    { measure: `list ${snapCount} snapshots (per volume)`, value: listSnapshots, unit: 'ms' },
    { measure: 'engine restart (load metadata)', value: reopen, unit: 'ms' },
    { measure: 'RSS before', value: rssStart / MiB, unit: 'MiB' },
    { measure: 'RSS with all loaded', value: rssLoaded / MiB, unit: 'MiB' },
    { measure: 'RSS after restart', value: rssReopened / MiB, unit: 'MiB' },
  ];
  printTable(`${volumes} volumes x ${snapshots} snapshots on one node (engine in this process)`, rows);
  results.scale = rows;
}

async function main(): Promise<void> {
  const base = await mkdtemp(join(opts.dir ?? tmpdir(), 'ferry-bench-'));
  try {
    if (only.has('fio')) await benchFio(base);
    if (only.has('xts')) await benchXts(base);
    if (only.has('cbt')) await benchCbt(base);
    if (only.has('scale')) await benchScale(base);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  await writeJson(opts.out ?? 'bench/results/engine.json', results);
}

await main();

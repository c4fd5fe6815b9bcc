/**
 * Replication figures (issue 22), measured, never asserted:
 * 1. transport: MiB/s of 1 MiB WRITEs from a RemoteReplica to a replica that does nothing, over loopback mutual TLS
 *    (framing, TLS and the windows alone);
 * 2. a RemoteReplica over loopback mutual TLS to a real engine's volume (its LocalReplica, through the engine's
 *    device) against the same volume called directly: 1 MiB sequential writes and 4 KiB random writes, `--depth` in
 *    flight (default 16), each run ended by a flush that counts in its time; the ratio is remote / direct. The region
 *    written is filled once first, so every run overwrites allocated blocks. Twice: with the volume and its service
 *    in this process (both ends' TLS on one thread), and in a child process as on another node (direct runs are
 *    measured in the child).
 *
 *   npm run build && node dist/bench/replication.js [--seconds 4] [--depth 16] [--region-mib 256] [--rounds 2]
 *     [--window-mib 32] [--dir /tmp] [--out bench/results/replication.json]
 */

import { fork } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openEngine, RemoteReplicas, type Replica, type ReplicaHost, serveReplicas } from '../node/index.js';
import { DeviceHost, makePki, type Pki } from '../test/support/replication-fixture.js';
import { printTable, type Row, writeJson } from './report.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    depth: { type: 'string', default: '16' },
    'region-mib': { type: 'string', default: '256' },
    rounds: { type: 'string', default: '2' },
    'window-mib': { type: 'string', default: '32' },
    dir: { type: 'string' },
    out: { type: 'string', default: 'bench/results/replication.json' },
    child: { type: 'boolean', default: false },
  },
});
const seconds = Number(opts.seconds);
const depth = Number(opts.depth);
const region = Number(opts['region-mib']) * MiB;
const rounds = Number(opts.rounds);

interface Target {
  write(offset: number, data: Buffer): Promise<void>;
  flush(): Promise<void>;
}

interface Measured {
  mib_per_s: number;
  iops: number;
  p50_ms: number;
  p99_ms: number;
}

/** `depth` writers of `size`-byte blocks for `seconds`, sequential (one shared cursor) or random; then a flush. */
async function run(target: Target, size: number, sequential: boolean): Promise<Measured> {
  const blocks = region / size;
  let cursor = 0;
  let ops = 0;
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: depth }, async () => {
      const data = randomBytes(size);
      while (performance.now() < end) {
        const block = sequential ? cursor++ % blocks : randomInt(blocks);
        const t0 = performance.now();
        await target.write(block * size, data);
        latencies.push(performance.now() - t0);
        ops += 1;
      }
    }),
  );
  await target.flush();
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0;
  return {
    mib_per_s: (ops * size) / MiB / elapsed,
    iops: ops / elapsed,
    p50_ms: at(0.5),
    p99_ms: at(0.99),
  };
}

function mean(values: readonly Measured[]): Measured {
  const avg = (pick: (m: Measured) => number) => values.reduce((sum, m) => sum + pick(m), 0) / values.length;
  return {
    mib_per_s: avg((m) => m.mib_per_s),
    iops: avg((m) => m.iops),
    p50_ms: avg((m) => m.p50_ms),
    p99_ms: avg((m) => m.p99_ms),
  };
}

/** Serves `host` as node-b on loopback and opens its volume from node-a: the remote replica and a stop function. */
async function remoteOf(pki: Pki, host: ReplicaHost, volumeId: string) {
  const service = await serveReplicas({ host, credentials: pki.b, listen: { host: '127.0.0.1', port: 0 } });
  const connector = new RemoteReplicas({
    credentials: pki.a,
    addressOf: async () => ({ host: '127.0.0.1', port: service.port }),
    maxInFlightBytes: Number(opts['window-mib']) * MiB,
  });
  const replica = await connector.open('node-b', { volumeId, epoch: 1 });
  return {
    replica,
    stop: async () => {
      await replica.close();
      await connector.close();
      await service.close();
    },
  };
}

const nullReplica: Replica = {
  nodeId: 'node-b',
  read: async (_offset: number, length: number) => Buffer.alloc(length),
  write: async () => {},
  writeZeroes: async () => {},
  trim: async () => {},
  flush: async () => {},
  blockStatus: async (_offset: number, length: number) => [{ length, state: 'zero' }],
  snapshot: () => Promise.reject(new Error('not offered')),
  changedBlocks: () => Promise.reject(new Error('not offered')),
  generation: () => 0,
  recentWrites: async () => ({ complete: true, ranges: [] }),
  close: async () => {},
};

async function benchTransport(pki: Pki): Promise<Row[]> {
  const host: ReplicaHost = { open: async () => nullReplica, drop: async () => {} };
  const remote = await remoteOf(pki, host, 'null');
  try {
    const m = await run(remote.replica, MiB, true);
    return [
      { figure: '1 MiB writes, null replica', mib_per_s: Math.round(m.mib_per_s), p99_ms: Number(m.p99_ms.toFixed(2)) },
    ];
  } finally {
    await remote.stop();
  }
}

/** A real engine volume, filled once: every measured write then overwrites allocated blocks, whichever runs first. */
async function openVolume(dir: string) {
  const engine = await openEngine({ dataDir: dir, nodeId: 'node-b' });
  const { volume } = await engine.createVolume({ name: 'bench', size: region });
  const device = await engine.openExport('bench');
  const fill = randomBytes(MiB);
  for (let offset = 0; offset < region; offset += MiB) await device.write(offset, fill);
  await device.flush();
  return {
    volumeId: volume.id,
    device,
    close: async () => {
      await device.close();
      await engine.close();
    },
  };
}

/** Where the volume is: its direct measurement, and its replication service's port. */
interface VolumeSide {
  volumeId: string;
  port: number;
  direct(size: number, sequential: boolean): Promise<Measured>;
  stop(): Promise<void>;
}

/** The volume and its service in this process. */
async function sideHere(pki: Pki, dir: string): Promise<VolumeSide> {
  const volume = await openVolume(dir);
  const service = await serveReplicas({
    host: new DeviceHost(volume.volumeId, volume.device),
    credentials: pki.b,
    listen: { host: '127.0.0.1', port: 0 },
  });
  return {
    volumeId: volume.volumeId,
    port: service.port,
    direct: (size, sequential) => run(volume.device, size, sequential),
    stop: async () => {
      await service.close();
      await volume.close();
    },
  };
}

type ToChild = { type: 'start'; pki: Pki; dir: string } | { type: 'run'; size: number; sequential: boolean };
type FromChild = { type: 'ready'; port: number; volumeId: string } | { type: 'measured'; measured: Measured };

/** The volume and its service in a child process (as on another node); its direct runs are measured there. */
async function sideInChild(pki: Pki, dir: string): Promise<VolumeSide> {
  const child = fork(process.argv[1] as string, ['--child'], { stdio: 'inherit' });
  const next = async (): Promise<FromChild> => {
    const [message] = await once(child, 'message');
    return message as FromChild;
  };
  const ready = next();
  child.send({ type: 'start', pki, dir } satisfies ToChild);
  const started = await ready;
  if (started.type !== 'ready') throw new Error('the benchmark child did not start');
  return {
    volumeId: started.volumeId,
    port: started.port,
    direct: async (size, sequential) => {
      const answer = next();
      child.send({ type: 'run', size, sequential } satisfies ToChild);
      const got = await answer;
      if (got.type !== 'measured') throw new Error('the benchmark child did not measure');
      return got.measured;
    },
    stop: async () => {
      const exited = once(child, 'exit');
      child.disconnect();
      setTimeout(() => child.kill(), 30_000).unref();
      await exited;
    },
  };
}

/** The child's side: serves the volume, runs direct measurements when asked, stops when the parent disconnects. */
function child(): void {
  let side: Promise<VolumeSide> | undefined;
  process.on('message', (message: ToChild) => {
    if (message.type === 'start') {
      side = sideHere(message.pki, message.dir);
      void side.then((s) => process.send?.({ type: 'ready', port: s.port, volumeId: s.volumeId } satisfies FromChild));
    } else {
      void side
        ?.then((s) => s.direct(message.size, message.sequential))
        .then((measured) => process.send?.({ type: 'measured', measured } satisfies FromChild));
    }
  });
  process.once('disconnect', () => {
    void side?.then((s) => s.stop());
  });
}

async function benchEngine(pki: Pki, side: VolumeSide): Promise<Row[]> {
  const connector = new RemoteReplicas({
    credentials: pki.a,
    addressOf: async () => ({ host: '127.0.0.1', port: side.port }),
    maxInFlightBytes: Number(opts['window-mib']) * MiB,
  });
  const remote = await connector.open('node-b', { volumeId: side.volumeId, epoch: 1 });
  const rows: Row[] = [];
  try {
    for (const [workload, size, sequential] of [
      ['1 MiB sequential writes', MiB, true],
      ['4 KiB random writes', 4 * KiB, false],
    ] as const) {
      const local: Measured[] = [];
      const wire: Measured[] = [];
      for (let round = 0; round < rounds; round += 1) {
        // Alternate the order, so that neither side always runs on a warmer (or more tired) machine.
        if (round % 2 === 0) {
          local.push(await side.direct(size, sequential));
          wire.push(await run(remote, size, sequential));
        } else {
          wire.push(await run(remote, size, sequential));
          local.push(await side.direct(size, sequential));
        }
      }
      const l = mean(local);
      const w = mean(wire);
      const figure = sequential ? 'mib_per_s' : 'iops';
      rows.push({
        workload,
        direct: Math.round(l[figure]),
        remote: Math.round(w[figure]),
        unit: sequential ? 'MiB/s' : 'IOPS',
        ratio: Number((w[figure] / l[figure]).toFixed(2)),
        direct_p99_ms: Number(l.p99_ms.toFixed(2)),
        remote_p99_ms: Number(w.p99_ms.toFixed(2)),
      });
    }
  } finally {
    await remote.close();
    await connector.close();
  }
  return rows;
}

async function main(): Promise<void> {
  const pki = await makePki();
  const base = await mkdtemp(join(opts.dir ?? tmpdir(), 'ferry-bench-repl-'));
  try {
    const transport = await benchTransport(pki);
    printTable('replication transport over loopback mutual TLS (no replica work)', transport);
    const settings = `depth ${depth}, ${seconds} s x ${rounds} rounds, region ${region / MiB} MiB, flush included`;
    const results: Record<string, Row[]> = {};
    for (const [mode, start] of [
      ['one_process', sideHere],
      ['two_processes', sideInChild],
    ] as const) {
      const dir = join(base, mode);
      await mkdir(dir);
      const side = await start(pki, dir);
      try {
        results[mode] = await benchEngine(pki, side);
      } finally {
        await side.stop();
      }
      printTable(
        mode === 'one_process'
          ? `RemoteReplica over loopback mutual TLS vs the same LocalReplica called directly, both in this process (${settings})`
          : `The same, the LocalReplica and its service in a child process, as on another node; direct runs measured there (${settings})`,
        results[mode] ?? [],
      );
    }
    await writeJson(opts.out, {
      settings: { seconds, depth, region_mib: region / MiB, rounds, window_mib: Number(opts['window-mib']) },
      transport,
      remote_vs_direct: results,
    });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

if (opts.child === true) child();
else await main();

/**
 * Failover benchmark (issue 23, docs/REPLICATION.md section 8). Prints a table and writes JSON.
 *
 *   npm run bench:failover -- [--quick] [--only takeover,stall,resync,resume,chaos] [--trials 20] [--size 10G]
 *                             [--heartbeat S] [--trial-timeout S] [--dir DIR] [--out FILE] [--chaos FILE]
 *
 * Real etcd and `ferry node start` processes on loopback, started as a user starts them (bench/cluster-nodes.ts),
 * a fresh cluster per group of rows, real NBD clients (libnbd, failover-client.ts):
 * takeover: kill -9 of the coordinator's node -> first acknowledged write + FLUSH through another node, p50/p99 over
 *           `--trials` (failover-takeover.ts; 3 nodes).
 * stall:    the writer's p99 and longest operation around a kill -9 of a replica's node (failover-stall.ts).
 * resync:   bytes sent / changed after 1% of a `--size` volume changed while a replica was down, and the resync time
 *           vs nbdcopy of the changed bytes between the same nodes (failover-resync.ts).
 * resume:   the same resync killed (kill -9 of the target) at 50% and resumed: total bytes sent / changed.
 * chaos:    acknowledged writes lost, read from `npm run chaos`'s JSON (failover-chaos.ts).
 * `--quick`: 3 takeover trials, a 2 GiB volume, shorter waits (about 2 minutes when things work).
 * `--heartbeat S` sets FERRY_HEARTBEAT_SECONDS on every node (membership lease; default the node's 10 s). The attach
 * lock has a lease of its own (tryLock's TTL, 10 s by default), which bounds the takeover figure from below.
 * `--trial-timeout S`: longest wait per takeover trial (default 60, quick 30). Full rows run about 8 minutes.
 * A row whose behaviour does not happen says `failed: <why>`; one the bench cannot measure says `not measured: <why>`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchCluster, startBenchCluster } from './cluster-nodes.js';
import { chaosRow } from './failover-chaos.js';
import {
  changedBytesOf,
  failedResyncRows,
  NotMeasured,
  nbdcopySeconds,
  RESYNC_FIGURES,
  type ResyncOptions,
  type ResyncRun,
  resumeRow,
  resyncRows,
  resyncRun,
  TIME_RUNS,
  workloadText,
} from './failover-resync.js';
import { benchStall, STALL_FIGURE } from './failover-stall.js';
import { benchTakeover, TAKEOVER_FIGURE } from './failover-takeover.js';
import { type FigureRow, notes, reason, tableRow } from './failover-verdict.js';
import { codeVersion, printTable, writeJson } from './report.js';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', default: 'takeover,stall,resync,resume,chaos' },
    trials: { type: 'string' },
    size: { type: 'string' },
    heartbeat: { type: 'string' },
    'trial-timeout': { type: 'string' },
    dir: { type: 'string', default: tmpdir() },
    out: { type: 'string', default: 'bench/results/failover.json' },
    chaos: { type: 'string', default: 'bench/results/chaos.json' },
  },
});

/** Bytes of a size such as 10G, 512M, 1T or a plain number (binary units). */
function parseSize(text: string): number {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (m === null) throw new Error(`--size "${text}" is not a size (e.g. 10G, 512M)`);
  const power = ' KMGT'.indexOf((m[2] ?? '').toUpperCase() || ' ');
  return Number(m[1]) * 1024 ** power;
}

const quick = opts.quick ?? false;
const only = new Set((opts.only ?? '').split(',').filter((s) => s !== ''));
const trials = Number(opts.trials ?? (quick ? 3 : 20));
const sizeText = opts.size ?? (quick ? '2G' : '10G');
const sizeBytes = parseSize(sizeText);
const heartbeatSeconds = opts.heartbeat === undefined ? undefined : Number(opts.heartbeat);
const trialTimeoutMs = Number(opts['trial-timeout'] ?? (quick ? 30 : 60)) * 1000;
const resync: ResyncOptions = { sizeBytes, timeoutMs: quick ? 60_000 : 300_000 };

/** Runs `fn` on a fresh cluster of `count` nodes under `base`; a failure becomes `not measured` rows for `keys`. */
async function withCluster(
  base: string,
  label: string,
  count: number,
  figures: { key: string; figure: string; goal: string; detail?: string }[],
  fn: (cluster: BenchCluster, dir: string) => Promise<FigureRow[]>,
): Promise<FigureRow[]> {
  const dir = await mkdtemp(join(base, `${label}-`));
  let cluster: BenchCluster | undefined;
  try {
    cluster = await startBenchCluster(dir, count, heartbeatSeconds === undefined ? {} : { heartbeatSeconds });
    return await fn(cluster, dir);
  } catch (err: unknown) {
    const verdict = err instanceof NotMeasured ? err.verdict : `not measured: ${reason(err)}`;
    process.stdout.write(`${label}: ${verdict}\n`);
    return figures.map((f) => ({ ...f, value: '-', verdict, detail: f.detail ?? '' }));
  } finally {
    await cluster?.stop().catch((err: unknown) => process.stdout.write(`stopping the cluster: ${reason(err)}\n`));
  }
}

const FIGURES = {
  takeover: TAKEOVER_FIGURE,
  stall: STALL_FIGURE,
  resyncBytes: { key: 'resync', ...RESYNC_FIGURES.bytes },
  resyncTime: { key: 'resync', ...RESYNC_FIGURES.time },
  resume: { key: 'resume', ...RESYNC_FIGURES.resume, detail: workloadText(resync) },
};

async function main(): Promise<void> {
  const base = await mkdtemp(join(opts.dir ?? tmpdir(), 'ferry-bench-failover-'));
  const rows: FigureRow[] = [];
  const started = new Date().toISOString();
  try {
    if (only.has('takeover')) {
      const options = {
        trials,
        trialTimeoutMs,
        maxFailures: quick ? 1 : 2,
        ...(heartbeatSeconds !== undefined && { heartbeatSeconds }),
      };
      rows.push(
        ...(await withCluster(base, 'takeover', 3, [FIGURES.takeover], async (c) => [await benchTakeover(c, options)])),
      );
    }
    if (only.has('stall')) {
      const options = quick ? { beforeMs: 2000, afterMs: 7000 } : {};
      rows.push(...(await withCluster(base, 'stall', 2, [FIGURES.stall], async (c) => [await benchStall(c, options)])));
    }
    if (only.has('resync')) {
      const figures = [FIGURES.resyncBytes, FIGURES.resyncTime];
      rows.push(
        ...(await withCluster(base, 'resync', 2, figures, async (c, dir) => {
          const bytes = changedBytesOf(resync);
          const copy = await nbdcopySeconds(c, dir, bytes, TIME_RUNS).catch((err: unknown) => reason(err));
          try {
            const bytesRun = await resyncRun(c, 'resync', resync, 'bytes');
            const timeRuns: ResyncRun[] = [];
            for (let i = 0; i < TIME_RUNS; i++) timeRuns.push(await resyncRun(c, `resync-time-${i}`, resync, 'time'));
            return resyncRows(bytesRun, timeRuns, copy, resync);
          } catch (err: unknown) {
            if (!(err instanceof NotMeasured)) throw err;
            return failedResyncRows(err.verdict, copy, resync);
          }
        })),
      );
    }
    if (only.has('resume')) {
      rows.push(
        ...(await withCluster(base, 'resume', 2, [FIGURES.resume], async (c) => [
          resumeRow(await resyncRun(c, 'resume', resync, 'interrupt'), resync),
        ])),
      );
    }
    if (only.has('chaos')) rows.push(await chaosRow(opts.chaos ?? 'bench/results/chaos.json'));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  printTable(
    `failover figures (${quick ? 'quick: ' : ''}${trials} takeover trials, ${sizeText} volume)`,
    rows.map(tableRow),
  );
  process.stdout.write(`\n${notes(rows)}`);
  await writeJson(opts.out ?? 'bench/results/failover.json', {
    date: started,
    code: await codeVersion(),
    options: {
      quick,
      only: [...only],
      trials,
      size: sizeText,
      heartbeat_seconds: heartbeatSeconds ?? null,
      trial_timeout_s: trialTimeoutMs / 1000,
    },
    rows,
  });
}

await main();

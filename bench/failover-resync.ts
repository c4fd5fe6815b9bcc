/**
 * Rows 3 to 5 of the failover bench: a returning replica's resync. Two nodes, a volume of `sizeBytes` with replicas
 * on both, attached on A by a real NBD client (failover-client.ts, `script`) that stays connected throughout. The
 * client writes a little with both up; B is killed (SIGKILL); the client writes `changedBytes` (about 1% of the
 * volume, rounded up to whole MiB) as random 64 KiB blocks at distinct 64 KiB-aligned offsets, then FLUSHes; B must
 * then be recorded out-of-sync. B is started again, and the bench follows B's state in the volume's record with an
 * etcd watch (failover-watch.ts) until it is in-sync.
 *
 * - Bytes sent: every byte B received on its replication connections after its restart (failover-wire.ts: the
 *   kernel's per-connection `bytes_received`: frames, TLS and all; A's to B's port and B's to A's), over changed.
 * - Resync time: the same workload on a volume of its own, with no wire count running (`ss` every 20 ms costs this
 *   two-core machine a fifth of a core): from B's restart being ready to its in-sync commit; the copy's own time
 *   (filling commit to in-sync commit) is what the row compares, against nbdcopy of `changedBytes` of random data
 *   from a volume on A's NBD export to a volume on B's (the same two nodes; contiguous, which is if anything easier).
 * - Interrupted: once B has received half the changed bytes, B is frozen (SIGSTOP), its connections' counts are read
 *   until they stop moving, B is killed (SIGKILL) and started again; bytes sent in total (both runs) over changed.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BenchCluster } from './cluster-nodes.js';
import { type ClientEvent, monoNs, startClient } from './failover-client.js';
import { atMost, type FigureRow, reason } from './failover-verdict.js';
import { createVolume, nodeAt, replicaOn, uriOf, volumeIdOf } from './failover-volumes.js';
import { watchReplica } from './failover-watch.js';
import { countWire } from './failover-wire.js';

const run = promisify(execFile);
const MiB = 1024 ** 2;
const BLOCK = 64 * 1024;

/** Options of the resync figures. */
export interface ResyncOptions {
  /** The volume's size in bytes. */
  sizeBytes: number;
  /** Fraction of the volume changed while B is down; default 0.01. */
  changedFraction?: number;
  /** Longest wait for B to be in-sync again, ms. */
  timeoutMs: number;
}

/** What one resync run measured. */
export interface ResyncRun {
  changedBytes: number;
  /** Bytes received on B's replication connections after its restart(s). */
  sentBytes: number;
  connections: number;
  /** B ready -> in-sync. */
  resyncNs: number;
  /** First seen filling -> in-sync, when a filling state was seen. */
  copyNs?: number;
  /** States of B's replica seen while waiting, in order (repeats collapsed). */
  states: string[];
  /** The interrupted run: bytes B had received when it was frozen and killed. */
  killedAtBytes?: number;
}

/** The bytes changed while B is down: `fraction` of the volume rounded up to whole MiB. */
export function changedBytesOf(options: ResyncOptions): number {
  return Math.ceil((options.sizeBytes * (options.changedFraction ?? 0.01)) / MiB) * MiB;
}

/** The figures and goals of rows 3 to 5. */
export const RESYNC_FIGURES = {
  bytes: { figure: 'resync after 1% of the volume changed: bytes sent / bytes changed', goal: '<= 1.1' },
  time: { figure: 'resync time vs nbdcopy of the changed bytes between the same nodes', goal: '<= 1.5x' },
  resume: { figure: 'resync killed (kill -9 of target) at 50%, resumed: total bytes sent / changed', goal: '<= 1.2' },
};

/** A refusal to measure, carried to the row as its verdict. */
export class NotMeasured extends Error {
  constructor(readonly verdict: string) {
    super(verdict);
  }
}

/**
 * What a run measures: `bytes` counts B's wire (ss polled every 20 ms), `time` counts nothing besides (the polls of
 * `ss` cost the two-core machine a fifth of a core, which would slow the copy being timed against an nbdcopy that
 * runs without them), `interrupt` counts the wire and kills B once it received half the changed bytes.
 */
export type ResyncMode = 'bytes' | 'time' | 'interrupt';

/**
 * One resync run on volume `name` (A = node 0, B = node 1). B's states are followed by a watch on the volume's record
 * in etcd (failover-watch.ts). Throws NotMeasured (verdict `failed: ...`) when the behaviour needed does not happen.
 */
export async function resyncRun(
  cluster: BenchCluster,
  name: string,
  options: ResyncOptions,
  mode: ResyncMode,
): Promise<ResyncRun> {
  const [a, b] = [nodeAt(cluster, 0), nodeAt(cluster, 1)];
  const changedBytes = changedBytesOf(options);
  await createVolume(cluster, 0, name, String(options.sizeBytes), [a, b]);
  const volumeId = await volumeIdOf(cluster, 0, name);
  const client = startClient({ mode: 'script', uris: [uriOf(a, name)] });
  const command = async (line: string, timeoutMs: number): Promise<ClientEvent> => {
    const from = client.events.length;
    client.send(line);
    return client.waitFor((e) => e.ev === 'done' || e.ev === 'error', timeoutMs, from);
  };
  try {
    await client.waitFor((e) => e.ev === 'connected', 60_000);
    const warm = await command(`write 16 ${BLOCK} 1`, 60_000);
    if (warm.ev === 'error') throw new Error(`writing with both replicas up failed: ${warm.msg ?? ''}`);
    await b.kill('SIGKILL');
    const wrote = await command(`write ${changedBytes / BLOCK} ${BLOCK} 2`, 300_000);
    if (wrote.ev === 'error') {
      throw new NotMeasured(`failed: writing while the replica was down failed: ${wrote.msg ?? ''}`);
    }
    const down = await replicaOn(cluster, 0, name, b.id);
    if (down?.state !== 'out-of-sync') {
      throw new NotMeasured(
        `failed: after writes it missed, B's replica is ${down?.state ?? 'not listed'}, not out-of-sync`,
      );
    }
    // Every byte into B's replication sockets: connections A made to B, and any B made to A.
    const wire =
      mode === 'time'
        ? undefined
        : await countWire({ local: [b.replPort], peer: [a.replPort] }, mode === 'interrupt' ? 10 : 20);
    const watch = await watchReplica(cluster, volumeId, b.id);
    let killedAtBytes: number | undefined;
    let kill: Promise<void> | undefined;
    /** How many states were seen when B was killed (SIGKILL). */
    let killedAt = 0;
    // The interruption watches the wire count closely (the resync of a small change is quick).
    const interrupting = setInterval(() => {
      if (mode !== 'interrupt' || wire === undefined || kill !== undefined || wire.total() < changedBytes / 2) return;
      kill = (async () => {
        await b.kill('SIGSTOP');
        killedAtBytes = await wire.settle();
        await b.kill('SIGKILL');
        killedAt = watch.seen.length;
        await b.restart();
      })();
    }, 5);
    try {
      await b.restart();
      const t0 = monoNs();
      const inSync = (state: string): boolean => state === 'in-sync';
      let done = await watch.until(inSync, watch.seen.length, options.timeoutMs).catch(notInSync);
      if (mode === 'interrupt') {
        if (kill === undefined)
          throw new NotMeasured(`failed: B was in sync before it received half the changed bytes`);
        await kill;
        // In sync again after the kill (B cannot be in sync while it is frozen, but check).
        if (watch.seen.indexOf(done) < killedAt) {
          done = await watch.until(inSync, killedAt, options.timeoutMs).catch(notInSync);
        }
      }
      const sentBytes = (await wire?.stop()) ?? 0;
      const filling = watch.seen.find((s) => s.state === 'filling' && s.atNs >= t0);
      return {
        changedBytes,
        sentBytes,
        connections: wire?.connections() ?? 0,
        resyncNs: done.atNs - t0,
        ...(filling !== undefined && { copyNs: done.atNs - filling.atNs }),
        states: watch.seen.map((s) => s.state),
        ...(killedAtBytes !== undefined && { killedAtBytes }),
      };
    } finally {
      clearInterval(interrupting);
      await kill?.catch(() => undefined);
      await wire?.stop();
      await watch.stop();
    }
  } finally {
    client.send('quit');
    await client.stop();
  }
}

function notInSync(err: unknown): never {
  throw new NotMeasured(`failed: B not in-sync again: ${reason(err)}`);
}

/** Runs of the time figure, and of nbdcopy: each row compares their medians (one run varies by a third here). */
export const TIME_RUNS = 3;

/** The median of `values` (not empty). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Seconds nbdcopy takes to copy `bytes` of random data from a volume on node 0 to a fresh one on node 1, once for
 * each run (`runs` fresh pairs of volumes, one image).
 */
export async function nbdcopySeconds(
  cluster: BenchCluster,
  base: string,
  bytes: number,
  runs: number,
): Promise<number[]> {
  const [a, b] = [nodeAt(cluster, 0), nodeAt(cluster, 1)];
  const image = join(base, 'changed.img');
  const file = await open(image, 'w');
  const chunk = Buffer.alloc(4 * MiB);
  try {
    for (let done = 0; done < bytes; done += chunk.length) {
      randomFillSync(chunk);
      await file.write(chunk, 0, Math.min(chunk.length, bytes - done));
    }
  } finally {
    await file.close();
  }
  const seconds: number[] = [];
  for (let i = 0; i < runs; i++) {
    await createVolume(cluster, 0, `copy-src-${i}`, String(bytes), [a]);
    await run('nbdcopy', [image, uriOf(a, `copy-src-${i}`)]);
    await createVolume(cluster, 0, `copy-dst-${i}`, String(bytes), [b]);
    const start = monoNs();
    await run('nbdcopy', [uriOf(a, `copy-src-${i}`), uriOf(b, `copy-dst-${i}`)]);
    seconds.push((monoNs() - start) / 1e9);
  }
  await rm(image);
  return seconds;
}

const MiBText = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

/** The workload, for the rows' details. */
export function workloadText(options: ResyncOptions): string {
  const changed = changedBytesOf(options);
  return (
    `2 nodes, repl 2 volume of ${MiBText(options.sizeBytes)} (fresh), ${MiBText(changed)} changed while B was down: ` +
    `${changed / BLOCK} random 64 KiB writes at distinct aligned offsets + FLUSH through A (libnbd)`
  );
}

/** Seconds of a run's copy: first seen filling -> in-sync, or from B's restart when no filling state was seen. */
function copySecondsOf(run: ResyncRun): number {
  return (run.copyNs ?? run.resyncNs) / 1e9;
}

/**
 * Rows 3 and 4: bytes from a `bytes` run; time from `time` runs, each on a volume of its own (the same workload),
 * their median against the median of nbdcopy's runs of the same bytes.
 */
export function resyncRows(
  bytesRun: ResyncRun,
  timeRuns: readonly ResyncRun[],
  copyRuns: readonly number[] | string,
  options: ResyncOptions,
): FigureRow[] {
  const ratio = bytesRun.sentBytes / bytesRun.changedBytes;
  const short = bytesRun.sentBytes < bytesRun.changedBytes;
  const detail = `${workloadText(options)}; sent = bytes received on B's replication connections after its restart (ss tcp_info)`;
  const sent: FigureRow = {
    key: 'resync',
    ...RESYNC_FIGURES.bytes,
    value: `${ratio.toFixed(3)} (${MiBText(bytesRun.sentBytes)} / ${MiBText(bytesRun.changedBytes)})`,
    verdict: short ? 'missed: fewer bytes sent than changed (was everything copied?)' : atMost(ratio, 1.1),
    detail: `${detail}; ${bytesRun.connections} connection(s); states ${bytesRun.states.join(' -> ')}`,
    data: { ...bytesRun },
  };
  // The copy (filling -> in-sync as committed) is what nbdcopy's time compares with; when no filling state was seen,
  // the whole wait from B's restart, which can only make the ratio worse.
  const resyncs = timeRuns.map(copySecondsOf);
  const copyS = median(resyncs);
  const list = (xs: readonly number[]): string => xs.map((x) => x.toFixed(2)).join(', ');
  const unseen = timeRuns.filter((r) => r.copyNs === undefined).length;
  const timeDetail =
    `${workloadText(options)}; ${timeRuns.length} runs, each on a volume of its own with nothing polling (the bytes ` +
    `run, with ss polled every 20 ms, took ${copySecondsOf(bytesRun).toFixed(2)} s); resync time = filling -> in-sync ` +
    `as committed in the volume's record (an etcd watch)${unseen > 0 ? ` (${unseen} run(s) without a filling state: from B's restart)` : ''}: ` +
    `${list(resyncs)} s, median ${copyS.toFixed(2)} s; from B's restart ready: ${list(timeRuns.map((r) => r.resyncNs / 1e9))} s; ` +
    `nbdcopy of ${MiBText(bytesRun.changedBytes)} of random data from a volume on A's NBD export to one on B's, process start ` +
    `to exit: ${typeof copyRuns === 'string' ? copyRuns : `${list(copyRuns)} s`}`;
  const copySeconds = typeof copyRuns === 'string' ? copyRuns : median(copyRuns);
  const time: FigureRow =
    typeof copySeconds === 'string'
      ? {
          key: 'resync',
          ...RESYNC_FIGURES.time,
          value: `${copyS.toFixed(2)} s vs -`,
          verdict: `not measured: ${copySeconds}`,
          detail: timeDetail,
        }
      : {
          key: 'resync',
          ...RESYNC_FIGURES.time,
          value: `${(copyS / copySeconds).toFixed(2)}x (${copyS.toFixed(2)} s vs ${copySeconds.toFixed(2)} s)`,
          verdict: atMost(copyS / copySeconds, 1.5),
          detail: timeDetail,
          data: {
            resync_s: copyS,
            nbdcopy_s: copySeconds,
            resync_runs_s: resyncs,
            nbdcopy_runs_s: copyRuns,
            ready_to_in_sync_runs_s: timeRuns.map((r) => r.resyncNs / 1e9),
            states: timeRuns.map((r) => r.states),
            bytes_run_resync_s: copySecondsOf(bytesRun),
          },
        };
  return [sent, time];
}

/** Rows 3 and 4 when the resync did not happen (`verdict`), with the nbdcopy figure measured anyway. */
export function failedResyncRows(
  verdict: string,
  copyRuns: readonly number[] | string,
  options: ResyncOptions,
): FigureRow[] {
  const copy =
    typeof copyRuns === 'string' ? `nbdcopy not measured: ${copyRuns}` : `nbdcopy ${median(copyRuns).toFixed(2)} s`;
  const detail = `${workloadText(options)}; ${copy}`;
  return [
    { key: 'resync', ...RESYNC_FIGURES.bytes, value: '-', verdict, detail },
    { key: 'resync', ...RESYNC_FIGURES.time, value: `- vs ${copy}`, verdict, detail },
  ];
}

/** Row 5 from an interrupted run. */
export function resumeRow(runResult: ResyncRun, options: ResyncOptions): FigureRow {
  const ratio = runResult.sentBytes / runResult.changedBytes;
  const base = {
    key: 'resume',
    ...RESYNC_FIGURES.resume,
    detail:
      `${workloadText(options)}; B frozen (SIGSTOP) once it had received half the changed bytes, its counts read, ` +
      "then SIGKILL and restart; sent = bytes received on B's replication connections over both runs (ss tcp_info)",
    data: { ...runResult },
  };
  if (runResult.killedAtBytes === undefined) {
    return { ...base, value: '-', verdict: 'not measured: the resync ended before B had received half the bytes' };
  }
  const value = `${ratio.toFixed(3)} (${MiBText(runResult.sentBytes)} / ${MiBText(runResult.changedBytes)}, killed at ${MiBText(runResult.killedAtBytes)})`;
  const short = runResult.sentBytes < runResult.changedBytes;
  const at = (100 * runResult.killedAtBytes) / runResult.changedBytes;
  return {
    ...base,
    value,
    verdict: short ? 'missed: fewer bytes sent than changed (was everything copied?)' : atMost(ratio, 1.2),
    detail: `${base.detail}; killed at ${at.toFixed(0)}% of the changed bytes; states ${runResult.states.join(' -> ')}`,
  };
}

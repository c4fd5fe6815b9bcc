/**
 * Rows 3 to 5 of the failover bench: a returning replica's resync. Two nodes, a volume of `sizeBytes` with replicas
 * on both, attached on A by a real NBD client (failover-client.ts, `script`) that stays connected throughout. The
 * client writes a little with both up; B is killed (SIGKILL); the client writes `changedBytes` (about 1% of the
 * volume, rounded up to whole MiB) as random 64 KiB blocks at distinct 64 KiB-aligned offsets, then FLUSHes; B must
 * then be recorded out-of-sync. B is started again, and the bench waits until inspect (through A) shows B in-sync.
 *
 * - Bytes sent: every byte B received on its replication connections after its restart (failover-wire.ts: the
 *   kernel's per-connection `bytes_received`: frames, TLS and all; A's to B's port and B's to A's), over changed.
 * - Resync time: from B's restart being ready to inspect showing it in-sync (polled every 50 ms); the copy's own
 *   time (first seen `filling` to in-sync) is kept too. Against nbdcopy of `changedBytes` of random data from a
 *   volume on A's NBD export to a volume on B's (the same two nodes; contiguous, which is if anything easier).
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
import { atMost, type FigureRow, reason, secs } from './failover-verdict.js';
import { createVolume, nodeAt, replicaOn, uriOf, waitReplica } from './failover-volumes.js';
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
 * One resync run on volume `name` (A = node 0, B = node 1); with `interrupt`, B is killed once it received half the
 * changed bytes. Throws NotMeasured (verdict `failed: ...`) when the behaviour needed does not happen.
 */
export async function resyncRun(
  cluster: BenchCluster,
  name: string,
  options: ResyncOptions,
  interrupt: boolean,
): Promise<ResyncRun> {
  const [a, b] = [nodeAt(cluster, 0), nodeAt(cluster, 1)];
  const changedBytes = changedBytesOf(options);
  await createVolume(cluster, 0, name, String(options.sizeBytes), [a, b]);
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
    const wire = await countWire({ local: [b.replPort], peer: [a.replPort] }, interrupt ? 10 : 20);
    const states: string[] = [];
    let killedAtBytes: number | undefined;
    let filling: number | undefined;
    let kill: Promise<void> | undefined;
    let killed = false;
    // The interruption watches the wire count closely (the resync of a small change is quick).
    const watch = setInterval(() => {
      if (!interrupt || kill !== undefined || wire.total() < changedBytes / 2) return;
      kill = (async () => {
        await b.kill('SIGSTOP');
        killedAtBytes = await wire.settle();
        await b.kill('SIGKILL');
        await b.restart();
        killed = true;
      })();
    }, 5);
    try {
      await b.restart();
      const t0 = monoNs();
      const seen = (state: string): void => {
        if (states.at(-1) !== state) states.push(state);
        if (state === 'filling' && filling === undefined) filling = monoNs();
      };
      // In-sync ends the wait, except while an interruption is under way (it restarts B).
      await waitReplica(
        cluster,
        0,
        name,
        b.id,
        (r) => {
          seen(r?.state ?? 'not listed');
          return r?.state === 'in-sync' && (kill === undefined || killed);
        },
        options.timeoutMs,
        async () => undefined,
        20,
      ).catch((err: unknown) => {
        throw new NotMeasured(`failed: B not in-sync again: ${reason(err)}; states seen: ${states.join(' -> ')}`);
      });
      const t1 = monoNs();
      await kill;
      const sentBytes = await wire.stop();
      return {
        changedBytes,
        sentBytes,
        connections: wire.connections(),
        resyncNs: t1 - t0,
        ...(filling !== undefined && { copyNs: t1 - filling }),
        states,
        ...(killedAtBytes !== undefined && { killedAtBytes }),
      };
    } finally {
      clearInterval(watch);
      await kill?.catch(() => undefined);
      await wire.stop();
    }
  } finally {
    client.send('quit');
    await client.stop();
  }
}

/** Seconds nbdcopy takes to copy `bytes` of random data from a volume on node 0 to a fresh one on node 1. */
export async function nbdcopySeconds(cluster: BenchCluster, base: string, bytes: number): Promise<number> {
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
  await createVolume(cluster, 0, 'copy-src', String(bytes), [a]);
  await run('nbdcopy', [image, uriOf(a, 'copy-src')]);
  await rm(image);
  await createVolume(cluster, 0, 'copy-dst', String(bytes), [b]);
  const start = monoNs();
  await run('nbdcopy', [uriOf(a, 'copy-src'), uriOf(b, 'copy-dst')]);
  return (monoNs() - start) / 1e9;
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

/** Rows 3 and 4 from one run (and an nbdcopy of the same bytes). */
export function resyncRows(runResult: ResyncRun, copySeconds: number | string, options: ResyncOptions): FigureRow[] {
  const ratio = runResult.sentBytes / runResult.changedBytes;
  const short = runResult.sentBytes < runResult.changedBytes;
  const detail = `${workloadText(options)}; sent = bytes received on B's replication connections after its restart (ss tcp_info)`;
  const sent: FigureRow = {
    key: 'resync',
    ...RESYNC_FIGURES.bytes,
    value: `${ratio.toFixed(3)} (${MiBText(runResult.sentBytes)} / ${MiBText(runResult.changedBytes)})`,
    verdict: short ? 'missed: fewer bytes sent than changed (was everything copied?)' : atMost(ratio, 1.1),
    detail: `${detail}; ${runResult.connections} connection(s); states ${runResult.states.join(' -> ')}`,
    data: { ...runResult },
  };
  // The copy (first seen filling -> in-sync) is what nbdcopy's time compares with; when no filling state was seen
  // (a copy shorter than a poll), the whole wait from B's restart, which can only make the ratio worse.
  const copyS = (runResult.copyNs ?? runResult.resyncNs) / 1e9;
  const measured =
    runResult.copyNs === undefined
      ? `from B's restart ready to in-sync (no filling state seen)`
      : `filling -> in-sync as polled in inspect every 20 ms; from B's restart ready: ${secs(runResult.resyncNs)}`;
  const timeDetail =
    `${detail}; resync time ${measured}; nbdcopy of ${MiBText(runResult.changedBytes)} of random data from a volume ` +
    `on A's NBD export to one on B's, process start to exit`;
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
            ready_to_in_sync_s: runResult.resyncNs / 1e9,
            filling_seen: runResult.copyNs !== undefined,
          },
        };
  return [sent, time];
}

/** Rows 3 and 4 when the resync did not happen (`verdict`), with the nbdcopy figure measured anyway. */
export function failedResyncRows(verdict: string, copySeconds: number | string, options: ResyncOptions): FigureRow[] {
  const copy =
    typeof copySeconds === 'string' ? `nbdcopy not measured: ${copySeconds}` : `nbdcopy ${copySeconds.toFixed(2)} s`;
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

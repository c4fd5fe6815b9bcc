/**
 * The DR bench's copy rows: a migration's initial copy against nbdcopy between the same two nodes, and the bytes the
 * migration put on the wire for it.
 *
 * The source: volume `src` on A, filled from the mixed image (bench/cloudsnap-workload.ts) with nbdcopy. Then, `runs`
 * times, alternately:
 * - Ferry: `POST /v1/volumemigrate` (cutover manual), the status polled every 100 ms until `pass >= 1` (the initial
 *   copy recorded done): the time from the start call to then, and `wire_bytes` then; then `ferry migrate cancel`,
 *   waited for until Aborted (the cancel removes the destination volume, so each run starts on a fresh one).
 * - nbdcopy: volume `peer` made on B, `nbdcopy nbd://A/src nbd://B/peer` timed (nbdcopy's defaults: it skips holes by
 *   block status and sends every data byte uncompressed), `peer` deleted.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { ok } from '../test/support/run.js';
import type { ImageInfo } from './cloudsnap-workload.js';
import { formatSize } from './cloudsnap-workload.js';
import { type DrRow, median, mib, rate, reason, seconds } from './dr-rows.js';
import {
  deleteVolume,
  ENDED,
  ensureLink,
  ferry,
  type MigrationView,
  PAIR,
  type Sites,
  sleep,
  startSite,
  stopSite,
  withCpu,
} from './dr-sites.js';

export const COPY_FIGURES = {
  throughput: { key: 'copy', figure: 'initial copy throughput vs nbdcopy', goal: 'ratio >= 0.8' },
  wire: { key: 'copy', figure: 'bytes on the wire / allocated (initial copy)', goal: '<= 0.6' },
};

/** The source volume's name on A (and the destination's on B while a migration fills it). */
const SOURCE = 'src';
/** nbdcopy's destination on B. */
const PEER = 'peer';
/** How often the status is read while the initial copy runs. */
const POLL_MS = 100;

export interface CopyOptions {
  sizeBytes: number;
  /** Runs of each side. */
  runs: number;
  /** The mixed image (a sparse file) and what it holds. */
  imagePath: string;
  image: ImageInfo;
  /** Longest wait for one initial copy. */
  timeoutMs: number;
  log(line: string): void;
}

interface FerryRun {
  seconds: number;
  wireBytes: number;
  /** Bytes of ranges sent (zero pieces included, uncompressed). */
  bytesSent: number;
  /** The pass the status showed when it was read (1 unless a later pass was already recorded). */
  pass: number;
  task: string;
  /** What happened that the figure should carry (a cancel that left the destination volume behind). */
  notes: string[];
  /** CPU seconds nodes A and B used from the start call to pass 1 seen. */
  cpuA: number;
  cpuB: number;
}

/** Reads the status until `done` holds; rejects after `timeoutMs`. */
async function until(
  sites: Sites,
  task: string,
  done: (m: MigrationView) => boolean,
  timeoutMs: number,
  everyMs: number,
): Promise<MigrationView> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const m = await sites.statusA(task);
    if (done(m)) return m;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s: ${m.status} ${m.current_stage}, pass ${m.pass}`);
    }
    await sleep(everyMs);
  }
}

/** Whether volume `name` is on site B, read until it is gone (`waitMs`). */
async function goneFromB(sites: Sites, name: string, waitMs: number): Promise<boolean> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    if (!(await sites.volumes(sites.b)).includes(name)) return true;
    if (performance.now() > deadline) return false;
    await sleep(250);
  }
}

/** Cancels `task` (the CLI, as a user does) and waits for Aborted and for its destination volume to be gone. */
async function cancel(sites: Sites, task: string, notes: string[]): Promise<void> {
  await ferry(sites.a, ['migrate', 'cancel', task]);
  const aborted = await until(sites, task, (m) => ENDED.has(m.status), 60_000, 250);
  if (aborted.status !== 'Aborted') {
    throw new Error(`the cancel ended the migration ${aborted.status}: ${aborted.error_reason ?? ''}`);
  }
  if (await goneFromB(sites, SOURCE, 10_000)) return;
  // The destination keeps a volume a migration left filling until its sweep finds the migration ended, and the sweep
  // skips a volume whose device it still holds open: a restart closes it, and the first sweep runs 2 s after start.
  notes.push(`the cancel left the destination volume on B (${aborted.error_reason ?? 'no reason given'}); B restarted`);
  await stopSite(sites.b);
  await startSite(sites.b);
  if (!(await goneFromB(sites, SOURCE, 30_000))) {
    throw new Error(`the cancel left volume ${SOURCE} on B, and a restart of B did not remove it`);
  }
}

/** One Ferry initial copy of `src` to B, cancelled once done. */
async function ferryRun(sites: Sites, options: CopyOptions): Promise<FerryRun> {
  const notes: string[] = [];
  await ensureLink(sites, notes);
  let task: string | undefined;
  let elapsed = 0;
  let timed: { value: MigrationView; cpuA: number; cpuB: number };
  try {
    timed = await withCpu(sites, async () => {
      const started = performance.now();
      const answer = await sites.postA<{ result: { task_id: string } }>('/v1/volumemigrate', {
        cluster_id: PAIR,
        volume: { volume_id: SOURCE },
        cutover: 'manual',
      });
      task = answer.result.task_id;
      const m = await until(sites, task, (v) => v.pass >= 1 || ENDED.has(v.status), options.timeoutMs, POLL_MS);
      elapsed = (performance.now() - started) / 1000;
      return m;
    });
  } catch (err: unknown) {
    if (task !== undefined) await ferry(sites.a, ['migrate', 'cancel', task]).catch(() => undefined);
    throw err;
  }
  const copied = timed.value;
  if (copied.pass < 1 || task === undefined) {
    throw new Error(`the migration ended ${copied.status} during its initial copy: ${copied.error_reason ?? ''}`);
  }
  await cancel(sites, task, notes);
  return {
    seconds: elapsed,
    wireBytes: copied.wire_bytes,
    bytesSent: copied.bytes_sent,
    pass: copied.pass,
    task,
    notes,
    cpuA: timed.cpuA,
    cpuB: timed.cpuB,
  };
}

interface PeerRun {
  seconds: number;
  cpuA: number;
  cpuB: number;
}

/** One nbdcopy of `src` on A to a fresh `peer` on B. */
async function peerRun(sites: Sites, options: CopyOptions): Promise<PeerRun> {
  await ferry(sites.b, ['volume', 'create', PEER, '--size', String(options.sizeBytes)]);
  try {
    const { value, cpuA, cpuB } = await withCpu(sites, async () => {
      const started = performance.now();
      await ok('nbdcopy', [`${sites.a.nbdUrl}/${SOURCE}`, `${sites.b.nbdUrl}/${PEER}`]);
      return (performance.now() - started) / 1000;
    });
    return { seconds: value, cpuA, cpuB };
  } finally {
    await deleteVolume(sites.b, PEER);
  }
}

/** What went wrong on the way that the verdict should show: `; link down: A restarted 2x, ...`, or ''. */
export function hiccupText(notes: readonly string[]): string {
  const restarts = notes.filter((n) => n.includes('node A restarted')).length;
  const pings = notes.filter((n) => n.includes('keep-alive ping')).length;
  const left = notes.filter((n) => n.includes('left the destination')).length;
  const parts = [
    ...(restarts > 0 ? [`link down: A restarted ${restarts}x`] : []),
    ...(pings > 0 ? [`${pings} link pings failed`] : []),
    ...(left > 0 ? [`${left} cancel${left > 1 ? 's' : ''} left the destination`] : []),
  ];
  return parts.length === 0 ? '' : `; ${parts.join(', ')}`;
}

/** CPU seconds as text. */
function cpu(s: number): string {
  return Number.isNaN(s) ? '-' : `${s.toFixed(1)} s`;
}

/** Both copy rows; a side that fails makes its rows `failed: <why>` (the other side's numbers are kept). */
export async function copyRows(sites: Sites, options: CopyOptions): Promise<DrRow[]> {
  const { image, sizeBytes, runs } = options;
  const conditions = [
    `${formatSize(sizeBytes)} volume of the mixed image (${mib(image.dataBytes)} allocated: 30% random, 30% text, 40% holes)`,
    'a fresh destination volume each run',
    'page cache warm (the source was just written)',
    `two single-node clusters on one host (${cpus().length} CPUs), loopback`,
    `median of ${runs} alternate runs`,
  ];
  let fill: number;
  try {
    await ferry(sites.a, ['volume', 'create', SOURCE, '--size', String(sizeBytes)]);
    const started = performance.now();
    await ok('nbdcopy', [options.imagePath, `${sites.a.nbdUrl}/${SOURCE}`]);
    fill = (performance.now() - started) / 1000;
    options.log(`copy: ${SOURCE} filled on A in ${seconds(fill)}`);
  } catch (err: unknown) {
    const verdict = `failed: filling the source: ${reason(err)}`;
    return [
      { ...COPY_FIGURES.throughput, ferry: '-', peer: '-', verdict, conditions: conditions.join('; ') },
      { ...COPY_FIGURES.wire, ferry: '-', peer: '1.00', verdict, conditions: conditions.join('; ') },
    ];
  }

  const ferryRuns: FerryRun[] = [];
  const peerRuns: PeerRun[] = [];
  let ferryError: string | undefined;
  let peerError: string | undefined;
  for (let i = 0; i < runs; i++) {
    if (ferryError === undefined) {
      try {
        const r = await ferryRun(sites, options);
        ferryRuns.push(r);
        options.log(
          `copy: ferry run ${i + 1}: initial copy ${seconds(r.seconds)}, wire ${mib(r.wireBytes)}, CPU: A ${cpu(r.cpuA)}, B ${cpu(r.cpuB)}${r.notes.length > 0 ? ` (${r.notes.join('; ')})` : ''}`,
        );
      } catch (err: unknown) {
        ferryError = reason(err);
        options.log(`copy: ferry run ${i + 1} failed: ${ferryError}`);
      }
    }
    if (peerError === undefined) {
      try {
        const r = await peerRun(sites, options);
        peerRuns.push(r);
        options.log(`copy: nbdcopy run ${i + 1}: ${seconds(r.seconds)} (CPU: A ${cpu(r.cpuA)}, B ${cpu(r.cpuB)})`);
      } catch (err: unknown) {
        peerError = reason(err);
        options.log(`copy: nbdcopy run ${i + 1} failed: ${peerError}`);
      }
    }
  }
  await deleteVolume(sites.a, SOURCE).catch((err: unknown) => options.log(`copy: deleting ${SOURCE}: ${reason(err)}`));

  const ferrySeconds = median(ferryRuns.map((r) => r.seconds));
  const peerSeconds = median(peerRuns.map((r) => r.seconds));
  const cpuText = (runs: readonly { cpuA: number; cpuB: number }[]): string =>
    `A ${cpu(median(runs.map((r) => r.cpuA)))}, B ${cpu(median(runs.map((r) => r.cpuB)))}`;
  const allNotes = ferryRuns.flatMap((r) => r.notes);
  const runNotes = [...new Set(allNotes)];
  const hiccups = hiccupText(allNotes);
  const data = {
    size_bytes: sizeBytes,
    data_bytes: image.dataBytes,
    fill_seconds: fill,
    ferry_runs: ferryRuns.map((r) => ({
      seconds: r.seconds,
      wire_bytes: r.wireBytes,
      bytes_sent: r.bytesSent,
      pass_when_read: r.pass,
      cpu_seconds_a: r.cpuA,
      cpu_seconds_b: r.cpuB,
      task_id: r.task,
      notes: r.notes,
    })),
    nbdcopy_runs: peerRuns.map((r) => ({ seconds: r.seconds, cpu_seconds_a: r.cpuA, cpu_seconds_b: r.cpuB })),
    ...(ferryError !== undefined && { ferry_error: ferryError }),
    ...(peerError !== undefined && { nbdcopy_error: peerError }),
  };
  const timeText = (s: number): string =>
    Number.isNaN(s) ? '-' : `${seconds(s)} (${rate(image.dataBytes, s)} of allocated)`;

  let throughputVerdict: string;
  if (ferryError !== undefined) throughputVerdict = `failed: ${ferryError}`;
  else if (peerError !== undefined) throughputVerdict = `failed: nbdcopy: ${peerError}`;
  else {
    const ratio = peerSeconds / ferrySeconds;
    throughputVerdict = `${ratio.toFixed(2)}: ${ratio >= 0.8 ? 'met' : 'missed'}${hiccups}`;
  }
  const throughput: DrRow = {
    ...COPY_FIGURES.throughput,
    ferry: timeText(ferrySeconds),
    peer: timeText(peerSeconds),
    verdict: throughputVerdict,
    conditions: [
      ...conditions,
      `Ferry: from the start call (cutover manual) to pass 1 in the status (read every ${POLL_MS} ms)`,
      'nbdcopy: source export to destination export, its defaults',
      'ratio: nbdcopy seconds / Ferry seconds',
      ...(ferryRuns.length > 0 ? [`node CPU during Ferry's copy: ${cpuText(ferryRuns)}`] : []),
      ...(peerRuns.length > 0 ? [`node CPU during nbdcopy: ${cpuText(peerRuns)}`] : []),
      ...runNotes,
    ].join('; '),
    data: { ...data, ferry_median_seconds: ferrySeconds, nbdcopy_median_seconds: peerSeconds },
  };

  const wireRatios = ferryRuns.map((r) => r.wireBytes / image.dataBytes);
  const wireRatio = median(wireRatios);
  const wireBytes = median(ferryRuns.map((r) => r.wireBytes));
  const sent = median(ferryRuns.map((r) => r.bytesSent));
  let wireVerdict: string;
  if (ferryRuns.length === 0) wireVerdict = `failed: ${ferryError ?? 'no run'}`;
  else {
    wireVerdict = `${wireRatio <= 0.6 ? 'met' : 'missed'}${hiccups}`;
    if (ferryRuns.length < runs) wireVerdict += ` (${ferryRuns.length} of ${runs} runs)`;
  }
  const wire: DrRow = {
    ...COPY_FIGURES.wire,
    ferry: ferryRuns.length === 0 ? '-' : `${wireRatio.toFixed(2)} (${mib(wireBytes)} / ${mib(image.dataBytes)})`,
    peer: '1.00',
    verdict: wireVerdict,
    conditions: [
      ...conditions,
      `Ferry: wire_bytes when pass 1 was recorded / the image's allocated bytes; it sent ${Number.isNaN(sent) ? '-' : mib(sent)} of ranges (zstd level 1, zero pieces as headers)`,
      'nbdcopy sends every allocated byte uncompressed (1.00)',
    ].join('; '),
    data: { wire_ratios: wireRatios, wire_ratio_median: wireRatio, data_bytes: image.dataBytes },
  };
  return [throughput, wire];
}

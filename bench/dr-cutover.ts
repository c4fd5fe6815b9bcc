/**
 * The DR bench's cutover row: how long an application's writes pause when its volume is migrated under it.
 *
 * Volume `live` on A, filled from the mixed image; a writer (`nbdsh -u nbd://A/live -c WRITER`, libnbd) writes random
 * 64 KiB blocks at a steady 1% of the volume a minute, flushing every FLUSH_EVERY writes. After it has run WARMUP_MS,
 * `ferry migrate start live --pair dc2` (auto cutover), and the status is read until the migration ends. At the
 * cutover the source holds the writes, then refuses them (EPERM): the writer notes the time of its last acknowledged
 * operation on A, connects to `nbd://B/live` (again and again until the export opens and a write and a FLUSH are
 * acknowledged there) and notes that time. The figure is the client's gap between the two; the migration's own
 * `writes_held_ms` (how long the source held writes) and its passes go with it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { ok, TOOL_ENV } from '../test/support/run.js';
import { formatSize, type ImageInfo } from './cloudsnap-workload.js';
import { hiccupText } from './dr-copy.js';
import { type DrRow, MiB, mib, reason, seconds } from './dr-rows.js';
import {
  ENDED,
  ensureLink,
  ferry,
  keepLinkBusy,
  type MigrationView,
  PAIR,
  type Sites,
  sleep,
  trackChild,
} from './dr-sites.js';

export const CUTOVER_FIGURE = {
  key: 'cutover',
  figure: 'writes paused at cutover under 1%/min churn',
  goal: 'client gap <= 5 s',
};

const VOLUME = 'live';
const BLOCK = 64 * 1024;
/** The writer's churn: this fraction of the volume a minute. */
const CHURN_PER_MINUTE = 0.01;
const FLUSH_EVERY = 4;
/** How long the writer runs before the migration starts. */
const WARMUP_MS = 5000;
/** Longest the writer tries to reach the destination after the source refused it. */
const DEST_LIMIT_S = 120;

/**
 * The writer, run by nbdsh with `h` connected to the source. Events are JSON lines on stdout: `connected`, then
 * `result`. Times: `*_wall` are Unix seconds (time.time()), the gap comes from CLOCK_MONOTONIC.
 */
const WRITER = String.raw`
import json, os, random, sys, time
import nbd

BLOCK = ${BLOCK}
blocks = int(os.environ['BLOCKS'])
interval = float(os.environ['INTERVAL'])
every = int(os.environ['FLUSH_EVERY'])
dest = os.environ['DEST']
limit = float(os.environ['DEST_LIMIT'])
rng = random.Random(11)

def emit(**event):
    sys.stdout.write(json.dumps(event) + '\n')
    sys.stdout.flush()

emit(ev='connected', size=h.get_size())
writes = 0
flushes = 0
last_ack = None
last_ack_wall = None
failure = None
op_started = None
next_at = time.monotonic()
while True:
    op_started = time.monotonic()
    try:
        h.pwrite(os.urandom(BLOCK), rng.randrange(blocks) * BLOCK)
        writes += 1
        last_ack, last_ack_wall = time.monotonic(), time.time()
        if writes % every == 0:
            op_started = time.monotonic()
            h.flush()
            flushes += 1
            last_ack, last_ack_wall = time.monotonic(), time.time()
    except nbd.Error as e:
        failure = e
        break
    next_at += interval
    pause = next_at - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    else:
        next_at = time.monotonic()
refused_at = time.monotonic()
refused_wall = time.time()

deadline = time.monotonic() + limit
tries = 0
last_error = None
first_b = None
first_b_wall = None
while True:
    tries += 1
    g = nbd.NBD()
    try:
        g.connect_uri(dest)
        g.pwrite(os.urandom(BLOCK), rng.randrange(blocks) * BLOCK)
        g.flush()
        first_b, first_b_wall = time.monotonic(), time.time()
        try:
            g.shutdown()
        except nbd.Error:
            pass
        break
    except nbd.Error as e:
        last_error = str(e)
    del g
    if time.monotonic() > deadline:
        break
    time.sleep(0.02)

emit(
    ev='result',
    writes_a=writes,
    flushes_a=flushes,
    last_ack_a_wall=last_ack_wall,
    refused_a_wall=refused_wall,
    refused_op_wait_s=refused_at - op_started,
    error_a=str(failure),
    errno_a=getattr(failure, 'errno', None),
    first_ack_b_wall=first_b_wall,
    gap_s=(first_b - last_ack) if (first_b is not None and last_ack is not None) else None,
    refused_to_b_s=(first_b - refused_at) if first_b is not None else None,
    tries_b=tries,
    last_error_b=last_error,
)
`;

interface WriterResult {
  writes_a: number;
  flushes_a: number;
  last_ack_a_wall: number | null;
  refused_a_wall: number;
  refused_op_wait_s: number;
  error_a: string;
  errno_a: number | null;
  first_ack_b_wall: number | null;
  gap_s: number | null;
  refused_to_b_s: number | null;
  tries_b: number;
  last_error_b: string | null;
}

export interface CutoverOptions {
  sizeBytes: number;
  imagePath: string;
  image: ImageInfo;
  /** Longest wait for the migration to end. */
  timeoutMs: number;
  log(line: string): void;
}

/** The writer process and its events. */
class Writer {
  readonly child: ChildProcess;
  private readonly events: Record<string, unknown>[] = [];
  private readonly waiters: (() => void)[] = [];
  private stderr = '';
  private exited = false;

  constructor(sites: Sites, options: CutoverOptions, interval: number) {
    this.child = spawn('nbdsh', ['-u', `${sites.a.nbdUrl}/${VOLUME}`, '-c', WRITER], {
      env: {
        ...TOOL_ENV,
        BLOCKS: String(Math.floor(options.sizeBytes / BLOCK)),
        INTERVAL: String(interval),
        FLUSH_EVERY: String(FLUSH_EVERY),
        DEST: `${sites.b.nbdUrl}/${VOLUME}`,
        DEST_LIMIT: String(DEST_LIMIT_S),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(this.child);
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        this.stderr = (this.stderr + line).slice(-2000);
      }
      this.wake();
    });
    this.child.once('exit', () => {
      this.exited = true;
      this.wake();
    });
    this.child.once('error', (err) => {
      this.stderr += String(err);
      this.exited = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves with the first event `ev`; rejects when the writer exits without it or after `timeoutMs`. */
  async event(ev: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.events.find((e) => e.ev === ev);
      if (found !== undefined) return found;
      if (this.exited) throw new Error(`the writer exited without "${ev}": ${this.stderr.trim().slice(-300)}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`the writer said no "${ev}" within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Ends it (SIGTERM) when it still runs. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await Promise.race([gone, sleep(5000).then(() => void this.child.kill('SIGKILL'))]);
  }
}

/** Reads the migration until it ends, logging its progress every ~10 s. */
async function follow(sites: Sites, task: string, options: CutoverOptions): Promise<MigrationView> {
  const deadline = performance.now() + options.timeoutMs;
  let said = 0;
  for (;;) {
    const m = await sites.statusA(task);
    if (ENDED.has(m.status)) return m;
    if (performance.now() > deadline) {
      throw new Error(
        `the migration did not end within ${options.timeoutMs / 1000} s (${m.status} ${m.current_stage})`,
      );
    }
    if (performance.now() - said > 10_000) {
      said = performance.now();
      options.log(
        `cutover: ${m.current_stage}, pass ${m.pass + 1}: ${mib(m.bytes_done)} / ${mib(m.bytes_total)}, ${mib(m.bytes_sent)} sent so far`,
      );
    }
    await sleep(250);
  }
}

/** The cutover row (`failed: <why>` when the migration or the writer did not do what the figure needs). */
export async function cutoverRow(sites: Sites, options: CutoverOptions): Promise<DrRow> {
  const { sizeBytes, image } = options;
  const bytesPerSecond = (sizeBytes * CHURN_PER_MINUTE) / 60;
  const interval = BLOCK / bytesPerSecond;
  const conditions = [
    `${formatSize(sizeBytes)} volume of the mixed image (${mib(image.dataBytes)} allocated)`,
    `writer: random 64 KiB writes at 1% of the volume a minute (${(1 / interval).toFixed(1)} writes/s, ${(bytesPerSecond / MiB).toFixed(2)} MiB/s), a FLUSH every ${FLUSH_EVERY} writes, one request at a time`,
    `ferry migrate start (auto cutover) ${WARMUP_MS / 1000} s after the writer began (the pair link pinged every 2 s meanwhile)`,
    'gap: first write+FLUSH acknowledged on B minus the last operation acknowledged on A (reconnect included)',
  ];
  const hiccups: string[] = [];
  const failed = (why: string, data?: Record<string, unknown>): DrRow => ({
    ...CUTOVER_FIGURE,
    ferry: '-',
    peer: '-',
    verdict: `failed: ${why}`,
    conditions: [...conditions, ...hiccups].join('; '),
    ...(data !== undefined && { data }),
  });

  try {
    await ferry(sites.a, ['volume', 'create', VOLUME, '--size', String(sizeBytes)]);
    await ok('nbdcopy', [options.imagePath, `${sites.a.nbdUrl}/${VOLUME}`]);
  } catch (err: unknown) {
    return failed(`filling ${VOLUME}: ${reason(err)}`);
  }

  // Before the writer connects to A: a restart of A (when the link is down) would cut it off.
  try {
    await ensureLink(sites, hiccups);
  } catch (err: unknown) {
    return failed(reason(err));
  }
  const writer = new Writer(sites, options, interval);
  try {
    try {
      await writer.event('connected', 30_000);
    } catch (err: unknown) {
      return failed(reason(err));
    }
    await keepLinkBusy(sites, WARMUP_MS, hiccups);
    const started = performance.now();
    let task: string;
    try {
      const [m] = await ferry<MigrationView[]>(sites.a, ['migrate', 'start', VOLUME, '--pair', PAIR]);
      if (m === undefined) throw new Error('ferry migrate start answered no migration');
      task = m.task_id;
    } catch (err: unknown) {
      return failed(`migrate start: ${reason(err)}`);
    }
    options.log(`cutover: migration ${task} started`);
    let end: MigrationView;
    try {
      end = await follow(sites, task, options);
    } catch (err: unknown) {
      await ferry(sites.a, ['migrate', 'cancel', task]).catch(() => undefined);
      return failed(reason(err));
    }
    const migrationSeconds = (performance.now() - started) / 1000;
    const migration = {
      task_id: task,
      status: end.status,
      passes: end.pass,
      bytes_sent: end.bytes_sent,
      wire_bytes: end.wire_bytes,
      writes_held_ms: end.writes_held_ms ?? null,
      seconds: migrationSeconds,
      ...(end.error_reason !== undefined && { error_reason: end.error_reason }),
    };
    if (end.status !== 'Done')
      return failed(`the migration ended ${end.status}: ${end.error_reason ?? ''}`, { migration });
    options.log(
      `cutover: Done in ${seconds(migrationSeconds)}, ${end.pass} passes, writes held ${end.writes_held_ms ?? '-'} ms`,
    );

    let result: WriterResult;
    try {
      result = (await writer.event('result', (DEST_LIMIT_S + 30) * 1000)) as unknown as WriterResult;
    } catch (err: unknown) {
      return failed(`the writer: ${reason(err)}`, { migration });
    }
    const data = { migration, writer: result, writes_per_second: 1 / interval };
    if (result.errno_a !== 1 && !/not permitted/i.test(result.error_a)) {
      return failed(`the writer's operation on A failed with "${result.error_a}", not EPERM`, data);
    }
    if (result.gap_s === null) {
      return failed(`the writer could not write on B within ${DEST_LIMIT_S} s: ${result.last_error_b ?? ''}`, data);
    }
    const held = end.writes_held_ms;
    return {
      ...CUTOVER_FIGURE,
      ferry: `gap ${seconds(result.gap_s)} (source held ${held === undefined ? '-' : `${held} ms`})`,
      peer: '-',
      verdict: `${result.gap_s <= 5 ? 'met' : 'missed'}${hiccupText(hiccups)}`,
      conditions: [
        ...conditions,
        ...hiccups,
        `${end.pass} passes, ${mib(end.bytes_sent)} sent (${mib(end.wire_bytes)} on the wire) in ${seconds(migrationSeconds)}`,
        `the refused operation waited ${seconds(result.refused_op_wait_s)}; B took ${result.tries_b} tries, ${result.refused_to_b_s === null ? '-' : seconds(result.refused_to_b_s)} after the refusal`,
      ].join('; '),
      data,
    };
  } finally {
    await writer.stop();
  }
}

/**
 * The two sites of the DR bench: two single-node Ferry clusters on loopback, each a `ferry node start` with its own
 * data directory and ports, started as a user starts them (test/support/cli-node.ts), paired with the CLI as a user
 * pairs them (`ferry cluster pair token` on B, `ferry cluster pair create dc2 --remote <B> --pair-token T` on A).
 * The CLI runs with FERRY_DATA_DIR and FERRY_API_URL of the node it talks to (it mints its admin token from that data
 * directory); HTTP calls carry a token minted the same way (`ferry auth token --roles system.admin`).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type ReadyProcess, runFerry, spawnFerryUntilReady } from '../test/support/cli-node.js';
import { freePort } from '../test/support/ports.js';

/** The pair's name on A. */
export const PAIR = 'dc2';

/** One single-node cluster. */
export interface Site {
  name: string;
  dataDir: string;
  apiUrl: string;
  /** `nbd://127.0.0.1:PORT` (an export is `${nbdUrl}/${volume}`). */
  nbdUrl: string;
  apiPort: number;
  nbdPort: number;
  process?: ReadyProcess;
}

/** What the migration status says of one migration (CloudMigrateInfo, the fields the bench reads). */
export interface MigrationView {
  task_id: string;
  local_volume_name: string;
  status: string;
  current_stage: string;
  pass: number;
  bytes_total: number;
  bytes_done: number;
  bytes_sent: number;
  wire_bytes: number;
  start_time: string;
  completed_time?: string;
  writes_held_ms?: number;
  error_reason?: string;
}

/** Statuses a migration ends in. */
export const ENDED = new Set(['Done', 'Failed', 'Aborted']);

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function makeSite(base: string, name: string): Promise<Site> {
  const [apiPort, nbdPort] = [await freePort(), await freePort()];
  const dataDir = join(base, name);
  await mkdir(dataDir, { recursive: true });
  return {
    name,
    dataDir,
    apiPort,
    nbdPort,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    nbdUrl: `nbd://127.0.0.1:${nbdPort}`,
  };
}

/** Sites whose node this process started and has not stopped, and other children to end at exit (the writer). */
const running = new Set<Site>();
const children = new Set<ChildProcess>();

/** Starts (or starts again) a site's node on its data directory and ports. */
export async function startSite(s: Site): Promise<void> {
  const args = ['node', 'start', '--data-dir', s.dataDir, '--api-addr', `127.0.0.1:${s.apiPort}`];
  running.add(s);
  s.process = await spawnFerryUntilReady([...args, '--nbd-addr', `127.0.0.1:${s.nbdPort}`], 'ferry node ready');
}

/** Ends `child` with the nodes if the bench stops first (until it exits by itself). */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Ends every child process and node this process started that still runs (an error, Ctrl-C). */
export async function stopEverything(): Promise<void> {
  for (const child of children) child.kill('SIGTERM');
  await Promise.allSettled([...running].map((s) => stopSite(s)));
}

/** SIGTERM, and SIGKILL when it has not exited after `graceMs`. */
export async function stopSite(s: Site, graceMs = 30_000): Promise<void> {
  running.delete(s);
  const p = s.process;
  if (p === undefined) return;
  s.process = undefined;
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      process.stdout.write(`node ${s.name} did not stop within ${graceMs / 1000} s: SIGKILL\n`);
      void p.kill('SIGKILL').then(resolve, resolve);
    }, graceMs);
  });
  await Promise.race([p.stop(), killed]);
  clearTimeout(timer);
}

/** Runs `ferry --json ...args` against `s`; resolves with its parsed output, rejects with its message on failure. */
export async function ferry<T>(s: Site, args: string[]): Promise<T> {
  const result = await runFerry(s.apiUrl, ['--json', ...args], { FERRY_DATA_DIR: s.dataDir });
  if (result.code !== 0) {
    const why = (result.stderr.trim() || result.stdout.trim()).replace(/\s+/g, ' ').slice(0, 300);
    throw new Error(`ferry ${args.join(' ')} on ${s.name}: ${why}`);
  }
  const text = result.stdout.trim();
  return (text === '' ? {} : JSON.parse(text)) as T;
}

/** The two sites, paired, with an admin token for A's API. */
export interface Sites {
  a: Site;
  b: Site;
  /** An admin token of A (Authorization: Bearer). */
  tokenA: string;
  /** POST `path` on A's API with the token; resolves with the parsed answer, rejects on a non-2xx. */
  postA<T>(path: string, body: unknown): Promise<T>;
  /** GET `path` on A's API with the token. */
  getA<T>(path: string): Promise<T>;
  /** Migration `taskId` as A's status route shows it. */
  statusA(taskId: string): Promise<MigrationView>;
  /** The volume names on `s`. */
  volumes(s: Site): Promise<string[]>;
  /** Stops both nodes (each stop tried even when the other fails). */
  stop(): Promise<void>;
}

/** Starts both nodes under `base` and pairs A with B as `dc2`. On failure, stops what it started. */
export async function startSites(base: string): Promise<Sites> {
  const a = await makeSite(base, 'a');
  const b = await makeSite(base, 'b');
  const stop = async (): Promise<void> => {
    await Promise.allSettled([stopSite(a), stopSite(b)]);
  };
  try {
    await Promise.all([startSite(a), startSite(b)]);
    const { result } = await ferry<{ result: { token: string } }>(b, ['cluster', 'pair', 'token', '--ttl', '1h']);
    await ferry(a, ['cluster', 'pair', 'create', PAIR, '--remote', b.apiUrl, '--pair-token', result.token]);
    const minted = await runFerry(a.apiUrl, ['auth', 'token', '--sub', 'bench', '--roles', 'system.admin'], {
      FERRY_DATA_DIR: a.dataDir,
    });
    if (minted.code !== 0) throw new Error(`ferry auth token: ${minted.stderr.trim()}`);
    const tokenA = minted.stdout.trim();
    const callA = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${a.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${tokenA}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text) as T;
    };
    const postA = <T>(path: string, body: unknown): Promise<T> => callA<T>('POST', path, body);
    const getA = <T>(path: string): Promise<T> => callA<T>('GET', path);
    const statusA = async (taskId: string): Promise<MigrationView> => {
      const answer = await postA<{ migrations: MigrationView[] }>('/v1/volumemigrate/status', {
        request: { task_id: taskId },
      });
      const m = answer.migrations[0];
      if (m === undefined) throw new Error(`no migration ${taskId} in the status`);
      return m;
    };
    const volumes = async (s: Site): Promise<string[]> =>
      (await ferry<{ volumes: { name: string }[] }>(s, ['volume', 'list'])).volumes.map((v) => v.name);
    return { a, b, tokenA, postA, getA, statusA, volumes, stop };
  } catch (err: unknown) {
    await stop();
    throw err;
  }
}

/** Deletes volume `name` on `s`, trying again a few times while it is still attached (a client just left). */
export async function deleteVolume(s: Site, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ferry(s, ['volume', 'delete', name, '--yes']);
      return;
    } catch (err: unknown) {
      if (attempt >= 20 || !/attached/i.test(String(err))) throw err;
      await sleep(250);
    }
  }
}

/** The pair as A's `GET /v1/clusterpairs` shows it (it pings B over the link). */
async function linkStatus(sites: Sites): Promise<string> {
  const answer = await sites.getA<{ pairs: { name: string; status?: string; reason?: string }[] }>('/v1/clusterpairs');
  const pair = answer.pairs.find((p) => p.name === PAIR);
  if (pair === undefined) return 'no pair';
  return pair.status === 'Ready' ? 'Ready' : `${pair.status ?? '?'}: ${pair.reason ?? ''}`;
}

/**
 * Makes sure A's link to B works before a migration starts: A's pair status is read (a ping over the link), and when
 * it is not Ready, node A is restarted (a fresh link) and it is read again; a restart is noted in `notes`. (The pair
 * link stops working once its first connection has been idle a few seconds: see the bench's notes.)
 */
export async function ensureLink(sites: Sites, notes: string[]): Promise<void> {
  const status = await linkStatus(sites);
  if (status === 'Ready') return;
  notes.push(`the pair link was down (${status.slice(0, 160)}): node A restarted`);
  await stopSite(sites.a);
  await startSite(sites.a);
  const again = await linkStatus(sites);
  if (again !== 'Ready') throw new Error(`the pair link is down even after a restart of A: ${again}`);
}

/** Pings the link every 2 s (A's pair status) for `ms`, so that it does not sit idle; a failed ping is noted. */
export async function keepLinkBusy(sites: Sites, ms: number, notes: string[]): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const status = await linkStatus(sites).catch((err: unknown) => String(err));
    if (status !== 'Ready') notes.push(`a keep-alive ping of the pair link failed: ${status.slice(0, 160)}`);
    await sleep(Math.max(0, Math.min(2000, until - performance.now())));
  }
}

/** CPU seconds (user + system) process `pid` has used so far, from /proc (Linux; clock ticks of 1/100 s); NaN if gone. */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3 on: utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds both nodes use while `fn` runs. */
export async function withCpu<T>(
  sites: Sites,
  fn: () => Promise<T>,
): Promise<{ value: T; cpuA: number; cpuB: number }> {
  const [a0, b0] = [await cpuSeconds(sites.a.process?.pid), await cpuSeconds(sites.b.process?.pid)];
  const value = await fn();
  const [a1, b1] = [await cpuSeconds(sites.a.process?.pid), await cpuSeconds(sites.b.process?.pid)];
  return { value, cpuA: a1 - a0, cpuB: b1 - b0 };
}

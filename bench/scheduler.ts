/**
 * `npm run bench:scheduler`: a real `ferry node start` (built CLI, temp data dir) with N volumes (default 1,000),
 * each on its own hourly cloud backup schedule, then the node's CPU time and resident memory while it idles between
 * runs, next to the same node with no schedules. CPU and RSS come from /proc/<pid>/stat and /proc/<pid>/status.
 * Env: FERRY_BENCH_SCHEDULES (N), FERRY_BENCH_IDLE_S (seconds watched, default 130: at least two scheduler wakes).
 * Prints a table and writes bench/results/scheduler.json.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { printTable, type Row, writeJson } from './report.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/scheduler.json', import.meta.url));
const SCHEDULES = Number(process.env.FERRY_BENCH_SCHEDULES ?? 1000);
const IDLE_S = Number(process.env.FERRY_BENCH_IDLE_S ?? 130);
const TICKS = 100; // USER_HZ on Linux

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

async function startNode(dataDir: string): Promise<{ child: ChildProcess; api: string }> {
  const [apiPort, nbdPort] = [await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'node',
      'start',
      '--auth-off',
      '--data-dir',
      dataDir,
      '--api-addr',
      `127.0.0.1:${apiPort}`,
      '--nbd-addr',
      `127.0.0.1:${nbdPort}`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const api = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`ferry node exited early with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as Record<string, unknown>;
        if (event.msg === 'ferry node ready') resolve(String(event.api));
      } catch {
        // not a JSON line
      }
    });
  });
  return { child, api };
}

async function stopNode(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function call(api: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const json: unknown = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** CPU seconds (user + system) and resident MiB of a process. */
async function usage(pid: number): Promise<{ cpuS: number; rssMiB: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(fields[11]) + Number(fields[12])) / TICKS;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+([0-9]+)/.exec(status)?.[1] ?? 0);
  return { cpuS, rssMiB: rssKiB / 1024 };
}

/** Watches a process idle for `seconds`: CPU used and RSS (start, end, peak). */
async function watchIdle(pid: number, seconds: number): Promise<Row> {
  const start = await usage(pid);
  let peak = start.rssMiB;
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    peak = Math.max(peak, (await usage(pid)).rssMiB);
  }
  const end = await usage(pid);
  const wall = (Date.now() - t0) / 1000;
  const cpuMs = (end.cpuS - start.cpuS) * 1000;
  return {
    'idle s': Math.round(wall),
    'cpu ms': Math.round(cpuMs),
    'cpu %': (cpuMs / 10 / wall).toFixed(3),
    'rss start MiB': Math.round(start.rssMiB),
    'rss end MiB': Math.round(end.rssMiB),
    'rss peak MiB': Math.round(peak),
  };
}

async function scenario(schedules: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-scheduler-'));
  await mkdir(join(dir, 'objects', 'b'), { recursive: true });
  const { child, api } = await startNode(join(dir, 'node'));
  try {
    await call(api, 'POST', '/v1/credentials', {
      name: 'local',
      bucket: 'b',
      directory_credential: { path: join(dir, 'objects') },
    });
    const t0 = Date.now();
    for (let i = 0; i < schedules; i++) {
      const name = `vol-${i}`;
      await call(api, 'POST', '/v1/volumes', { name, spec: { size: 1024 * 1024 } });
      await call(api, 'POST', '/v1/cloudbackups/schedules', {
        cloud_sched_info: {
          src_volume_id: name,
          credential_id: 'local',
          schedules: [{ periodic: { seconds: 3600 }, retain: 24 }],
        },
      });
    }
    const setupS = (Date.now() - t0) / 1000;
    // Let start-up garbage settle before watching.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idle = await watchIdle(child.pid as number, IDLE_S);
    return { schedules, 'setup s': Number(setupS.toFixed(1)), ...idle };
  } finally {
    await stopNode(child);
    await rm(dir, { recursive: true, force: true });
  }
}

const rows = [await scenario(0), await scenario(SCHEDULES)];
printTable(`ferry node idle between hourly runs (${IDLE_S} s watched; the scheduler wakes at least every 60 s)`, rows);
await writeJson(RESULTS, {
  when: new Date().toISOString(),
  node: process.version,
  idle_seconds: IDLE_S,
  rows,
});

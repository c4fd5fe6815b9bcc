/**
 * API latency under load: a real `ferry node start` (built CLI, child process, temp data dir, loopback, default
 * logging: one access line per request), a directory credential, a 64 MiB volume and one backup job made through the
 * CLI; then autocannon with N connections (default 200) against `GET /v1/volumes/inspect/{id}` and
 * `POST /v1/cloudbackups/status` (by task id, the request `--wait` polls with), each after a short warm-up. When the
 * node has authentication (`ferry auth token` works), every request carries a bearer token, as clients' do.
 * Prints p50, p99 and requests per second and writes bench/results/api.json.
 *
 *   npm run build && npm run bench:api [-- --connections 200 --duration 10 --warmup 2 --log-level info]
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { printTable, type Row, writeJson } from './report.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/api.json', import.meta.url));

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '200' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    'log-level': { type: 'string', default: 'info' },
  },
});
const CONNECTIONS = Number(values.connections);
const DURATION = Number(values.duration);
const WARMUP = Number(values.warmup);
const LOG_LEVEL = values['log-level'];

interface RunningNode {
  apiUrl: string;
  /** Lines the node logged so far. */
  lines(): number;
  stop(): Promise<void>;
}

/** A loopback port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Starts a node and waits for /healthz (not for its "ready" line: below info, e.g. --log-level warn, there is none). */
async function startNode(dataDir: string): Promise<RunningNode> {
  const apiUrl = `http://127.0.0.1:${await freePort()}`;
  const apiAddr = apiUrl.slice('http://'.length);
  const args = ['node', 'start', '--data-dir', dataDir, '--api-addr', apiAddr, '--nbd-addr', '127.0.0.1:0'];
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FERRY_LOG_LEVEL: LOG_LEVEL },
  });
  let count = 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Read every line, so that the node never waits on a full pipe.
  createInterface({ input: child.stdout }).on('line', () => {
    count++;
  });
  let up = false;
  child.once('exit', (code) => {
    if (!up) throw new Error(`ferry node exited early with ${code}`);
  });
  for (const deadline = Date.now() + 30_000; !up; ) {
    if (Date.now() > deadline) throw new Error(`ferry node did not answer on ${apiUrl}/healthz within 30 s`);
    up = await fetch(`${apiUrl}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  return {
    apiUrl,
    lines: () => count,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

function ferry(env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

async function ferryJson<T>(env: NodeJS.ProcessEnv, args: string[]): Promise<T> {
  const result = await ferry(env, ['--json', ...args]);
  if (result.code !== 0) throw new Error(`ferry ${args.join(' ')} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** An admin bearer token when the node has authentication, else undefined. */
async function adminToken(env: NodeJS.ProcessEnv, dataDir: string): Promise<string | undefined> {
  const args = ['--json', 'auth', 'token', '--sub', 'bench', '--roles', 'system.admin', '--data-dir', dataDir];
  const result = await ferry(env, args);
  if (result.code !== 0) return undefined;
  const parsed = JSON.parse(result.stdout) as { token?: unknown };
  return typeof parsed.token === 'string' ? parsed.token : undefined;
}

interface Target {
  route: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
}

async function measure(apiUrl: string, target: Target, headers: Record<string, string>): Promise<Row> {
  const url = `${apiUrl}${target.path}`;
  const init = { method: target.method, headers, ...(target.body !== undefined && { body: target.body }) };
  const probe = await fetch(url, init);
  if (probe.status !== 200) throw new Error(`${target.route}: ${probe.status} ${await probe.text()}`);
  await probe.arrayBuffer().catch(() => undefined);
  const options = { url, connections: CONNECTIONS, method: target.method, headers, timeout: 30 };
  const withBody = target.body === undefined ? options : { ...options, body: target.body };
  if (WARMUP > 0) await autocannon({ ...withBody, duration: WARMUP });
  const r = await autocannon({ ...withBody, duration: DURATION, title: target.route });
  return {
    route: target.route,
    connections: CONNECTIONS,
    'req/s': Math.round(r.requests.average),
    'p50 ms': r.latency.p50,
    'p99 ms': r.latency.p99,
    'mean ms': Math.round(r.latency.average * 100) / 100,
    'max ms': r.latency.max,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-api-'));
  const dataDir = join(dir, 'node');
  await mkdir(join(dir, 'objects', 'bench'), { recursive: true });
  const node = await startNode(dataDir);
  try {
    const env = { FERRY_API_URL: node.apiUrl, FERRY_DATA_DIR: dataDir };
    const objects = join(dir, 'objects');
    await ferryJson(env, [
      'credentials',
      'create',
      'bench',
      '--provider',
      'directory',
      '--path',
      objects,
      '--bucket',
      'bench',
    ]);
    const volume = await ferryJson<{ volume_id: string }>(env, ['volume', 'create', 'bench-vol', '--size', '64M']);
    const job = await ferryJson<{ task_id: string; status: string }>(env, [
      'cloudsnap',
      'backup',
      'bench-vol',
      '--cred',
      'bench',
      '--wait',
    ]);
    if (job.status !== 'Done') throw new Error(`the backup job ended ${job.status}`);
    const token = await adminToken(env, dataDir);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;

    const targets: Target[] = [
      { route: 'GET /v1/volumes/inspect/{id}', method: 'GET', path: `/v1/volumes/inspect/${volume.volume_id}` },
      {
        route: 'POST /v1/cloudbackups/status',
        method: 'POST',
        path: '/v1/cloudbackups/status',
        body: JSON.stringify({ task_id: job.task_id }),
      },
    ];
    const linesBefore = node.lines();
    // The machine may be shared: the load before the runs says how far to trust the figures.
    const loadBefore = loadavg()[0] ?? 0;
    const rows: Row[] = [];
    for (const target of targets) rows.push(await measure(node.apiUrl, target, headers));
    const environment = {
      node: process.version,
      cpus: cpus().length,
      cpu: cpus()[0]?.model ?? 'unknown',
      authentication: token !== undefined,
      log_level: LOG_LEVEL,
      log_lines_during_runs: node.lines() - linesBefore,
      load_average_1m_before: Math.round(loadBefore * 100) / 100,
      duration_s: DURATION,
      warmup_s: WARMUP,
    };
    printTable(
      `API latency, ${CONNECTIONS} connections on loopback, ${DURATION} s per route (auth ${token ? 'on' : 'off'}, log ${LOG_LEVEL})`,
      rows,
    );
    await writeJson(RESULTS, { date: new Date().toISOString(), environment, results: rows });
  } finally {
    await node.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

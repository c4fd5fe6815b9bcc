/**
 * Cluster nodes for the cluster and failover benchmarks, started the way a user starts them: a real etcd (Debian
 * `etcd-server`, test/support/etcd.ts) and `ferry node start` processes with FERRY_KVDB-style flags, each with its own
 * data directory and loopback ports; the `ferry` CLI run against them as a user runs it. A node can be killed (any
 * signal, e.g. SIGKILL for a crash, SIGSTOP to freeze it) and started again on the same data directory and ports.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NODE_ENV_SETTINGS, NODE_V8_FLAGS } from '../common/native/index.js';
import { type EtcdServer, startEtcd } from '../test/support/etcd.js';
import { freePort } from '../test/support/ports.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
/** Lines of a node's stdout kept for a failure report. */
const LOG_LINES = 400;

/** One node. */
export interface BenchNode {
  id: string;
  dataDir: string;
  apiUrl: string;
  nbdUrl: string;
  /** The port its replication server listens on (127.0.0.1), the same across restarts. */
  replPort: number;
  /** Its process id while it runs. */
  pid(): number | undefined;
  /** Whether its process runs (stopped by SIGSTOP counts as running). */
  running(): boolean;
  /** The last lines it logged (this process and earlier ones on the same data directory). */
  log(): readonly string[];
  /** SIGTERM, then waits for the exit; nothing when it is not running. */
  stop(): Promise<void>;
  /** Sends `signal`; for a signal that ends it (SIGKILL), waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Starts it again on its data directory and ports (after a kill or stop); resolves once it is ready. */
  restart(): Promise<void>;
}

/** A running cluster. */
export interface BenchCluster {
  etcd: EtcdServer;
  nodes: BenchNode[];
  /** Runs `ferry --json ...args` against node `i`; resolves with its parsed output, rejects on failure. */
  ferry<T>(i: number, args: string[]): Promise<T>;
  /** GET `path` of node `i`'s API with an admin token (every node accepts it), parsed. */
  get<T>(i: number, path: string): Promise<T>;
  stop(): Promise<void>;
}

/** Options of startBenchCluster. */
export interface BenchClusterOptions {
  /** The heartbeat lease's TTL in seconds (FERRY_HEARTBEAT_SECONDS); default: unset, the node's default (10 s). */
  heartbeatSeconds?: number;
}

interface Ports {
  api: number;
  nbd: number;
  repl: number;
}

interface NodeSetup {
  dir: string;
  etcd: string;
  secretFile: string;
  labels: string;
  ports: Ports;
  env: NodeJS.ProcessEnv;
}

/** Spawns `ferry node start` and resolves with the process and its ready line once it logged it. */
async function launch(
  setup: NodeSetup,
  lines: string[],
): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const { dir, etcd, secretFile, labels, ports } = setup;
  const args = ['node', 'start', '--data-dir', dir, '--api-addr', `127.0.0.1:${ports.api}`, '--nbd-addr'];
  args.push(`127.0.0.1:${ports.nbd}`, '--repl-addr', `127.0.0.1:${ports.repl}`, '--kvdb', `etcd:${etcd}`);
  args.push('--cluster-id', 'bench', '--labels', labels, '--cluster-secret-file', secretFile);
  const child = spawn(process.execPath, [...NODE_V8_FLAGS, MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...NODE_ENV_SETTINGS, ...setup.env },
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`ferry node start exited early with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      lines.push(line);
      if (lines.length > LOG_LINES) lines.shift();
      try {
        const event = JSON.parse(line) as Record<string, unknown>;
        if (event.msg === 'ferry node ready') resolve(event);
      } catch {
        // Not a log line of ours (a stray print): kept in the log only.
      }
    });
  });
  return { child, ready };
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess): Promise<void> {
  if (exited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function startNode(setup: NodeSetup): Promise<BenchNode> {
  await mkdir(setup.dir, { recursive: true });
  const lines: string[] = [];
  let { child, ready } = await launch(setup, lines);
  const id = (await readFile(join(setup.dir, 'node-id'), 'utf8')).trim();
  const stop = async (): Promise<void> => {
    if (exited(child)) return;
    const done = waitExit(child);
    child.kill('SIGTERM');
    await done;
  };
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (exited(child)) return;
    const done = waitExit(child);
    child.kill(signal);
    if (signal === 'SIGKILL') await done;
  };
  const restart = async (): Promise<void> => {
    if (!exited(child)) throw new Error(`node ${id} is still running`);
    ({ child, ready } = await launch(setup, lines));
  };
  return {
    id,
    dataDir: setup.dir,
    apiUrl: String(ready.api),
    nbdUrl: String(ready.nbd),
    replPort: setup.ports.repl,
    pid: () => (exited(child) ? undefined : child.pid),
    running: () => !exited(child),
    log: () => lines,
    stop,
    kill,
    restart,
  };
}

/** Starts etcd and `count` nodes under `base`, node i labelled `rack=r<i+1>`, all with one admin secret. */
export async function startBenchCluster(
  base: string,
  count: number,
  options: BenchClusterOptions = {},
): Promise<BenchCluster> {
  const etcd = await startEtcd();
  const secretFile = join(base, 'cluster.secret');
  await writeFile(secretFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  // One admin secret on every node, so that one token works on each (the auth secret is not cluster-wide yet).
  const adminSecret = randomBytes(32).toString('base64url');
  const env: NodeJS.ProcessEnv =
    options.heartbeatSeconds === undefined ? {} : { FERRY_HEARTBEAT_SECONDS: String(options.heartbeatSeconds) };
  const nodes: BenchNode[] = [];
  const stop = async (): Promise<void> => {
    for (const n of nodes) {
      if (n.running()) await n.kill('SIGCONT');
      await n.stop();
    }
    await etcd.destroy();
  };
  try {
    for (let i = 0; i < count; i++) {
      const dir = join(base, `node${i + 1}`);
      await mkdir(join(dir, 'auth'), { recursive: true, mode: 0o700 });
      await writeFile(join(dir, 'auth', 'admin.secret'), `${adminSecret}\n`, { mode: 0o600 });
      const ports = { api: await freePort(), nbd: await freePort(), repl: await freePort() };
      nodes.push(await startNode({ dir, etcd: etcd.url, secretFile, labels: `rack=r${i + 1}`, ports, env }));
    }
  } catch (err: unknown) {
    await stop();
    throw err;
  }
  const ferry = <T>(i: number, args: string[]): Promise<T> => {
    const node = nodes[i] as BenchNode;
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [MAIN, '--json', ...args],
        { env: { ...process.env, FERRY_API_URL: node.apiUrl, FERRY_DATA_DIR: node.dataDir }, timeout: 120_000 },
        (error, stdout, stderr) => {
          if (error !== null) reject(new Error(`ferry ${args.join(' ')} failed: ${stderr || error.message}`));
          else resolve((stdout.trim() === '' ? {} : JSON.parse(stdout)) as T);
        },
      );
    });
  };
  const token = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [MAIN, 'auth', 'token', '--sub', 'bench', '--roles', 'system.admin'],
      { env: { ...process.env, FERRY_DATA_DIR: (nodes[0] as BenchNode).dataDir } },
      (error, stdout, stderr) => (error !== null ? reject(new Error(stderr)) : resolve(stdout.trim())),
    );
  });
  const get = async <T>(i: number, path: string): Promise<T> => {
    const res = await fetch(`${(nodes[i] as BenchNode).apiUrl}${path}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  return { etcd, nodes, ferry, get, stop };
}

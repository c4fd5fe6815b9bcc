/**
 * A real `ferry node start` for CLI tests (built CLI, temp data dir, free loopback ports), and a runner for the
 * built `ferry` command against it. Needs `npm run build` first.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { NODE_ENV_SETTINGS, NODE_V8_FLAGS } from '../../common/native/index.js';
import { freePort } from './ports.js';

/** The built CLI; from a built copy of this file (dist/test/support, the chaos checker's) it is next door. */
export const MAIN = fileURLToPath(
  new URL(import.meta.url.includes('/dist/test/') ? '../../cli/main.js' : '../../dist/cli/main.js', import.meta.url),
);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestNode {
  apiUrl: string;
  nbdUrl: string;
  /** Every line the node printed on stdout. */
  log: string[];
  /** Everything the node printed on stderr (also passed on to this process's stderr). */
  stderr: string[];
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Sends `signal` (e.g. SIGKILL for a crash), then waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Data directory of each node started here, by API URL: runFerry passes it as FERRY_DATA_DIR, so the CLI mints its
 * admin token from that node's admin secret (authentication is on by default).
 */
const dataDirs = new Map<string, string>();

/** A long-running `ferry` process (node start, api serve) that has logged its ready line. */
export interface ReadyProcess {
  /** The ready line's fields. */
  ready: Record<string, unknown>;
  /** Every line it printed on stdout. */
  log: string[];
  /** What it printed on stderr (also passed through). */
  stderr: string[];
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Sends `signal`, then waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Its process id (SIGSTOP and SIGCONT go there). */
  pid: number;
}

/**
 * Runs the built `ferry ...args` and resolves once it logs a JSON line whose `msg` is `readyMsg`. `prefix` is a
 * command that execs the rest in place (e.g. `ip netns exec NS`), so the process id stays the node's.
 */
export async function spawnFerryUntilReady(
  args: string[],
  readyMsg: string,
  env: NodeJS.ProcessEnv = {},
  prefix: readonly string[] = [],
): Promise<ReadyProcess> {
  expect(existsSync(MAIN), `${MAIN} is missing: run npm run build`).toBe(true);
  const [command, ...before] = [...prefix, process.execPath];
  // With the V8 flags and environment a node is started with (npm start, the systemd unit, the `ferry` shebang).
  const child = spawn(command ?? process.execPath, [...before, ...NODE_V8_FLAGS, MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...NODE_ENV_SETTINGS, ...env },
  });
  const log: string[] = [];
  const stderr: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => {
    stderr.push(chunk.toString('utf8'));
    process.stderr.write(chunk);
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`ferry ${args.slice(0, 2).join(' ')} exited early with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      log.push(line);
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event.msg === readyMsg) resolve(event);
    });
  });
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  };
  return { ready, log, stderr, stop: () => kill('SIGTERM'), kill, pid: child.pid ?? -1 };
}

/** Starts a node on `dataDir` and resolves once it logs "ferry node ready". */
export async function startTestNode(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<TestNode> {
  const [apiPort, nbdPort] = [await freePort(), await freePort()];
  const args = ['node', 'start', '--data-dir', dataDir, '--api-addr', `127.0.0.1:${apiPort}`];
  const node = await spawnFerryUntilReady([...args, '--nbd-addr', `127.0.0.1:${nbdPort}`], 'ferry node ready', env);
  dataDirs.set(String(node.ready.api), dataDir);
  return {
    apiUrl: String(node.ready.api),
    nbdUrl: String(node.ready.nbd),
    log: node.log,
    stderr: node.stderr,
    stop: node.stop,
    kill: node.kill,
  };
}

/** Runs the built `ferry ...args` against `apiUrl`. */
export function runFerry(apiUrl: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      {
        env: {
          ...process.env,
          FERRY_API_URL: apiUrl,
          ...(dataDirs.has(apiUrl) && { FERRY_DATA_DIR: dataDirs.get(apiUrl) }),
          ...env,
        },
        timeout: 30_000,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs `ferry --json ...args`, expects success and nothing on stderr, parses stdout. */
export async function runFerryJson<T>(apiUrl: string, args: string[]): Promise<T> {
  const result = await runFerry(apiUrl, ['--json', ...args]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as T;
}

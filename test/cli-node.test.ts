/** `ferry node start` as a process: JSON log lines, clean stop on signals, refusal of a taken port. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NODE_ENV_SETTINGS, NODE_V8_FLAGS } from '../common/native/index.js';

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function portOf(server: Server): number {
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

async function freePort(): Promise<number> {
  const server = await listen();
  const port = portOf(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Run {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string[];
  /** Resolves when a log line with this msg arrives (or rejects when the process exits first). */
  waitFor(msg: string): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function startNode(
  args: string[],
  env: Record<string, string> = {},
  v8Flags: readonly string[] = NODE_V8_FLAGS,
  startEnv: Record<string, string> = NODE_ENV_SETTINGS,
): Run {
  const base = { ...process.env };
  for (const name of Object.keys(NODE_ENV_SETTINGS)) delete base[name];
  const child = spawn(process.execPath, [...v8Flags, MAIN, 'node', 'start', ...args], {
    env: { ...base, ...startEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    for (let at = buffer.indexOf('\n'); at >= 0; at = buffer.indexOf('\n')) {
      const line = JSON.parse(buffer.slice(0, at)) as Record<string, unknown>;
      buffer = buffer.slice(at + 1);
      lines.push(line);
      for (const waiter of waiters.filter((w) => w.msg === line.msg)) waiter.resolve(line);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr,
    exited,
    waitFor: (msg) =>
      new Promise((resolve, reject) => {
        const seen = lines.find((line) => line.msg === msg);
        if (seen !== undefined) resolve(seen);
        waiters.push({ msg, resolve });
        void exited.then((code) => reject(new Error(`exited with ${code} before "${msg}": ${stderr.join('')}`)));
      }),
  };
}

let dataDir: string;
const running: Run[] = [];

beforeEach(async () => {
  expect(existsSync(MAIN), `${MAIN} is missing: run npm run build`).toBe(true);
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-node-'));
});

afterEach(async () => {
  for (const run of running.splice(0)) {
    if (run.child.exitCode === null && run.child.signalCode === null) {
      run.child.kill('SIGKILL');
      await run.exited;
    }
  }
  await rm(dataDir, { recursive: true, force: true });
});

describe('ferry node start', () => {
  it('warns, naming the flag or variable, when started without the V8 flags or environment a node runs with; not with them', async () => {
    for (const bare of [true, false]) {
      const [apiPort, nbdPort] = [await freePort(), await freePort()];
      const run = startNode(
        [],
        { FERRY_DATA_DIR: dataDir, FERRY_API_ADDR: `127.0.0.1:${apiPort}`, FERRY_NBD_ADDR: `127.0.0.1:${nbdPort}` },
        bare ? [] : NODE_V8_FLAGS,
        bare ? {} : NODE_ENV_SETTINGS,
      );
      running.push(run);
      await run.waitFor('ferry node ready');
      const warnings = run.lines.filter((l) => l.level === 'warn').map((l) => String(l.msg));
      expect(warnings.filter((m) => m.includes('--max-semi-space-size=1'))).toHaveLength(bare ? 1 : 0);
      expect(warnings.filter((m) => m.includes('MALLOC_ARENA_MAX=2'))).toHaveLength(bare ? 1 : 0);
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    }
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'logs JSON lines, serves, and on %s closes API, NBD, engine and exits 0',
    async (signal) => {
      const [apiPort, nbdPort] = [await freePort(), await freePort()];
      const run = startNode([], {
        FERRY_DATA_DIR: dataDir,
        FERRY_API_ADDR: `127.0.0.1:${apiPort}`,
        FERRY_NBD_ADDR: `127.0.0.1:${nbdPort}`,
      });
      running.push(run);
      const ready = await run.waitFor('ferry node ready');
      expect(ready).toMatchObject({
        level: 'info',
        api: `http://127.0.0.1:${apiPort}`,
        nbd: `nbd://127.0.0.1:${nbdPort}`,
        data_dir: dataDir,
      });
      const version = await fetch(`http://127.0.0.1:${apiPort}/v1/identities/version`);
      expect(version.status).toBe(200);
      expect(existsSync(join(dataDir, 'cluster.db'))).toBe(true);

      run.child.kill(signal);
      expect(await run.exited).toBe(0);
      const closed = run.lines
        .map((line) => line.msg)
        .filter((msg) => typeof msg === 'string' && msg.endsWith(' closed'));
      expect(closed).toEqual([
        'cluster membership closed',
        'backup scheduler closed',
        'api server closed',
        // Migrations end before the NBD server and the engine they read from (a running one ends Failed, "the node
        // stopped").
        'migrations closed',
        'nbd server closed',
        'engine closed',
      ]);
      expect(run.lines.at(-1)).toMatchObject({ msg: 'ferry node stopped', clean: true });
      expect(run.stderr.join('')).toBe('');
    },
  );

  it('refuses to start when the API port is taken, closing what it opened, exit 1', async () => {
    const squatter = await listen();
    try {
      const nbdPort = await freePort();
      const run = startNode([
        '--data-dir',
        dataDir,
        '--api-addr',
        `127.0.0.1:${portOf(squatter)}`,
        '--nbd-addr',
        `127.0.0.1:${nbdPort}`,
      ]);
      running.push(run);
      expect(await run.exited).toBe(1);
      expect(run.lines.find((line) => line.msg === 'ferry node failed to start')).toMatchObject({
        level: 'error',
        error: expect.stringMatching(/already in use/),
      });
      expect(run.lines.map((line) => line.msg)).toContain('engine closed');
      expect(run.stderr.join('')).toMatch(/^error: ferry node failed to start: /);
      // The NBD port it had bound is free again.
      const again = await listen(nbdPort);
      await new Promise((resolve) => again.close(resolve));
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('refuses a bad listen address with exit 2', async () => {
    const run = startNode(['--data-dir', dataDir, '--api-addr', 'nonsense']);
    running.push(run);
    expect(await run.exited).toBe(2);
    expect(run.stderr.join('')).toMatch(/^error: option '--api-addr <host:port>' argument 'nonsense' is invalid/);
    const fromEnv = startNode(['--data-dir', dataDir], { FERRY_NBD_ADDR: 'also-nonsense' });
    running.push(fromEnv);
    expect(await fromEnv.exited).toBe(2);
    expect(fromEnv.stderr.join('')).toMatch(/^error: FERRY_NBD_ADDR: /);
  });
});

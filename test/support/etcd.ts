/**
 * A real etcd (Debian's `etcd-server`, /usr/bin/etcd) for the cluster store's tests: one member on free loopback
 * ports with a temp data directory. It refuses to start when a port is taken, waits for `/health`, and can be
 * stopped and started again on the same ports and data (a server restart). Only its own process is ever killed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const HOST = '127.0.0.1';

/** A running etcd. */
export interface EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Stops the process (data kept); safe to call twice. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data, and waits until it is healthy. */
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  destroy(): Promise<void>;
}

/** Resolves when nothing listens on `port` (by listening on it), rejects when a process has it. */
function ensureFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: Error) =>
      reject(new Error(`port ${HOST}:${port} is taken; etcd not started`, { cause: err })),
    );
    probe.listen(port, HOST, () => probe.close(() => resolve()));
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

/** Starts etcd (short heartbeat and election timeout, so a one-member cluster elects itself at once). */
export async function startEtcd(options: { timeoutMs?: number } = {}): Promise<EtcdServer> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-etcd-'));
  const clientPort = await freePort(HOST);
  const peerPort = await freePort(HOST);
  const url = `http://${HOST}:${clientPort}`;
  const peer = `http://${HOST}:${peerPort}`;
  let child: ChildProcess | undefined;
  let output = '';
  const kill = (): void => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };

  const start = async (): Promise<void> => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
    await ensureFree(clientPort);
    await ensureFree(peerPort);
    const args = [
      '--name=ferry-test',
      `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=ferry-test=${peer}`,
      '--heartbeat-interval=10',
      '--election-timeout=50',
      '--logger=zap',
      '--log-level=error',
    ];
    const proc = spawn('/usr/bin/etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const collect = (d: Buffer): void => {
      output = (output + d.toString()).slice(-4000);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    proc.on('error', (err) => {
      output += `\n${err.message}`;
    });
    process.once('exit', kill);
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`etcd exited: ${output}`);
      if (Date.now() > deadline) {
        await exited(proc);
        throw new Error(`etcd did not become healthy on ${url} in time: ${output}`);
      }
      try {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const stop = async (): Promise<void> => {
    if (child === undefined) return;
    process.removeListener('exit', kill);
    await exited(child);
  };

  const destroy = async (): Promise<void> => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await start();
  } catch (err: unknown) {
    await destroy();
    throw err;
  }
  return { url, stop, start, destroy };
}

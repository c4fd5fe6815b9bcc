/** Azurite's blob service (npm devDependency) on a free loopback port, in memory, for the Azure Blob store's tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './ports.js';

/** A running Azurite blob service. */
export interface Azurite {
  connectionString: string;
  /** Blob endpoint including the account, e.g. `http://127.0.0.1:41234/devstoreaccount1`. */
  endpoint: string;
  accountName: string;
  accountKey: string;
  /** Stops the process; safe to call twice. */
  stop(): Promise<void>;
}

/** Azurite's well-known development account (public, documented by Microsoft; not a secret). */
const ACCOUNT_NAME = 'devstoreaccount1';
const ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const HOST = '127.0.0.1';

/**
 * Starts Azurite. `account` replaces the well-known development account with one of the test's own (AZURITE_ACCOUNTS;
 * the key must be base64), e.g. to check that a distinctive key never reaches a log.
 */
export async function startAzurite(
  options: { timeoutMs?: number; account?: { name: string; key: string } } = {},
): Promise<Azurite> {
  const accountName = options.account?.name ?? ACCOUNT_NAME;
  const accountKey = options.account?.key ?? ACCOUNT_KEY;
  const port = await freePort(HOST);
  const bin = join(process.cwd(), 'node_modules', '.bin', 'azurite-blob');
  const args = [
    '--silent',
    '--inMemoryPersistence',
    '--disableTelemetry',
    '--skipApiVersionCheck',
    '--blobHost',
    HOST,
    '--blobPort',
    String(port),
  ];
  const env =
    options.account === undefined ? process.env : { ...process.env, AZURITE_ACCOUNTS: `${accountName}:${accountKey}` };
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  const collect = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.on('error', (err) => {
    output += `\n${err.message}`;
  });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', kill);
    await exited(child);
  };
  const endpoint = `http://${HOST}:${port}/${accountName}`;
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`azurite-blob exited: ${output}`);
      if (Date.now() > deadline) throw new Error(`azurite-blob did not answer on ${endpoint} in time: ${output}`);
      try {
        await fetch(`${endpoint}?comp=list`, { signal: AbortSignal.timeout(1000) });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (err: unknown) {
    await stop();
    throw err;
  }
  const connectionString =
    `DefaultEndpointsProtocol=http;AccountName=${accountName};AccountKey=${accountKey};` + `BlobEndpoint=${endpoint};`;
  return { connectionString, endpoint, accountName, accountKey, stop };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

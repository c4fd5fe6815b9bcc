/**
 * A real S3 server for tests: single-host Ceph (one monitor, one OSD on memstore, one RADOS Gateway) on free loopback
 * ports under one temp directory, as docs/DESIGN "A real S3 server for tests" describes. Needs the Debian packages
 * ceph-mon, ceph-osd and radosgw (test/install.sh installs them).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/** A running single-host Ceph RGW. */
export interface CephRgw {
  /** S3 endpoint, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Milliseconds from the call to the first authenticated S3 answer. */
  startupMs: number;
  /** Stops every daemon and removes the directory; safe to call twice. */
  stop(): Promise<void>;
}

/** Options of startCephRgw. */
export interface CephRgwOptions {
  /** Milliseconds the whole start may take before it fails with the daemons' log tails; default 30000. */
  timeoutMs?: number;
  /** Fixed gateway port instead of a free one; start refuses when it is taken. */
  rgwPort?: number;
}

const LOOPBACK = '127.0.0.1';

export async function startCephRgw(options: CephRgwOptions = {}): Promise<CephRgw> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? 30_000);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-ceph-'));
  const children: ChildProcess[] = [];
  let stopped = false;
  const killAll = (): void => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killAll); // never leave daemons behind a crashed test run
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killAll);
    // SIGKILL: everything lives in memory and in `dir`; a clean shutdown only costs time (the OSD waits for the mon).
    await Promise.all(children.map(waitForExit));
    killAll();
    await Promise.all(children.map(waitForExit));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const ports = await freePorts(3);
    const monV2 = ports[0]!;
    const monV1 = ports[1]!;
    const rgwPort = options.rgwPort ?? ports[2]!;
    for (const port of [monV2, monV1, rgwPort]) await assertPortFree(port);
    const conf = join(dir, 'ceph.conf');
    const fsid = randomUUID();
    const monAddr = `[v2:${LOOPBACK}:${monV2},v1:${LOOPBACK}:${monV1}]`;
    await Promise.all(['run', 'log', 'mon', 'osd'].map((d) => mkdir(join(dir, d))));
    await writeFile(conf, cephConf(dir, fsid, monAddr, rgwPort));
    const env = { ...process.env, CEPH_CONF: conf };
    const tool = (cmd: string, args: string[]) => runTool(cmd, ['-c', conf, ...args], env, deadline, dir);

    await tool('ceph-authtool', ['--create-keyring', join(dir, 'keyring'), '--gen-key', '-n', 'mon.']);
    await tool('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', monAddr, join(dir, 'monmap')]);
    await tool('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', join(dir, 'keyring')]);
    children.push(daemon('ceph-mon', ['-c', conf, '-f', '-i', 'a'], env, dir));

    const osdUuid = randomUUID();
    await tool('ceph', ['--connect-timeout', '15', 'osd', 'new', osdUuid]);
    await tool('ceph-osd', ['-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    children.push(daemon('ceph-osd', ['-c', conf, '-f', '-i', '0'], env, dir));
    children.push(daemon('radosgw', ['-c', conf, '-n', 'client.rgw', '-f'], env, dir));

    const endpoint = `http://${LOOPBACK}:${rgwPort}`;
    await waitForHttp(endpoint, deadline, children, dir);
    const accessKeyId = `FERRY${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = randomBytes(20).toString('hex');
    await tool('radosgw-admin', [
      'user',
      'create',
      '--uid',
      'ferry-test',
      '--display-name',
      'Ferry tests',
      '--access-key',
      accessKeyId,
      '--secret-key',
      secretAccessKey,
    ]);
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${child.spawnfile} exited during start-up${logTails(dir)}`);
      }
    }
    return { endpoint, accessKeyId, secretAccessKey, startupMs: Date.now() - started, stop };
  } catch (err: unknown) {
    const message = err instanceof Error ? err.message : String(err);
    const tails = message.includes('--- log') ? '' : logTails(dir);
    await stop();
    throw new Error(`Ceph RGW did not start: ${message}${tails}`, { cause: err });
  }
}

function cephConf(dir: string, fsid: string, monAddr: string, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = ${monAddr}
auth cluster required = none
auth service required = none
auth client required = none
# with auth none, radosgw cannot reach the monitor unless the client mode allows crc
ms mon client mode = crc secure
# without these, start takes ~13 s while radosgw creates its pools one paxos round at a time
paxos propose interval = 0.05
paxos min wait = 0.01
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
keyring = ${dir}/keyring
[mon.a]
mon data = ${dir}/mon
[osd.0]
osd data = ${dir}/osd
osd objectstore = memstore
memstore device bytes = 2147483648
[client.rgw]
rgw frontends = beast endpoint=${LOOPBACK}:${rgwPort}
rgw data = ${dir}/rgw
`;
}

function daemon(command: string, args: string[], env: NodeJS.ProcessEnv, dir: string): ChildProcess {
  const child = spawn(command, args, { env, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  child.on('exit', () => {
    if (stderr !== '') void writeFile(join(dir, 'log', `${command}.stderr`), stderr).catch(() => undefined);
  });
  child.on('error', () => undefined); // reported through exitCode and the start-up checks
  return child;
}

function runTool(command: string, args: string[], env: NodeJS.ProcessEnv, deadline: number, dir: string) {
  return new Promise<string>((resolve, reject) => {
    const timeout = Math.max(1, deadline - Date.now());
    const child = spawn(command, args, { env, cwd: dir, timeout, killSignal: 'SIGKILL' });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', (err) => reject(new Error(`${command}: ${err.message} (is it installed? see test/install.sh)`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? code}): ${out.slice(-2000)}`));
    });
  });
}

async function waitForHttp(url: string, deadline: number, children: ChildProcess[], dir: string): Promise<void> {
  while (Date.now() < deadline) {
    const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead !== undefined) throw new Error(`${dead.spawnfile} exited (${dead.exitCode ?? dead.signalCode})`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`no S3 answer from ${url} in time${logTails(dir)}`);
}

function freePorts(n: number): Promise<number[]> {
  return Promise.all(Array.from({ length: n }, () => freePort(LOOPBACK)));
}

/** Rejects when something listens on the port already: a second gateway would fail to bind while the first answers. */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err) => reject(new Error(`port ${LOOPBACK}:${port} is taken (${err.message}): free it`)));
    server.listen(port, LOOPBACK, () => server.close(() => resolve()));
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGKILL');
  });
}

function logTails(dir: string): string {
  const logDir = join(dir, 'log');
  if (!existsSync(logDir)) return '';
  return readdirSync(logDir)
    .map((name) => {
      const lines = readFileSync(join(logDir, name), 'utf8').trimEnd().split('\n');
      return `\n--- log ${name} (last lines) ---\n${lines.slice(-15).join('\n')}`;
    })
    .join('');
}

/**
 * Issue 24, cluster pairs and live migration, end to end: two clusters (a node each, their own data directories and
 * stores), paired with a token over the API port's TLS-PSK link, and volumes moved between them with the built CLI.
 * Real NBD clients write on the source while it migrates (nbdsh) and read on the destination; crashes come from
 * failpoints (the node kills itself with SIGKILL at a named step) and from kill -9.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReadyProcess, runFerry, spawnFerryUntilReady } from './support/cli-node.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { freePort } from './support/ports.js';
import { ok, run, TOOL_ENV } from './support/run.js';

interface Site {
  dataDir: string;
  apiPort: number;
  nbdPort: number;
  apiUrl: string;
  nbdUrl: string;
  process?: ReadyProcess;
}

interface Migration {
  task_id: string;
  local_volume_name: string;
  status: string;
  current_stage: string;
  pass: number;
  bytes_done: number;
  bytes_sent: number;
  wire_bytes: number;
  writes_held_ms?: number;
  error_reason?: string;
  remote_cleanup?: string;
}

const MiB = 1024 * 1024;
let dir: string;
let a: Site;
let b: Site;

async function site(name: string): Promise<Site> {
  const [apiPort, nbdPort] = [await freePort(), await freePort()];
  return {
    dataDir: join(dir, name),
    apiPort,
    nbdPort,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    nbdUrl: `nbd://127.0.0.1:${nbdPort}`,
  };
}

/** Starts (or restarts) a site's node on its data directory and ports; `failpoints`: FERRY_FAILPOINTS. */
async function start(s: Site, failpoints = '', env: NodeJS.ProcessEnv = {}): Promise<void> {
  s.process = await spawnFerryUntilReady(
    [
      'node',
      'start',
      '--data-dir',
      s.dataDir,
      '--api-addr',
      `127.0.0.1:${s.apiPort}`,
      '--nbd-addr',
      `127.0.0.1:${s.nbdPort}`,
    ],
    'ferry node ready',
    { FERRY_FAILPOINTS: failpoints, ...env },
  );
}

/** Waits for a node that killed itself at a failpoint to be gone. */
async function exited(s: Site): Promise<void> {
  const pid = s.process?.pid ?? -1;
  for (let i = 0; i < 600; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`node ${pid} did not exit`);
}

async function ferry(s: Site, args: string[]): Promise<string> {
  const result = await runFerry(s.apiUrl, args, { FERRY_DATA_DIR: s.dataDir });
  expect(result.stderr, `ferry ${args.join(' ')}`).toBe('');
  expect(result.code, `ferry ${args.join(' ')}: ${result.stdout}`).toBe(0);
  return result.stdout;
}

async function ferryJson<T>(s: Site, args: string[]): Promise<T> {
  return JSON.parse(await ferry(s, ['--json', ...args])) as T;
}

async function migration(s: Site, task: string): Promise<Migration> {
  const [m] = await ferryJson<Migration[]>(s, ['migrate', 'status', task]);
  if (m === undefined) throw new Error(`no migration ${task}`);
  return m;
}

/** Starts a migration of `volume` with a manual cutover and waits until it awaits the cutover; its task id. */
async function startAwaitingCutover(volume: string): Promise<string> {
  const [started] = await ferryJson<Migration[]>(a, [
    'migrate',
    'start',
    volume,
    '--pair',
    'dc2',
    '--cutover',
    'manual',
  ]);
  const task = (started as Migration).task_id;
  await until(
    'the manual cutover to be awaited',
    () => migration(a, task),
    (m) => m.current_stage === 'AwaitingCutover',
  );
  return task;
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function volumeNames(s: Site): Promise<string[]> {
  const list = await ferryJson<{ volumes: { name: string }[] }>(s, ['volume', 'list']);
  return list.volumes.map((v) => v.name);
}

interface VolumeJson {
  volume: {
    readonly: boolean;
    migrated_to?: string;
    spec: { size: number };
    locator: { volume_labels: Record<string, string> };
  };
}

async function inspect(s: Site, name: string): Promise<VolumeJson> {
  return ferryJson<VolumeJson>(s, ['volume', 'inspect', name]);
}

/** Fills the first `bytes` of volume `name` on `s` with random data; returns the file it came from. */
async function fill(s: Site, name: string, bytes: number): Promise<string> {
  const file = join(dir, `${name}-${Date.now()}.bin`);
  await ok('sh', ['-c', `head -c ${bytes} /dev/urandom > ${file}`]);
  await ok('nbdcopy', [file, `${s.nbdUrl}/${name}`]);
  return file;
}

/** The first `bytes` of an export, read into a file. */
async function readExport(s: Site, name: string, bytes: number): Promise<Buffer> {
  const file = join(dir, `read-${name}-${Date.now()}.bin`);
  await ok('nbdcopy', [`${s.nbdUrl}/${name}`, file]);
  const data = await readFile(file);
  await rm(file, { force: true });
  return data.subarray(0, bytes);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-migrate-e2e-'));
  a = await site('a');
  b = await site('b');
  await Promise.all([start(a), start(b)]);
}, 120_000);

afterAll(async () => {
  await a?.process?.stop().catch(() => undefined);
  await b?.process?.stop().catch(() => undefined);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('cluster pairs', () => {
  it('a token from the destination pairs the clusters both ways; a bad or used token changes nothing', async () => {
    const { result } = await ferryJson<{ result: { token: string } }>(b, ['cluster', 'pair', 'token', '--ttl', '10m']);
    const bad = await runFerry(
      a.apiUrl,
      ['cluster', 'pair', 'create', 'dc2', '--remote', b.apiUrl, '--pair-token', 'x'],
      {
        FERRY_DATA_DIR: a.dataDir,
      },
    );
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/not a pair token/);
    // The right shape with a wrong secret: the other cluster refuses the link itself.
    const forged = `${result.token.split('.').slice(0, 2).join('.')}.${Buffer.alloc(32, 1).toString('base64url')}`;
    const refused = await runFerry(
      a.apiUrl,
      ['cluster', 'pair', 'create', 'dc2', '--remote', b.apiUrl, '--pair-token', forged],
      { FERRY_DATA_DIR: a.dataDir },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/refused this cluster's key|cannot be reached/);
    expect(await ferryJson<unknown[]>(a, ['cluster', 'pair', 'list'])).toEqual([]);

    await ferry(a, ['cluster', 'pair', 'create', 'dc2', '--remote', b.apiUrl, '--pair-token', result.token]);
    const again = await runFerry(
      a.apiUrl,
      ['cluster', 'pair', 'create', 'dc2b', '--remote', b.apiUrl, '--pair-token', result.token],
      { FERRY_DATA_DIR: a.dataDir },
    );
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/used already/);

    const fromA = await ferryJson<{ name: string; status: string; rtt_ms: number }[]>(a, ['cluster', 'pair', 'list']);
    expect(fromA.map((p) => [p.name, p.status])).toEqual([['dc2', 'Ready']]);
    expect(fromA[0]?.rtt_ms).toBeGreaterThan(0);
    // The destination knows the pair too (failback goes that way), under the source cluster's name.
    const fromB = await ferryJson<{ status: string; endpoint: string }[]>(b, ['cluster', 'pair', 'list']);
    expect(fromB.map((p) => [p.status, p.endpoint])).toEqual([['Ready', a.apiUrl]]);
    const text = await ferry(a, ['cluster', 'pair', 'inspect', 'dc2']);
    expect(text).toMatch(/Status\s+: Ready/);
  }, 60_000);
});

/** Writes 64 KiB blocks at random with a sequence number in each, logging every acknowledged write, until refused. */
const BLOCK = 64 * 1024;
const WRITER = `
import os, random
r = random.Random(7)
blocks = int(os.environ['BLOCKS'])
acks = open(os.environ['ACKS'], 'w', buffering=1)
seq = 0
while True:
    b = r.randrange(blocks)
    seq += 1
    try:
        h.pwrite(seq.to_bytes(8, 'little') * ${BLOCK / 8}, b * ${BLOCK})
    except Exception as e:
        acks.write('refused %s\\n' % e)
        break
    acks.write('%d %d\\n' % (b, seq))
    if seq % 32 == 0:
        try:
            h.flush()
        except Exception as e:
            acks.write('refused %s\\n' % e)
            break
`;

/** Checks each block against the last acknowledged write to it (zeros where none was); prints the count of bad ones. */
const CHECKER = `
import os
blocks = int(os.environ['BLOCKS'])
last = {}
for line in open(os.environ['ACKS']):
    parts = line.split()
    if parts[0] == 'refused':
        continue
    last[int(parts[0])] = int(parts[1])
bad = 0
for b in range(blocks):
    want = last[b].to_bytes(8, 'little') * ${BLOCK / 8} if b in last else bytes(${BLOCK})
    if h.pread(${BLOCK}, b * ${BLOCK}) != want:
        bad += 1
print(bad, len(last))
`;

describe('live migration', () => {
  it('moves a volume while an application writes: every acknowledged write is on the destination, the source is read-only', async () => {
    const size = 256 * MiB;
    const blocks = size / BLOCK;
    await ferry(a, ['volume', 'create', 'db', '--size', '256M', '--label', 'app=pg']);
    const acks = join(dir, 'acks.txt');
    const writer = spawn('nbdsh', ['-u', `${a.nbdUrl}/db`, '-c', WRITER], {
      env: { ...TOOL_ENV, ACKS: acks, BLOCKS: String(blocks) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const writerDone = new Promise<number>((resolve) => writer.once('exit', (code) => resolve(code ?? -1)));
    await until(
      'the writer to write',
      () => readFile(acks, 'utf8').catch(() => ''),
      (t) => t.split('\n').length > 200,
    );

    const out = await ferryJson<Migration[]>(a, ['migrate', 'start', 'db', '--pair', 'dc2', '--wait']);
    expect(out.map((m) => [m.status, m.current_stage])).toEqual([['Done', 'Done']]);
    const done = out[0] as Migration;
    expect(done.pass).toBeGreaterThanOrEqual(2);
    expect(done.writes_held_ms).toBeGreaterThanOrEqual(0);
    process.stderr.write(`[migrate] ${done.pass} passes, ${done.bytes_sent} bytes, held ${done.writes_held_ms} ms\n`);

    // The writer's next write after the cutover was refused (EPERM: the volume is read-only here now).
    expect(await writerDone).toBe(0);
    const last = (await readFile(acks, 'utf8')).trim().split('\n').at(-1);
    expect(last).toMatch(/^refused .*not permitted/i);

    const check = await run('nbdsh', ['-u', `${b.nbdUrl}/db`, '-c', CHECKER], {
      ...TOOL_ENV,
      ACKS: acks,
      BLOCKS: String(blocks),
    });
    expect(check.code, check.stderr).toBe(0);
    const [bad, written] = check.stdout.trim().split(' ').map(Number);
    expect(bad).toBe(0);
    expect(written).toBeGreaterThan(100);

    const source = await inspect(a, 'db');
    expect(source.volume.readonly).toBe(true);
    expect(source.volume.migrated_to).toBe('dc2/db');
    const refused = await run('nbdcopy', [join(dir, 'acks.txt'), `${a.nbdUrl}/db`]);
    expect(refused.code).not.toBe(0);
    const dest = await inspect(b, 'db');
    expect(dest.volume.spec.size).toBe(size);
    expect(dest.volume.locator.volume_labels).toEqual({ app: 'pg' });
    // No snapshot of the migration's is left behind on the source.
    expect(await ferry(a, ['volume', 'snapshot', 'list', 'db'])).not.toMatch(/migrate-/);
  }, 180_000);

  it('cancel leaves the source as it was and removes what was made on the destination; a manual cutover waits', async () => {
    await ferry(a, ['volume', 'create', 'c1', '--size', '128M']);
    const file = await fill(a, 'c1', 32 * MiB);
    const task = await startAwaitingCutover('c1');
    expect(await volumeNames(b)).toContain('c1');
    await ferry(a, ['migrate', 'cancel', task]);
    const aborted = await until(
      'the cancel',
      () => migration(a, task),
      (m) => m.status === 'Aborted',
    );
    expect(aborted.error_reason).toMatch(/cancelled/);
    expect(await volumeNames(b)).not.toContain('c1');
    expect(await ferry(a, ['volume', 'snapshot', 'list', 'c1'])).not.toMatch(/migrate-/);
    // The source takes writes again, and still holds its data.
    expect((await readExport(a, 'c1', 32 * MiB)).equals(await readFile(file))).toBe(true);

    const task2 = await startAwaitingCutover('c1');
    expect((await migration(a, task2)).status).toBe('Active');
    await ferry(a, ['migrate', 'cutover', task2]);
    await until(
      'the cutover',
      () => migration(a, task2),
      (m) => m.status === 'Done',
    );
    expect((await readExport(b, 'c1', 32 * MiB)).equals(await readFile(file))).toBe(true);
  }, 180_000);

  it('carries the snapshots the user chose, each holding what it held on the source', async () => {
    await ferry(a, ['volume', 'create', 's1v', '--size', '64M']);
    const first = await fill(a, 's1v', 8 * MiB);
    await ferry(a, ['volume', 'snapshot', 'create', 's1v', '--name', 'monday']);
    const second = await fill(a, 's1v', 8 * MiB);
    await ferry(a, ['volume', 'snapshot', 'create', 's1v', '--name', 'tuesday']);
    await ferry(a, ['volume', 'snapshot', 'create', 's1v', '--name', 'left-behind']);
    const live = await fill(a, 's1v', 4 * MiB);
    const missing = await runFerry(a.apiUrl, ['migrate', 'start', 's1v', '--pair', 'dc2', '--snapshots', 'nope'], {
      FERRY_DATA_DIR: a.dataDir,
    });
    expect(missing.stderr).toMatch(/has no snapshot nope/);
    expect(await volumeNames(b)).not.toContain('s1v');
    const [done] = await ferryJson<Migration[]>(a, [
      'migrate',
      'start',
      's1v',
      '--pair',
      'dc2',
      '--snapshots',
      'tuesday,monday',
      '--wait',
    ]);
    expect(done?.status).toBe('Done');
    const snaps = await ferryJson<{ volumes: { name: string }[] }>(b, ['volume', 'snapshot', 'list', 's1v']);
    expect(snaps.volumes.map((v) => v.name).sort()).toEqual(['monday', 'tuesday']);
    expect((await readExport(b, 's1v@monday', 8 * MiB)).equals(await readFile(first))).toBe(true);
    expect((await readExport(b, 's1v@tuesday', 8 * MiB)).equals(await readFile(second))).toBe(true);
    const now = await readExport(b, 's1v', 8 * MiB);
    expect(now.subarray(0, 4 * MiB).equals(await readFile(live))).toBe(true);
    expect(now.subarray(4 * MiB).equals((await readFile(second)).subarray(4 * MiB))).toBe(true);
    // The source keeps its own snapshots.
    expect(await ferry(a, ['volume', 'snapshot', 'list', 's1v'])).toMatch(/monday/);
  }, 120_000);

  it('an encrypted volume arrives encrypted (under the KEK of the destination) with its data', async () => {
    await ferry(a, ['volume', 'create', 'sec', '--size', '32M', '--encrypted']);
    const file = await fill(a, 'sec', 4 * MiB);
    const [done] = await ferryJson<Migration[]>(a, ['migrate', 'start', 'sec', '--pair', 'dc2', '--wait']);
    expect(done?.status).toBe('Done');
    const dest = await ferryJson<{ volume: { spec: { encrypted: boolean }; encryption?: { kek: string } } }>(b, [
      'volume',
      'inspect',
      'sec',
    ]);
    expect(dest.volume.spec.encrypted).toBe(true);
    expect(dest.volume.encryption?.kek).toBeDefined();
    expect((await readExport(b, 'sec', 4 * MiB)).equals(await readFile(file))).toBe(true);
  }, 60_000);

  it('moves several volumes in one start, one task each; a volume named twice or not up is refused first', async () => {
    await ferry(a, ['volume', 'create', 'm1', '--size', '16M']);
    await ferry(a, ['volume', 'create', 'm2', '--size', '16M']);
    const twice = await runFerry(a.apiUrl, ['migrate', 'start', 'm1', 'm1', '--pair', 'dc2'], {
      FERRY_DATA_DIR: a.dataDir,
    });
    expect(twice.stderr).toMatch(/named twice/);
    const gone = await runFerry(a.apiUrl, ['migrate', 'start', 'm1', 'db', '--pair', 'dc2'], {
      FERRY_DATA_DIR: a.dataDir,
    });
    expect(gone.stderr).toMatch(/db is migrated/);
    expect(await volumeNames(b)).not.toContain('m1');
    const done = await ferryJson<Migration[]>(a, ['migrate', 'start', 'm1', 'm2', '--pair', 'dc2', '--wait']);
    expect(done.map((m) => [m.local_volume_name, m.status])).toEqual([
      ['m1', 'Done'],
      ['m2', 'Done'],
    ]);
    expect(await volumeNames(b)).toEqual(expect.arrayContaining(['m1', 'm2']));
    const table = await ferry(a, ['migrate', 'status']);
    expect(table).toMatch(/m1\s+dc2\s+Done/);
  }, 60_000);

  it('a source killed during the copy fails the migration visibly when it restarts and undoes it', async () => {
    await ferry(a, ['volume', 'create', 'k1', '--size', '256M']);
    await fill(a, 'k1', 96 * MiB);
    await a.process?.stop();
    await start(a, 'migrate.call-acked');
    const started = await runFerry(a.apiUrl, ['--json', 'migrate', 'start', 'k1', '--pair', 'dc2'], {
      FERRY_DATA_DIR: a.dataDir,
    });
    const task = (JSON.parse(started.stdout) as Migration[])[0]?.task_id as string;
    await exited(a);
    await start(a);
    const failed = await until(
      'the recovery',
      () => migration(a, task),
      (m) => m.status === 'Failed',
    );
    expect(failed.error_reason).toMatch(/restarted during InitialCopy/);
    expect(await volumeNames(b)).not.toContain('k1');
    expect((await inspect(a, 'k1')).volume.readonly).toBe(false);
    expect(await ferry(a, ['volume', 'snapshot', 'list', 'k1'])).not.toMatch(/migrate-/);
  }, 120_000);

  it('a source killed in the cutover before the destination took over comes back writable; after, it ends Done', async () => {
    await ferry(a, ['volume', 'create', 'k2', '--size', '64M']);
    await fill(a, 'k2', 8 * MiB);
    await a.process?.stop();
    await start(a, 'migrate.before-complete');
    const first = await runFerry(a.apiUrl, ['--json', 'migrate', 'start', 'k2', '--pair', 'dc2'], {
      FERRY_DATA_DIR: a.dataDir,
    });
    const task = (JSON.parse(first.stdout) as Migration[])[0]?.task_id as string;
    await exited(a);
    await start(a, 'migrate.after-complete');
    const failed = await until(
      'the recovery',
      () => migration(a, task),
      (m) => m.status === 'Failed',
    );
    expect(failed.error_reason).toMatch(/restarted during Cutover/);
    expect(await volumeNames(b)).not.toContain('k2');
    expect((await inspect(a, 'k2')).volume.readonly).toBe(false);

    // Again, now dying once the destination is up: the restart finds it so and finishes the job.
    const file = await fill(a, 'k2', 8 * MiB);
    const second = await runFerry(a.apiUrl, ['--json', 'migrate', 'start', 'k2', '--pair', 'dc2'], {
      FERRY_DATA_DIR: a.dataDir,
    });
    const task2 = (JSON.parse(second.stdout) as Migration[])[0]?.task_id as string;
    await exited(a);
    await start(a);
    await until(
      'the recovery',
      () => migration(a, task2),
      (m) => m.status === 'Done',
    );
    expect((await inspect(a, 'k2')).volume.migrated_to).toBe('dc2/k2');
    expect((await readExport(b, 'k2', 8 * MiB)).equals(await readFile(file))).toBe(true);
  }, 120_000);

  it('a destination killed during the copy: the migration fails, the source is untouched, the restarted destination drops its half', async () => {
    await ferry(a, ['volume', 'create', 'k3', '--size', '128M']);
    await fill(a, 'k3', 64 * MiB);
    // The destination kills itself (SIGKILL) once it has written the first frame it received.
    await b.process?.stop();
    await start(b, 'migrate.receive');
    const [started] = await ferryJson<Migration[]>(a, ['migrate', 'start', 'k3', '--pair', 'dc2']);
    const task = (started as Migration).task_id;
    await exited(b);
    const failed = await until(
      'the failure',
      () => migration(a, task),
      (m) => m.status === 'Failed',
    );
    expect(failed.error_reason).toMatch(/cannot be reached|socket|ECONN/);
    expect((await inspect(a, 'k3')).volume.readonly).toBe(false);
    await start(b);
    await until(
      'the half-made volume to go',
      () => volumeNames(b),
      (names) => !names.includes('k3'),
      30_000,
    );
  }, 180_000);

  it('a link cut between the sites: a start is refused while it is down; cut mid-copy, the migration fails and its half goes once the link is back', async () => {
    // A second pair, through a proxy that can stall and reset the link (and counts what crosses it).
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: b.apiPort }, rate: 0 });
    try {
      const { result } = await ferryJson<{ result: { token: string } }>(b, ['cluster', 'pair', 'token']);
      await ferry(a, ['cluster', 'pair', 'create', 'dc2p', '--remote', proxy.url, '--pair-token', result.token]);
      await a.process?.stop();
      await start(a, '', { FERRY_PEER_TIMEOUT_SECONDS: '2' });
      await ferry(a, ['volume', 'create', 'k4', '--size', '256M']);
      await fill(a, 'k4', 192 * MiB);

      proxy.setHold(true);
      const refused = await runFerry(a.apiUrl, ['migrate', 'start', 'k4', '--pair', 'dc2p'], {
        FERRY_DATA_DIR: a.dataDir,
      });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/dc2p is not ready/);
      expect(await volumeNames(b)).not.toContain('k4');
      proxy.setHold(false);

      // Slowed down (every chunk held 20 ms each way) so that the cut lands mid-copy.
      proxy.setDelay(20);
      const [started] = await ferryJson<Migration[]>(a, ['migrate', 'start', 'k4', '--pair', 'dc2p']);
      const task = (started as Migration).task_id;
      await until(
        'the destination volume',
        () => volumeNames(b),
        (names) => names.includes('k4'),
      );
      proxy.setHold(true);
      proxy.resetAll();
      const failed = await until(
        'the failure',
        () => migration(a, task),
        (m) => m.status === 'Failed',
        60_000,
      );
      expect(failed.error_reason).toMatch(/no answer for 2 s|cannot be reached/);
      expect(failed.remote_cleanup).toBe('pending');
      expect((await inspect(a, 'k4')).volume.readonly).toBe(false);
      expect(await volumeNames(b)).toContain('k4');
      proxy.setDelay(0);
      proxy.setHold(false);
      await until(
        'the half-made volume to go',
        () => volumeNames(b),
        (names) => !names.includes('k4'),
        30_000,
      );
      expect((await migration(a, task)).remote_cleanup).toBe('done');
    } finally {
      await proxy.close();
    }
  }, 180_000);
});

/**
 * Object-store reads and writes under network faults, on a real Ceph RGW behind the fault proxy of
 * test/support/fault-proxy.ts: a read broken mid-body resumes from its first missing byte (and refuses an object
 * that changed meanwhile), the direct GET path survives transient faults, and backups and restores through a proxy
 * failing about 5% of requests (500, 503 SlowDown, resets mid-body, stalls) all complete, every restore bit-identical.
 *
 * FERRY_FAULT_SEED=<n> replays (or explores) another fault schedule; the seed in use is printed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureBlobStore, backupVolume, Repository, restoreBackup } from '../cloudsnap/index.js';
import { createS3Client, S3Store } from '../cloudsnap/store/index.js';
import { openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { startAzurite } from './support/azurite.js';
import { type CephRgw, startCephRgw } from './support/ceph-rgw.js';
import { type FaultProxy, type HttpFault, type ProxiedRequest, startFaultProxy } from './support/fault-proxy.js';

const MiB = 1024 * 1024;
const BUCKET = 'ferry-faults';

/** A step of a scripted read: a fault, a pass, or something to do (then the GET passes). */
type Step = HttpFault | 'pass' | (() => Promise<void>);

/**
 * A proxy script for the GETs whose URL holds `part`: each is recorded in `gets` and answered with the next step of
 * `plan` (passed when the plan is empty); other requests pass.
 */
function scriptGets(part: string) {
  const gets: ProxiedRequest[] = [];
  const plan: Step[] = [];
  const script = async (req: ProxiedRequest): Promise<HttpFault | 'pass' | undefined> => {
    if (req.method !== 'GET' || !req.url.includes(part)) return undefined;
    gets.push(req);
    const step = plan.shift();
    if (typeof step === 'function') {
      await step();
      return 'pass';
    }
    return step;
  };
  return { gets, plan, script };
}
let rgw: CephRgw;
let direct: S3Client;

beforeAll(async () => {
  rgw = await startCephRgw();
  direct = client(rgw.endpoint);
  await direct.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  direct?.destroy();
  await rgw?.stop();
});

/**
 * A client of `endpoint`. `sdkOnly`: not path-style, so the store's direct GET path does not apply (as on AWS S3
 * itself) and every read goes through the SDK; the SDK still uses path-style URLs for an IP address.
 */
function client(endpoint: string, requestTimeoutMs?: number, sdkOnly = false): S3Client {
  return createS3Client({
    endpoint,
    region: 'us-east-1',
    accessKeyId: rgw.accessKeyId,
    secretAccessKey: rgw.secretAccessKey,
    requestTimeoutMs,
    forcePathStyle: !sdkOnly,
  });
}

/** SDK GetObject calls a client made (the direct path makes none). */
function countSdkGets(c: S3Client): { count: number } {
  const seen = { count: 0 };
  c.middlewareStack.add(
    (next, context) => (args) => {
      if (context.commandName === 'GetObjectCommand') seen.count++;
      return next(args);
    },
    { step: 'initialize', name: 'countGets' },
  );
  return seen;
}

describe('a read broken mid-body', () => {
  let proxy: FaultProxy;
  /** GETs of the object under test, as the server was asked; and what the script does with the next ones. */
  const { gets, plan, script } = scriptGets('/big');

  beforeAll(async () => {
    const target = new URL(rgw.endpoint);
    proxy = await startFaultProxy({
      mode: 'http',
      target: { host: target.hostname, port: Number(target.port) },
      rate: 0,
      script,
    });
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it('resumes from the bytes it has, with If-Match, on the direct path and through the SDK, and completes identical', async () => {
    const body = randomBytes(24 * MiB + 123);
    const put = await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'big', Body: body }));
    const c = client(proxy.url);
    const sdkGets = countSdkGets(c);
    const store = new S3Store(c, BUCKET, { read: { idleTimeoutMs: 5000 } });

    gets.length = 0;
    plan.splice(0, plan.length, 'reset', 'reset', 'reset');
    const whole = await store.get('big');
    expect(whole.equals(body)).toBe(true);
    expect(proxy.counts.resetMidBody).toBe(3);
    // First the whole object; then each attempt asks for the rest, from further on, of the same version.
    expect(gets).toHaveLength(4);
    expect(gets[0]?.headers.range).toBeUndefined();
    const starts = gets.slice(1).map((g) => Number(/^bytes=(\d+)-(\d+)$/.exec(String(g.headers.range))?.[1]));
    for (const [i, g] of gets.slice(1).entries()) {
      expect(g.headers.range).toBe(`bytes=${starts[i]}-${body.length - 1}`);
      expect(g.headers['if-match']).toBe(put.ETag);
    }
    expect(starts[0]).toBeGreaterThan(0);
    expect(starts[1]).toBeGreaterThan(starts[0] as number);
    expect(starts[2]).toBeGreaterThan(starts[1] as number);
    // Both paths resumed: the direct path's first attempt broke, the SDK continued, then the direct path again.
    expect(sdkGets.count).toBeGreaterThanOrEqual(1);

    gets.length = 0;
    plan.splice(0, plan.length, 'reset', 'stall');
    const range = { offset: 3 * MiB + 7, length: 9 * MiB };
    const part = await new S3Store(c, BUCKET, { read: { idleTimeoutMs: 300 } }).get('big', { range });
    expect(part.equals(body.subarray(range.offset, range.offset + range.length))).toBe(true);
    expect(gets.length).toBeGreaterThanOrEqual(3);
    const last = /^bytes=(\d+)-(\d+)$/.exec(String(gets.at(-1)?.headers.range));
    expect(Number(last?.[1])).toBeGreaterThan(range.offset);
    expect(Number(last?.[2])).toBe(range.offset + range.length - 1);
    c.destroy();
  });

  it('fails loudly (FAILED_PRECONDITION) when the object changed between two attempts', async () => {
    const body = randomBytes(8 * MiB);
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'big', Body: body }));
    const c = client(proxy.url);
    const store = new S3Store(c, BUCKET);
    gets.length = 0;
    plan.splice(0, plan.length, 'reset', async () => {
      await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'big', Body: randomBytes(8 * MiB) }));
    });
    const err = await store.get('big').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(String((err as Error).message)).toMatch(/big in bucket ferry-faults changed while it was being read/);
    expect(gets).toHaveLength(2);
    c.destroy();
  });

  it('keeps the direct GET path through transient faults (it used to be switched off for good after three)', async () => {
    const body = randomBytes(2 * MiB);
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'big', Body: body }));
    const c = client(proxy.url);
    const sdkGets = countSdkGets(c);
    const store = new S3Store(c, BUCKET);
    plan.length = 0;
    for (let i = 0; i < 5; i++) {
      plan.push('reset', 'pass');
      expect((await store.get('big')).equals(body)).toBe(true);
    }
    const afterFaults = sdkGets.count;
    expect(afterFaults).toBe(5);
    expect((await store.get('big')).equals(body)).toBe(true);
    expect(sdkGets.count).toBe(afterFaults);
    c.destroy();
  });
});

it('a put survives a stall, a 503 SlowDown, a 500 and a reset after the server stored it', async () => {
  const target = new URL(rgw.endpoint);
  const plan: HttpFault[] = ['stall', '503', '500', 'reset'];
  const proxy = await startFaultProxy({
    mode: 'http',
    target: { host: target.hostname, port: Number(target.port) },
    rate: 0,
    stallMs: 3000,
    script: (req) => (req.method === 'PUT' ? plan.shift() : undefined),
  });
  const c = createS3Client({
    endpoint: proxy.url,
    region: 'us-east-1',
    accessKeyId: rgw.accessKeyId,
    secretAccessKey: rgw.secretAccessKey,
    requestTimeoutMs: 1500,
    maxAttempts: 5,
  });
  try {
    const store = new S3Store(c, BUCKET);
    const body = randomBytes(3 * MiB);
    await store.put('written', body);
    await store.put('written-too', body);
    expect(plan).toEqual([]);
    expect(proxy.counts).toMatchObject({ stallBefore: 1, slowDown503: 1, status500: 1, resetNoBody: 1 });
    expect((await store.get('written')).equals(body)).toBe(true);
    expect((await store.get('written-too')).equals(body)).toBe(true);
  } finally {
    c.destroy();
    await proxy.close();
  }
});

it('Azure Blob reads resume too: a stall and a reset mid-body complete identical; a changed blob fails loudly', async () => {
  const azurite = await startAzurite();
  const { gets, plan, script } = scriptGets('/blob');
  const target = new URL(azurite.endpoint);
  const proxy = await startFaultProxy({
    mode: 'http',
    target: { host: target.hostname, port: Number(target.port) },
    rate: 0,
    stallMs: 3000,
    script,
  });
  try {
    const key = new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey);
    const straight = new ContainerClient(`${azurite.endpoint}/faults`, key);
    await straight.create();
    const viaProxy = new ContainerClient(`${proxy.url}${target.pathname}/faults`, key);
    const store = new AzureBlobStore(viaProxy, { read: { idleTimeoutMs: 300 } });
    const body = randomBytes(6 * MiB);
    await straight.getBlockBlobClient('blob').uploadData(body);
    plan.push('stall', 'reset');
    expect((await store.get('blob')).equals(body)).toBe(true);
    expect(gets.length).toBeGreaterThanOrEqual(3);
    expect(gets.at(-1)?.headers['if-match']).toBeDefined();
    expect(proxy.counts.resetMidBody).toBe(1);
    expect(proxy.counts.stallBefore + proxy.counts.stallMidBody).toBe(1);

    gets.length = 0;
    plan.push('reset', async () => {
      await straight.getBlockBlobClient('blob').uploadData(randomBytes(6 * MiB));
    });
    await expect(store.get('blob')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  } finally {
    await proxy.close();
    await azurite.stop();
  }
});

async function digest(engine: VolumeEngine, name: string): Promise<string> {
  const dev = await engine.openExport(name);
  const h = createHash('sha256');
  for (let o = 0; o < dev.size; o += 8 * MiB) h.update(await dev.read(o, Math.min(8 * MiB, dev.size - o)));
  await dev.close();
  return h.digest('hex');
}

it('backups and restores through a proxy failing about 5% of requests all complete, every restore bit-identical', async () => {
  const seed = Number(process.env.FERRY_FAULT_SEED ?? 20261206);
  const target = new URL(rgw.endpoint);
  const proxy = await startFaultProxy({
    mode: 'http',
    target: { host: target.hostname, port: Number(target.port) },
    seed,
    rate: 0.05,
    stallMs: 2500,
  });
  console.info(`fault proxy seed ${seed} (FERRY_FAULT_SEED replays it)`);
  const dataDir = await mkdtemp(join(tmpdir(), 'ferry-faults-'));
  const cluster = new SqliteStore(join(dataDir, 'cluster.db'));
  const engine = await openEngine({ dataDir, store: cluster });
  const c = client(proxy.url, 1000);
  const sdkOnly = client(proxy.url, 1000, true);
  const sdkGets = countSdkGets(sdkOnly);
  try {
    const read = { idleTimeoutMs: 1000, baseDelayMs: 50 };
    const store = new S3Store(c, BUCKET, { prefix: 'repo', read });
    const keys = await openDefaultKeyring(dataDir);
    const repo = await Repository.openOrInit(store, keys, 'default', { packSize: 256 * 1024 });
    // The same repository read only through the SDK (AWS S3 itself, or an endpoint the direct path does not suit).
    const sdkRepo = await Repository.open(new S3Store(sdkOnly, BUCKET, { prefix: 'repo', read }), keys);
    const size = 24 * MiB;
    await engine.createVolume({ name: 'vol', size });
    const expected: { id: string; sha: string }[] = [];
    for (let round = 0; round < 3; round++) {
      const dev = await engine.openExport('vol');
      if (round === 0) await dev.write(0, randomBytes(size));
      else await dev.write(round * 4 * MiB, randomBytes(4 * MiB));
      await dev.close();
      const record = await backupVolume({ engine, repo, store: cluster }, { volume: 'vol', uploadConcurrency: 4 });
      expected.push({ id: record.id, sha: await digest(engine, 'vol') });
    }
    console.info(`fault proxy counts after the backups: ${JSON.stringify(proxy.counts)}`);
    for (const [i, { id, sha }] of expected.entries()) {
      await restoreBackup({ engine, repo }, { backupId: id, volumeName: `copy${i}`, concurrency: 4 });
      expect(await digest(engine, `copy${i}`)).toBe(sha);
      await restoreBackup({ engine, repo: sdkRepo }, { backupId: id, volumeName: `sdk${i}`, concurrency: 4 });
      expect(await digest(engine, `sdk${i}`)).toBe(sha);
    }
    expect(sdkGets.count).toBeGreaterThan(100);
    console.info(`fault proxy counts: ${JSON.stringify(proxy.counts)}`);
    // Not vacuous: faults of every kind struck.
    expect(proxy.counts.status500).toBeGreaterThan(0);
    expect(proxy.counts.slowDown503).toBeGreaterThan(0);
    expect(proxy.counts.resetMidBody).toBeGreaterThan(0);
    expect(proxy.counts.stallBefore + proxy.counts.stallMidBody).toBeGreaterThan(0);
  } catch (err: unknown) {
    console.info(`faults (seed ${seed}):\n${proxy.struck.map((f) => `${f.n} ${f.kind} ${f.what}`).join('\n')}`);
    throw err;
  } finally {
    c.destroy();
    sdkOnly.destroy();
    await engine.close();
    await cluster.close();
    await proxy.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

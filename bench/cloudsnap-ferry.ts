/**
 * The Ferry side of the CloudSnap benchmark: a node (engine, cluster store, default keyring) in this process, the
 * image loaded through NBD with nbdcopy, volume digests, and repository sizes (directory and bucket).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { tuneAllocator } from '../common/native/index.js';
import { type KeyProvider, openDefaultKeyring } from '../kms/index.js';
import { NbdServer, openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { type Change, MiB } from './cloudsnap-workload.js';

const run = promisify(execFile);

/** A storage node's parts, in this process. */
export interface BenchNode {
  engine: VolumeEngine;
  store: SqliteStore;
  keys: KeyProvider;
  close(): Promise<void>;
}

/** Opens the parts of a node the benchmark drives, in a process set up as `ferry node start` sets up its own. */
export async function openNode(dataDir: string): Promise<BenchNode> {
  tuneAllocator();
  await mkdir(dataDir, { recursive: true });
  const store = new SqliteStore(join(dataDir, 'cluster.db'));
  const engine = await openEngine({ dataDir, store });
  const keys = await openDefaultKeyring(dataDir);
  return {
    engine,
    store,
    keys,
    close: async () => {
      await engine.close();
      await store.close();
    },
  };
}

/**
 * Creates volume `name` and copies `image` into it with `nbdcopy FILE nbd://127.0.0.1:PORT/name` through an NBD
 * server in this process. nbdcopy reads the file's extents and sends holes as zero requests, which the engine keeps
 * as holes. Returns the milliseconds the copy took.
 */
export async function loadThroughNbd(engine: VolumeEngine, name: string, size: number, image: string): Promise<number> {
  await engine.createVolume({ name, size });
  const server = new NbdServer(engine);
  const { port } = await server.listen('127.0.0.1', 0);
  try {
    const t0 = performance.now();
    await run('nbdcopy', [image, `nbd://127.0.0.1:${port}/${name}`]);
    return performance.now() - t0;
  } finally {
    await server.close();
  }
}

/** Writes the changed blocks into the live volume (the same writes an NBD client would send). */
export async function applyToVolume(engine: VolumeEngine, name: string, changes: readonly Change[]): Promise<void> {
  const dev = await engine.openExport(name);
  try {
    for (const c of changes) await dev.write(c.offset, c.data);
    await dev.flush();
  } finally {
    await dev.close();
  }
}

/** SHA-256 of a volume's bytes read through the engine. */
export async function sha256Volume(engine: VolumeEngine, name: string): Promise<string> {
  const dev = await engine.openExport(name);
  const h = createHash('sha256');
  try {
    for (let o = 0; o < dev.size; o += 4 * MiB) h.update(await dev.read(o, Math.min(4 * MiB, dev.size - o)));
  } finally {
    await dev.close();
  }
  return h.digest('hex');
}

/** `sync`: writes dirty pages back, so a timed step does not pay for the write-back of the step before it. */
export async function syncDisks(): Promise<void> {
  await run('sync');
}

/** Busy, stolen (the host gave them to other guests) and total jiffies of all CPUs so far (/proc/stat). */
async function cpuJiffies(): Promise<{ busy: number; steal: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  // busy: all but idle and iowait
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), steal: f[7] ?? 0, total };
}

/** `fn`'s result, how long it took and the share of this VM's CPU time the host took meanwhile (steal, 0-1). */
export async function timedWithSteal<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; steal: number }> {
  const a = await cpuJiffies();
  const started = performance.now();
  const value = await fn();
  const ms = performance.now() - started;
  const b = await cpuJiffies();
  return { value, ms, steal: b.total > a.total ? (b.steal - a.steal) / (b.total - a.total) : 0 };
}

/**
 * `sync`, then waits (up to `maxMs`) until the machine has been idle for a quarter second: under 10% of its CPUs
 * busy. A step that follows another (restic's backup, say) then does not share the cores with the gateway's
 * background work that step left behind. Returns how long it waited.
 */
export async function quiesce(maxMs = 15_000): Promise<number> {
  await syncDisks();
  const started = performance.now();
  while (performance.now() - started < maxMs) {
    const a = await cpuJiffies();
    await new Promise((r) => setTimeout(r, 250));
    const b = await cpuJiffies();
    if (b.total > a.total && (b.busy - a.busy) / (b.total - a.total) < 0.1) break;
  }
  return performance.now() - started;
}

/**
 * `sync`, then empties the page cache when allowed (root): each scenario starts from the same cold cache. On the VM
 * this was measured on, a page cache left full by earlier steps made restores of both tools about 1.6x slower.
 * Returns whether the cache was dropped.
 */
export async function dropCaches(): Promise<boolean> {
  await syncDisks();
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

/** `du -sb DIR`: apparent bytes of every file under a directory. */
export async function duBytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', dir]);
  return Number(stdout.split(/\s/)[0]);
}

/** `du -sB1 PATH`: bytes the file system allocated (holes cost nothing). */
export async function allocatedBytes(path: string): Promise<number> {
  const { stdout } = await run('du', ['-sB1', path]);
  return Number(stdout.split(/\s/)[0]);
}

/** Sum of the sizes of every object in a bucket (ListObjectsV2, page by page) and the object count. */
export async function bucketBytes(client: S3Client, bucket: string): Promise<{ bytes: number; objects: number }> {
  let bytes = 0;
  let objects = 0;
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      bytes += o.Size ?? 0;
      objects++;
    }
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return { bytes, objects };
}

/**
 * Verify benchmark: a 100% verify against a restore of the same backup, on a local directory and on a single-host
 * Ceph RGW (memstore) on loopback. A volume is loaded with the CloudSnap benchmark's image (random, text and holes)
 * through NBD and backed up once; then, `runs` times each and taking turns, the backup is restored into a new volume
 * and verified with `dataPercent: 100`, each through a freshly opened repository (cold index, as a verify job reads
 * everything from the store). A second backup after a 1% change is then verified together with the first: the chunks
 * they share are read once. Prints tables and writes JSON.
 *
 *   npm run bench:verify -- [--size 1G] [--only dir,rgw] [--runs 3] [--dir DIR] [--out bench/results/verify.json]
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { type BackupRecord, backupVolume, Repository, restoreBackup } from '../cloudsnap/index.js';
import { verifyBackups } from '../cloudsnap/repo/verify.js';
import {
  CountingStore,
  createS3Client,
  DirectoryStore,
  type ObjectStore,
  type RequestCounts,
  S3Store,
} from '../cloudsnap/store/index.js';
import { DEFAULT_KEK } from '../kms/index.js';
import { startCephRgw } from '../test/support/ceph-rgw.js';
import { applyToVolume, type BenchNode, loadThroughNbd, openNode, quiesce } from './cloudsnap-ferry.js';
import { MiB, parseSize, pickChanges, writeImage } from './cloudsnap-workload.js';
import { median } from './memory-verdict.js';
import { printTable, type Row, writeJson } from './report.js';

const { values: opts } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    only: { type: 'string', default: 'dir,rgw' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
    out: { type: 'string', default: 'bench/results/verify.json' },
  },
});
const size = parseSize(opts.size ?? '1G');
const runs = Math.max(1, Number(opts.runs ?? '3'));
const only = new Set((opts.only ?? '').split(','));
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

interface Place {
  label: string;
  store(): ObjectStore;
  stop(): Promise<void>;
}

async function dirPlace(base: string): Promise<Place> {
  const root = join(base, 'ferry-repo');
  await mkdir(root);
  return { label: 'local directory', store: () => new DirectoryStore(root), stop: async () => undefined };
}

async function rgwPlace(): Promise<Place> {
  const gw = await startCephRgw({ timeoutMs: 60_000 });
  const client = createS3Client({
    endpoint: gw.endpoint,
    region: 'us-east-1',
    accessKeyId: gw.accessKeyId,
    secretAccessKey: gw.secretAccessKey,
  });
  await client.send(new CreateBucketCommand({ Bucket: 'ferry-verify' }));
  return {
    label: 'Ceph RGW (memstore) on loopback',
    store: () => new S3Store(client, 'ferry-verify'),
    stop: async () => {
      client.destroy();
      await gw.stop();
    },
  };
}

interface Timed {
  ms: number;
  counts: RequestCounts;
}

/** Runs `fn` on a freshly opened repository over a counting store; its time and requests. */
async function timed<T>(
  place: Place,
  node: BenchNode,
  fn: (repo: Repository) => Promise<T>,
): Promise<Timed & { value: T }> {
  const counting = new CountingStore(place.store());
  const repo = await Repository.open(counting, node.keys);
  try {
    await quiesce(5000);
    const before = { ...counting.counts };
    const t0 = performance.now();
    const value = await fn(repo);
    const ms = performance.now() - t0;
    const counts = { ...counting.counts };
    for (const k of Object.keys(counts) as Array<keyof RequestCounts>) counts[k] -= before[k];
    return { ms, counts, value };
  } finally {
    repo.forget();
  }
}

async function scenario(kind: 'dir' | 'rgw', base: string, image: string): Promise<Row[]> {
  const dir = join(base, kind);
  await mkdir(dir);
  const place = kind === 'dir' ? await dirPlace(dir) : await rgwPlace();
  const node = await openNode(join(dir, 'node'));
  try {
    say(`\n== ${kind}: ${place.label}`);
    await loadThroughNbd(node.engine, 'vol', size, image);
    const repo = await Repository.openOrInit(place.store(), node.keys, DEFAULT_KEK);
    const full: BackupRecord = await backupVolume({ engine: node.engine, repo, store: node.store }, { volume: 'vol' });
    repo.forget();
    const data = full.chunks_total * full.chunk_size;
    say(`backup ${full.id}: ${(data / MiB).toFixed(0)} MiB of data in ${full.chunks_total} chunks`);
    const restores: Timed[] = [];
    const verifies: Array<Timed & { value: Awaited<ReturnType<typeof verifyBackups>> }> = [];
    for (let k = 0; k < runs; k++) {
      // Taking turns: whichever goes first after the other is not favoured every time.
      const order = k % 2 === 0 ? ['restore', 'verify'] : ['verify', 'restore'];
      for (const step of order) {
        if (step === 'restore') {
          const r = await timed(place, node, (r) =>
            restoreBackup({ engine: node.engine, repo: r }, { backupId: full.id, volumeName: `back-${k}` }),
          );
          await node.engine.deleteVolume(`back-${k}`);
          restores.push(r);
          say(`restore ${k + 1}: ${(r.ms / 1000).toFixed(2)} s`);
        } else {
          const v = await timed(place, node, (r) => verifyBackups(r, { dataPercent: 100 }));
          if (v.value.problems.length > 0)
            throw new Error(`verify found problems: ${JSON.stringify(v.value.problems)}`);
          verifies.push(v);
          say(`verify 100% ${k + 1}: ${(v.ms / 1000).toFixed(2)} s, ${v.value.chunks_read} chunks read`);
        }
      }
    }
    // A second backup sharing all but the 1% change: verifying both reads each shared chunk once.
    await applyToVolume(node.engine, 'vol', pickChanges(size));
    const repo2 = await Repository.open(place.store(), node.keys);
    const incr = await backupVolume({ engine: node.engine, repo: repo2, store: node.store }, { volume: 'vol' });
    repo2.forget();
    const both = await timed(place, node, (r) => verifyBackups(r, { dataPercent: 100 }));
    say(`verify 100% of 2 backups: ${(both.ms / 1000).toFixed(2)} s, ${both.value.chunks_read} chunks read`);

    const rate = (ms: number): number => data / MiB / (ms / 1000);
    const restoreMs = median(restores.map((r) => r.ms));
    const verifyMs = median(verifies.map((v) => v.ms));
    const row = (operation: string, ms: number, t: Timed, chunks: number | string, all: readonly number[]): Row => ({
      place: kind,
      operation,
      'seconds (median)': ms / 1000,
      'MiB/s of data': rate(ms),
      'x restore time': ms / restoreMs,
      GETs: t.counts.get,
      'MiB down': t.counts.bytesDown / MiB,
      'chunks checked': chunks,
      'runs (ms)': all.map((x) => Math.round(x)).join(' '),
    });
    return [
      row(
        `restore (${runs} runs)`,
        restoreMs,
        restores[0] as Timed,
        '-',
        restores.map((r) => r.ms),
      ),
      row(
        `verify 100% (${runs} runs)`,
        verifyMs,
        verifies[0] as Timed,
        verifies[0]?.value.chunks_read ?? 0,
        verifies.map((v) => v.ms),
      ),
      row(
        `verify 100%, 2 backups (${full.chunks_total}+${incr.chunks_total} chunk refs)`,
        both.ms,
        both,
        both.value.chunks_read,
        [both.ms],
      ),
    ];
  } finally {
    await node.close();
    await place.stop();
  }
}

const base = await mkdtemp(join(opts.dir ?? tmpdir(), 'ferry-bench-verify-'));
try {
  const image = join(base, 'image.raw');
  await writeImage(image, size);
  const rows: Row[] = [];
  if (only.has('dir')) rows.push(...(await scenario('dir', base, image)));
  if (only.has('rgw')) rows.push(...(await scenario('rgw', base, image)));
  printTable(`100% verify against restore of the same backup (${opts.size} volume)`, rows);
  await writeJson(opts.out ?? 'bench/results/verify.json', {
    date: new Date().toISOString(),
    command: `npm run bench:verify -- ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.version,
    size,
    runs,
    rows,
  });
} finally {
  await rm(base, { recursive: true, force: true });
}
process.exit(0);

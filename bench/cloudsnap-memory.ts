/**
 * Child process of the CloudSnap benchmark's memory measurement: one step per process, so each step's peak RSS is its
 * own. It prints one line `RESULT {json}` with the step's figures and `process.resourceUsage().maxRSS`.
 *
 *   node --import tsx bench/cloudsnap-memory.ts fill    --dir DIR --size 16G   volume 'vol' with the region mix
 *   node --import tsx bench/cloudsnap-memory.ts idle    --dir DIR              open the node and repository only
 *   node --import tsx bench/cloudsnap-memory.ts backup  --dir DIR              full backup of 'vol' to DIR/repo
 *   node --import tsx bench/cloudsnap-memory.ts restore --dir DIR --backup ID  restore into a new volume 'restored'
 *   node --import tsx bench/cloudsnap-memory.ts reset   --dir DIR              delete DIR/repo and vol's snapshots
 * Add `--timeline MS` to print the process's memory use every MS milliseconds on stderr. To repeat a step: `reset`
 * before another `backup` (a full one again, its cleanup not in the measured process); `restore --name N --drop`
 * deletes the new volume once the peak is read. `--after-idle` waits, after the step, until the chunk workers' pool
 * drops the buffers it kept for reuse, and reports the RSS then (`rss_after_idle`). `--mark BYTES` (backup, restore)
 * also reports the peak RSS when the job's progress first reports at least BYTES done (`vm_hwm_at_mark`, with the
 * bytes done then): what the rest of a long job added to its peak, beyond the part a shorter job does.
 *
 * The repository is a DirectoryStore at DIR/repo; the node's data directory is DIR/node.
 */
import { readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
// The face loads no cloud SDK (a node that backs up to a directory never loads them; they load on first use).
import {
  backupVolume,
  ChunkWorkers,
  DirectoryStore,
  IDLE_RELEASE_MS,
  type Progress,
  Repository,
  restoreBackup,
} from '../cloudsnap/index.js';
import { allocatorStats } from '../common/native/index.js';
import { DEFAULT_KEK } from '../kms/index.js';
import { openNode } from './cloudsnap-ferry.js';
import { MiB, parseSize, REGION, type RegionKind, regionBytes, regionKinds } from './cloudsnap-workload.js';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string' },
    size: { type: 'string', default: '16G' },
    backup: { type: 'string' },
    /** Name of the volume the restore step creates; default 'restored'. */
    name: { type: 'string', default: 'restored' },
    /** Pack uploads in flight during the backup step (backupVolume's default when absent). */
    'upload-concurrency': { type: 'string' },
    /** restore: delete the restored volume after reading the peak. */
    drop: { type: 'boolean', default: false },
    /** After the step, wait until the chunk workers' pool has dropped its idle buffers; report the RSS then. */
    'after-idle': { type: 'boolean', default: false },
    /** backup, restore: also report the peak when progress first reaches this many bytes done. */
    mark: { type: 'string' },
    /** Prints process.memoryUsage() in MiB every this many ms to stderr (to see where the peak comes from). */
    timeline: { type: 'string' },
  },
});
const step = positionals[0];
const dir = opts.dir;
if (dir === undefined || step === undefined)
  throw new Error('usage: cloudsnap-memory.ts fill|idle|backup|restore|reset --dir DIR');

/** Peak resident set so far, from the kernel (VmHWM), in bytes. */
function vmHwm(): number {
  return statusKb('VmHWM') * 1024;
}

/** A `kB` field of /proc/self/status (VmHWM, RssAnon, RssFile, RssShmem), in kB; 0 where the kernel lacks it. */
function statusKb(field: string, status = readFileSync('/proc/self/status', 'utf8')): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return m === null ? 0 : Number(m[1]);
}

/**
 * A progress callback that records, in `out`, the peak RSS when the job first reports `--mark` bytes done (progress
 * reports come every 250 ms, so a little later than the mark itself).
 */
function markPeak(out: Record<string, unknown>): ((p: Progress) => void) | undefined {
  if (opts.mark === undefined) return undefined;
  const mark = Number(opts.mark);
  return (p) => {
    if (out.vm_hwm_at_mark !== undefined || p.bytes_done < mark) return;
    out.vm_hwm_at_mark = vmHwm();
    out.bytes_at_mark = p.bytes_done;
  };
}

async function main(dataDir: string, what: string): Promise<Record<string, unknown>> {
  const node = await openNode(join(dataDir, 'node'));
  const out: Record<string, unknown> = { step: what };
  const t0 = performance.now();
  try {
    if (what === 'fill') {
      const size = parseSize(opts.size ?? '16G');
      await node.engine.createVolume({ name: 'vol', size });
      const dev = await node.engine.openExport('vol');
      const kinds = regionKinds(size);
      let data = 0;
      for (let i = 0; i < kinds.length; i++) {
        const bytes = regionBytes(kinds[i] as RegionKind, i, Math.min(REGION, size - i * REGION));
        if (bytes === undefined) continue;
        await dev.write(i * REGION, bytes);
        data += bytes.length;
      }
      await dev.flush();
      await dev.close();
      out.size = size;
      out.data_bytes = data;
      out.bytes_used = (await node.engine.inspectVolume('vol')).bytes_used;
      return out;
    }
    if (what === 'reset') {
      // Deleting the backup's snapshot folds its layer into the volume's: seconds of I/O kept out of the next step.
      await rm(join(dataDir, 'repo'), { recursive: true, force: true });
      const vol = await node.engine.inspectVolume('vol');
      for (const snap of await node.engine.listSnapshots(vol.id)) await node.engine.deleteSnapshot(snap.id);
      return out;
    }
    await mkdir(join(dataDir, 'repo'), { recursive: true });
    const repo = await Repository.openOrInit(new DirectoryStore(join(dataDir, 'repo')), node.keys, DEFAULT_KEK);
    if (what === 'backup') {
      const uploadConcurrency =
        opts['upload-concurrency'] === undefined ? undefined : Number(opts['upload-concurrency']);
      const record = await backupVolume(
        { engine: node.engine, repo, store: node.store },
        { volume: 'vol', uploadConcurrency, onProgress: markPeak(out) },
      );
      out.backup = record.id;
      out.stats = record.stats;
      out.size = record.size;
    } else if (what === 'restore') {
      if (opts.backup === undefined) throw new Error('restore needs --backup ID');
      const info = await restoreBackup(
        { engine: node.engine, repo },
        { backupId: opts.backup, volumeName: opts.name ?? 'restored', onProgress: markPeak(out) },
      );
      out.bytes_used = info.bytes_used;
      out.size = info.size;
      if (opts.drop) {
        out.vm_hwm = vmHwm();
        await node.engine.deleteVolume(info.id);
      }
    } else if (what !== 'idle') {
      throw new Error(`unknown step ${what}`);
    }
    return out;
  } finally {
    out.ms = performance.now() - t0;
    await node.close();
  }
}

/** Largest values of process.memoryUsage() seen, sampled every 50 ms: where the peak lives (heap or buffers). */
const sampled = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  sampled.rss = Math.max(sampled.rss, m.rss);
  sampled.heapUsed = Math.max(sampled.heapUsed, m.heapUsed);
  sampled.external = Math.max(sampled.external, m.external);
  sampled.arrayBuffers = Math.max(sampled.arrayBuffers, m.arrayBuffers);
}, 50);
const started = performance.now();
const timeline =
  opts.timeline === undefined
    ? undefined
    : setInterval(() => {
        const m = process.memoryUsage();
        const f = (n: number): string => (n / MiB).toFixed(0);
        const status = readFileSync('/proc/self/status', 'utf8');
        const kb = (field: string): string => (statusKb(field, status) / 1024).toFixed(0);
        const heap = allocatorStats();
        const malloc = heap === null ? '' : ` malloc ${f(heap.inUse)} used ${f(heap.free)} free`;
        process.stderr.write(
          `${((performance.now() - started) / 1000).toFixed(1)}s rss ${f(m.rss)} (anon ${kb('RssAnon')} file ${kb('RssFile')} shmem ${kb('RssShmem')}) heap ${f(m.heapUsed)}/${f(m.heapTotal)} external ${f(m.external)} arrayBuffers ${f(m.arrayBuffers)}${malloc}\n`,
        );
      }, Number(opts.timeline));
const result = await main(dir, step);
if (opts['after-idle']) {
  // The pool drops its spare buffers IDLE_RELEASE_MS after its last use, and the threads collect.
  await new Promise((r) => setTimeout(r, IDLE_RELEASE_MS + 1000));
  result.rss_after_idle = process.memoryUsage().rss;
}
clearInterval(sampler);
clearInterval(timeline);
result.sampled_peaks = sampled;
// The reusable buffers the step made (slabs by size, read buffers): what bounds its buffer memory.
result.buffers_created = ChunkWorkers.shared().created;
result.max_rss = process.resourceUsage().maxRSS * 1024;
result.vm_hwm ??= vmHwm();
result.rss_end = process.memoryUsage().rss;
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.stderr.write(`${step}: peak RSS ${(Number(result.vm_hwm) / MiB).toFixed(1)} MiB\n`);
// The chunk workers' ports keep the process alive (see bench/cloudsnap.ts): leave explicitly.
process.exit(0);

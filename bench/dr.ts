/**
 * Two-site benchmark: live migration between paired clusters (docs/MIGRATION.md), and the DR figures still to come.
 * Prints a table and writes JSON.
 *
 *   npm run bench:dr -- [--quick] [--size 10G] [--only copy,cutover] [--dir DIR] [--out FILE]
 *
 * Two single-node clusters on loopback, started as a user starts them (`ferry node start --data-dir D --api-addr
 * 127.0.0.1:P --nbd-addr 127.0.0.1:Q`, each with its own data directory), paired with the CLI (`ferry cluster pair
 * token` on B, `ferry cluster pair create dc2 --remote <B> --pair-token T` on A, bench/dr-sites.ts); every row below
 * is measured in the same run, on those two nodes:
 * copy:    (bench/dr-copy.ts) a `--size` volume on A filled with the mixed image (bench/cloudsnap-workload.ts: 1 MiB
 *          regions, 30% random, 30% text-like, 40% holes), then 3 times alternately: Ferry's initial copy (`POST
 *          /v1/volumemigrate`, cutover manual, the status read every 100 ms until pass 1 is recorded, then `ferry
 *          migrate cancel`) and `nbdcopy nbd://A/src nbd://B/peer` into a fresh volume. Rows: initial copy throughput
 *          as nbdcopy seconds / Ferry seconds (goal >= 0.8; medians), and the initial copy's bytes on the wire / the
 *          image's allocated bytes (goal <= 0.6; nbdcopy sends 1.0).
 * cutover: (bench/dr-cutover.ts) a fresh `--size` volume of the mixed image, written by an NBD client (nbdsh) at 1% of
 *          the volume a minute in random 64 KiB blocks, migrated with auto cutover: the client's gap from its last
 *          acknowledged write on A (refused with EPERM after the cutover) to its first acknowledged write + FLUSH on B
 *          (goal <= 5 s), with the source's `writes_held_ms` and the number of passes.
 * DR:      standby lag, promote, failback and an idle standby's requests: `not built` (no DR standby volumes yet).
 * `--quick`: a 1 GiB volume (default `--size` 10G). `--only copy,cutover` (default both) picks the measured rows;
 * the DR rows are always listed. `--dir`: the scratch directory (default the OS's temp directory; it needs about
 * 3x the image's allocated bytes); `--out`: the JSON (default bench/results/dr.json).
 * A row whose behaviour does not happen says `failed: <why>` and the others still run. The nodes are stopped and the
 * scratch data removed at the end, also on an error or Ctrl-C.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { formatSize, type ImageInfo, parseSize, writeImage } from './cloudsnap-workload.js';
import { COPY_FIGURES, copyRows } from './dr-copy.js';
import { CUTOVER_FIGURE, cutoverRow } from './dr-cutover.js';
import { type DrRow, MiB, notes, reason, tableRow } from './dr-rows.js';
import { startSites, stopEverything } from './dr-sites.js';
import { codeVersion, printTable, writeJson } from './report.js';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    size: { type: 'string' },
    dir: { type: 'string', default: tmpdir() },
    out: { type: 'string', default: 'bench/results/dr.json' },
    only: { type: 'string', default: 'copy,cutover' },
  },
});

const quick = opts.quick ?? false;
const sizeText = opts.size ?? (quick ? '1G' : '10G');
const sizeBytes = parseSize(sizeText);
const only = new Set((opts.only ?? '').split(',').filter((s) => s !== ''));
for (const key of only) {
  if (key !== 'copy' && key !== 'cutover') throw new Error(`--only: "${key}" is not copy or cutover`);
}
if (sizeBytes < 64 * MiB || sizeBytes % MiB !== 0) throw new Error(`--size ${sizeText}: at least 64M, whole MiB`);
/** Runs of each side of the copy rows. */
const COPY_RUNS = 3;
/** Longest wait for a migration: generous for a slow link (5 MiB/s of the allocated bytes), plus two minutes. */
const timeoutMs = 120_000 + Math.ceil((sizeBytes * 0.6) / (5 * MiB)) * 1000;

const NOT_BUILT = 'not built: DR standby volumes are not built yet';
const DR_ROWS: DrRow[] = [
  {
    key: 'dr',
    figure: 'standby lag p50/p99 under 1%/min churn, interval 10 s',
    goal: 'p99 <= 15 s',
    conditions: 'a DR standby on B following A, crash-consistent points every 10 s, 1%/min churn',
  },
  {
    key: 'dr',
    figure: 'promote: call to first acknowledged write, p99 of 10',
    goal: '<= 5 s',
    conditions: 'promote of the standby on B, 10 trials',
  },
  {
    key: 'dr',
    figure: 'failback after 1% changed: bytes sent / changed',
    goal: '<= 1.1',
    conditions: '1% of the promoted volume changed, then failed back to A',
  },
  {
    key: 'dr',
    figure: 'idle standby following a bucket: requests per hour',
    goal: 'report',
    conditions: 'a standby following through a shared bucket, no writes',
  },
].map((r) => ({ ...r, ferry: '-', peer: '-', verdict: NOT_BUILT }));

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Rows of `figures` that could not be measured: `failed: <why>`. */
function failedRows(figures: { key: string; figure: string; goal: string }[], why: string): DrRow[] {
  return figures.map((f) => ({ ...f, ferry: '-', peer: '-', verdict: `failed: ${why}`, conditions: '' }));
}

let base: string | undefined;
let cleaning: Promise<void> | undefined;

/** Stops the nodes (and the writer) and removes the scratch directory (once, whoever asks first). */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopEverything().catch((err: unknown) => log(`stopping the nodes: ${reason(err)}`));
    if (base !== undefined) await rm(base, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`\n${signal}: stopping the nodes and removing the scratch data`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const wallStart = performance.now();
  const rows: DrRow[] = [];
  let image: ImageInfo | undefined;
  base = await mkdtemp(join(opts.dir ?? tmpdir(), 'ferry-bench-dr-'));
  try {
    const measured = [
      ...(only.has('copy') ? [COPY_FIGURES.throughput, COPY_FIGURES.wire] : []),
      ...(only.has('cutover') ? [CUTOVER_FIGURE] : []),
    ];
    if (measured.length > 0) {
      try {
        const imagePath = join(base, 'image.raw');
        const t = performance.now();
        image = await writeImage(imagePath, sizeBytes);
        log(
          `mixed image: ${formatSize(sizeBytes)}, ${formatSize(image.dataBytes)} allocated, written in ${((performance.now() - t) / 1000).toFixed(1)} s`,
        );
        const sites = await startSites(base);
        log(`nodes: A ${sites.a.apiUrl} ${sites.a.nbdUrl}, B ${sites.b.apiUrl} ${sites.b.nbdUrl}, paired as dc2`);
        const common = { sizeBytes, imagePath, image, timeoutMs, log };
        // Each group on its own: one that throws fails its rows, and the next still runs.
        if (only.has('copy')) {
          const figures = [COPY_FIGURES.throughput, COPY_FIGURES.wire];
          rows.push(
            ...(await copyRows(sites, { ...common, runs: COPY_RUNS }).catch((err: unknown) =>
              failedRows(figures, reason(err)),
            )),
          );
        }
        if (only.has('cutover')) {
          rows.push(
            await cutoverRow(sites, common).catch(
              (err: unknown) => failedRows([CUTOVER_FIGURE], reason(err))[0] as DrRow,
            ),
          );
        }
      } catch (err: unknown) {
        const why = reason(err);
        log(`bench: ${why}`);
        const done = new Set(rows.map((r) => r.figure));
        rows.push(
          ...failedRows(
            measured.filter((f) => !done.has(f.figure)),
            why,
          ),
        );
      }
    }
    rows.push(...DR_ROWS);
  } finally {
    await cleanup();
  }
  const wallSeconds = (performance.now() - wallStart) / 1000;
  printTable(`DR and migration figures (${quick ? 'quick: ' : ''}${formatSize(sizeBytes)} volume)`, rows.map(tableRow));
  process.stdout.write(`\n${notes(rows)}\nwall time ${(wallSeconds / 60).toFixed(1)} min\n`);
  await writeJson(opts.out ?? 'bench/results/dr.json', {
    date: started,
    code: await codeVersion(),
    options: { quick, size: sizeText, size_bytes: sizeBytes, only: [...only], copy_runs: COPY_RUNS },
    image: image ?? null,
    wall_seconds: wallSeconds,
    rows,
  });
}

await main();

/**
 * Per-volume metrics at `GET /metrics` of a real `ferry node start`: NBD I/O driven by nbdcopy (bytes, requests,
 * latency histograms), used bytes, snapshots and the last successful backup's time; a deleted volume's series go.
 * Needs `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';

const MiB = 1024 * 1024;

let dataDir: string;
let testNode: TestNode | undefined;

function run(file: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function node(): TestNode {
  if (testNode === undefined) throw new Error('no node');
  return testNode;
}

/** One sample of the exposition text: its metric name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(): Promise<Sample[]> {
  const response = await fetch(`${node().apiUrl}/metrics`);
  expect(response.status).toBe(200);
  const samples: Sample[] = [];
  for (const line of (await response.text()).split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of `name` for volume `volume` (and the other labels given); undefined when there is no such series. */
function sampleValue(
  samples: Sample[],
  name: string,
  volume: string,
  more: Record<string, string> = {},
): number | undefined {
  return samples.find(
    (s) => s.name === name && s.labels.volume === volume && Object.entries(more).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-volume-metrics-'));
  await mkdir(join(dataDir, 'objects', 'backups'), { recursive: true });
  testNode = await startTestNode(join(dataDir, 'node'));
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('per-volume metrics', () => {
  it('NBD I/O, used bytes, snapshots and last backup per volume; a deleted volume leaves no series', async () => {
    const api = node().apiUrl;
    const m1 = await runFerryJson<{ volume_id: string }>(api, ['volume', 'create', 'm1', '--size', '8M']);
    await runFerryJson(api, ['volume', 'create', 'm2', '--size', '8M']);
    const image = join(dataDir, 'in.raw');
    const data = randomBytes(3 * MiB);
    await writeFile(image, data);

    const before = await scrape();
    expect(sampleValue(before, 'ferry_volume_used_bytes', 'm1', { volume_id: m1.volume_id })).toBe(0);
    expect(sampleValue(before, 'ferry_volume_written_bytes_total', 'm1')).toBeUndefined();

    const copyIn = await run('nbdcopy', [image, `${node().nbdUrl}/m1`]);
    expect(copyIn.code, copyIn.stderr).toBe(0);
    const out = join(dataDir, 'out.raw');
    const copyOut = await run('nbdcopy', [`${node().nbdUrl}/m1`, out]);
    expect(copyOut.code, copyOut.stderr).toBe(0);

    const io = await scrape();
    const ids = { volume_id: m1.volume_id };
    expect(sampleValue(io, 'ferry_volume_written_bytes_total', 'm1', ids)).toBe(data.length);
    const writes = sampleValue(io, 'ferry_volume_writes_total', 'm1', ids) ?? 0;
    expect(writes).toBeGreaterThan(0);
    expect(sampleValue(io, 'ferry_volume_io_duration_seconds_count', 'm1', { ...ids, op: 'write' })).toBe(writes);
    const read = sampleValue(io, 'ferry_volume_read_bytes_total', 'm1', ids) ?? 0;
    expect(read).toBeGreaterThanOrEqual(data.length);
    expect(read).toBeLessThanOrEqual(8 * MiB);
    const reads = sampleValue(io, 'ferry_volume_reads_total', 'm1', ids) ?? 0;
    expect(reads).toBeGreaterThan(0);
    expect(sampleValue(io, 'ferry_volume_io_duration_seconds_count', 'm1', { ...ids, op: 'read' })).toBe(reads);
    expect(sampleValue(io, 'ferry_volume_io_duration_seconds_bucket', 'm1', { ...ids, op: 'read', le: '+Inf' })).toBe(
      reads,
    );
    expect(sampleValue(io, 'ferry_volume_used_bytes', 'm1', ids)).toBeGreaterThanOrEqual(data.length);
    expect(sampleValue(io, 'ferry_volume_used_bytes', 'm2')).toBe(0);
    expect(sampleValue(io, 'ferry_volume_written_bytes_total', 'm2')).toBeUndefined();
    expect(sampleValue(io, 'ferry_volume_last_backup_timestamp_seconds', 'm1')).toBeUndefined();

    expect((await runFerry(api, ['volume', 'snapshot', 'create', 'm1', '--name', 's1'])).code).toBe(0);
    const cred = await runFerry(api, [
      'credentials',
      'create',
      'local',
      '--provider',
      'directory',
      '--path',
      join(dataDir, 'objects'),
      '--bucket',
      'backups',
    ]);
    expect(cred.code, cred.stderr).toBe(0);
    const started = Date.now() / 1000;
    const done = await runFerryJson<{ status: string }>(api, [
      'cloudsnap',
      'backup',
      'm1',
      '--cred',
      'local',
      '--wait',
    ]);
    expect(done.status).toBe('Done');
    const ended = Date.now() / 1000;
    const later = await scrape();
    // The backup took a snapshot of its own too.
    expect(sampleValue(later, 'ferry_volume_snapshots', 'm1', ids)).toBeGreaterThanOrEqual(1);
    expect(sampleValue(later, 'ferry_volume_snapshots', 'm2')).toBe(0);
    const last = sampleValue(later, 'ferry_volume_last_backup_timestamp_seconds', 'm1', ids) ?? 0;
    expect(last).toBeGreaterThanOrEqual(Math.floor(started) - 1);
    expect(last).toBeLessThanOrEqual(ended + 1);

    expect((await runFerry(api, ['volume', 'delete', 'm1', '--yes'])).code).toBe(0);
    const gone = await scrape();
    // Every ferry_volume_* series of m1 is gone (the job counters ferry_cloudsnap_* count history and stay).
    const left = gone.filter((s) => s.name.startsWith('ferry_volume_') && s.labels.volume === 'm1');
    expect(left).toEqual([]);
    expect(gone.filter((s) => s.labels.volume_id === m1.volume_id)).toEqual([]);
    expect(sampleValue(gone, 'ferry_volume_used_bytes', 'm2')).toBe(0);
  });
});

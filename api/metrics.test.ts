import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStatus } from '../cloudsnap/index.js';
import { openEngine, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';
import { type JobSource, NodeMetrics } from './metrics.js';

let dataDir: string;
let engine: VolumeEngine;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-metrics-'));
  engine = await openEngine({ dataDir });
});

afterAll(async () => {
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** A job source whose counts and endings the test sets. */
class FakeJobs implements JobSource {
  counts = { queued: 0, active: 0, paused: 0 };
  private listener: ((status: JobStatus) => void) | undefined;
  liveCounts(): { queued: number; active: number; paused: number } {
    return this.counts;
  }
  onJobEnded(listener: (status: JobStatus) => void): () => void {
    this.listener = listener;
    return () => {
      this.listener = undefined;
    };
  }
  end(status: Partial<JobStatus>): void {
    this.listener?.({
      task_id: 't',
      optype: 'Backup',
      status: 'Done',
      bytes_done: 0,
      bytes_total: 0,
      src_volume_id: 'v',
      info: [],
      credential_id: 'c',
      create_time: '2026-01-01T00:00:00.000Z',
      volume_name: 'vol',
      ...status,
    });
  }
}

/** The value of one sample line of the exposition text (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('NodeMetrics', () => {
  it('counts ended jobs, bytes and failures per volume, and observes durations', async () => {
    const metrics = new NodeMetrics({ processMetrics: false });
    const jobs = new FakeJobs();
    metrics.watchJobs(jobs);
    const times = { start_time: '2026-01-01T00:00:00.000Z', completed_time: '2026-01-01T00:00:02.500Z' };
    jobs.end({ volume_name: 'db', bytes_done: 4096, ...times });
    jobs.end({ volume_name: 'db', bytes_done: 1000, ...times });
    jobs.end({ volume_name: 'db', status: 'Failed', bytes_done: 77, ...times });
    jobs.end({ optype: 'Restore', volume_name: 'db-copy', bytes_done: 5096, ...times });
    jobs.end({ volume_name: 'web', status: 'Aborted' });
    const { body, contentType } = await metrics.scrape();
    expect(contentType).toMatch(/^text\/plain/);
    expect(sample(body, 'ferry_cloudsnap_bytes_total{optype="Backup",volume="db"}')).toBe(5096);
    expect(sample(body, 'ferry_cloudsnap_bytes_total{optype="Restore",volume="db-copy"}')).toBe(5096);
    expect(sample(body, 'ferry_cloudsnap_failures_total{optype="Backup",volume="db"}')).toBe(1);
    expect(sample(body, 'ferry_cloudsnap_jobs_total{optype="Backup",status="Done"}')).toBe(2);
    expect(sample(body, 'ferry_cloudsnap_jobs_total{optype="Backup",status="Aborted"}')).toBe(1);
    expect(sample(body, 'ferry_cloudsnap_job_duration_seconds_count{optype="Backup",status="Done"}')).toBe(2);
    expect(sample(body, 'ferry_cloudsnap_job_duration_seconds_sum{optype="Backup",status="Done"}')).toBe(5);
    // An aborted job that never started has no duration.
    expect(body).not.toContain('ferry_cloudsnap_job_duration_seconds_count{optype="Backup",status="Aborted"}');
    expect(body).not.toContain('process_cpu');
  });

  it('reads the queue depth and active jobs at scrape time', async () => {
    const metrics = new NodeMetrics({ processMetrics: false });
    const jobs = new FakeJobs();
    expect(sample((await metrics.scrape()).body, 'ferry_cloudsnap_jobs_queued')).toBe(0);
    metrics.watchJobs(jobs);
    const depth = (body: string) =>
      ['queued', 'active', 'paused'].map((s) => sample(body, `ferry_cloudsnap_jobs_${s}`));
    jobs.counts = { queued: 3, active: 2, paused: 1 };
    expect(depth((await metrics.scrape()).body)).toEqual([3, 2, 1]);
    jobs.counts = { queued: 0, active: 1, paused: 0 };
    expect(depth((await metrics.scrape()).body)).toEqual([0, 1, 0]);
    metrics.close();
    jobs.end({ volume_name: 'late' });
    expect((await metrics.scrape()).body).not.toContain('volume="late"');
  });

  it('counts object-store requests, errors by code and bytes per provider', async () => {
    const metrics = new NodeMetrics({ processMetrics: false });
    metrics.observeStore({ provider: 's3', operation: 'put', error: undefined, bytes: 100, seconds: 0.01 });
    metrics.observeStore({ provider: 's3', operation: 'put', error: 'UNAVAILABLE', bytes: 0, seconds: 0.2 });
    metrics.observeStore({ provider: 's3', operation: 'get', error: undefined, bytes: 40, seconds: 0.003 });
    metrics.observeStore({ provider: 'directory', operation: 'head', error: undefined, bytes: 0, seconds: 0.001 });
    const { body } = await metrics.scrape();
    expect(sample(body, 'ferry_object_store_requests_total{provider="s3",operation="put"}')).toBe(2);
    expect(sample(body, 'ferry_object_store_errors_total{provider="s3",operation="put",code="UNAVAILABLE"}')).toBe(1);
    expect(sample(body, 'ferry_object_store_bytes_total{provider="s3",direction="up"}')).toBe(100);
    expect(sample(body, 'ferry_object_store_bytes_total{provider="s3",direction="down"}')).toBe(40);
    expect(sample(body, 'ferry_object_store_requests_total{provider="directory",operation="head"}')).toBe(1);
    expect(sample(body, 'ferry_object_store_request_duration_seconds_count{provider="s3",operation="get"}')).toBe(1);
  });
});

describe('GET /metrics', () => {
  it('serves the registry outside /v1, without authentication, and counts API requests by route pattern', async () => {
    const metrics = new NodeMetrics();
    const app = createApp({
      engine,
      metrics,
      authenticate: async (c) => c.json({ code: 'UNAUTHENTICATED', message: 'no token' }, 401),
    });
    expect((await app.request('/v1/volumes/inspect/nope')).status).toBe(401);
    const response = await app.request('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await response.text();
    expect(body).toContain('process_cpu_user_seconds_total');
    const inspect = 'ferry_http_requests_total{method="GET",route="/v1/volumes/inspect/:volume_id"';
    expect(sample(body, `${inspect},status="401"}`)).toBe(1);

    const open = createApp({ engine, metrics });
    expect((await open.request('/v1/volumes/inspect/nope')).status).toBe(404);
    expect((await open.request('/no/such/route')).status).toBe(404);
    const again = await (await open.request('/metrics')).text();
    expect(sample(again, `${inspect},status="404"}`)).toBe(1);
    expect(sample(again, 'ferry_http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
  });

  it('is absent when the app has no metrics', async () => {
    expect((await createApp({ engine }).request('/metrics')).status).toBe(404);
  });
});

describe('data directory space', () => {
  it('reads the engine space at each scrape: size, free, thresholds, reserve and the state', async () => {
    const metrics = new NodeMetrics({ processMetrics: false });
    expect((await metrics.scrape()).body).not.toMatch(/^ferry_data_dir_free_bytes \d/m);
    const spaceStatus = engine.spaceStatus?.bind(engine);
    expect(spaceStatus).toBeDefined();
    if (spaceStatus === undefined) return;
    metrics.watchSpace(spaceStatus);
    const real = await spaceStatus();
    const body = (await metrics.scrape()).body;
    expect(body).toContain(`ferry_data_dir_size_bytes ${real.size_bytes}`);
    expect(body).toMatch(/^ferry_data_dir_free_bytes \d+$/m);
    expect(body).toContain(`ferry_data_dir_min_free_bytes ${real.min_free_bytes}`);
    expect(body).toContain('ferry_data_dir_warn_percent 90');
    expect(body).toContain(`ferry_data_dir_state{state="${real.state}"} 1`);
    metrics.watchSpace(async () => ({ ...real, state: 'full', free_bytes: 0, reserve_held: false }));
    const full = (await metrics.scrape()).body;
    expect(full).toContain('ferry_data_dir_state{state="full"} 1');
    expect(full).toContain('ferry_data_dir_state{state="ok"} 0');
    expect(full).toContain('ferry_data_dir_free_bytes 0');
    expect(full).toContain('ferry_data_dir_reserve_held 0');
  });
});

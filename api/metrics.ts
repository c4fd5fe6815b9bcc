/**
 * The node's Prometheus metrics (prom-client), served at `GET /metrics` in the text exposition format.
 *
 * - Backup and restore jobs: `ferry_cloudsnap_jobs_total{optype,status}` (ended jobs), bytes of completed jobs and
 *   failures per volume (`ferry_cloudsnap_bytes_total{optype,volume}`, `ferry_cloudsnap_failures_total{optype,volume}`),
 *   durations (`ferry_cloudsnap_job_duration_seconds{optype,status}`), and the queue read at scrape time
 *   (`ferry_cloudsnap_jobs_queued`, `ferry_cloudsnap_jobs_active`, `ferry_cloudsnap_jobs_paused`).
 * - Object stores, per provider and operation: requests, errors by code, bytes up and down, request durations.
 * - The HTTP API, per method and route pattern: requests by status, and durations.
 * - The data directory's space, read at scrape time (`watchSpace`): `ferry_data_dir_size_bytes`,
 *   `ferry_data_dir_free_bytes`, the thresholds `ferry_data_dir_min_free_bytes` and `ferry_data_dir_warn_percent`,
 *   `ferry_data_dir_reserve_held`, and `ferry_data_dir_state{state}` (1 for the current of ok, warn, full).
 * - Per volume (api/volume-metrics.ts): used bytes, snapshots, last successful backup, NBD I/O bytes, requests and
 *   latency; per replica being resynced or filled: bytes copied, bytes in all, and the ETA.
 * - Node.js process defaults (CPU, memory, event loop lag, ...), unless turned off.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { JobStatus, StoreRequest } from '../cloudsnap/index.js';
import type { SpaceStatus } from '../node/index.js';
import type { FinishedRequest } from './request-log.js';
import { VolumeMetrics } from './volume-metrics.js';

/** What the metrics read from the job manager (JobManager has both). */
export interface JobSource {
  /** Jobs waiting for a slot, running and paused, now (`paused` absent: none). */
  liveCounts(): { queued: number; active: number; paused?: number };
  /** Calls the listener with each job's final status; returns the unsubscribe function. */
  onJobEnded(listener: (status: JobStatus) => void): () => void;
}

export interface NodeMetricsOptions {
  /** Also collect Node.js process metrics (`process_*`, `nodejs_*`). Default true. */
  processMetrics?: boolean;
}

/** Job durations: 0.1 s to about 3 hours. */
const JOB_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 10800];
/** Object-store and API request durations: 1 ms to 30 s. */
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function secondsBetween(start: string | undefined, end: string | undefined): number | undefined {
  if (start === undefined || end === undefined) return undefined;
  const ms = Date.parse(end) - Date.parse(start);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : undefined;
}

/** One registry with every metric of a node, and the hooks that feed it. */
export class NodeMetrics {
  readonly registry = new Registry();
  private readonly jobsEnded: Counter<'optype' | 'status'>;
  private readonly jobBytes: Counter<'optype' | 'volume'>;
  private readonly jobFailures: Counter<'optype' | 'volume'>;
  private readonly jobDuration: Histogram<'optype' | 'status'>;
  private readonly storeRequests: Counter<'provider' | 'operation'>;
  private readonly storeErrors: Counter<'provider' | 'operation' | 'code'>;
  private readonly storeBytes: Counter<'provider' | 'direction'>;
  private readonly storeDuration: Histogram<'provider' | 'operation'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route'>;
  /** Per-volume metrics (api/volume-metrics.ts): `volumes.watch(...)` feeds the gauges, NBD feeds the I/O. */
  readonly volumes: VolumeMetrics;
  private jobSource: JobSource | undefined;
  private spaceSource: (() => Promise<SpaceStatus>) | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(options: NodeMetricsOptions = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.volumes = new VolumeMetrics(this.registry);
    this.jobsEnded = new Counter({
      name: 'ferry_cloudsnap_jobs_total',
      help: 'Backup and restore jobs that ended, by operation and final status (Done, Failed, Aborted).',
      labelNames: ['optype', 'status'],
      registers,
    });
    this.jobBytes = new Counter({
      name: 'ferry_cloudsnap_bytes_total',
      help: 'Bytes read and backed up (Backup) or restored (Restore) by jobs that completed, per volume.',
      labelNames: ['optype', 'volume'],
      registers,
    });
    this.jobFailures = new Counter({
      name: 'ferry_cloudsnap_failures_total',
      help: 'Backup and restore jobs that ended Failed, per volume.',
      labelNames: ['optype', 'volume'],
      registers,
    });
    this.jobDuration = new Histogram({
      name: 'ferry_cloudsnap_job_duration_seconds',
      help: 'Time from a job becoming Active to its end.',
      labelNames: ['optype', 'status'],
      buckets: JOB_BUCKETS,
      registers,
    });
    const jobs = (): JobSource | undefined => this.jobSource;
    const live: Array<[keyof ReturnType<JobSource['liveCounts']>, string]> = [
      ['queued', 'Backup and restore jobs waiting for a slot (Queued).'],
      ['active', 'Backup and restore jobs running (Active).'],
      ['paused', 'Backup and restore jobs paused by a StateChange Pause (Paused).'],
    ];
    for (const [state, help] of live) {
      new Gauge({
        name: `ferry_cloudsnap_jobs_${state}`,
        help,
        registers,
        collect() {
          this.set(jobs()?.liveCounts()[state] ?? 0);
        },
      });
    }
    this.storeRequests = new Counter({
      name: 'ferry_object_store_requests_total',
      help: 'Object-store requests, by provider and operation (put, get, head, list, delete).',
      labelNames: ['provider', 'operation'],
      registers,
    });
    this.storeErrors = new Counter({
      name: 'ferry_object_store_errors_total',
      help: 'Object-store requests that failed, by provider, operation and error code.',
      labelNames: ['provider', 'operation', 'code'],
      registers,
    });
    this.storeBytes = new Counter({
      name: 'ferry_object_store_bytes_total',
      help: 'Bytes sent to (up) and received from (down) object stores.',
      labelNames: ['provider', 'direction'],
      registers,
    });
    this.storeDuration = new Histogram({
      name: 'ferry_object_store_request_duration_seconds',
      help: 'Object-store request durations, by provider and operation.',
      labelNames: ['provider', 'operation'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.httpRequests = new Counter({
      name: 'ferry_http_requests_total',
      help: 'API requests answered, by method, route pattern and HTTP status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'ferry_http_request_duration_seconds',
      help: 'API request durations, by method and route pattern.',
      labelNames: ['method', 'route'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
  }

  /** The data directory's gauges, read from the space source at scrape time. */
  private spaceGauges(registers: Registry[]): void {
    const space = async (): Promise<SpaceStatus | undefined> => this.spaceSource?.().catch(() => undefined);
    const values: Array<[string, string, (s: SpaceStatus) => number]> = [
      ['size_bytes', 'Size of the file system holding the data directory.', (s) => s.size_bytes],
      ['free_bytes', 'Bytes free in the data directory (its metadata reserve counts as used).', (s) => s.free_bytes],
      ['min_free_bytes', 'The node refuses new data (state full) below this many free bytes.', (s) => s.min_free_bytes],
      ['warn_percent', 'The state is warn at or above this percentage of the file system used.', (s) => s.warn_percent],
      [
        'reserve_held',
        '1 while the node holds its metadata reserve file, 0 while it is released.',
        (s) => (s.reserve_held ? 1 : 0),
      ],
    ];
    for (const [name, help, value] of values) {
      new Gauge({
        name: `ferry_data_dir_${name}`,
        help,
        registers,
        async collect() {
          const s = await space();
          if (s !== undefined) this.set(value(s));
        },
      });
    }
    new Gauge({
      name: 'ferry_data_dir_state',
      help: 'The data directory: 1 for its current state (ok, warn: used at or above the warn threshold, full: new data refused).',
      labelNames: ['state'],
      registers,
      async collect() {
        const s = await space();
        if (s === undefined) return;
        for (const state of ['ok', 'warn', 'full'] as const) this.set({ state }, s.state === state ? 1 : 0);
      },
    });
  }

  /** Reads the data directory's space gauges from `source` at each scrape (the engine's `spaceStatus`). */
  watchSpace(source: () => Promise<SpaceStatus>): void {
    if (this.spaceSource === undefined) this.spaceGauges([this.registry]);
    this.spaceSource = source;
  }

  /** Feeds the job metrics from `jobs` (replacing any earlier source). */
  watchJobs(jobs: JobSource): void {
    this.unsubscribe?.();
    this.jobSource = jobs;
    this.unsubscribe = jobs.onJobEnded((status) => this.jobEnded(status));
  }

  /** Stops listening to the job source. */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.jobSource = undefined;
  }

  /** Records a job's end (what `watchJobs` does for each job). */
  jobEnded(status: JobStatus): void {
    this.jobsEnded.inc({ optype: status.optype, status: status.status });
    const volume = status.volume_name;
    if (status.status === 'Done') this.jobBytes.inc({ optype: status.optype, volume }, status.bytes_done);
    if (status.status === 'Failed') this.jobFailures.inc({ optype: status.optype, volume });
    const seconds = secondsBetween(status.start_time, status.completed_time);
    if (seconds !== undefined) this.jobDuration.observe({ optype: status.optype, status: status.status }, seconds);
  }

  /** The StoreObserver of the node's repositories (pass it as JobManager's `observeStore`). */
  readonly observeStore = (request: StoreRequest): void => {
    const labels = { provider: request.provider, operation: request.operation };
    this.storeRequests.inc(labels);
    this.storeDuration.observe(labels, request.seconds);
    if (request.error !== undefined) this.storeErrors.inc({ ...labels, code: request.error });
    if (request.bytes > 0) {
      const direction = request.operation === 'put' ? 'up' : 'down';
      this.storeBytes.inc({ provider: request.provider, direction }, request.bytes);
    }
  };

  /** Records an answered API request (pass it as the request log's `onFinished`). */
  readonly observeRequest = (request: FinishedRequest): void => {
    this.httpRequests.inc({ method: request.method, route: request.route, status: String(request.status) });
    this.httpDuration.observe({ method: request.method, route: request.route }, request.seconds);
  };

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    await this.volumes.refresh();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

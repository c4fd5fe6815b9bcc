/**
 * Liveness and readiness, outside `/v1` (no authentication; probes and load balancers call them):
 * - `GET /healthz`: 200 `{ status: "ok" }` while the process answers at all.
 * - `GET /readyz`: runs every readiness check at once (each bounded by a timeout); 200 `{ status: "ready", checks }`
 *   when all pass, else 503 `{ code: "UNAVAILABLE", message, checks }` naming the failed ones. `checks` maps each
 *   check's name to `ok` or the reason it failed. With a space source, both answers also carry `space`: the data
 *   directory's size, free bytes, thresholds and state (`ok`, `warn`, `full`), and the `data_dir` check fails while
 *   it is `full`.
 */
import { Hono } from 'hono';
import { humanBytes, type SpaceStatus, type VolumeEngine } from '../node/index.js';
import { addOperations, operationsWith } from './operation.js';

/** One condition the node needs to serve: resolves when it holds, rejects (saying why) when it does not. */
export interface ReadinessCheck {
  /** Short name shown in the answer, e.g. `engine`, `cluster_store`, `api`. */
  name: string;
  /** Rejects when the condition does not hold; should stop early when `signal` aborts. */
  check(signal: AbortSignal): Promise<void>;
}

export interface HealthOptions {
  /** What `/readyz` checks. Default: none (ready whenever the process answers). */
  checks?: readonly ReadinessCheck[];
  /** How long one check may take before it counts as failed; default 2000 ms. */
  timeoutMs?: number;
  /** The data directory's space, reported as `space` in both answers of `/readyz`. Default: not reported. */
  space?: () => Promise<SpaceStatus>;
}

/** The answer of `/readyz`. */
export interface ReadinessReport {
  ready: boolean;
  /** Each check's name -> `ok`, or why it failed. */
  checks: Record<string, string>;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<string> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`no answer within ${timeoutMs} ms`));
      controller.abort();
    }, timeoutMs);
  });
  try {
    await Promise.race([check.check(controller.signal), timeout]);
    return 'ok';
  } catch (err: unknown) {
    return reason(err);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check at once and reports which failed. */
export async function checkReadiness(checks: readonly ReadinessCheck[], timeoutMs = 2000): Promise<ReadinessReport> {
  const results = await Promise.all(checks.map((c) => runCheck(c, timeoutMs)));
  const report: ReadinessReport = { ready: true, checks: {} };
  checks.forEach((c, i) => {
    const result = results[i] ?? 'not run';
    report.checks[c.name] = result;
    if (result !== 'ok') report.ready = false;
  });
  return report;
}

/** Readiness check: the engine answers (lists its volumes). */
export function engineCheck(engine: Pick<VolumeEngine, 'listVolumes'>): ReadinessCheck {
  return {
    name: 'engine',
    check: async () => {
      await engine.listVolumes();
    },
  };
}

/** Readiness check `data_dir`: fails while the data directory is full (new data refused), saying how full. */
export function spaceCheck(space: () => Promise<SpaceStatus>): ReadinessCheck {
  return {
    name: 'data_dir',
    check: async () => {
      const s = await space();
      if (s.state !== 'full') return;
      throw new Error(
        `out of space: ${s.path} has ${humanBytes(s.free_bytes)} free of ${humanBytes(s.size_bytes)} (${s.used_percent}% used; ${s.reason ?? 'full'}); delete snapshots or volumes, or grow the file system`,
      );
    },
  };
}

/** What the probes work on: the options with their defaults. */
interface HealthDeps {
  checks: readonly ReadinessCheck[];
  timeoutMs: number;
  space: (() => Promise<SpaceStatus>) | undefined;
}

const define = operationsWith<HealthDeps>();

/** The probes. */
export const healthOperations = [
  define({
    method: 'get',
    path: '/healthz',
    operationId: 'healthz',
    tag: 'Operations',
    summary: 'Liveness: the process answers.',
    handler: (c) => c.json({ status: 'ok' }),
  }),
  define({
    method: 'get',
    path: '/readyz',
    operationId: 'readyz',
    tag: 'Operations',
    summary: 'Readiness: the engine and the other checks answer (503 naming the failing check otherwise).',
    handler: async (c, _input, options) => {
      const [report, space] = await Promise.all([
        checkReadiness(options.checks, options.timeoutMs),
        options.space?.().catch(() => undefined),
      ]);
      const extra = space === undefined ? {} : { space };
      if (report.ready) return c.json({ status: 'ready', checks: report.checks, ...extra });
      const failed = Object.entries(report.checks)
        .filter(([, result]) => result !== 'ok')
        .map(([name, result]) => `${name} (${result})`);
      const body = { code: 'UNAVAILABLE', message: `not ready: ${failed.join(', ')}`, checks: report.checks, ...extra };
      return c.json(body, 503, {
        'retry-after': '1',
      });
    },
  }),
];

/** Routes `/healthz` and `/readyz`; mount at the root of the app. */
export function healthRoutes(options: HealthOptions = {}): Hono {
  const deps = { checks: options.checks ?? [], timeoutMs: options.timeoutMs ?? 2000, space: options.space };
  return addOperations(new Hono(), healthOperations, deps, '/');
}

/**
 * `ferry status`: one look at the node the CLI points at: cluster, node, readiness (`/readyz`), the data directory's
 * space, volumes and backup jobs by state. Exits 1 when the node answers but is not ready (a full data directory is
 * not ready), so scripts and probes can use it.
 */
import type { Command } from 'commander';
import type { SpaceStatus } from '../../node/index.js';
import { ApiError, type FerryClient } from '../client.js';
import { clientFor, output } from '../context.js';
import { formatSize } from '../format.js';

/** The data directory's space, as `/readyz` reports it (the node's own SpaceStatus, as JSON). */
export type SpaceReport = SpaceStatus;

/** What `ferry status --json` prints. */
export interface NodeStatusReport {
  cluster: { id: string; name: string; status: string };
  node: { id: string; hostname: string; status: string; version: string; api_url: string };
  ready: boolean;
  /** Why the node is not ready (absent when it is). */
  not_ready?: string;
  /** The data directory's space (absent when the node does not report it). */
  space?: SpaceReport;
  volumes: number;
  /** Backup and restore jobs on this node, by status (Active, Queued, Paused, Done, Failed, ...). */
  jobs: Record<string, number>;
}

interface ClusterAnswer {
  cluster: NodeStatusReport['cluster'];
}
interface NodeAnswer {
  node: NodeStatusReport['node'];
}

async function readiness(client: FerryClient): Promise<{ ready: boolean; not_ready?: string }> {
  try {
    await client.request('GET', '/readyz');
    return { ready: true };
  } catch (err: unknown) {
    if (err instanceof ApiError && err.status === 503) return { ready: false, not_ready: err.message };
    throw err;
  }
}

/** The `space` of `/readyz`, whatever its status (503 while full); undefined when it has none or cannot be read. */
async function spaceOf(client: FerryClient): Promise<SpaceReport | undefined> {
  try {
    const body = (await (await fetch(`${client.baseUrl}/readyz`)).json()) as { space?: SpaceReport };
    return typeof body.space === 'object' && body.space !== null ? body.space : undefined;
  } catch {
    return undefined;
  }
}

/** Gathers the report from the API. */
export async function nodeStatus(client: FerryClient): Promise<NodeStatusReport> {
  const [cluster, node, ready, space, volumes, statuses] = await Promise.all([
    client.request<ClusterAnswer>('GET', '/v1/clusters/inspectcurrent'),
    client.request<NodeAnswer>('GET', '/v1/nodes/inspectcurrent'),
    readiness(client),
    spaceOf(client),
    client.request<{ volume_ids: string[] }>('GET', '/v1/volumes'),
    client.request<{ statuses: Record<string, { status: string }> }>('POST', '/v1/cloudbackups/status', {}),
  ]);
  const jobs: Record<string, number> = {};
  for (const s of Object.values(statuses.statuses)) jobs[s.status] = (jobs[s.status] ?? 0) + 1;
  const { id, hostname, status, version, api_url } = node.node;
  return {
    cluster: { id: cluster.cluster.id, name: cluster.cluster.name, status: cluster.cluster.status },
    node: { id, hostname, status, version, api_url },
    ...ready,
    ...(space !== undefined && { space }),
    volumes: volumes.volume_ids.length,
    jobs,
  };
}

/** The text of `ferry status`. */
export function statusText(r: NodeStatusReport): string {
  const jobs = Object.entries(r.jobs)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return [
    `Cluster  : ${r.cluster.name} (${r.cluster.id}), ${r.cluster.status}`,
    `Node     : ${r.node.id} on ${r.node.hostname}, ${r.node.status}, version ${r.node.version}, API ${r.node.api_url}`,
    `Ready    : ${r.ready ? 'yes' : `no: ${r.not_ready ?? ''}`}`,
    ...(r.space !== undefined ? [`Space    : ${spaceText(r.space)}`] : []),
    `Volumes  : ${r.volumes}`,
    `Jobs     : ${jobs === '' ? 'none' : jobs}`,
  ].join('\n');
}

/** `full: 1.2 MiB free of 240 MiB (99.5% used; ...)`, `warn: ...` or `ok: ...`, with the thresholds. */
export function spaceText(s: SpaceReport): string {
  const head = `${s.state}: ${formatSize(s.free_bytes)} free of ${formatSize(s.size_bytes)} (${s.used_percent}% used) in ${s.path}`;
  const thresholds = `warn at ${s.warn_percent}% used, full below ${formatSize(s.min_free_bytes)} free`;
  const reserve = `reserve ${formatSize(s.reserve_bytes)} ${s.reserve_held ? 'held' : 'released'}`;
  return `${head}; ${thresholds}; ${reserve}${s.reason !== undefined ? `; ${s.reason}` : ''}`;
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('the node the CLI points at: cluster, node, readiness, volumes and backup jobs (exit 1: not ready)')
    .action(async (_options: unknown, command: Command) => {
      const report = await nodeStatus(clientFor(command));
      output(command, report, () => statusText(report));
      if (!report.ready) throw new Error(`the node is not ready: ${report.not_ready ?? 'see /readyz'}`);
    });
}

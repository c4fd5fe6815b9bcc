/**
 * `ferry status`: one look at the node the CLI points at: cluster, node, readiness (`/readyz`), volumes and backup
 * jobs by state. Exits 1 when the node answers but is not ready, so scripts and probes can use it.
 */
import type { Command } from 'commander';
import { ApiError, type FerryClient } from '../client.js';
import { clientFor, output } from '../context.js';

/** What `ferry status --json` prints. */
export interface NodeStatusReport {
  cluster: { id: string; name: string; status: string };
  node: { id: string; hostname: string; status: string; version: string; api_url: string };
  ready: boolean;
  /** Why the node is not ready (absent when it is). */
  not_ready?: string;
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

/** Gathers the report from the API. */
export async function nodeStatus(client: FerryClient): Promise<NodeStatusReport> {
  const [cluster, node, ready, volumes, statuses] = await Promise.all([
    client.request<ClusterAnswer>('GET', '/v1/clusters/inspectcurrent'),
    client.request<NodeAnswer>('GET', '/v1/nodes/inspectcurrent'),
    readiness(client),
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
    `Volumes  : ${r.volumes}`,
    `Jobs     : ${jobs === '' ? 'none' : jobs}`,
  ].join('\n');
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

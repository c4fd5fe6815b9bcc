/**
 * `ferry cluster inspect` and `ferry node list`: the cluster and its nodes the way `pxctl status` shows them
 * (status, labels, addresses, capacity, volumes attached, replicas held), from GET /v1/clusters/inspectcurrent and
 * GET /v1/nodes/filters; `--json` prints the API's answer. `ferry cluster options` shows and sets the replication
 * settings (GET and PUT /v1/clusters/options).
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { FerryClient } from '../client.js';
import { clientFor, output } from '../context.js';
import { formatSize, parseSize, renderTable } from '../format.js';

/** The cluster-wide replication settings as GET /v1/clusters/options answers. */
export interface ClusterOptions {
  resync_bandwidth: number;
  replica_timeout_seconds: number;
}

const SECONDS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/** Parses a duration: seconds (`600`, `600s`) or minutes, hours, days (`10m`, `1h`, `2d`). */
export function parseDuration(text: string): number {
  const match = /^\s*([0-9]+)\s*([smhd]?)\s*$/i.exec(text);
  const unit = SECONDS[match?.[2]?.toLowerCase() ?? ''];
  if (match === null || unit === undefined || Number(match[1]) === 0) {
    throw new InvalidArgumentError(`"${text}" is not a duration; use seconds or a unit, e.g. 600, 10m, 1h`);
  }
  return Number(match[1]) * unit;
}

/** A bandwidth: a size per second (`100M`), 0 for none. */
export function parseBandwidth(text: string): number {
  return parseSize(text.replace(/\/s$/i, ''));
}

function durationText(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function optionsText(o: ClusterOptions): string {
  return [
    `Resync bandwidth : ${o.resync_bandwidth === 0 ? 'no cap' : `${formatSize(o.resync_bandwidth)}/s per node`}`,
    `Replica timeout  : ${durationText(o.replica_timeout_seconds)} (then an out-of-sync replica is replaced)`,
  ].join('\n');
}

/** A node as GET /v1/nodes/filters answers. */
export interface NodeView {
  id: string;
  hostname: string;
  state: 'Online' | 'Offline' | 'Maintenance';
  status: string;
  node_labels: Record<string, string>;
  addresses: Record<string, string>;
  capacity?: { size_bytes: number; free_bytes: number; used_bytes: number };
  volumes: string[];
  replicas: { volume_id: string; volume_name: string; state: string }[];
  version: string;
  last_seen: string;
}

/** What `ferry cluster inspect --json` prints. */
export interface ClusterReport {
  cluster: {
    id: string;
    name: string;
    status: string;
    nodes?: { online: number; offline: number; maintenance: number };
  };
  /** The node that answered. */
  current_node: string;
  nodes: NodeView[];
}

export async function listNodes(client: FerryClient): Promise<NodeView[]> {
  return (await client.request<{ nodes: NodeView[] }>('GET', '/v1/nodes/filters')).nodes;
}

export async function clusterReport(client: FerryClient): Promise<ClusterReport> {
  const [cluster, current, nodes] = await Promise.all([
    client.request<{ cluster: ClusterReport['cluster'] }>('GET', '/v1/clusters/inspectcurrent'),
    client.request<{ node: { id: string } }>('GET', '/v1/nodes/inspectcurrent'),
    listNodes(client),
  ]);
  return { cluster: cluster.cluster, current_node: current.node.id, nodes };
}

function labelsText(labels: Record<string, string>): string {
  const text = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return text === '' ? '-' : text;
}

function hostPort(url: string | undefined): string {
  if (url === undefined) return '-';
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The nodes table (`wide`: addresses and version too). */
export function nodesTable(nodes: readonly NodeView[], wide: boolean, current?: string): string {
  const header = ['ID', 'HOSTNAME', 'STATUS', 'LABELS', 'USED', 'CAPACITY', 'VOLUMES', 'REPLICAS'];
  if (wide) header.push('API', 'NBD', 'REPL', 'VERSION');
  const rows = nodes.map((n) => {
    const row = [
      `${n.id}${n.id === current ? ' (this node)' : ''}`,
      n.hostname,
      n.state,
      labelsText(n.node_labels),
      n.capacity === undefined ? '-' : formatSize(n.capacity.used_bytes),
      n.capacity === undefined ? '-' : formatSize(n.capacity.size_bytes),
      String(n.volumes.length),
      String(n.replicas.length),
    ];
    if (wide) {
      row.push(hostPort(n.addresses.api), hostPort(n.addresses.nbd), hostPort(n.addresses.repl), n.version);
    }
    return row;
  });
  return renderTable(header, rows);
}

/** The text of `ferry cluster inspect`. */
export function clusterText(r: ClusterReport, wide: boolean): string {
  const counts = r.cluster.nodes;
  const summary =
    counts === undefined
      ? `${r.nodes.length} nodes`
      : `${r.nodes.length} nodes: ${counts.online} Online, ${counts.offline} Offline, ${counts.maintenance} Maintenance`;
  const used = r.nodes.reduce((sum, n) => sum + (n.capacity?.used_bytes ?? 0), 0);
  const size = r.nodes.reduce((sum, n) => sum + (n.capacity?.size_bytes ?? 0), 0);
  return [
    `Cluster ID   : ${r.cluster.id}`,
    `Cluster name : ${r.cluster.name}`,
    `Status       : ${r.cluster.status === 'STATUS_OK' ? 'OK' : r.cluster.status}`,
    `Nodes        : ${summary}`,
    `Capacity     : ${formatSize(used)} used of ${formatSize(size)}`,
    '',
    nodesTable(r.nodes, wide, r.current_node),
  ].join('\n');
}

/** Registers `ferry cluster ...`; returns the `cluster` command (`pair` goes under it). */
export function registerClusterCommands(program: Command): Command {
  const cluster = program.command('cluster').description('the cluster the CLI points at');
  cluster
    .command('inspect')
    .description('the cluster and its nodes: status, labels, capacity, volumes and replicas (like pxctl status)')
    .action(async (_options: unknown, command: Command) => {
      const report = await clusterReport(clientFor(command));
      output(command, report, (wide) => clusterText(report, wide));
    });
  cluster
    .command('options')
    .description('show or set the replication settings: resync bandwidth per node, replica timeout (admins)')
    .option(
      '--resync-bandwidth <rate>',
      'cap of resync and fill copies per node, e.g. 100M (a second); 0: none',
      parseBandwidth,
    )
    .option('--replica-timeout <duration>', 'replace a replica out of sync this long, e.g. 10m, 1h', parseDuration)
    .action(async (options: { resyncBandwidth?: number; replicaTimeout?: number }, command: Command) => {
      const client = clientFor(command);
      const change = {
        ...(options.resyncBandwidth !== undefined && { resync_bandwidth: options.resyncBandwidth }),
        ...(options.replicaTimeout !== undefined && { replica_timeout_seconds: options.replicaTimeout }),
      };
      const answer =
        Object.keys(change).length === 0
          ? await client.request<{ options: ClusterOptions }>('GET', '/v1/clusters/options')
          : await client.request<{ options: ClusterOptions }>('PUT', '/v1/clusters/options', change);
      output(command, answer, () => optionsText(answer.options));
    });
  return cluster;
}

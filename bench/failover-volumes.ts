/**
 * Volume chores of the failover bench, done as a user does them: `ferry volume create` through the CLI, inspect and
 * node states through the API (a CLI process per poll would add its start-up to measured times).
 */
import type { BenchCluster, BenchNode } from './cluster-nodes.js';

/** A replica as inspect shows it. */
export interface ReplicaView {
  node_id: string;
  state: string;
  resync?: { kind: string; copied_bytes: number; total_bytes: number };
  reason?: string;
}

interface VolumeView {
  volume?: { id?: string; replicas?: ReplicaView[]; health?: string };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Node `i` of the cluster. */
export function nodeAt(cluster: BenchCluster, i: number): BenchNode {
  const node = cluster.nodes[i];
  if (node === undefined) throw new Error(`no node ${i}`);
  return node;
}

/** `ferry volume create NAME --size SIZE --repl N --nodes ...` on node `via`. */
export async function createVolume(
  cluster: BenchCluster,
  via: number,
  name: string,
  size: string,
  nodes: BenchNode[],
): Promise<void> {
  const ids = nodes.map((n) => n.id).join(',');
  await cluster.ferry(via, ['volume', 'create', name, '--size', size, '--repl', String(nodes.length), '--nodes', ids]);
}

/** The replicas of `name` as node `via` inspects them. */
export async function replicas(cluster: BenchCluster, via: number, name: string): Promise<ReplicaView[]> {
  const view = await cluster.get<VolumeView>(via, `/v1/volumes/inspect/${name}`);
  return view.volume?.replicas ?? [];
}

/** The replica of `name` on `nodeId` (inspected through node `via`), if listed. */
export async function replicaOn(
  cluster: BenchCluster,
  via: number,
  name: string,
  nodeId: string,
): Promise<ReplicaView | undefined> {
  return (await replicas(cluster, via, name)).find((r) => r.node_id === nodeId);
}

/** The id of volume `name` (inspected through node `via`). */
export async function volumeIdOf(cluster: BenchCluster, via: number, name: string): Promise<string> {
  const view = await cluster.get<VolumeView>(via, `/v1/volumes/inspect/${name}`);
  const id = view.volume?.id;
  if (id === undefined) throw new Error(`inspect of volume ${name} through node ${via} gave no id`);
  return id;
}

/** Waits until node `via` lists node `nodeId` in state `state` (e.g. Online), up to `timeoutMs`. */
export async function waitNodeState(
  cluster: BenchCluster,
  via: number,
  nodeId: string,
  state: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { nodes } = await cluster.get<{ nodes: { id: string; state: string }[] }>(via, '/v1/nodes/filters');
      if (nodes.find((n) => n.id === nodeId)?.state === state) return;
    } catch {
      // The API may be starting; try again.
    }
    if (Date.now() > deadline) throw new Error(`node ${nodeId} not ${state} in ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** `nbd://host:port/name` of volume `name` on `node`. */
export function uriOf(node: BenchNode, name: string): string {
  return `${node.nbdUrl}/${name}`;
}

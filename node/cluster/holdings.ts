/**
 * What each node holds, read from the catalog (`/ferry/volumes/` records: `replicas`, `attached`): the replicas of
 * volumes it keeps and the volumes it coordinates (is attached for). Listing is one pass over the volume records.
 */
import type { ReplicaState, VolumeRecord } from '../engine/records.js';
import type { ClusterStore } from './types.js';

/** The catalog's prefix of volume records (node/engine/catalog.ts). */
const VOLUMES_PREFIX = '/ferry/volumes/';

/** One replica a node holds. */
export interface HeldReplica {
  volume_id: string;
  volume_name: string;
  state: ReplicaState;
}

/** What one node holds. */
export interface NodeHoldings {
  replicas: HeldReplica[];
  /** Ids of the volumes attached (coordinated) on it. */
  attached: string[];
}

/** Holdings by node id (a node holding nothing is absent). */
export async function holdingsByNode(store: ClusterStore): Promise<Map<string, NodeHoldings>> {
  const byNode = new Map<string, NodeHoldings>();
  const of = (nodeId: string): NodeHoldings => {
    let held = byNode.get(nodeId);
    if (held === undefined) {
      held = { replicas: [], attached: [] };
      byNode.set(nodeId, held);
    }
    return held;
  };
  for (const { value } of await store.list<VolumeRecord>(VOLUMES_PREFIX)) {
    for (const replica of value.replicas ?? []) {
      of(replica.node_id).replicas.push({
        volume_id: value.id,
        volume_name: value.name,
        state: replica.state ?? 'in-sync',
      });
    }
    if (value.attached !== undefined) of(value.attached.node_id).attached.push(value.id);
  }
  return byNode;
}

/**
 * Data locality for schedulers (`GET /v1/volumes/{volume_id}/locality`, `ferry volume locality`): the cluster's
 * online nodes ranked for running a volume's user, as a scheduler extender such as Stork asks. A node with an in-sync
 * replica reads locally; a filling one will soon; after them, a node in the rack of a replica, then in its zone, then
 * the rest. Racks and zones are the nodes' `rack` and `zone` labels (`FERRY_NODE_LABELS`).
 */
import type { NodeRecord, VolumeInfo } from '../node/index.js';
import type { LocalityResponse } from './schemas/index.js';

/** One ranked node. */
export type RankedNode = LocalityResponse['nodes'][number];

/** The score of each reason: higher is better; the gaps leave room for finer rules later. */
export const LOCALITY_SCORES: Readonly<Record<RankedNode['reason'], number>> = {
  replica: 100,
  'filling-replica': 75,
  'same-rack': 50,
  'same-zone': 25,
  other: 0,
};

/** The label holding a node's rack. */
export const RACK_LABEL = 'rack';
/** The label holding a node's zone. */
export const ZONE_LABEL = 'zone';

function reasonFor(
  node: NodeRecord,
  replicaState: Map<string, string>,
  racks: ReadonlySet<string>,
  zones: ReadonlySet<string>,
): RankedNode['reason'] {
  const state = replicaState.get(node.id);
  if (state === 'in-sync') return 'replica';
  if (state === 'filling') return 'filling-replica';
  const rack = node.labels[RACK_LABEL];
  if (rack !== undefined && racks.has(rack)) return 'same-rack';
  const zone = node.labels[ZONE_LABEL];
  if (zone !== undefined && zones.has(zone)) return 'same-zone';
  return 'other';
}

/**
 * `nodes` (the live records of the cluster: a node without a record is offline and not ranked) best first for
 * `volume`. Only replicas holding data count (in-sync and filling; an out-of-sync one ranks by its rack and zone).
 * Ties keep the order of node ids, so the answer is stable.
 */
export function rankNodes(volume: VolumeInfo, nodes: readonly NodeRecord[]): RankedNode[] {
  const replicaState = new Map<string, string>();
  for (const replica of volume.replicas ?? []) {
    if (replica.state !== 'out-of-sync') replicaState.set(replica.node_id, replica.state);
  }
  const racks = new Set<string>();
  const zones = new Set<string>();
  for (const node of nodes) {
    if (!replicaState.has(node.id)) continue;
    const rack = node.labels[RACK_LABEL];
    const zone = node.labels[ZONE_LABEL];
    if (rack !== undefined) racks.add(rack);
    if (zone !== undefined) zones.add(zone);
  }
  const ranked = nodes.map((node): RankedNode => {
    const reason = reasonFor(node, replicaState, racks, zones);
    const rack = node.labels[RACK_LABEL];
    const zone = node.labels[ZONE_LABEL];
    return {
      node_id: node.id,
      hostname: node.hostname,
      score: LOCALITY_SCORES[reason],
      reason,
      ...(rack !== undefined && { rack }),
      ...(zone !== undefined && { zone }),
    };
  });
  return ranked.sort((a, b) => b.score - a.score || (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0));
}

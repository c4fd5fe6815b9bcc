/**
 * Placement (issue 22): which nodes get a volume's replicas. `placeReplicas` is a pure function of the nodes'
 * records and a request:
 * - explicit nodes (`replica_set.nodes`, `--nodes`) first: each must exist and be Online;
 * - the rest spread over failure domains: different racks when the cluster's nodes are labelled `rack`, else
 *   different zones (`zone`), else different nodes; the domains of the nodes that already hold a replica
 *   (`exclude`) count as taken; within a domain, and between domains, the node with the most free bytes wins
 *   (then the lower id);
 * - `racks` / `zones` keep the choice to nodes labelled with one of them; Offline and Maintenance nodes are never
 *   chosen.
 * When a rule cannot be met it throws FAILED_PRECONDITION naming the rule and what the cluster has.
 * `MembershipPlacement` is the engine's PlacementPort over the live records of membership.
 */
import { FerryError } from '../../common/index.js';
import type { PlacementPort, PlacementRequest } from '../engine/cluster-ports.js';
import type { MemberStatus, MemberView } from './membership.js';

/** The label keys of the failure domains. */
export const RACK_LABEL = 'rack';
export const ZONE_LABEL = 'zone';

/** What placement reads of a node. */
export interface PlacementNode {
  id: string;
  status: MemberStatus;
  labels: Readonly<Record<string, string>>;
  /** Free bytes of its data directory; unknown counts as 0. */
  free_bytes?: number;
}

type Domain = 'rack' | 'zone' | 'node';

function refuse(message: string): never {
  throw new FerryError('FAILED_PRECONDITION', message);
}

function list(items: Iterable<string>): string {
  const sorted = [...new Set(items)].sort();
  return sorted.length === 0 ? 'none' : sorted.join(', ');
}

function byFreeThenId(a: PlacementNode, b: PlacementNode): number {
  const free = (b.free_bytes ?? 0) - (a.free_bytes ?? 0);
  return free !== 0 ? free : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The node ids for `request.ha_level - exclude.length` new replicas, best first (see the file comment). */
export function placeReplicas(nodes: readonly PlacementNode[], request: PlacementRequest): string[] {
  const exclude = new Set(request.exclude ?? []);
  const wanted = request.ha_level - exclude.size;
  if (wanted <= 0) return [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const online = nodes.filter((n) => n.status === 'Online');
  const chosen: PlacementNode[] = [];

  // Explicit nodes first.
  const explicit = (request.nodes ?? []).filter((id) => !exclude.has(id));
  if (explicit.length > wanted) {
    refuse(
      `replica_set.nodes names ${explicit.length} nodes that hold no replica, but ha_level ${request.ha_level} needs ${wanted} more`,
    );
  }
  for (const id of explicit) {
    const node = byId.get(id);
    if (node === undefined) {
      refuse(`replica_set.nodes: the cluster has no node "${id}" (its nodes: ${list(nodes.map((n) => n.id))})`);
    }
    if (node.status !== 'Online') {
      refuse(
        `replica_set.nodes: node "${id}" is ${node.status}; replicas go to Online nodes (${list(online.map((n) => n.id))})`,
      );
    }
    if (!chosen.includes(node)) chosen.push(node);
  }
  if (chosen.length === wanted) return chosen.map((n) => n.id);

  // Then spread.
  const restrictions: string[] = [];
  let eligible = online.filter((n) => !exclude.has(n.id) && !chosen.includes(n));
  if (request.racks !== undefined && request.racks.length > 0) {
    const racks = new Set(request.racks);
    eligible = eligible.filter((n) => racks.has(n.labels[RACK_LABEL] ?? ''));
    restrictions.push(`racks ${list(racks)}`);
  }
  if (request.zones !== undefined && request.zones.length > 0) {
    const zones = new Set(request.zones);
    eligible = eligible.filter((n) => zones.has(n.labels[ZONE_LABEL] ?? ''));
    restrictions.push(`zones ${list(zones)}`);
  }
  const labelled = (key: string): boolean => online.some((n) => n.labels[key] !== undefined);
  const domain: Domain = labelled(RACK_LABEL) ? 'rack' : labelled(ZONE_LABEL) ? 'zone' : 'node';
  const domainOf = (n: PlacementNode): string | undefined =>
    domain === 'node' ? n.id : n.labels[domain === 'rack' ? RACK_LABEL : ZONE_LABEL];

  const taken = new Set<string>();
  for (const n of [...chosen, ...[...exclude].flatMap((id) => byId.get(id) ?? [])]) {
    const d = domainOf(n);
    if (d !== undefined) taken.add(d);
  }
  // The best node of each free domain, best first.
  const best = new Map<string, PlacementNode>();
  for (const n of [...eligible].sort(byFreeThenId)) {
    const d = domainOf(n);
    if (d === undefined || taken.has(d) || best.has(d)) continue;
    best.set(d, n);
  }
  const need = wanted - chosen.length;
  const picks = [...best.values()].sort(byFreeThenId).slice(0, need);
  if (picks.length < need) {
    const within = restrictions.length === 0 ? '' : ` within ${restrictions.join(' and ')}`;
    const more =
      exclude.size + chosen.length > 0 ? ` more (besides ${list([...exclude, ...chosen.map((n) => n.id)])})` : '';
    if (domain === 'node') {
      refuse(
        `ha_level ${request.ha_level} needs ${need} Online node${need === 1 ? '' : 's'}${more}${within}: the cluster has ${picks.length} (${list(picks.map((n) => n.id))})${offline(nodes)}`,
      );
    }
    const key = domain === 'rack' ? RACK_LABEL : ZONE_LABEL;
    const values = eligible.flatMap((n) => n.labels[key] ?? []);
    const labelledNodes = eligible.filter((n) => n.labels[key] !== undefined).length;
    refuse(
      `ha_level ${request.ha_level} needs ${need} different ${key}${need === 1 ? '' : 's'}${more}${within}: the cluster has ${labelledNodes} Online node${labelledNodes === 1 ? '' : 's'} labelled ${key} there (${list(values)})${taken.size > 0 ? `, and ${key}s ${list(taken)} already hold a replica` : ''}${offline(nodes)}`,
    );
  }
  return [...chosen, ...picks].map((n) => n.id);
}

/** ` (not Online: a Offline, b Maintenance)`, or '' when every node is Online. */
function offline(nodes: readonly PlacementNode[]): string {
  const down = nodes.filter((n) => n.status !== 'Online').map((n) => `${n.id} ${n.status}`);
  return down.length === 0 ? '' : ` (not Online: ${down.join(', ')})`;
}

/** What MembershipPlacement reads: the members with their status (Membership is one). */
export interface MemberSource {
  members(): Promise<MemberView[]>;
}

/** The engine's PlacementPort over the cluster's current node records. */
export class MembershipPlacement implements PlacementPort {
  constructor(private readonly membership: MemberSource) {}

  async place(request: PlacementRequest): Promise<string[]> {
    const members = await this.membership.members();
    return placeReplicas(
      members.map((m) => ({
        id: m.id,
        status: m.status,
        labels: m.labels,
        ...(m.capacity !== undefined && { free_bytes: m.capacity.free_bytes }),
      })),
      request,
    );
  }
}

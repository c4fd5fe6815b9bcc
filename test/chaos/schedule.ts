/**
 * A trial's plan, drawn from its seed alone: the volume's replication, the node the writers start on, and a sequence
 * of faults, each with when it strikes (ms after the previous one healed), how long it lasts and which node it hits
 * (a draw resolved against the nodes of the moment: the coordinator is the node the roaming writer writes through,
 * a replica any other node holding one; link faults and a full disk hit a replica). The same seed gives the same plan.
 */
import { seededRandom } from '../support/fault-proxy.js';

/** The kinds of faults a schedule draws from. */
export const FAULT_KINDS = [
  'kill-coordinator',
  'kill-replica',
  'pause-coordinator',
  'partition-coordinator',
  'partition-replica',
  'partition-etcd',
  'restart-etcd',
  'slow-link',
  'stall-link',
  'disk-full',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that need each node in its own network namespace. */
export const NETNS_FAULTS: readonly FaultKind[] = ['partition-coordinator', 'partition-replica'];

/** Faults that need each node's data directory on a small file system of its own. */
export const DISK_FAULTS: readonly FaultKind[] = ['disk-full'];

/** One fault of a plan. */
export interface PlannedFault {
  kind: FaultKind;
  /** Ms of writing before it strikes (after the previous fault healed). */
  afterMs: number;
  /** Ms it lasts before it is healed. */
  durationMs: number;
  /** Which of the candidate nodes it hits: index = floor(pick * candidates). */
  pick: number;
  /** slow-link: the added latency, ms. */
  delayMs?: number;
}

/** A trial's plan. */
export interface TrialPlan {
  seed: number;
  repl: number;
  /** Replica nodes, by index. */
  replicaNodes: number[];
  /** Index of the node both writers start on (a replica node). */
  startAt: number;
  faults: PlannedFault[];
  /** Ms of writing after the last fault healed. */
  tailMs: number;
}

/** Options of drawPlan. */
export interface PlanOptions {
  /** Nodes in the cluster. */
  nodes: number;
  /** Replication counts to draw from; default [2, 3]. */
  repls?: readonly number[];
  /** Kinds to draw from; default all. */
  kinds?: readonly FaultKind[];
  /** Faults per trial, at least 1; default 1 to 2. */
  faults?: { min: number; max: number };
  /** The heartbeat lease, s: pauses last longer than it. */
  leaseSeconds: number;
  /** Scales every duration (short trials for the suite); default 1. */
  scale?: number;
}

/** Draws trial `seed`'s plan. */
export function drawPlan(seed: number, options: PlanOptions): TrialPlan {
  const random = seededRandom(seed);
  const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const scale = options.scale ?? 1;
  const repls = (options.repls ?? [2, 3]).filter((r) => r <= options.nodes);
  const repl = repls[Math.floor(random() * repls.length)] ?? 2;
  // The replica nodes: a seeded shuffle of the nodes, first `repl`.
  const order = Array.from({ length: options.nodes }, (_v, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] ?? 0, order[i] ?? 0];
  }
  const replicaNodes = order.slice(0, repl).sort((a, b) => a - b);
  const startAt = replicaNodes[Math.floor(random() * replicaNodes.length)] ?? 0;
  const kinds = options.kinds ?? FAULT_KINDS;
  const count = between(options.faults?.min ?? 1, options.faults?.max ?? 2);
  const lease = options.leaseSeconds * 1000;
  const faults: PlannedFault[] = [];
  for (let n = 0; n < count; n++) {
    const kind = kinds[Math.floor(random() * kinds.length)] ?? 'kill-coordinator';
    const afterMs = Math.round(between(500, 1500) * scale);
    // A pause or partition outlasts the lease (so that another node may take over); the rest vary.
    const durationMs =
      kind === 'pause-coordinator' || kind.startsWith('partition')
        ? lease + Math.round(between(500, 3000) * scale)
        : Math.round(between(1000, 4000) * scale);
    const fault: PlannedFault = { kind, afterMs, durationMs, pick: random() };
    if (kind === 'slow-link') fault.delayMs = between(20, 300);
    faults.push(fault);
  }
  return { seed, repl, replicaNodes, startAt, faults, tailMs: Math.round(between(800, 2000) * scale) };
}

/** A fault as a trial prints it. */
export function describeFault(f: PlannedFault, node?: number): string {
  const on = node === undefined ? '' : ` node ${node}`;
  const delay = f.delayMs === undefined ? '' : ` +${f.delayMs}ms`;
  return `${f.kind}${on}${delay} after ${f.afterMs}ms for ${f.durationMs}ms`;
}

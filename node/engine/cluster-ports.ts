/**
 * What the engine needs from the cluster beyond the store, and what it offers it (issue 22). The engine depends on
 * these ports only; the node wires them: `ReplicaConnector` over the replication transport (node/replication/),
 * `PlacementPort` over membership and node/cluster/placement.ts. Without them (one node) every volume lives here.
 */
import { FerryError } from '../../common/index.js';
import type { Replica } from './replica.js';

/** Which replica to open, and under which coordinator tenure. */
export interface ReplicaTarget {
  volumeId: string;
  /** The coordinator's epoch (the attach lock's revision): replicas refuse older ones (docs/REPLICATION.md, F3). */
  epoch: number;
  /** Open a read-only view of this snapshot (catalog id) instead of the volume's head. */
  snapshotId?: string;
}

/** Reaches the replicas other nodes hold. */
export interface ReplicaConnector {
  /**
   * The replica of `target` held by node `nodeId`, through that node's replication server. Rejects UNAVAILABLE when
   * the node cannot be reached, NOT_FOUND when it does not hold the replica.
   */
  open(nodeId: string, target: ReplicaTarget): Promise<Replica>;
  /** Tells node `nodeId` to remove its replica of `volumeId` (its layers); resolves when done or when it had none. */
  drop(nodeId: string, volumeId: string): Promise<void>;
}

/**
 * This node's side: the replicas it holds, served to other nodes' coordinators (the replication server calls it).
 * The engine implements it.
 */
export interface ReplicaHost {
  /**
   * This node's replica of `target`. The catalog record must list this node as a replica; a replica the node has no
   * layers for yet (a new volume, a new replica being filled) starts empty with the record's layer ids.
   */
  open(target: ReplicaTarget): Promise<Replica>;
  /** Removes this node's replica of `volumeId` (nothing when it has none). */
  drop(volumeId: string): Promise<void>;
}

/** A placement request: how many replicas and the rules (issue 22, Placement). */
export interface PlacementRequest {
  ha_level: number;
  /** Explicit nodes (`--nodes`). */
  nodes?: readonly string[];
  /** Allowed racks / zones (`--racks`, `--zones`). */
  racks?: readonly string[];
  zones?: readonly string[];
  /** Nodes that must not be chosen (they already hold a replica). */
  exclude?: readonly string[];
  /** Bytes each replica needs (thin: the volume's size is only a tie-break hint). */
  size: number;
}

/** Chooses nodes for replicas. */
export interface PlacementPort {
  /**
   * `ha_level - (exclude?.length ?? 0)` node ids, best first, or FAILED_PRECONDITION naming the rule that cannot be
   * met and what the cluster has. Never changes anything.
   */
  place(request: PlacementRequest): Promise<string[]>;
}

/**
 * An operation that must run on another node: the volume is attached (coordinated) there, or only that node holds
 * what the operation needs. FAILED_PRECONDITION for a caller that cannot go there (an NBD client: the message says
 * where); the API forwards the request to `nodeId`'s API and answers with that node's answer.
 */
export class RunsElsewhere extends FerryError {
  constructor(
    readonly nodeId: string,
    message: string,
  ) {
    super('FAILED_PRECONDITION', message);
  }
}

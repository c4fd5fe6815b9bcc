/**
 * Who this node is and which cluster it belongs to, for `/v1/clusters` and `/v1/nodes`: a thin use of the cluster
 * store's membership (node/cluster/membership.ts: the cluster record at `/ferry/cluster`, node records under
 * `/ferry/nodes/` bound to each node's heartbeat lease), with this product's version.
 */
import { FerryError } from '../common/index.js';
import {
  type Announcement,
  type ClusterRecord,
  type ClusterStore,
  holdingsByNode,
  Membership,
  MembershipPlacement,
  type MemberView,
  type NodeHoldings,
  type NodeRecord,
  type ReplicationSettings,
  readReplicationSettings,
  updateReplicationSettings,
} from '../node/index.js';
import { FERRY_VERSION } from './version.js';

export { CLUSTER_KEY, type ClusterRecord, NODES_PREFIX, type NodeRecord } from '../node/index.js';

/** What the cluster and node routes read. */
export interface ClusterDirectory {
  /** This node's id. */
  readonly nodeId: string;
  /** The cluster this node belongs to. */
  cluster(): Promise<ClusterRecord>;
  /** Every live node that announced itself, this one included, by id. */
  nodes(): Promise<NodeRecord[]>;
  /** Every node that ever joined (Offline ones too), with its status, by id. */
  members(): Promise<MemberView[]>;
  /** What each node holds (replicas, attached volumes), from the catalog. */
  holdings(): Promise<Map<string, NodeHoldings>>;
  /** Puts node `nodeId` in maintenance or takes it out (NOT_FOUND: no such node). */
  setMaintenance(nodeId: string, on: boolean): Promise<void>;
  /** The cluster-wide replication settings, defaults filled in (`GET /v1/clusters/options`). */
  replicationSettings?(): Promise<Required<ReplicationSettings>>;
  /** Changes the settings given, keeps the others; returns them all (`PUT /v1/clusters/options`). */
  setReplicationSettings?(patch: ReplicationSettings): Promise<Required<ReplicationSettings>>;
}

/** Options of StoreClusterDirectory.open. */
export interface ClusterDirectoryOptions {
  /** The node's data directory (holds `node-id`). */
  dataDir: string;
  /** The cluster store (holds the cluster and node records). */
  store: ClusterStore;
  /** Name given to a new cluster. Default env FERRY_CLUSTER_NAME, else the cluster id, else `ferry`. */
  clusterName?: string;
  /** Id given to a new cluster (`--cluster-id`). Default a new UUID. */
  clusterId?: string;
  /** Life of the node's heartbeat lease, seconds; default 10. */
  heartbeatSeconds?: number;
  /** Where a failed re-announcement is reported; default nowhere. */
  onError?: (err: unknown) => void;
}

/** The directory of a node backed by the cluster store's membership. */
export class StoreClusterDirectory implements ClusterDirectory {
  /** The engine's PlacementPort over this cluster's node records (pass it as EngineOptions.placement). */
  readonly placement: MembershipPlacement;

  private constructor(
    private readonly membership: Membership,
    private readonly store: ClusterStore,
  ) {
    this.placement = new MembershipPlacement(membership);
  }

  /** Loads (or creates) the node id and the cluster record. */
  static async open(options: ClusterDirectoryOptions): Promise<StoreClusterDirectory> {
    return new StoreClusterDirectory(await Membership.open({ ...options, version: FERRY_VERSION }), options.store);
  }

  get nodeId(): string {
    return this.membership.nodeId;
  }

  cluster(): Promise<ClusterRecord> {
    return this.membership.cluster();
  }

  nodes(): Promise<NodeRecord[]> {
    return this.membership.nodes();
  }

  members(): Promise<MemberView[]> {
    return this.membership.members();
  }

  holdings(): Promise<Map<string, NodeHoldings>> {
    return holdingsByNode(this.store);
  }

  setMaintenance(nodeId: string, on: boolean): Promise<void> {
    return this.membership.setMaintenance(nodeId, on);
  }

  replicationSettings(): Promise<Required<ReplicationSettings>> {
    return readReplicationSettings(this.store);
  }

  setReplicationSettings(patch: ReplicationSettings): Promise<Required<ReplicationSettings>> {
    return updateReplicationSettings(this.store, patch);
  }

  /**
   * Where node `nodeId`'s replication server listens, from its live record (the `addressOf` of the replication
   * client). UNAVAILABLE when the node is not Online or announced no replication address.
   */
  async replAddress(nodeId: string): Promise<{ host: string; port: number }> {
    const record = (await this.membership.nodes()).find((n) => n.id === nodeId);
    const url = record?.addresses?.repl;
    if (url === undefined) {
      throw new FerryError(
        'UNAVAILABLE',
        `node "${nodeId}" is not Online or has no replication address; see ferry node list`,
      );
    }
    const parsed = new URL(url);
    return { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port) };
  }

  /** Writes this node's record under its heartbeat lease (call when its API is up, with the URL it answers on). */
  announce(
    apiUrl: string,
    labels: Record<string, string> = {},
    more: Omit<Announcement, 'labels'> = {},
  ): Promise<NodeRecord> {
    return this.membership.announce(apiUrl, { ...more, labels });
  }

  /** Leaves the cluster (the node's record vanishes); call when the node stops. */
  leave(): Promise<void> {
    return this.membership.leave();
  }
}

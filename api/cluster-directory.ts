/**
 * Who this node is and which cluster it belongs to, for `/v1/clusters` and `/v1/nodes`: a thin use of the cluster
 * store's membership (node/cluster/membership.ts: the cluster record at `/ferry/cluster`, node records under
 * `/ferry/nodes/` bound to each node's heartbeat lease), with this product's version.
 */
import {
  type Announcement,
  type ClusterRecord,
  type ClusterStore,
  Membership,
  type NodeRecord,
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
}

/** Options of StoreClusterDirectory.open. */
export interface ClusterDirectoryOptions {
  /** The node's data directory (holds `node-id`). */
  dataDir: string;
  /** The cluster store (holds the cluster and node records). */
  store: ClusterStore;
  /** Name given to a new cluster. Default env FERRY_CLUSTER_NAME, else `ferry`. */
  clusterName?: string;
  /** Life of the node's heartbeat lease, seconds; default 10. */
  heartbeatSeconds?: number;
  /** Where a failed re-announcement is reported; default nowhere. */
  onError?: (err: unknown) => void;
}

/** The directory of a node backed by the cluster store's membership. */
export class StoreClusterDirectory implements ClusterDirectory {
  private constructor(private readonly membership: Membership) {}

  /** Loads (or creates) the node id and the cluster record. */
  static async open(options: ClusterDirectoryOptions): Promise<StoreClusterDirectory> {
    return new StoreClusterDirectory(await Membership.open({ ...options, version: FERRY_VERSION }));
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

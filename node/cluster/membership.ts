/**
 * Membership: which cluster this node belongs to and which nodes are alive in it, in the cluster store.
 *
 * - `/ferry/cluster`: the cluster record `{ id, name, created }`, shared by every node on the store. The first node
 *   to start writes it (a transaction on "absent": two first starts agree on one record).
 * - `/ferry/nodes/<node id>`: a node's record (hostname, addresses, labels, capacity, version, start time), bound to
 *   the node's heartbeat lease, which the node keeps alive. A node that stops leaves (revokes it); a node that dies
 *   vanishes when the lease expires on the store's clock. A node that loses its lease (store unreachable for a TTL)
 *   announces itself again under a new one.
 * - The node id is the data directory's (`node-id.ts`).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { FerryError } from '../../common/index.js';
import { LeaseKeeper } from './lease-keeper.js';
import { loadNodeId } from './node-id.js';
import type { ClusterStore } from './types.js';

/** Key of the cluster record. */
export const CLUSTER_KEY = '/ferry/cluster';
/** Prefix of the node records. */
export const NODES_PREFIX = '/ferry/nodes/';

/** The cluster record. */
export interface ClusterRecord {
  id: string;
  name: string;
  /** RFC 3339. */
  created: string;
}

/** What a node's capacity is, as it last announced. */
export interface NodeCapacity {
  /** Size of the file system of its data directory. */
  size_bytes: number;
  /** Bytes free there. */
  free_bytes: number;
}

/** What a node announces about itself. */
export interface NodeRecord {
  id: string;
  hostname: string;
  /** Base URL of its HTTP API, e.g. `http://10.0.0.5:9001`. */
  api_url: string;
  /** Its other listen addresses by name (`nbd`, `repl`), as URLs. */
  addresses?: Record<string, string>;
  version: string;
  /** When this process started (RFC 3339). */
  start_time: string;
  /** When it last announced itself (RFC 3339). */
  last_seen: string;
  labels: Record<string, string>;
  capacity?: NodeCapacity;
}

/** What `announce` takes beside the API URL. */
export interface Announcement {
  labels?: Record<string, string>;
  addresses?: Record<string, string>;
  capacity?: NodeCapacity;
}

/** Options of Membership.open. */
export interface MembershipOptions {
  /** The node's data directory (holds `node-id`). */
  dataDir: string;
  /** The cluster store (holds the cluster and node records). */
  store: ClusterStore;
  /** The version this node runs (the caller's: `node/` does not know the product version). */
  version: string;
  /** Name given to a new cluster. Default env FERRY_CLUSTER_NAME, else `ferry`. */
  clusterName?: string;
  /** Life of the heartbeat lease without keep-alives, seconds; default 10. */
  heartbeatSeconds?: number;
  /** Where a failed re-announcement is reported; default nowhere. */
  onError?: (err: unknown) => void;
}

/** This node's membership in the cluster of its store. */
export class Membership {
  private readonly startTime = new Date().toISOString();
  private keeper: LeaseKeeper | undefined;
  private leaving = false;

  private constructor(
    readonly nodeId: string,
    private readonly options: MembershipOptions,
  ) {}

  /** Loads (or creates) the node id and the cluster record. */
  static async open(options: MembershipOptions): Promise<Membership> {
    const membership = new Membership(await loadNodeId(options.dataDir), options);
    await membership.cluster();
    return membership;
  }

  /** The cluster record, written by the first node to ask. */
  async cluster(): Promise<ClusterRecord> {
    const { store } = this.options;
    const found = await store.get<ClusterRecord>(CLUSTER_KEY);
    if (found !== undefined) return found;
    const name = this.options.clusterName ?? (process.env.FERRY_CLUSTER_NAME || 'ferry');
    const record: ClusterRecord = { id: randomUUID(), name, created: new Date().toISOString() };
    const created = await store.txn(
      [{ key: CLUSTER_KEY, modRevision: 0 }],
      [{ op: 'put', key: CLUSTER_KEY, value: record }],
    );
    if (created.succeeded) return record;
    // Another node created it first: every node keeps the first record.
    const first = await store.get<ClusterRecord>(CLUSTER_KEY);
    if (first === undefined) throw new FerryError('UNAVAILABLE', 'the cluster record vanished; retry');
    return first;
  }

  /** Every live node (this one included once it announced itself), in id order. */
  async nodes(): Promise<NodeRecord[]> {
    return (await this.options.store.list<NodeRecord>(NODES_PREFIX)).map((kv) => kv.value);
  }

  /**
   * Writes this node's record under a heartbeat lease and keeps the lease alive (call when its API is up). Calling
   * it again updates the record under the same lease.
   */
  async announce(apiUrl: string, about: Announcement = {}): Promise<NodeRecord> {
    const { store } = this.options;
    this.leaving = false;
    const record: NodeRecord = {
      id: this.nodeId,
      hostname: hostname(),
      api_url: apiUrl,
      ...(about.addresses !== undefined && { addresses: about.addresses }),
      version: this.options.version,
      start_time: this.startTime,
      last_seen: new Date().toISOString(),
      labels: about.labels ?? {},
      ...(about.capacity !== undefined && { capacity: about.capacity }),
    };
    let keeper = this.keeper;
    if (keeper === undefined || keeper.lost.aborted) {
      const ttl = this.options.heartbeatSeconds ?? 10;
      keeper = new LeaseKeeper(store, await store.grantLease(ttl), ttl);
      this.keeper = keeper;
      keeper.start();
      const kept = keeper;
      kept.lost.addEventListener('abort', () => {
        if (this.leaving || this.keeper !== kept) return;
        this.announce(apiUrl, about).catch((err: unknown) => this.options.onError?.(err));
      });
    }
    await store.put(`${NODES_PREFIX}${this.nodeId}`, record, { lease: keeper.lease });
    return record;
  }

  /** Leaves the cluster: revokes the heartbeat lease, so the node's record vanishes now. */
  async leave(): Promise<void> {
    this.leaving = true;
    const keeper = this.keeper;
    this.keeper = undefined;
    await keeper?.revoke();
  }
}

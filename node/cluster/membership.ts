/**
 * Membership: which cluster this node belongs to and which nodes are alive in it, in the cluster store.
 *
 * - `/ferry/cluster`: the cluster record `{ id, name, created }`, shared by every node on the store. The first node
 *   to start writes it (a transaction on "absent": two first starts agree on one record).
 * - `/ferry/nodes/<node id>`: a node's record (hostname, addresses, labels, capacity, version, start time), bound to
 *   the node's heartbeat lease, which the node keeps alive. A node that stops leaves (revokes it); a node that dies
 *   vanishes when the lease expires on the store's clock. A node that loses its lease (store unreachable for a TTL)
 *   announces itself again under a new one.
 * - `/ferry/members/<node id>`: the same record without a lease (the registry), plus the node's maintenance mode:
 *   a node whose leased record vanished (killed, cut off) stays listed, as Offline; `forget` removes it.
 * - Status: Online when the leased record exists, Offline when it does not, Maintenance when it exists and the
 *   registry says so (`setMaintenance`).
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
/** Prefix of the node records (bound to each node's heartbeat lease). */
export const NODES_PREFIX = '/ferry/nodes/';
/** Prefix of the registry of every node that ever joined (not leased). */
export const MEMBERS_PREFIX = '/ferry/members/';

/** A node's status in the cluster (OpenStorage's words). */
export type MemberStatus = 'Online' | 'Offline' | 'Maintenance';

/** A registry record: the node's last announcement, and its maintenance mode. */
export interface MemberRecord extends NodeRecord {
  /** True while the node is in maintenance (placement skips it). */
  maintenance?: boolean;
}

/** A node of the registry (or a live node not yet in it) with its status. */
export interface MemberView extends NodeRecord {
  status: MemberStatus;
}

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
  /** Name given to a new cluster. Default env FERRY_CLUSTER_NAME, else the cluster id, else `ferry`. */
  clusterName?: string;
  /** Id given to a new cluster (`--cluster-id`). Default a new UUID. */
  clusterId?: string;
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
    const { clusterId } = this.options;
    const name = this.options.clusterName ?? (process.env.FERRY_CLUSTER_NAME || clusterId || 'ferry');
    const record: ClusterRecord = { id: clusterId ?? randomUUID(), name, created: new Date().toISOString() };
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
   * Every node that ever joined (the registry) and every live one, in id order, with its status: a live node's
   * record is its current announcement; an Offline node's is the last one it made.
   */
  async members(): Promise<MemberView[]> {
    const { store } = this.options;
    const [registry, live] = await Promise.all([
      store.list<MemberRecord>(MEMBERS_PREFIX),
      store.list<NodeRecord>(NODES_PREFIX),
    ]);
    const liveById = new Map(live.map((kv) => [kv.value.id, kv.value]));
    const views = new Map<string, MemberView>();
    for (const { value } of registry) {
      const { maintenance, ...record } = value;
      const current = liveById.get(value.id);
      const status: MemberStatus = current === undefined ? 'Offline' : maintenance === true ? 'Maintenance' : 'Online';
      views.set(value.id, { ...(current ?? record), status });
    }
    for (const record of liveById.values()) {
      if (!views.has(record.id)) views.set(record.id, { ...record, status: 'Online' });
    }
    return [...views.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Puts node `nodeId` in maintenance (`on`) or takes it out: placement skips a node in maintenance. NOT_FOUND when
   * the registry has no such node.
   */
  async setMaintenance(nodeId: string, on: boolean): Promise<void> {
    const { store } = this.options;
    const key = `${MEMBERS_PREFIX}${nodeId}`;
    for (;;) {
      const entry = await store.getEntry<MemberRecord>(key);
      if (entry === undefined) {
        throw new FerryError('NOT_FOUND', `no node "${nodeId}" in the cluster; list them with ferry node list`);
      }
      const { maintenance: _old, ...record } = entry.value;
      const next: MemberRecord = on ? { ...record, maintenance: true } : record;
      const done = await store.txn([{ key, modRevision: entry.modRevision }], [{ op: 'put', key, value: next }]);
      if (done.succeeded) return;
    }
  }

  /** Removes an Offline node from the registry (a node decommissioned for good); FAILED_PRECONDITION while it is live. */
  async forget(nodeId: string): Promise<void> {
    const { store } = this.options;
    if ((await store.get(`${NODES_PREFIX}${nodeId}`)) !== undefined) {
      throw new FerryError('FAILED_PRECONDITION', `node "${nodeId}" is Online: stop it first`);
    }
    await store.delete(`${MEMBERS_PREFIX}${nodeId}`);
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
        void this.announceAgain(apiUrl, about);
      });
    }
    await store.put(`${NODES_PREFIX}${this.nodeId}`, record, { lease: keeper.lease });
    await this.register(record);
    return record;
  }

  /**
   * The lease was lost (the store was away longer than its TTL, or restarted): announces again under a new one,
   * retrying with a growing pause (0.5 s to 5 s) until it works or the node leaves, so the node turns Online again
   * soon after the store comes back.
   */
  private async announceAgain(apiUrl: string, about: Announcement): Promise<void> {
    for (let pauseMs = 500; !this.leaving; pauseMs = Math.min(pauseMs * 2, 5000)) {
      try {
        await this.announce(apiUrl, about);
        return;
      } catch (err: unknown) {
        this.options.onError?.(err);
        await new Promise((resolve) => setTimeout(resolve, pauseMs).unref());
      }
    }
  }

  /** Writes `record` to the registry, keeping the node's maintenance mode. */
  private async register(record: NodeRecord): Promise<void> {
    const { store } = this.options;
    const key = `${MEMBERS_PREFIX}${this.nodeId}`;
    for (;;) {
      const entry = await store.getEntry<MemberRecord>(key);
      const value: MemberRecord = entry?.value.maintenance === true ? { ...record, maintenance: true } : record;
      const done = await store.txn([{ key, modRevision: entry?.modRevision ?? 0 }], [{ op: 'put', key, value }]);
      if (done.succeeded) return;
    }
  }

  /** Leaves the cluster: revokes the heartbeat lease, so the node's record vanishes now. */
  async leave(): Promise<void> {
    this.leaving = true;
    const keeper = this.keeper;
    this.keeper = undefined;
    await keeper?.revoke();
  }
}

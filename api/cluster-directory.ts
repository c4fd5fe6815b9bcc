/**
 * Who this node is and which cluster it belongs to, for `/v1/clusters` and `/v1/nodes`.
 *
 * - The node id is the data directory's (`node/cluster/node-id.ts`).
 * - The cluster record `{ id, name, created }` lives in the cluster store at `/ferry/cluster`, so every node that
 *   shares the store (etcd) shares it. The first node to start writes it (compare-and-set: two first starts agree).
 * - Each node announces itself at `/ferry/nodes/<id>` when its API is up (hostname, API URL, version, start time).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { FerryError } from '../common/index.js';
import { type ClusterStore, loadNodeId } from '../node/index.js';
import { FERRY_VERSION } from './version.js';

/** Key of the cluster record in the cluster store. */
export const CLUSTER_KEY = '/ferry/cluster';
/** Prefix of the node records in the cluster store. */
export const NODES_PREFIX = '/ferry/nodes/';

/** The cluster record. */
export interface ClusterRecord {
  id: string;
  name: string;
  /** RFC 3339. */
  created: string;
}

/** What a node announces about itself. */
export interface NodeRecord {
  id: string;
  hostname: string;
  /** Base URL of its HTTP API, e.g. `http://10.0.0.5:9001`. */
  api_url: string;
  version: string;
  /** When this process started (RFC 3339). */
  start_time: string;
  /** When it last announced itself (RFC 3339). */
  last_seen: string;
  labels: Record<string, string>;
}

/** What the cluster and node routes read. */
export interface ClusterDirectory {
  /** This node's id. */
  readonly nodeId: string;
  /** The cluster this node belongs to. */
  cluster(): Promise<ClusterRecord>;
  /** Every node that announced itself, this one included, by id. */
  nodes(): Promise<NodeRecord[]>;
}

/** Options of openClusterDirectory. */
export interface ClusterDirectoryOptions {
  /** The node's data directory (holds `node-id`). */
  dataDir: string;
  /** The cluster store (holds the cluster and node records). */
  store: ClusterStore;
  /** Name given to a new cluster. Default env FERRY_CLUSTER_NAME, else `ferry`. */
  clusterName?: string;
}

/** The directory of a node backed by the cluster store. */
export class StoreClusterDirectory implements ClusterDirectory {
  private readonly startTime = new Date().toISOString();

  private constructor(
    readonly nodeId: string,
    private readonly store: ClusterStore,
    private readonly clusterName: string,
  ) {}

  /** Loads (or creates) the node id and the cluster record. */
  static async open(options: ClusterDirectoryOptions): Promise<StoreClusterDirectory> {
    const nodeId = await loadNodeId(options.dataDir);
    const name = options.clusterName ?? (process.env.FERRY_CLUSTER_NAME || 'ferry');
    const directory = new StoreClusterDirectory(nodeId, options.store, name);
    await directory.cluster();
    return directory;
  }

  async cluster(): Promise<ClusterRecord> {
    const found = await this.store.get<ClusterRecord>(CLUSTER_KEY);
    if (found !== undefined) return found;
    const record: ClusterRecord = { id: randomUUID(), name: this.clusterName, created: new Date().toISOString() };
    if (await this.store.compareAndSet(CLUSTER_KEY, undefined, record)) return record;
    // Another node created it first: every node keeps the first record.
    const first = await this.store.get<ClusterRecord>(CLUSTER_KEY);
    if (first === undefined) throw new FerryError('UNAVAILABLE', 'the cluster record vanished; retry');
    return first;
  }

  async nodes(): Promise<NodeRecord[]> {
    return (await this.store.list<NodeRecord>(NODES_PREFIX)).map((kv) => kv.value);
  }

  /** Writes this node's record (call when its API is up, with the URL it answers on). */
  async announce(apiUrl: string, labels: Record<string, string> = {}): Promise<NodeRecord> {
    const record: NodeRecord = {
      id: this.nodeId,
      hostname: hostname(),
      api_url: apiUrl,
      version: FERRY_VERSION,
      start_time: this.startTime,
      last_seen: new Date().toISOString(),
      labels,
    };
    await this.store.commit([{ op: 'put', key: `${NODES_PREFIX}${this.nodeId}`, value: record }]);
    return record;
  }
}

/**
 * The engine's `ReplicaConnector` over the replication transport: one pooled connection per peer node, made on first
 * use and made again after it broke, shared by every replica opened on that node.
 */
import { FerryError } from '../../common/index.js';
import type { ReplicaConnector, ReplicaTarget } from '../engine/cluster-ports.js';
import type { Replica } from '../engine/replica.js';
import { ReplicationClient } from './client.js';
import { jsonPayload, Op } from './frame.js';
import { RemoteReplica } from './remote-replica.js';
import type { NodeCredentials } from './types.js';

export interface RemoteReplicasOptions {
  /** This node's TLS identity in the cluster. */
  credentials: NodeCredentials;
  /** The replication address of a node (from its membership record). */
  addressOf(nodeId: string): Promise<{ host: string; port: number }>;
  /** Bytes in flight per connection at most; default 32 MiB. */
  maxInFlightBytes?: number;
  /** A request not answered within this many milliseconds fails UNAVAILABLE (R6); default 5000. */
  requestTimeoutMs?: number;
}

export class RemoteReplicas implements ReplicaConnector {
  private readonly clients = new Map<string, Promise<ReplicationClient>>();
  private closed = false;

  constructor(private readonly options: RemoteReplicasOptions) {}

  async open(nodeId: string, target: ReplicaTarget): Promise<Replica> {
    return RemoteReplica.open(await this.client(nodeId), nodeId, target);
  }

  async drop(nodeId: string, volumeId: string): Promise<void> {
    const client = await this.client(nodeId);
    await client.call({ op: Op.DROP, handle: 0, epoch: 0, payload: jsonPayload({ volume_id: volumeId }) });
  }

  /** Ends every connection (the replicas opened on them fail UNAVAILABLE from now on). */
  async close(): Promise<void> {
    this.closed = true;
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(
      clients.map((c) =>
        c.then(
          (client) => client.close(),
          () => undefined,
        ),
      ),
    );
  }

  /** The connection to `nodeId`: the pooled one, or a new one when there is none or it broke. */
  private async client(nodeId: string): Promise<ReplicationClient> {
    if (this.closed) throw new FerryError('UNAVAILABLE', 'the replica connector is closed');
    const pooled = this.clients.get(nodeId);
    if (pooled !== undefined) {
      const client = await pooled.catch(() => undefined);
      if (client !== undefined && !client.broken) return client;
      if (this.clients.get(nodeId) !== pooled) return this.client(nodeId);
      this.clients.delete(nodeId);
    }
    const connecting = this.connect(nodeId);
    this.clients.set(nodeId, connecting);
    try {
      return await connecting;
    } catch (err: unknown) {
      if (this.clients.get(nodeId) === connecting) this.clients.delete(nodeId);
      throw err;
    }
  }

  private async connect(nodeId: string): Promise<ReplicationClient> {
    const address = await this.options.addressOf(nodeId);
    return ReplicationClient.connect({
      credentials: this.options.credentials,
      host: address.host,
      port: address.port,
      expectedNodeId: nodeId,
      ...(this.options.maxInFlightBytes !== undefined && { maxInFlightBytes: this.options.maxInFlightBytes }),
      ...(this.options.requestTimeoutMs !== undefined && { requestTimeoutMs: this.options.requestTimeoutMs }),
    });
  }
}

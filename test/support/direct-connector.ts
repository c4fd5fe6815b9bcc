/**
 * A ReplicaConnector for engines in one process: node id -> that engine's `replicaHost`, called directly (the real
 * LocalReplicas of the other engine, no transport). Tests of the engine's cluster behaviour use it where the node
 * wires the replication transport (node/replication/). A node that is not registered, or is marked down, is
 * UNAVAILABLE, as an unreachable node is.
 */
import { FerryError } from '../../common/index.js';
import type { ReplicaConnector, ReplicaHost, ReplicaTarget } from '../../node/index.js';

export class DirectConnector implements ReplicaConnector {
  private readonly hosts = new Map<string, ReplicaHost>();
  private readonly down = new Set<string>();

  /** Makes node `nodeId` reachable through `host`. */
  add(nodeId: string, host: ReplicaHost): void {
    this.hosts.set(nodeId, host);
    this.down.delete(nodeId);
  }

  /** Makes node `nodeId` unreachable (true) or reachable again (false). */
  setDown(nodeId: string, down: boolean): void {
    if (down) this.down.add(nodeId);
    else this.down.delete(nodeId);
  }

  private host(nodeId: string): ReplicaHost {
    const host = this.hosts.get(nodeId);
    if (host === undefined || this.down.has(nodeId)) {
      throw new FerryError('UNAVAILABLE', `node ${nodeId} cannot be reached`);
    }
    return host;
  }

  async open(nodeId: string, target: ReplicaTarget): ReturnType<ReplicaHost['open']> {
    return this.host(nodeId).open(target);
  }

  async drop(nodeId: string, volumeId: string): Promise<void> {
    await this.host(nodeId).drop(volumeId);
  }
}

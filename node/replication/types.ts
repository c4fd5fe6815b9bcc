/**
 * Contracts of the replication transport: the credentials a node presents, what a server serves, and the address
 * of a volume in a request.
 */
import type { Replica } from '../engine/replica.js';

/** A node's TLS identity in the cluster: the cluster CA's certificate and the node's own certificate and key (PEM). */
export interface NodeCredentials {
  readonly caPem: string;
  readonly certPem: string;
  /** Secret: never log it. */
  readonly keyPem: string;
}

/** The operations of a replica a replication server dispatches to; a `Replica` (node/engine/replica.ts) is one. */
export type ServedReplica = Pick<Replica, 'read' | 'write' | 'writeZeroes' | 'trim' | 'flush'>;

/**
 * A volume's replica served by this node, with the epoch it holds. A request with an older epoch is refused
 * (FAILED_PRECONDITION); one with a newer epoch is served (adopting the newer epoch is the caller's business).
 */
export interface ServedVolume {
  readonly epoch: number;
  readonly replica: ServedReplica;
}

/** What a replication server serves. */
export interface ReplicationHandler {
  /**
   * The replica this node holds of `volumeId`, or undefined (the request fails NOT_FOUND). Called for every request,
   * in the order requests arrive; the replica's methods are called in that order too (their completions may not be).
   */
  volume(volumeId: string): ServedVolume | undefined;
}

/** The volume a request is for, and the sender's epoch of it. */
export interface VolumeTarget {
  readonly volumeId: string;
  readonly epoch: number;
}

/**
 * Contracts of the replication transport: the credentials a node presents, and what a server serves (a session per
 * connection, which answers each request).
 */
import type { RequestHeader } from './frame.js';

/** A node's TLS identity in the cluster: the cluster CA's certificate and the node's own certificate and key (PEM). */
export interface NodeCredentials {
  readonly caPem: string;
  readonly certPem: string;
  /** Secret: never log it. */
  readonly keyPem: string;
}

/** What a served request answers: the reply's `value` field (default 0) and payload (default none). */
export interface Served {
  value?: number;
  payload?: Buffer;
}

/** One connection's server side: it answers that connection's requests and forgets its state when it ends. */
export interface ReplicationSession {
  /**
   * Serves one request. Called synchronously in the order requests arrive (so what a request changes before its
   * first await, the next request sees); the answers may complete in any order. A rejection (a FerryError, or
   * anything else as INTERNAL) is the reply's status and message.
   */
  serve(request: RequestHeader, payload: Buffer): Promise<Served>;
  /** The connection ended: release what it opened (the server's `close` waits for it). */
  close(): Promise<void>;
}

/** What a replication server serves: a session for each accepted connection. */
export interface ReplicationHandler {
  /** A new connection from authenticated node `peerNodeId`. */
  connect(peerNodeId: string): ReplicationSession;
}

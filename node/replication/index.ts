/**
 * Node-to-node replication (issue 22): the wire (frame.ts), a pipelined client and server over mutual TLS, replicas
 * other nodes hold (`RemoteReplica`, reached through `RemoteReplicas`, the engine's ReplicaConnector) and this node's
 * service of its own (`serveReplicas`, over the engine's ReplicaHost).
 */
export { type Answer, type Call, ReplicationClient, type ReplicationClientOptions } from './client.js';
export { RemoteReplicas, type RemoteReplicasOptions } from './connector.js';
export { Op, type RequestHeader, StaleEpochError } from './frame.js';
export { RemoteReplica, type RemoteReplicaOpen } from './remote-replica.js';
export {
  type ReplicaService,
  replicaHandler,
  type ServeReplicasOptions,
  serveReplicas,
} from './replica-service.js';
export { ReplicationServer, type ReplicationServerOptions } from './server.js';
export { tlsOptions as replicationTlsOptions } from './tls.js';
export type { NodeCredentials, ReplicationHandler, ReplicationSession, Served } from './types.js';

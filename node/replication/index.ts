/** The node-to-node replication transport (issue 22): framing, client and server over mutual TLS. */
export { ReplicationClient, type ReplicationClientOptions } from './client.js';
export { ReplicationServer, type ReplicationServerOptions } from './server.js';
export type { NodeCredentials, ReplicationHandler, ServedReplica, ServedVolume, VolumeTarget } from './types.js';

/**
 * The sealed secrets of a test cluster: the real ClusterSecrets over a real store, several "nodes" sharing one store
 * (MemoryStore clients of one MemoryKv, or EtcdStore clients of one etcd) and one cluster secret.
 */
import { randomBytes } from 'node:crypto';
import { ClusterSecrets, type ClusterStore, MemoryKv, MemoryStore } from '../../node/index.js';

/** A cluster in memory: `node()` gives each node its own store client and ClusterSecrets. */
export interface TestSecretsCluster {
  kv: MemoryKv;
  clusterSecret: Buffer;
  /** A node's view: its own MemoryStore client and ClusterSecrets (`secret` overrides the cluster secret). */
  node(secret?: Buffer): { store: MemoryStore; secrets: ClusterSecrets };
}

/** A new in-memory cluster with a random 32-byte cluster secret. */
export function memorySecretsCluster(): TestSecretsCluster {
  const kv = new MemoryKv();
  const clusterSecret = randomBytes(32);
  return {
    kv,
    clusterSecret,
    node(secret = clusterSecret) {
      const store = new MemoryStore(kv);
      return { store, secrets: new ClusterSecrets(store, secret) };
    },
  };
}

/** ClusterSecrets over `store` with `clusterSecret`. */
export function secretsOn(store: ClusterStore, clusterSecret: Buffer): ClusterSecrets {
  return new ClusterSecrets(store, clusterSecret);
}

export {
  type CertifiedKey,
  type CreateCaOptions,
  certNodeId,
  createClusterCa,
  type IssueNodeCertOptions,
  issueNodeCert,
  verifyNodeCert,
} from './cluster/ca.js';
export {
  CLUSTER_SECRET_FILE,
  clusterNamespace,
  createClusterSecret,
  MIN_CLUSTER_SECRET_BYTES,
  parseClusterId,
  parseKvdb,
  parseLabels,
  readClusterSecret,
} from './cluster/config.js';
export { connectEtcd } from './cluster/etcd.js';
export type { EtcdStore, EtcdStoreOptions } from './cluster/etcd-store.js';
export { type HeldReplica, holdingsByNode, type NodeHoldings } from './cluster/holdings.js';
export { LeaseKeeper } from './cluster/lease-keeper.js';
export {
  type HeldLock,
  holderOf,
  LOCKS_PREFIX,
  type LockOptions,
  type LockRecord,
  lock,
  lockKey,
  tryLock,
} from './cluster/lock.js';
export {
  type Announcement,
  CLUSTER_KEY,
  type ClusterRecord,
  MEMBERS_PREFIX,
  type MemberRecord,
  type MemberStatus,
  Membership,
  type MembershipOptions,
  type MemberView,
  NODES_PREFIX,
  type NodeCapacity,
  type NodeRecord,
} from './cluster/membership.js';
export { MemoryKv, type MemoryKvOptions, MemoryStore } from './cluster/memory-store.js';
export {
  CA_CERT_KEY,
  CA_SECRET,
  clusterCa,
  type NodeCredentialsOptions,
  nodeCredentials,
  REPL_DIR,
} from './cluster/node-credentials.js';
export { loadNodeId, NODE_ID_FILE } from './cluster/node-id.js';
export {
  type MemberSource,
  MembershipPlacement,
  type PlacementNode,
  placeReplicas,
  RACK_LABEL,
  ZONE_LABEL,
} from './cluster/placement.js';
export { ClusterSecrets, SECRETS_PREFIX } from './cluster/sealed.js';
export { SqliteStore, type SqliteStoreOptions } from './cluster/sqlite-store.js';
export type {
  ClusterStore,
  Compare,
  Entry,
  KeyValue,
  LeaseId,
  ListOptions,
  ListPage,
  StoreOp,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
} from './cluster/types.js';
export type {
  PlacementPort,
  PlacementRequest,
  ReplicaConnector,
  ReplicaHost,
  ReplicaTarget,
} from './engine/cluster-ports.js';
export { RunsElsewhere } from './engine/cluster-ports.js';
export {
  BACKUP_SNAPSHOT_LABEL,
  DIRECT_ALIGN,
  MAX_HA_LEVEL,
  MAX_LABEL_KEY_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_LABELS,
  MAX_NAME_LENGTH,
  MAX_SNAPSHOTS,
  MAX_VOLUME_SIZE,
  REPLICATION_SETTINGS_KEY,
  SIZE_ALIGNMENT,
} from './engine/constants.js';
export { type EngineOptions, openEngine } from './engine/engine.js';
export { armFailpoints, failpoint } from './engine/failpoints.js';
export {
  ENCRYPTED_LABEL,
  KEK_LABEL,
  KEY_PROVIDER_LABEL,
  type VolumeEncryption,
  type VolumeKeyResolver,
  type WrappedVolumeKey,
} from './engine/keys.js';
export type { ReplicaRecord, ReplicationSettings, VolumeRecord, VolumeStatus } from './engine/records.js';
export type { RecentWrites, Replica, ReplicaDiffRequest, ReplicaSnapshot } from './engine/replica.js';
export { readReplicationSettings, updateReplicationSettings } from './engine/resync-manager.js';
export {
  humanBytes,
  isNoSpace,
  SpaceGuard,
  type SpaceOptions,
  type SpaceState,
  type SpaceStatus,
} from './engine/space.js';
export * from './engine/types.js';
export {
  acceptTlsPsk,
  defaultTlsMode,
  type IoObserver,
  type IoObserverFactory,
  isLoopback,
  NBD_TLS_MODES,
  type NbdAuthorize,
  type NbdIdentity,
  NbdProtocol,
  NbdServer,
  type NbdServerOptions,
  type NbdTlsMode,
  type NbdTlsOptions,
  SocketReader,
  StreamClosedError,
} from './nbd/index.js';
export {
  type Answer,
  type Call,
  type NodeCredentials,
  Op as ReplicationOp,
  RemoteReplica,
  type RemoteReplicaOpen,
  RemoteReplicas,
  type RemoteReplicasOptions,
  type ReplicaService,
  ReplicationClient,
  type ReplicationClientOptions,
  type ReplicationHandler,
  ReplicationServer,
  type ReplicationServerOptions,
  type ReplicationSession,
  type RequestHeader as ReplicationRequest,
  replicaHandler,
  replicationTlsOptions,
  type Served,
  type ServeReplicasOptions,
  StaleEpochError,
  serveReplicas,
} from './replication/index.js';

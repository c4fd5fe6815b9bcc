export { loadNodeId, NODE_ID_FILE } from './cluster/node-id.js';
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
  SIZE_ALIGNMENT,
} from './engine/constants.js';
export { type EngineOptions, openEngine } from './engine/engine.js';
export { armFailpoints } from './engine/failpoints.js';
export {
  ENCRYPTED_LABEL,
  type VolumeEncryption,
  type VolumeKeyResolver,
  type WrappedVolumeKey,
} from './engine/keys.js';
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
export { SqliteStore } from './store/sqlite-store.js';
export type { ClusterStore, KeyValue, StoreOp } from './store/types.js';

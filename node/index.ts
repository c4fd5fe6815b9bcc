export { type EngineOptions, openEngine } from './engine/engine.js';
export * from './engine/types.js';
export { NbdServer, type NbdServerOptions } from './nbd/index.js';
export { SqliteStore } from './store/sqlite-store.js';
export type { ClusterStore, KeyValue, StoreOp } from './store/types.js';

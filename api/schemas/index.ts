export * from './cloudbackups.js';
export * from './cluster.js';
export * from './common.js';
export * from './credentials.js';
export * from './keys.js';
export * from './schedules.js';
export * from './snapshots.js';
export * from './volumes.js';

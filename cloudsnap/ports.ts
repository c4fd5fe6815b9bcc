/**
 * What CloudSnap needs of the block engine, and nothing more: the two ports the pipeline is written against. A node
 * hands its engine (which has both shapes); the serverless handler, which has no engine, hands neither, and the
 * operations that need one answer UNAVAILABLE in one place (`JobManager`'s `blocks()`, jobs/manager.ts).
 */
import type { VolumeEngine } from '../node/index.js';

/**
 * Where a backup reads from: the volume, a snapshot of it taken for the backup (or a group's, taken at one point in
 * time for several volumes), the blocks that changed since the previous backup's snapshot, a read-only device on the
 * snapshot, and the release of snapshots no backup needs any more.
 */
export type SnapshotSource = Pick<
  VolumeEngine,
  | 'inspectVolume'
  | 'inspectSnapshot'
  | 'listSnapshots'
  | 'createSnapshot'
  | 'createSnapshots'
  | 'changedBlocks'
  | 'openExport'
  | 'deleteSnapshot'
>;

/**
 * Where a restore writes to: a new volume created in the `restoring` state, a writable device on it, and the step
 * that makes it an ordinary volume once every block is in (or the removal of a volume whose restore failed).
 */
export type RestoreTarget = Pick<
  VolumeEngine,
  'inspectVolume' | 'createVolume' | 'openForRestore' | 'completeRestore' | 'deleteVolume'
>;

/** Both ports: what a node's engine offers the backup jobs. */
export type BlockSource = SnapshotSource & RestoreTarget;

/**
 * Why an operation that needs a block source fails (UNAVAILABLE) in a process that has none. The API says the same
 * of its volume routes there.
 */
export const NO_BLOCK_SOURCE_MESSAGE =
  'the serverless handler has no block engine: send volume, backup and restore requests to a node (FERRY_NODE_API_URL)';

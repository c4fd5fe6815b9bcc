/**
 * The volume engine of a process that has none (the serverless handler): every call fails UNAVAILABLE with a message
 * that says where to send the request instead. It lets the handler build the same app and CloudBackups service a node
 * builds; only the operations that need no block device (catalog reads) then succeed.
 */
import { FerryError } from '../../common/index.js';
import type { BlockDevice, ChangedBlocksPage, SnapshotInfo, VolumeEngine, VolumeInfo } from '../../node/index.js';

/** Message of every refusal. */
export const NO_ENGINE_MESSAGE =
  'the serverless handler has no block engine: send volume, backup and restore requests to a node (FERRY_NODE_API_URL)';

function refuse(): Promise<never> {
  return Promise.reject(new FerryError('UNAVAILABLE', NO_ENGINE_MESSAGE));
}

/** A VolumeEngine that refuses every operation (closing it succeeds). */
export class NoEngine implements VolumeEngine {
  listExports(): Promise<string[]> {
    return refuse();
  }
  describeExport(): Promise<{ size: number; readOnly: boolean; blockSize: number }> {
    return refuse();
  }
  openExport(): Promise<BlockDevice> {
    return refuse();
  }
  createVolume(): Promise<{ volume: VolumeInfo; created: boolean }> {
    return refuse();
  }
  listVolumes(): Promise<VolumeInfo[]> {
    return refuse();
  }
  inspectVolume(): Promise<VolumeInfo> {
    return refuse();
  }
  updateVolume(): Promise<VolumeInfo> {
    return refuse();
  }
  deleteVolume(): Promise<void> {
    return refuse();
  }
  cloneVolume(): Promise<VolumeInfo> {
    return refuse();
  }
  createSnapshot(): Promise<SnapshotInfo> {
    return refuse();
  }
  listSnapshots(): Promise<SnapshotInfo[]> {
    return refuse();
  }
  inspectSnapshot(): Promise<SnapshotInfo> {
    return refuse();
  }
  deleteSnapshot(): Promise<void> {
    return refuse();
  }
  restoreSnapshot(): Promise<void> {
    return refuse();
  }
  changedBlocks(): Promise<ChangedBlocksPage> {
    return refuse();
  }
  openForRestore(): Promise<BlockDevice> {
    return refuse();
  }
  completeRestore(): Promise<VolumeInfo> {
    return refuse();
  }
  async close(): Promise<void> {}
}

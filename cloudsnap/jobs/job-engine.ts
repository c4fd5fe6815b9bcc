/**
 * The block source (ports.ts) as one job sees it: a pause gate in front of every block read and write (a paused job
 * stops issuing I/O at the next chunk batch, a safe point, and continues there on resume), and, for group backups,
 * the snapshot taken for the whole group served in place of a new one.
 */
import type { BlockDevice, SnapshotInfo } from '../../node/index.js';
import type { BlockSource } from '../ports.js';

/** Holds a job's block I/O while paused. */
export class PauseGate {
  private waiters: Array<() => void> = [];
  private pausedFlag = false;

  get paused(): boolean {
    return this.pausedFlag;
  }

  pause(): void {
    this.pausedFlag = true;
  }

  resume(): void {
    this.pausedFlag = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves at once unless paused; then on resume. Rejects with the signal's reason when it aborts (Stop). */
  async wait(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (!this.pausedFlag) return;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      this.waiters.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function gatedDevice(device: BlockDevice, gate: PauseGate, signal: AbortSignal): BlockDevice {
  return {
    get name() {
      return device.name;
    },
    get size() {
      return device.size;
    },
    get readOnly() {
      return device.readOnly;
    },
    get blockSize() {
      return device.blockSize;
    },
    read: async (offset, length, into) => {
      await gate.wait(signal);
      return device.read(offset, length, into);
    },
    write: async (offset, data, options) => {
      await gate.wait(signal);
      return device.write(offset, data, options);
    },
    writeZeroes: async (offset, length, options) => {
      await gate.wait(signal);
      return device.writeZeroes(offset, length, options);
    },
    trim: async (offset, length, options) => {
      await gate.wait(signal);
      return device.trim(offset, length, options);
    },
    flush: () => device.flush(),
    blockStatus: (offset, length) => device.blockStatus(offset, length),
    close: () => device.close(),
  };
}

export interface JobBlockSourceOptions {
  gate: PauseGate;
  /** The job's signal: a Stop ends a pause. */
  signal: AbortSignal;
  /** Group backups: the group's snapshot of this job's volume, handed out by the next `createSnapshot` of it. */
  snapshot?: SnapshotInfo;
}

/** Wraps `source` for one job (see the file comment). */
export function jobBlockSource(source: BlockSource, options: JobBlockSourceOptions): BlockSource {
  const { gate, signal } = options;
  let pending = options.snapshot;
  const createSnapshots = source.createSnapshots?.bind(source);
  return {
    inspectVolume: (idOrName) => source.inspectVolume(idOrName),
    inspectSnapshot: (idOrExport) => source.inspectSnapshot(idOrExport),
    changedBlocks: (volume, request) => source.changedBlocks(volume, request),
    deleteSnapshot: (idOrExport) => source.deleteSnapshot(idOrExport),
    createVolume: (request) => source.createVolume(request),
    completeRestore: (idOrName) => source.completeRestore(idOrName),
    deleteVolume: (idOrName) => source.deleteVolume(idOrName),
    ...(createSnapshots !== undefined && { createSnapshots }),
    openExport: async (name) => gatedDevice(await source.openExport(name), gate, signal),
    openForRestore: async (idOrName) => gatedDevice(await source.openForRestore(idOrName), gate, signal),
    createSnapshot: async (volume, request) => {
      const taken = pending;
      if (taken !== undefined && (volume === taken.volume_id || volume === taken.volume_name)) {
        pending = undefined;
        return taken;
      }
      return source.createSnapshot(volume, request);
    },
    // Until the backup has taken it over, the group's snapshot is not one of its orphans to remove.
    listSnapshots: async (volume) => {
      const list = await source.listSnapshots(volume);
      return pending === undefined ? list : list.filter((s) => s.id !== pending?.id);
    },
  };
}

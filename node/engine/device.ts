import { FerryError } from '../../common/index.js';
import { GRANULE } from './constants.js';
import type { VolumeCoordinator } from './coordinator.js';
import type { Gate } from './gate.js';
import type { BlockDevice, StatusExtent, WriteOptions } from './types.js';

/**
 * A volume (writable) or snapshot (read-only) opened for I/O: the `BlockDevice` the NBD server and the engine's
 * callers use. It checks each request (bounds, read-only, closed) and hands it to the volume's coordinator. Changes
 * and flushes pass the attachment's `gate` (shared) when one is given: a snapshot holds it exclusively to cut every
 * replica at the same point of the write stream (docs/REPLICATION.md, S1).
 */
export class VolumeDevice implements BlockDevice {
  readonly blockSize = GRANULE;
  private closed = false;

  constructor(
    readonly name: string,
    readonly size: number,
    readonly readOnly: boolean,
    private readonly coordinator: VolumeCoordinator,
    /** Called once the device is closed (after its last flush); close resolves after it. */
    private readonly onClose: () => void | Promise<void>,
    /** The attachment's write gate; absent: none (a read-only view). */
    private readonly gate?: Gate,
    /**
     * Whether writes must wait (a promise to wait for) or fail (it throws) now: a migration's cutover. Checked again
     * once a write has entered the gate, so none slips past a hold taken while it waited.
     */
    private readonly hold?: () => Promise<void> | undefined,
  ) {}

  /** Runs a change: waits out a hold, then enters the gate shared (and re-checks the hold there). */
  private async changing<T>(fn: () => Promise<T>): Promise<T> {
    const hold = this.hold;
    const gate = this.gate;
    if (hold === undefined || gate === undefined) return this.gated(fn);
    for (;;) {
      const wait = hold();
      if (wait !== undefined) {
        await wait;
        // Closed while it waited: the write was never started, and now cannot be.
        if (this.closed) throw new FerryError('FAILED_PRECONDITION', `export ${this.name} is closed`);
        continue;
      }
      if (!gate.tryEnterShared()) await gate.enterShared();
      if (hold() !== undefined) {
        gate.leaveShared();
        continue;
      }
      break;
    }
    try {
      return await fn();
    } finally {
      gate.leaveShared();
    }
  }

  private async gated<T>(fn: () => Promise<T>): Promise<T> {
    const gate = this.gate;
    if (gate === undefined) return fn();
    if (!gate.tryEnterShared()) await gate.enterShared();
    try {
      return await fn();
    } finally {
      gate.leaveShared();
    }
  }

  private check(offset: number, length: number, writing: boolean): void {
    if (this.closed) throw new FerryError('FAILED_PRECONDITION', `export ${this.name} is closed`);
    if (writing && this.readOnly) {
      throw new FerryError('PERMISSION_DENIED', `export ${this.name} is read-only (snapshots cannot be written)`);
    }
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new FerryError('INVALID_ARGUMENT', `offset and length must be non-negative integers`, { field: 'offset' });
    }
    if (offset + length > this.size) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        `I/O at ${offset}+${length} is past the end of ${this.name} (${this.size} bytes)`,
        { field: 'offset' },
      );
    }
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.check(offset, length, false);
    if (into !== undefined && into.length < length) {
      throw new FerryError('INVALID_ARGUMENT', `a read of ${length} bytes does not fit a ${into.length}-byte buffer`);
    }
    return this.coordinator.read(offset, length, into);
  }

  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.check(offset, data.length, true);
    return this.changing(() => this.coordinator.write(offset, data, options));
  }

  async writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.check(offset, length, true);
    return this.changing(() => this.coordinator.writeZeroes(offset, length, options));
  }

  async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.check(offset, length, true);
    return this.changing(() => this.coordinator.trim(offset, length, options));
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    return this.gated(() => this.coordinator.flush());
  }

  async blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    this.check(offset, length, false);
    return this.coordinator.blockStatus(offset, length);
  }

  /** Set once close() has started: resolves when the device is closed and its writer slot released. */
  closing: Promise<void> | undefined;

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.flush();
      } finally {
        this.closed = true;
        await this.onClose();
      }
    })();
    return this.closing;
  }
}

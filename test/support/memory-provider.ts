/**
 * An in-memory ExportProvider for protocol tests. Volumes are Maps of 4 KiB blocks (absent = never written, trimmed
 * or zeroed); a snapshot is a frozen copy of a volume's map exported read-only as `VOLUME@SNAPSHOT`. It keeps the
 * BlockDevice contract: zeros for unwritten ranges, 'zero' extents for them, INVALID_ARGUMENT out of range,
 * PERMISSION_DENIED for writes to read-only devices, FAILED_PRECONDITION for a second writer of a volume.
 */
import { FerryError, invalidArgument } from '../../common/index.js';
import type { BlockDevice, ExportProvider, StatusExtent, WriteOptions } from '../../node/index.js';

export const BLOCK = 4096;
const MiB = 1024 * 1024;

interface Image {
  size: number;
  blocks: Map<number, Buffer>;
  readOnly: boolean;
  /** The writer currently attached (volumes only). */
  writer: MemoryDevice | undefined;
}

export interface MemoryProviderOptions {
  /** Size of the "disk" volume; default 64 MiB. */
  size?: number;
}

/** Exports "disk" (read-write, one writer at a time) and "disk@snap" (read-only snapshot of the empty disk). */
export class MemoryProvider implements ExportProvider {
  private readonly images = new Map<string, Image>();
  /** Every device ever opened, for assertions (e.g. that disconnects close devices). */
  readonly opened: MemoryDevice[] = [];

  constructor(options: MemoryProviderOptions = {}) {
    this.addVolume('disk', options.size ?? 64 * MiB);
    this.snapshot('disk', 'snap');
  }

  addVolume(name: string, size: number): void {
    this.images.set(name, { size, blocks: new Map(), readOnly: false, writer: undefined });
  }

  /** Freezes the volume's current content as `VOLUME@SNAPSHOT`. */
  snapshot(volume: string, snapshot: string): string {
    const image = this.image(volume);
    const blocks = new Map<number, Buffer>();
    for (const [index, block] of image.blocks) blocks.set(index, Buffer.from(block));
    const name = `${volume}@${snapshot}`;
    this.images.set(name, { size: image.size, blocks, readOnly: true, writer: undefined });
    return name;
  }

  /** Allocated block indexes of an export (for tests that check holes). */
  allocatedBlocks(name: string): number[] {
    return [...this.image(name).blocks.keys()].sort((a, b) => a - b);
  }

  async listExports(): Promise<string[]> {
    return [...this.images.keys()];
  }

  async describeExport(name: string): Promise<{ size: number; readOnly: boolean; blockSize: number }> {
    const image = this.image(name);
    return { size: image.size, readOnly: image.readOnly, blockSize: BLOCK };
  }

  async openExport(name: string): Promise<BlockDevice> {
    const image = this.image(name);
    if (!image.readOnly && image.writer) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `volume ${name} is already attached to another writer; disconnect it first, or read a snapshot instead`,
      );
    }
    const device = new MemoryDevice(name, image, () => {
      if (image.writer === device) image.writer = undefined;
    });
    if (!image.readOnly) image.writer = device;
    this.opened.push(device);
    return device;
  }

  private image(name: string): Image {
    const image = this.images.get(name);
    if (!image)
      throw new FerryError('NOT_FOUND', `no export named ${JSON.stringify(name)}; list them with nbdinfo --list`);
    return image;
  }
}

export class MemoryDevice implements BlockDevice {
  readonly size: number;
  readonly readOnly: boolean;
  readonly blockSize = BLOCK;
  closed = false;
  flushes = 0;

  constructor(
    readonly name: string,
    private readonly image: Image,
    private readonly release: () => void,
  ) {
    this.size = image.size;
    this.readOnly = image.readOnly;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.check(offset, length, false);
    const out = into === undefined ? Buffer.alloc(length) : into.fill(0, 0, length).subarray(0, length);
    this.forEachBlock(offset, length, (index, from, to, at) => {
      this.image.blocks.get(index)?.copy(out, at, from, to);
    });
    return out;
  }

  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.check(offset, data.length, true);
    this.forEachBlock(offset, data.length, (index, from, to, at) => {
      let block = this.image.blocks.get(index);
      if (!block) {
        block = Buffer.alloc(BLOCK);
        this.image.blocks.set(index, block);
      }
      data.copy(block, from, at, at + (to - from));
    });
    if (options?.fua) this.flushes++;
  }

  async writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.zero(offset, length);
    if (options?.fua) this.flushes++;
  }

  async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.zero(offset, length);
    if (options?.fua) this.flushes++;
  }

  async flush(): Promise<void> {
    this.checkOpen();
    this.flushes++;
  }

  async blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    this.check(offset, length, false);
    const extents: StatusExtent[] = [];
    this.forEachBlock(offset, length, (index, from, to) => {
      const state = this.image.blocks.has(index) ? 'data' : 'zero';
      const last = extents[extents.length - 1];
      if (last && last.state === state) last.length += to - from;
      else extents.push({ length: to - from, state });
    });
    return extents;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flushes++;
    this.closed = true;
    this.release();
  }

  /** Frees whole blocks, zero-fills the partial ones at the edges. */
  private zero(offset: number, length: number): void {
    this.check(offset, length, true);
    this.forEachBlock(offset, length, (index, from, to) => {
      if (from === 0 && to === BLOCK) this.image.blocks.delete(index);
      else this.image.blocks.get(index)?.fill(0, from, to);
    });
  }

  /** Calls fn for each block the range touches: block index, byte range inside the block, position in the range. */
  private forEachBlock(
    offset: number,
    length: number,
    fn: (index: number, from: number, to: number, at: number) => void,
  ) {
    let at = 0;
    while (at < length) {
      const position = offset + at;
      const index = Math.floor(position / BLOCK);
      const from = position - index * BLOCK;
      const to = Math.min(BLOCK, from + (length - at));
      fn(index, from, to, at);
      at += to - from;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new FerryError('FAILED_PRECONDITION', `device ${this.name} is closed`);
  }

  private check(offset: number, length: number, writing: boolean): void {
    this.checkOpen();
    if (writing && this.readOnly) throw new FerryError('PERMISSION_DENIED', `${this.name} is read-only`);
    if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArgument('offset', `must be >= 0, got ${offset}`);
    if (!Number.isSafeInteger(length) || length < 0) throw invalidArgument('length', `must be >= 0, got ${length}`);
    if (offset + length > this.size) {
      throw invalidArgument('offset', `range ${offset}+${length} is past the end of ${this.name} (${this.size} bytes)`);
    }
  }
}

import type { BlockDevice, ExportProvider, StatusExtent } from '../node/index.js';

/**
 * An export that stores nothing and returns garbage: fio against it measures the NBD server alone (protocol,
 * sockets, event loop), the ceiling the engine's own cost is added to. For benchmarks only.
 */
export class NullProvider implements ExportProvider {
  constructor(private readonly size: number) {}

  async listExports(): Promise<string[]> {
    return ['null'];
  }

  async describeExport(): Promise<{ size: number; readOnly: boolean; blockSize: number }> {
    return { size: this.size, readOnly: false, blockSize: 4096 };
  }

  async openExport(name: string): Promise<BlockDevice> {
    const size = this.size;
    return {
      name,
      size,
      readOnly: false,
      blockSize: 4096,
      read: async (_offset: number, length: number) => Buffer.allocUnsafe(length),
      write: async () => undefined,
      writeZeroes: async () => undefined,
      trim: async () => undefined,
      flush: async () => undefined,
      blockStatus: async (_offset: number, length: number): Promise<StatusExtent[]> => [{ length, state: 'data' }],
      close: async () => undefined,
    };
  }
}

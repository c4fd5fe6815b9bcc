/**
 * Test fixture of the replication transport: a cluster CA with certificates for nodes a, b and c, a stranger CA
 * with one for a node named b, an in-memory replica whose operations can be held until a test releases them, a
 * ReplicaHost serving such replicas, and one serving an engine's open volume (for benchmarks).
 */
import { FerryError } from '../../common/index.js';
import { native } from '../../common/native/index.js';
import type {
  BlockDevice,
  ChangedBlocksPage,
  NodeCredentials,
  RecentWrites,
  Replica,
  ReplicaHost,
  ReplicaSnapshot,
  ReplicaTarget,
  StatusExtent,
} from '../../node/index.js';
import { type CertifiedKey, createClusterCa, issueNodeCert } from '../../node/index.js';

export interface Pki {
  a: NodeCredentials;
  b: NodeCredentials;
  c: NodeCredentials;
  /** A certificate for "node-b" from another CA (with that CA as its trust root). */
  stranger: NodeCredentials;
}

function credentials(ca: CertifiedKey, node: CertifiedKey): NodeCredentials {
  return { caPem: ca.certPem, certPem: node.certPem, keyPem: node.keyPem };
}

export async function makePki(): Promise<Pki> {
  const ca = await createClusterCa({ clusterId: 'test' });
  const other = await createClusterCa({ clusterId: 'other' });
  const addresses = ['127.0.0.1', 'localhost'];
  const [a, b, c, s] = await Promise.all([
    issueNodeCert(ca, { nodeId: 'node-a', addresses }),
    issueNodeCert(ca, { nodeId: 'node-b', addresses }),
    issueNodeCert(ca, { nodeId: 'node-c', addresses }),
    issueNodeCert(other, { nodeId: 'node-b', addresses }),
  ]);
  return { a: credentials(ca, a), b: credentials(ca, b), c: credentials(ca, c), stranger: credentials(other, s) };
}

export interface Call {
  op: 'read' | 'write' | 'writeZeroes' | 'trim' | 'flush' | 'snapshot' | 'commit' | 'abandon' | 'close';
  offset: number;
  length: number;
  fua: boolean;
}

/**
 * A replica in memory. With `hold` set, every read, write, zero, trim and flush waits until `release` lets it go (in
 * any order the test chooses); `held` is the operations waiting now and `maxHeldBytes` the most write and read bytes
 * held at once. Snapshots are recorded as calls (no frozen point is kept); `close` is recorded and changes nothing.
 */
export class MemoryReplica implements Replica {
  readonly nodeId = 'node-b';
  readonly data: Buffer;
  private changes = 0;
  readonly calls: Call[] = [];
  /** The writes asked to be uncached, and whether their data was page-aligned (writable past the page cache). */
  readonly uncachedWrites: { offset: number; length: number; aligned: boolean }[] = [];
  hold = false;
  readonly held: { call: Call; go: () => void }[] = [];
  maxHeldBytes = 0;
  private heldBytes = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(size: number) {
    this.data = Buffer.alloc(size);
  }

  /** Resolves when `count` operations are held. */
  async heldCount(count: number): Promise<void> {
    while (this.held.length < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /**
   * Waits up to `ms` for `count` operations to be held; true if they were. For checking that something does NOT
   * happen (a bound holds): with the bound, it never does, so the result never depends on the machine's speed.
   */
  async heldWithin(count: number, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const reached = await Promise.race([this.heldCount(count).then(() => true as const), timeout]);
    clearTimeout(timer);
    return reached;
  }

  /** Lets held operation `index` (0: the oldest held) complete. */
  release(index = 0): void {
    const [entry] = this.held.splice(index, 1);
    entry?.go();
  }

  releaseAll(): void {
    for (const entry of this.held.splice(0)) entry.go();
  }

  async read(offset: number, length: number): Promise<Buffer> {
    await this.gate({ op: 'read', offset, length, fua: false });
    return Buffer.from(this.data.subarray(offset, offset + length));
  }

  async write(offset: number, data: Buffer, options?: { fua?: boolean; uncached?: boolean }): Promise<void> {
    if (options?.uncached === true) {
      this.uncachedWrites.push({ offset, length: data.length, aligned: native.alignmentGap(data, 4096) === 0 });
    }
    await this.gate({ op: 'write', offset, length: data.length, fua: options?.fua === true });
    data.copy(this.data, offset);
    this.changes += 1;
  }

  async writeZeroes(offset: number, length: number, options?: { fua?: boolean }): Promise<void> {
    await this.gate({ op: 'writeZeroes', offset, length, fua: options?.fua === true });
    this.data.fill(0, offset, offset + length);
    this.changes += 1;
  }

  async trim(offset: number, length: number, options?: { fua?: boolean }): Promise<void> {
    await this.gate({ op: 'trim', offset, length, fua: options?.fua === true });
    this.data.fill(0, offset, offset + length);
    this.changes += 1;
  }

  async flush(): Promise<void> {
    await this.gate({ op: 'flush', offset: 0, length: 0, fua: false });
  }

  async blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    return [{ length, state: this.data.subarray(offset, offset + length).some((b) => b !== 0) ? 'data' : 'zero' }];
  }

  async snapshot(snapshotId: string, headId?: string): Promise<ReplicaSnapshot> {
    const record = (op: Call['op']) => this.calls.push({ op, offset: 0, length: 0, fua: false });
    record('snapshot');
    return {
      ops: [{ op: 'put', key: `/test/${snapshotId}`, value: { snapshotId } }],
      point: `point-${snapshotId}`,
      head: headId ?? `head-${snapshotId}`,
      commit: () => {
        record('commit');
        this.changes += 1;
      },
      abandon: () => record('abandon'),
    };
  }

  async changedBlocks(): Promise<ChangedBlocksPage> {
    return { extents: [], block_size: 4096, size: this.data.length };
  }

  generation(): number {
    return this.changes;
  }

  /** What `recentWrites` answers (a test sets it). */
  recent: RecentWrites = { complete: true, ranges: [] };

  async recentWrites(): Promise<RecentWrites> {
    return this.recent;
  }

  async close(): Promise<void> {
    this.calls.push({ op: 'close', offset: 0, length: 0, fua: false });
  }

  private async gate(call: Call): Promise<void> {
    this.calls.push(call);
    if (call.offset + call.length > this.data.length) {
      throw new FerryError('INVALID_ARGUMENT', `offset: ${call.offset}+${call.length} is past the end of the replica`);
    }
    if (!this.hold) return;
    const bytes = call.op === 'write' || call.op === 'read' ? call.length : 0;
    this.heldBytes += bytes;
    this.maxHeldBytes = Math.max(this.maxHeldBytes, this.heldBytes);
    await new Promise<void>((go) => {
      this.held.push({ call, go });
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.heldBytes -= bytes;
  }
}

/** A ReplicaHost holding one MemoryReplica for each volume id in `replicas`; records the drops. */
export class MemoryHost implements ReplicaHost {
  readonly dropped: string[] = [];
  readonly opened: ReplicaTarget[] = [];

  constructor(readonly replicas: Map<string, MemoryReplica>) {}

  async open(target: ReplicaTarget): Promise<Replica> {
    const replica = this.replicas.get(target.volumeId);
    if (replica === undefined) throw new FerryError('NOT_FOUND', `no replica of volume "${target.volumeId}" here`);
    this.opened.push(target);
    return replica;
  }

  async drop(volumeId: string): Promise<void> {
    this.dropped.push(volumeId);
    this.replicas.delete(volumeId);
  }
}

/**
 * A ReplicaHost serving one volume an engine has open, through its BlockDevice (the engine's coordinator over its
 * LocalReplica): for benchmarks comparing the wire with direct calls to the same replica. Data operations only:
 * snapshots and changed blocks are FAILED_PRECONDITION; closing a replica leaves the device open.
 */
export class DeviceHost implements ReplicaHost {
  constructor(
    readonly volumeId: string,
    readonly device: BlockDevice,
    readonly nodeId = 'node-b',
  ) {}

  async open(target: ReplicaTarget): Promise<Replica> {
    if (target.volumeId !== this.volumeId || target.snapshotId !== undefined) {
      throw new FerryError('NOT_FOUND', `no replica of ${target.volumeId} here`);
    }
    const device = this.device;
    const unsupported = (what: string) =>
      Promise.reject(new FerryError('FAILED_PRECONDITION', `${what} is not offered by the benchmark's device host`));
    return {
      nodeId: this.nodeId,
      read: (offset, length, into) => device.read(offset, length, into),
      write: (offset, data, options) => device.write(offset, data, options),
      writeZeroes: (offset, length, options) => device.writeZeroes(offset, length, options),
      trim: (offset, length, options) => device.trim(offset, length, options),
      flush: () => device.flush(),
      blockStatus: (offset, length) => device.blockStatus(offset, length),
      snapshot: () => unsupported('a snapshot'),
      changedBlocks: () => unsupported('changed blocks'),
      generation: () => 0,
      recentWrites: () => unsupported('recent writes'),
      close: async () => {},
    };
  }

  async drop(): Promise<void> {}
}

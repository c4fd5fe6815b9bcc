import { FerryError } from '../../common/index.js';
import { chainLoaded, chainOf, loadChain, resolve, type Segment } from './chain.js';
import { changedPage, diffLayers } from './changed-blocks.js';
import { GRANULE } from './constants.js';
import type { Gate, KeyedLock } from './gate.js';
import { ABSENT, DATA, ZERO } from './granule-map.js';
import type { IoTracker } from './io-tracker.js';
import { directBuffer, type Layer } from './layer.js';
import type { LayerSet } from './layer-set.js';
import type { LocalLayerKeys } from './local-layers.js';
import { RecentWriteLog } from './recent-writes.js';
import {
  type RecentWrites,
  type Replica,
  type ReplicaDiffRequest,
  type ReplicaSnapshot,
  StaleEpochError,
} from './replica.js';
import { isNoSpace, type SpaceGuard } from './space.js';
import type { ChangedBlocksPage, StatusExtent, WriteOptions } from './types.js';
import type { GranuleCipher } from './xts.js';

/** What a device needs from the engine: the view's current top layer and the volume's concurrency controls. */
export interface ViewSource {
  /** The layer the view reads from (and, for a volume, writes to). */
  top(): Layer;
  readonly gate: Gate;
  readonly locks: KeyedLock;
  readonly tracker: IoTracker;
  /** The data directory's space guard (a writable view's): writes that need new blocks stop when it is full. */
  readonly space?: SpaceGuard;
}

/** Whether the top layer holds every granule of [g0, g1) already (a write there overwrites blocks it has). */
function allHeld(top: Layer, g0: number, g1: number): boolean {
  let next = g0;
  for (const r of top.granules.presentRuns(g0, g1)) {
    if (r.state !== DATA || r.start !== next) return false;
    next = r.start + r.count;
  }
  return next >= g1;
}

/**
 * Reads a resolved segment list into `out`, whose byte 0 is volume offset `base`. With a cipher, DATA is read in
 * whole granules and decrypted; zeros (holes, ZERO and unallocated granules) are never decrypted.
 */
async function fill(
  out: Buffer,
  base: number,
  segments: readonly Segment[],
  cipher: GranuleCipher | undefined,
): Promise<void> {
  const end = base + out.length;
  const reads: Promise<void>[] = [];
  for (const s of segments) {
    const from = Math.max(base, s.start * GRANULE);
    const to = Math.min(end, (s.start + s.count) * GRANULE);
    if (to <= from) continue;
    if (s.layer === undefined || s.state !== DATA) out.fill(0, from - base, to - base);
    else if (cipher === undefined) reads.push(s.layer.readData(out, from - base, to - from, from));
    else reads.push(readDecrypted(s.layer, cipher, out, base, from, to));
  }
  await Promise.all(reads);
}

/** Reads volume bytes [from, to) of `layer` into `out` (byte 0 = volume offset `base`), decrypting whole granules. */
async function readDecrypted(
  layer: Layer,
  cipher: GranuleCipher,
  out: Buffer,
  base: number,
  from: number,
  to: number,
): Promise<void> {
  const a0 = Math.floor(from / GRANULE) * GRANULE;
  const a1 = Math.ceil(to / GRANULE) * GRANULE;
  if (a0 === from && a1 === to) {
    await layer.readData(out, from - base, to - from, from);
    cipher.decryptInPlace(out, from - base, to - from, from / GRANULE);
    return;
  }
  const tmp = Buffer.allocUnsafe(a1 - a0);
  await layer.readData(tmp, 0, tmp.length, a0);
  cipher.decryptInPlace(tmp, 0, tmp.length, a0 / GRANULE);
  tmp.copy(out, from - base, from - a0, to - a0);
}

/** What a volume's replica needs to snapshot itself and diff its snapshots: its node's layer tree. */
export interface ReplicaTree {
  /** This node's layers. */
  readonly layers: LayerSet;
  /** The keys of this node's layer records. */
  readonly local: LocalLayerKeys;
  /** The frozen layer of snapshot `snapshotId` of this volume (the caller has checked it exists). */
  layerOf(snapshotId: string): Layer;
  /** Makes `layer` the volume's writable top (after a snapshot's commit). */
  setTop(layer: Layer): void;
  /** The volume's change counter (kept by the volume, so it outlives each open). */
  readonly progress: { generation: number };
  /** The volume's recent writes (R12; kept by the volume, so it outlives each open). Default: one per open. */
  readonly recent?: RecentWriteLog;
  /**
   * Settles a staged head whose commit never arrived (S4, local-layers.ts `settleLostHead`): true when it was
   * committed. Absent: such a head is abandoned.
   */
  settleLost?(headId: string): Promise<boolean>;
}

/**
 * The epoch a writable replica was opened under and the highest one its node has durably opened for the volume
 * (F3): once they differ (a later coordinator opened it, maybe in this very process), every call is refused.
 */
export interface ReplicaFence {
  readonly epoch: number;
  held(): number;
}

/**
 * A volume's replica on this node: its layer tree (writable, through the volume's top layer), or a read-only view of
 * one of its snapshots (no `tree`). Encrypted volumes' granules are sealed with `cipher` (AES-XTS) as they reach the
 * layer files.
 */
export class LocalReplica implements Replica {
  private readonly localProgress = { generation: 0 };
  private readonly localRecent = new RecentWriteLog();
  private closed = false;

  constructor(
    readonly nodeId: string,
    /** For messages: `VOLUME` or `VOLUME@SNAPSHOT`. */
    private readonly name: string,
    private readonly source: ViewSource,
    /** The volume's cipher when it is encrypted; released by close. */
    private readonly cipher: GranuleCipher | undefined,
    /** The volume's tree: a replica's snapshots and diffs need it; absent for a view that only reads. */
    private readonly tree?: ReplicaTree,
    /** Whether it takes writes and snapshots: true for the volume's replica, false for a snapshot's view. */
    private readonly writable: boolean = tree !== undefined,
    /** The open's epoch (F3); absent: not fenced (a snapshot's view, a test's replica). */
    private readonly fence?: ReplicaFence,
  ) {}

  private get recent(): RecentWriteLog {
    return this.tree?.recent ?? this.localRecent;
  }

  private get progress(): { generation: number } {
    return this.tree?.progress ?? this.localProgress;
  }

  generation(): number {
    return this.progress.generation;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cipher?.release();
  }

  /** A closed replica refuses every call, and so does one a later epoch fenced (F3). */
  private checkOpen(): void {
    if (this.closed) throw new FerryError('FAILED_PRECONDITION', `the replica of ${this.name} is closed`);
    if (this.fence === undefined) return;
    const held = this.fence.held();
    if (held !== this.fence.epoch) {
      throw new StaleEpochError(
        held,
        `fenced: the replica of ${this.name} on node ${this.nodeId} was opened under epoch ${held}, and this request has the older epoch ${this.fence.epoch} (its coordinator lost the volume)`,
      );
    }
  }

  async recentWrites(): Promise<RecentWrites> {
    this.checkOpen();
    if (this.tree === undefined || !this.writable) return { complete: true, ranges: [] };
    return this.recent.recent();
  }

  private needTree(): ReplicaTree {
    this.checkOpen();
    if (this.tree === undefined || !this.writable) {
      throw new FerryError('PERMISSION_DENIED', `export ${this.name} is read-only (snapshots cannot be written)`);
    }
    return this.tree;
  }

  /** The tree, for diffs (a snapshot's view has it too when the engine gives it). */
  private diffTree(): ReplicaTree {
    this.checkOpen();
    if (this.tree === undefined) {
      throw new FerryError('FAILED_PRECONDITION', `export ${this.name} cannot list changed blocks: it has no tree`);
    }
    return this.tree;
  }

  async snapshot(_snapshotId: string, headId?: string): Promise<ReplicaSnapshot> {
    const tree = this.needTree();
    const frozen = this.source.top();
    await frozen.flush();
    const top = tree.layers.create(frozen, false, headId);
    const commit = (): void => {
      frozen.frozen = true;
      tree.layers.unref(frozen);
      tree.setTop(top);
      this.progress.generation++;
    };
    const abandon = (): void => tree.layers.discard(top);
    return {
      ops: [tree.local.put({ ...frozen.record, frozen: true }), tree.local.put(top.record)],
      point: frozen.id,
      head: top.id,
      commit,
      abandon,
      lost: async () => {
        if (tree.settleLost !== undefined && (await tree.settleLost(top.id))) commit();
        else abandon();
      },
    };
  }

  async changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    const tree = this.diffTree();
    const { size, offset, limit } = request;
    const targetLayer =
      request.target_snapshot_id !== undefined ? tree.layerOf(request.target_snapshot_id) : this.source.top();
    const targetChain = chainOf(targetLayer);
    await loadChain(targetChain);
    if (request.base_snapshot_id === undefined) return changedPage(targetChain, 'data', size, offset, limit);
    const baseLayer = tree.layerOf(request.base_snapshot_id);
    await loadChain(chainOf(baseLayer));
    return changedPage(diffLayers(baseLayer, targetLayer), 'union', size, offset, limit);
  }

  private async withIo<T>(fn: () => Promise<T>): Promise<T> {
    this.checkOpen();
    if (!this.source.gate.tryEnterShared()) await this.source.gate.enterShared();
    const epoch = this.source.tracker.enter();
    try {
      return await fn();
    } finally {
      this.source.tracker.leave(epoch);
      this.source.gate.leaveShared();
    }
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.withIo(async () => {
      const out = into === undefined ? Buffer.allocUnsafe(length) : into.subarray(0, length);
      if (length === 0) return out;
      const chain = chainOf(this.source.top());
      if (!chainLoaded(chain)) await loadChain(chain);
      const segments = resolve(chain, Math.floor(offset / GRANULE), Math.ceil((offset + length) / GRANULE));
      await fill(out, offset, segments, this.cipher);
      return out;
    });
  }

  async write(offset: number, data: Buffer, options: WriteOptions = {}): Promise<void> {
    this.needTree();
    if (data.length === 0) return;
    await this.withIo(async () => {
      if (this.source.space?.full === true) await this.checkRoom(offset, data.length);
      this.recent.note(offset, data.length);
      try {
        await this.writeUnderGate(offset, data, options.uncached === true);
        this.progress.generation++;
      } catch (err: unknown) {
        throw await this.noSpace(err, `a write of ${data.length} bytes at ${offset} to ${this.name}`);
      }
    });
    if (options.fua === true) await this.flush();
  }

  /**
   * When the data directory is full, RESOURCE_EXHAUSTED (ENOSPC to an NBD client) for a write that would need new
   * blocks; overwrites of granules the top layer holds go on (they allocate nothing).
   */
  private async checkRoom(offset: number, length: number): Promise<void> {
    const space = this.source.space;
    if (space === undefined) return;
    const top = this.source.top();
    await top.load();
    if (allHeld(top, Math.floor(offset / GRANULE), Math.ceil((offset + length) / GRANULE))) return;
    throw space.exhausted(
      `a write of ${length} bytes at ${offset} to ${this.name} cannot be stored`,
      await space.status(),
    );
  }

  /** `err` as RESOURCE_EXHAUSTED naming the space when it says the file system is full; else `err` itself. */
  private async noSpace(err: unknown, what: string): Promise<unknown> {
    if (!isNoSpace(err)) return err;
    const space = this.source.space;
    if (space === undefined) {
      return new FerryError('RESOURCE_EXHAUSTED', `${what} cannot be stored: the data directory is full`, {
        cause: err,
      });
    }
    return space.exhaustedNow(`${what} cannot be stored`, err);
  }

  /** The write path: in place where the top layer already holds the granule, read-modify-write where it does not. */
  private async writeUnderGate(offset: number, data: Buffer, uncached: boolean): Promise<void> {
    if (this.cipher !== undefined) return this.writeEncrypted(offset, data, this.cipher, uncached);
    const top = this.source.top();
    const chain = chainOf(top);
    if (!chainLoaded(chain)) await loadChain(chain);
    const end = offset + data.length;
    const g0 = Math.floor(offset / GRANULE);
    const g1 = Math.ceil(end / GRANULE);
    const headPartial = offset % GRANULE !== 0 || end < (g0 + 1) * GRANULE;
    const tailPartial = end % GRANULE !== 0 && g1 - 1 !== g0;
    const edges: number[] = [];
    if (headPartial && top.granules.get(g0) !== DATA) edges.push(g0);
    if (tailPartial && top.granules.get(g1 - 1) !== DATA) edges.push(g1 - 1);
    if (edges.length === 0) {
      await top.writeData(data, 0, data.length, offset, uncached);
      top.mark(g0, g1 - g0, DATA);
      return;
    }
    const releases = [];
    for (const g of edges) releases.push(await this.source.locks.lock(g));
    try {
      const needHead = edges.includes(g0) && top.granules.get(g0) !== DATA;
      const needTail = edges.includes(g1 - 1) && top.granules.get(g1 - 1) !== DATA;
      const from = needHead ? g0 * GRANULE : offset;
      const to = needTail ? g1 * GRANULE : end;
      const buf = Buffer.allocUnsafe(to - from);
      if (needHead) await this.readBelow(chain, g0, buf, 0);
      if (needTail) await this.readBelow(chain, g1 - 1, buf, (g1 - 1) * GRANULE - from);
      data.copy(buf, offset - from);
      await top.ensureFiles();
      await top.writeData(buf, 0, buf.length, from);
      top.mark(g0, g1 - g0, DATA);
    } finally {
      for (const r of releases) r();
    }
  }

  /** The current content of one granule as the writable top does not hold it: zeros or the layers below. */
  private async readBelow(chain: readonly Layer[], g: number, buf: Buffer, at: number): Promise<void> {
    const top = chain[0] as Layer;
    if (top.granules.get(g) === ZERO) {
      buf.fill(0, at, at + GRANULE);
      return;
    }
    const segs = resolve(chain.slice(1), g, g + 1);
    await fill(buf.subarray(at, at + GRANULE), g * GRANULE, segs, this.cipher);
  }

  /**
   * The write path of an encrypted volume: whole granules are encrypted and written in place; a granule the write
   * covers only partly is read (from the top if it holds it, else from below), decrypted, merged, re-encrypted and
   * written whole, under the granule's lock, wherever it is. An `uncached` write of whole granules is encrypted into
   * page-aligned memory, so the layer can write it past the page cache as it does a plain volume's.
   */
  private async writeEncrypted(offset: number, data: Buffer, cipher: GranuleCipher, uncached: boolean): Promise<void> {
    const top = this.source.top();
    const chain = chainOf(top);
    if (!chainLoaded(chain)) await loadChain(chain);
    const end = offset + data.length;
    const g0 = Math.floor(offset / GRANULE);
    const g1 = Math.ceil(end / GRANULE);
    const edges: number[] = [];
    if (offset % GRANULE !== 0 || end < (g0 + 1) * GRANULE) edges.push(g0);
    if (end % GRANULE !== 0 && g1 - 1 !== g0) edges.push(g1 - 1);
    if (edges.length === 0) {
      const sealed = cipher.encrypt(data, 0, data.length, g0, uncached ? directBuffer(data.length) : undefined);
      await top.writeData(sealed, 0, data.length, offset, uncached);
      top.mark(g0, g1 - g0, DATA);
      return;
    }
    const releases = [];
    for (const g of edges) releases.push(await this.source.locks.lock(g));
    try {
      const from = g0 * GRANULE;
      const plain = Buffer.allocUnsafe((g1 - g0) * GRANULE);
      for (const g of edges) {
        const at = (g - g0) * GRANULE;
        if (top.granules.get(g) !== DATA) await this.readBelow(chain, g, plain, at);
        else await readDecrypted(top, cipher, plain, from, g * GRANULE, (g + 1) * GRANULE);
      }
      data.copy(plain, offset - from);
      await top.ensureFiles();
      await top.writeData(cipher.encrypt(plain, 0, plain.length, g0), 0, plain.length, from);
      top.mark(g0, g1 - g0, DATA);
    } finally {
      for (const r of releases) r();
    }
  }

  async writeZeroes(offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    this.needTree();
    if (length === 0) return;
    const end = offset + length;
    const f0 = Math.ceil(offset / GRANULE);
    const f1 = Math.floor(end / GRANULE);
    if (f1 <= f0) {
      await this.write(offset, Buffer.alloc(length), options);
      return;
    }
    if (offset < f0 * GRANULE) await this.write(offset, Buffer.alloc(f0 * GRANULE - offset));
    if (end > f1 * GRANULE) await this.write(f1 * GRANULE, Buffer.alloc(end - f1 * GRANULE));
    await this.withIo(async () => {
      this.recent.note(f0 * GRANULE, (f1 - f0) * GRANULE);
      const top = this.source.top();
      await top.load();
      const held = [...top.granules.presentRuns(f0, f1)].filter((r) => r.state === DATA);
      // A base layer has nothing below to hide: ABSENT reads as zeros and keeps the map small.
      top.mark(f0, f1 - f0, top.parent === undefined ? ABSENT : ZERO);
      for (const r of held) await top.release(r.start, r.count);
      this.progress.generation++;
    });
    if (options.fua === true) await this.flush();
  }

  trim(offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    return this.writeZeroes(offset, length, options);
  }

  async flush(): Promise<void> {
    if (this.tree === undefined || !this.writable) return;
    await this.withIo(async () => {
      const sealed = this.recent.flushStarted();
      try {
        await this.source.top().flush();
        this.recent.flushDone(sealed);
      } catch (err: unknown) {
        throw await this.noSpace(err, `a flush of ${this.name}`);
      }
    });
  }

  async blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    return this.withIo(async () => {
      const chain = chainOf(this.source.top());
      await loadChain(chain);
      const end = offset + length;
      const out: StatusExtent[] = [];
      for (const s of resolve(chain, Math.floor(offset / GRANULE), Math.ceil(end / GRANULE))) {
        const from = Math.max(offset, s.start * GRANULE);
        const to = Math.min(end, (s.start + s.count) * GRANULE);
        const state = s.state === DATA ? 'data' : 'zero';
        const last = out[out.length - 1];
        if (last !== undefined && last.state === state) last.length += to - from;
        else out.push({ length: to - from, state });
      }
      return out;
    });
  }
}

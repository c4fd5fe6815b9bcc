/**
 * Changing a volume's replication online (`ferry volume ha-update VOL --repl N [--node X]`, docs/REPLICATION.md
 * R14-R16 and C1-C3): one step at a time, raising `ha_level` by one adds a `filling` replica and fills it in the
 * background from an in-sync one while the volume stays in use; lowering by one drops a replica. Every change of the
 * volume record is a store transaction comparing the record's mod revision (C1); the loser re-reads and decides
 * again.
 *
 * The engine gives this module what it cannot know itself as a `HaUpdateContext`: the store, the cluster ports, and
 * the volume's coordinator on this node for the length of a fill (the attached one, or one opened for the fill).
 */
import { FerryError, invalidArgument } from '../../common/index.js';
import type { ClusterStore, Compare } from '../cluster/types.js';
import type { CopyLimiter } from './bandwidth.js';
import { catalogKeys, put } from './catalog.js';
import type { PlacementPort, ReplicaConnector } from './cluster-ports.js';
import { RunsElsewhere } from './cluster-ports.js';
import { MAX_HA_LEVEL } from './constants.js';
import type { VolumeCoordinator } from './coordinator.js';
import { allocatedBytes, type FillProgress, fillReplica } from './fill.js';
import { type FailedCopyMark, failedFilling, type MarkFilling, recordFailedCopy, withReplica } from './out-of-sync.js';
import type { ReplicaRecord, VolumeRecord } from './records.js';
import type { Replica } from './replica.js';
import type { UpdateVolumeRequest } from './types.js';

/** The volume's coordinator on this node, lent to a fill for its duration. */
export interface CoordinatorUse {
  coordinator: VolumeCoordinator;
  /** Its epoch (the attach lock's revision, F1): the new replica is opened under it. */
  epoch: number;
  /** More compares for every record transaction (the attach lock's key at its revision, C1), if any. */
  compares?: readonly Compare[];
  /** Freezes a low base for a failed fill (R14a). Without it, a failed fill starts again from 0 in full. */
  markFilling?: MarkFilling;
  /** The fill is over: closes a coordinator opened for it (never the one serving an attached volume). */
  release(): Promise<void>;
}

/** What ha-update needs from the engine. */
export interface HaUpdateContext {
  store: ClusterStore;
  /** This node's id. */
  nodeId: string;
  /** Chooses the node of a new replica when the request names none (EngineOptions.placement). */
  placement?: PlacementPort;
  /** Opens and drops the replicas other nodes hold (EngineOptions.replicas). */
  replicas?: ReplicaConnector;
  /**
   * The volume's coordinator on this node for a fill: the attached one when the volume is attached here; when it is
   * not attached, one opened over its in-sync replicas that every attach on this node must use until `release`, and
   * that keeps other nodes from attaching meanwhile (the attach lock). Called only when `record.attached` is absent
   * or names this node.
   */
  useCoordinator(record: VolumeRecord): Promise<CoordinatorUse>;
  /** The coordinator serving the volume when it is attached on this node (a dropped replica is removed from it). */
  attachedHere?(volumeId: string): VolumeCoordinator | undefined;
  /** Removes this node's own replica of a volume (its layers): lowering may drop it. */
  dropLocal?(volumeId: string): Promise<void>;
  /** Called with every volume record this module commits (the engine keeps its copy up to date). */
  recordChanged?(record: VolumeRecord): void;
  /** Problems of background fills (default: a process warning). */
  log?(message: string): void;
  /** Fill tuning (fillReplica's options). */
  fill?: { stepBytes?: number; depth?: number; flushBytes?: number };
  /** The bandwidth caps a fill of volume `id` takes its bytes from (R17; resync-manager.ts). Default: none. */
  limiter?(volumeId: string): CopyLimiter | undefined;
  /** Least time between two progress commits of a fill (ms). Default 2000. */
  progressIntervalMs?: number;
}

/** A fill running in the background on this node. */
interface Running {
  nodeId: string;
  abort: AbortController;
  /** Set when the fill is cancelled because its replica is being dropped (no out-of-sync marking then). */
  dropping: boolean;
  done: Promise<void>;
}

const now = (): string => new Date().toISOString();

function replicasOf(record: VolumeRecord): ReplicaRecord[] {
  return record.replicas ?? [];
}

const stateOf = (r: ReplicaRecord): string => r.state ?? 'in-sync';

/** Raises or lowers volumes' `ha_level` one replica at a time (see the file comment). */
export class HaUpdater {
  private readonly running = new Map<string, Running>();
  /** Volumes whose raise is under way (from the check to the fill's start): their filling entry is this module's. */
  private readonly raising = new Set<string>();

  constructor(private readonly ctx: HaUpdateContext) {}

  /**
   * Applies `request.ha_level` (and `replica_node`) to the volume of `record` (read by the caller from the store).
   * Returns the record committed: with the new replica `filling` when raising (the fill goes on in the background;
   * `settled` waits for it), without the dropped one when lowering.
   */
  async update(record: VolumeRecord, request: UpdateVolumeRequest): Promise<VolumeRecord> {
    const target = request.ha_level;
    if (typeof target !== 'number' || !Number.isInteger(target) || target < 1 || target > MAX_HA_LEVEL) {
      throw invalidArgument('spec.ha_level', `ha_level must be between 1 and ${MAX_HA_LEVEL}`);
    }
    const node = request.replica_node;
    if (node !== undefined && (typeof node !== 'string' || node.length === 0)) {
      throw invalidArgument('replica_node', 'must be a node id');
    }
    const current = record.ha_level;
    if (Math.abs(target - current) > 1) {
      throw invalidArgument(
        'spec.ha_level',
        `volume ${record.name} has ha_level ${current}: change it one replica at a time (to ${current + Math.sign(target - current)} first)`,
      );
    }
    if (target === current) {
      if (node !== undefined) {
        throw invalidArgument(
          'spec.ha_level',
          `volume ${record.name} already has ha_level ${current}: to move a replica, raise ha_level with the new node, then lower it naming the old one`,
        );
      }
      return record;
    }
    return target > current ? this.raise(record, target, node) : this.lower(record, target, node);
  }

  /** Resolves when no fill of `volumeId` (or of any volume) runs on this node. */
  async settled(volumeId?: string): Promise<void> {
    const runs = volumeId === undefined ? [...this.running.values()] : [this.running.get(volumeId)];
    await Promise.all(runs.map((r) => r?.done));
  }

  /** The node being filled for `volumeId` by this node, if any. */
  fillingNode(volumeId: string): string | undefined {
    return this.running.get(volumeId)?.nodeId;
  }

  /** Whether this node is raising `volumeId`'s ha_level or filling its new replica (the resync manager keeps off). */
  busy(volumeId: string): boolean {
    return this.raising.has(volumeId) || this.running.has(volumeId);
  }

  /** Stops every fill (each replica stays `filling` in the record with its last cursor) and waits for them. */
  async close(): Promise<void> {
    for (const r of this.running.values()) {
      r.dropping = true;
      r.abort.abort(new FerryError('UNAVAILABLE', 'the node is stopping'));
    }
    await this.settled();
  }

  // ---- raising -------------------------------------------------------------------------------------------------

  private oneStep(record: VolumeRecord): void {
    const busy = this.running.get(record.id)?.nodeId ?? replicasOf(record).find((r) => r.state === 'filling')?.node_id;
    if (busy !== undefined) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `volume ${record.name} has a replica being filled on node ${busy}: ha-update goes one step at a time; wait for the fill to end (see inspect) or lower ha_level naming that node to stop it`,
      );
    }
  }

  private elsewhere(record: VolumeRecord): void {
    const at = record.attached?.node_id;
    if (at !== undefined && at !== this.ctx.nodeId) {
      throw new RunsElsewhere(at, `volume ${record.name} is attached on node ${at}: its ha-update runs there`);
    }
  }

  private async raise(record: VolumeRecord, target: number, asked: string | undefined): Promise<VolumeRecord> {
    this.oneStep(record);
    this.raising.add(record.id);
    try {
      return await this.raiseMarked(record, target, asked);
    } finally {
      this.raising.delete(record.id);
    }
  }

  private async raiseMarked(record: VolumeRecord, target: number, asked: string | undefined): Promise<VolumeRecord> {
    this.elsewhere(record);
    const connector = this.ctx.replicas;
    if (connector === undefined) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `volume ${record.name} cannot get another replica: this node runs alone (start it in a cluster to replicate)`,
      );
    }
    const holders = replicasOf(record).map((r) => r.node_id);
    if (asked !== undefined && holders.includes(asked)) {
      throw new FerryError('FAILED_PRECONDITION', `node ${asked} already holds a replica of volume ${record.name}`);
    }
    const node = asked ?? (await this.place(record, target, holders));
    const use = await this.ctx.useCoordinator(record);
    let next: VolumeRecord;
    try {
      const source = use.coordinator.primary;
      const total = await allocatedBytes(source, record.size);
      next = await this.mustChange(record.id, use.compares, (r) => {
        this.oneStep(r);
        if (r.ha_level !== record.ha_level) throw moved(r);
        if (replicasOf(r).some((x) => x.node_id === node)) {
          throw new FerryError('FAILED_PRECONDITION', `node ${node} already holds a replica of volume ${r.name}`);
        }
        const entry: ReplicaRecord = {
          node_id: node,
          state: 'filling',
          resync: { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: total, started: now() },
        };
        return { ...r, ha_level: target, replicas: [...replicasOf(r), entry] };
      });
      let replica: Replica | undefined;
      try {
        replica = await connector.open(node, { volumeId: record.id, epoch: use.epoch });
        await this.start(next, node, use, replica);
      } catch (err: unknown) {
        // The old state again: the entry goes, and so does the level.
        await replica?.close().catch(() => undefined);
        await this.change(record.id, use.compares, (r) =>
          replicasOf(r).some((x) => x.node_id === node && x.state === 'filling')
            ? { ...r, ha_level: record.ha_level, replicas: replicasOf(r).filter((x) => x.node_id !== node) }
            : undefined,
        ).catch((e: unknown) => this.log(`volume ${record.name}: removing replica ${node} after a failed open: ${e}`));
        throw err;
      }
    } catch (err: unknown) {
      await use.release();
      throw err;
    }
    return next;
  }

  private async place(record: VolumeRecord, target: number, holders: string[]): Promise<string> {
    if (this.ctx.placement === undefined) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `volume ${record.name} cannot get another replica: no placement here; name the node (--node)`,
      );
    }
    const chosen = await this.ctx.placement.place({ ha_level: target, exclude: holders, size: record.size });
    const node = chosen.find((n) => !holders.includes(n));
    if (node === undefined) {
      throw new FerryError('FAILED_PRECONDITION', `no node can take another replica of volume ${record.name}`);
    }
    return node;
  }

  /** Runs the fill of `node`'s new replica in the background (see the file comment). */
  private async start(record: VolumeRecord, node: string, use: CoordinatorUse, replica: Replica): Promise<void> {
    const abort = new AbortController();
    const run: Running = { nodeId: node, abort, dropping: false, done: Promise.resolve() };
    const { coordinator } = use;
    /** The low base's freezing of the last failure (the tenure is released after it). */
    let lowering: Promise<void> = Promise.resolve();
    const markOut = async (why: unknown): Promise<void> => {
      // Writes go on without it: those below the cursor would be missed by a copy resumed from there, so the
      // resync manager (resync-manager.ts) starts it again from 0, below the old cursor only over what changed
      // since a low base frozen now (R14a); its timeout counts from now.
      const { marked, settled } = recordFailedCopy({
        coordinator,
        markFilling: use.markFilling,
        nodeId: node,
        error: why,
        log: (m) => this.log(`volume ${record.name}: ${m}`),
        markOut: async () => {
          let mark: FailedCopyMark | undefined;
          const next = await this.change(record.id, use.compares, (cur) => {
            const failed = failedFilling(cur, node, why, now());
            mark = failed?.mark;
            return failed?.record;
          });
          return next === undefined ? undefined : mark;
        },
      });
      lowering = settled;
      await marked;
      this.log(`volume ${record.name}: filling the replica on node ${node} failed, it is out of sync: ${why}`);
    };
    // A live write the new replica fails: recorded out of sync before that write is acknowledged (R7).
    await coordinator.addFilling(replica, async (err: unknown) => {
      await markOut(err);
      abort.abort(err);
    });
    this.running.set(record.id, run);
    run.done = this.fill(record, node, use, replica, run, markOut).finally(async () => {
      await lowering;
      this.running.delete(record.id);
      await use.release().catch((err: unknown) => this.log(`volume ${record.name}: ${err}`));
    });
  }

  private async fill(
    record: VolumeRecord,
    node: string,
    use: CoordinatorUse,
    replica: Replica,
    run: Running,
    markOut: (why: unknown) => Promise<void>,
  ): Promise<void> {
    const { coordinator } = use;
    const interval = this.ctx.progressIntervalMs ?? 2000;
    let last = Date.now();
    let gone = false;
    const onProgress = async (p: FillProgress): Promise<void> => {
      if (Date.now() - last < interval || p.cursor >= record.size) return;
      last = Date.now();
      try {
        const next = await this.change(record.id, use.compares, (r) => {
          const mine = replicasOf(r).find((x) => x.node_id === node);
          if (mine?.state !== 'filling' || mine.resync === undefined) return undefined;
          return withReplica(r, node, {
            ...mine,
            resync: { ...mine.resync, cursor: p.cursor, copied_bytes: p.copied },
          });
        });
        if (next === undefined) {
          gone = true;
          run.abort.abort(new FerryError('FAILED_PRECONDITION', `replica ${node} is no longer filling`));
        }
      } catch (err: unknown) {
        // Progress is only progress: the fill goes on, and the next commit says more.
        this.log(`volume ${record.name}: recording the fill's progress failed: ${err}`);
      }
    };
    try {
      const { copied } = await fillReplica({
        coordinator,
        source: coordinator.primary,
        target: replica,
        size: record.size,
        total: record.replicas?.find((x) => x.node_id === node)?.resync?.total_bytes,
        signal: run.abort.signal,
        onProgress,
        limiter: this.ctx.limiter?.(record.id),
        ...this.ctx.fill,
      });
      // R15: writes held, the new replica flushed, then in-sync in the record, then read.
      const release = await coordinator.holdRange(0, Number.MAX_SAFE_INTEGER);
      try {
        await replica.flush();
        await this.mustChange(record.id, use.compares, (r) => {
          const mine = replicasOf(r).find((x) => x.node_id === node);
          if (mine?.state !== 'filling') {
            throw new FerryError(
              'FAILED_PRECONDITION',
              `replica ${node} is no longer filling (${copied} bytes copied)`,
            );
          }
          return withReplica(r, node, { node_id: node, state: 'in-sync' });
        });
        coordinator.promote(node);
      } finally {
        release();
      }
    } catch (err: unknown) {
      if (coordinator.fillingNodes().includes(node)) await coordinator.removeReplica(node);
      else await replica.close().catch(() => undefined);
      if (!run.dropping && !gone) await markOut(err).catch((e: unknown) => this.log(`volume ${record.name}: ${e}`));
    }
  }

  // ---- lowering ------------------------------------------------------------------------------------------------

  private async lower(record: VolumeRecord, target: number, asked: string | undefined): Promise<VolumeRecord> {
    this.elsewhere(record);
    const replicas = replicasOf(record);
    const inSync = replicas.filter((r) => stateOf(r) === 'in-sync');
    const local = new Set([this.ctx.nodeId, record.attached?.node_id]);
    let victim: ReplicaRecord | undefined;
    if (asked !== undefined) {
      victim = replicas.find((r) => r.node_id === asked);
      if (victim === undefined) {
        throw new FerryError('FAILED_PRECONDITION', `node ${asked} holds no replica of volume ${record.name}`);
      }
    } else {
      const order = [...replicas].sort(
        (a, b) =>
          Number(stateOf(a) === 'in-sync') - Number(stateOf(b) === 'in-sync') ||
          Number(local.has(a.node_id)) - Number(local.has(b.node_id)),
      );
      victim = order.find((r) => stateOf(r) !== 'in-sync' || inSync.length > 1);
    }
    if (victim === undefined || (stateOf(victim) === 'in-sync' && inSync.length <= 1)) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `volume ${record.name}: node ${victim?.node_id ?? inSync[0]?.node_id} holds its only in-sync replica, which cannot be dropped`,
      );
    }
    const node = victim.node_id;
    const running = this.running.get(record.id);
    if (running !== undefined) {
      if (running.nodeId !== node) this.oneStep(record);
      running.dropping = true;
      running.abort.abort(new FerryError('FAILED_PRECONDITION', `replica ${node} is being dropped`));
      await running.done;
    }
    const next = await this.mustChange(record.id, [], (r) => {
      const rs = replicasOf(r);
      if (r.ha_level !== target + 1 || !rs.some((x) => x.node_id === node)) throw moved(r);
      const left = rs.filter((x) => x.node_id !== node);
      if (!left.some((x) => stateOf(x) === 'in-sync')) {
        throw new FerryError('FAILED_PRECONDITION', `node ${node} holds the only in-sync replica of volume ${r.name}`);
      }
      return { ...r, ha_level: target, replicas: left };
    });
    await this.ctx.attachedHere?.(record.id)?.removeReplica(node);
    try {
      if (node === this.ctx.nodeId) await this.ctx.dropLocal?.(record.id);
      else await this.ctx.replicas?.drop(node, record.id);
    } catch (err: unknown) {
      // The record no longer lists it: the node removes it when it sees that (R18).
      this.log(`volume ${record.name}: dropping the replica on node ${node} failed: ${err}`);
    }
    return next;
  }

  // ---- records -------------------------------------------------------------------------------------------------

  /**
   * A C1 change of volume `id`'s record: reads it, asks `mutate` for the next one (undefined: nothing to do), commits
   * it comparing the record's mod revision (and `compares`), and on a lost race reads and decides again.
   */
  private async change(
    id: string,
    compares: readonly Compare[] | undefined,
    mutate: (record: VolumeRecord) => VolumeRecord | undefined,
  ): Promise<VolumeRecord | undefined> {
    const key = catalogKeys.volume(id);
    for (let attempt = 0; attempt < 20; attempt++) {
      const entry = await this.ctx.store.getEntry<VolumeRecord>(key);
      if (entry === undefined) throw new FerryError('NOT_FOUND', `volume ${id} was deleted`);
      const next = mutate(entry.value);
      if (next === undefined) return undefined;
      const result = await this.ctx.store.txn(
        [{ key, modRevision: entry.modRevision }, ...(compares ?? [])],
        [put.volume(next)],
      );
      if (result.succeeded) {
        this.ctx.recordChanged?.(next);
        return next;
      }
      // The record moved (or the attach lock did: then the next read finds it fenced, and `mutate` decides).
      if (compares !== undefined && compares.length > 0) await this.checkCompares(compares, entry.value.name);
    }
    throw new FerryError('UNAVAILABLE', `volume ${id}: its record keeps changing; try again`);
  }

  /** `change` whose `mutate` always gives a record. */
  private async mustChange(
    id: string,
    compares: readonly Compare[] | undefined,
    mutate: (record: VolumeRecord) => VolumeRecord,
  ): Promise<VolumeRecord> {
    return (await this.change(id, compares, mutate)) as VolumeRecord;
  }

  private async checkCompares(compares: readonly Compare[], name: string): Promise<void> {
    for (const c of compares) {
      const e = await this.ctx.store.getEntry(c.key);
      if ((e?.modRevision ?? 0) !== c.modRevision) {
        throw new FerryError('FAILED_PRECONDITION', `volume ${name}: this node no longer coordinates it (${c.key})`);
      }
    }
  }

  private log(message: string): void {
    if (this.ctx.log !== undefined) this.ctx.log(message);
    else process.emitWarning(message, 'FerryEngineWarning');
  }
}

function moved(record: VolumeRecord): FerryError {
  return new FerryError(
    'FAILED_PRECONDITION',
    `volume ${record.name} changed meanwhile (ha_level ${record.ha_level}, replicas ${replicasOf(record)
      .map((r) => `${r.node_id}:${stateOf(r)}`)
      .join(', ')}); look at it again and retry`,
  );
}

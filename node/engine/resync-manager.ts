/**
 * Brings out-of-sync replicas back (docs/REPLICATION.md, C3, R13-R18), on the node coordinating the volume: for each
 * replica `out-of-sync` in the record of a volume attached here, it opens the replica under the coordinator's epoch
 * when its node comes Online (a put under `/ferry/nodes/`) or every `retryMs`; on success it records it `filling`
 * (C1), adds it to the coordinator's fan-out and copies what it lacks (resync.ts), then promotes it as a fill does
 * (R15: writes held, target flushed, `in-sync` committed, promoted) and deletes the hidden base snapshot. A replica
 * out of sync longer than `replica_timeout_seconds` is replaced: a new replica placed elsewhere (PlacementPort,
 * holders excluded) takes its entry as `filling` (kind `fill`) in one C1 transaction, is filled, and the stale node
 * is told to drop its layers (retried until it answers; a node that restarts drops them itself, R18).
 *
 * The cursor of a stopped copy is kept only while no write can have gone on without the replica: a target that
 * fails a live write, a copy that fails, or a close leave the volume served without it, and writes below the cursor
 * would then be missed, so those go back `out-of-sync` with the cursor at 0 at once; then a later hidden base frozen
 * on the in-sync replicas becomes the entry's `low` part (R14a, out-of-sync.ts `recordFailedCopy`): below the old
 * cursor only what changed since it is copied again, not everything.
 *
 * Bandwidth (R17): every copy takes its bytes from the node's caps (bandwidth.ts), fed by watches of
 * REPLICATION_SETTINGS_KEY (per node) and of the volume records (per volume), so a change applies at once.
 */
import { FerryError, invalidArgument, isFerryError } from '../../common/index.js';
import { NODES_PREFIX } from '../cluster/membership.js';
import type { ClusterStore, Compare, Watch } from '../cluster/types.js';
import { BandwidthCaps } from './bandwidth.js';
import { catalogKeys, put } from './catalog.js';
import type { PlacementPort, ReplicaConnector } from './cluster-ports.js';
import { DEFAULT_REPLICA_TIMEOUT_SECONDS, REPLICATION_SETTINGS_KEY } from './constants.js';
import type { VolumeCoordinator } from './coordinator.js';
import { type FillProgress, fillReplica } from './fill.js';
import {
  basesOf,
  type FailedCopyMark,
  failedFilling,
  type MarkFilling,
  recordFailedCopy,
  withReplica,
} from './out-of-sync.js';
import { unionRanges } from './recent-writes.js';
import type { ReplicaRecord, ReplicaResync, ReplicationSettings, VolumeRecord } from './records.js';
import type { Replica } from './replica.js';
import { resyncBytes, resyncReplica } from './resync.js';
import { DetachedResyncs } from './resync-detached.js';
import { YIELD_PREFIX } from './tenure.js';
import type { BlockDevice } from './types.js';

/** A volume attached on this node: its coordinator and tenure. */
export interface AttachedVolume {
  coordinator: VolumeCoordinator;
  /** The coordinator's epoch (F1): replicas are opened under it. */
  epoch: number;
  /** More compares for every record transaction (the attach lock at its revision, C1). */
  compares?: readonly Compare[];
  /** Freezes a low base for a failed copy (R14a). Without it, a failed copy starts again from 0 in full. */
  markFilling?: MarkFilling;
}

/** What the resync manager needs from the engine. */
export interface ResyncContext {
  store: ClusterStore;
  /** This node's id. */
  nodeId: string;
  /** Chooses the node of a replacement (EngineOptions.placement). Without it, nothing is replaced. */
  placement?: PlacementPort;
  /** Opens and drops the replicas other nodes hold. Without it, the manager does nothing. */
  replicas?: ReplicaConnector;
  /** The ids of the volumes attached on this node. */
  attachedVolumes(): string[];
  /** Volume `id`'s coordinator when it is attached on this node. */
  attached(volumeId: string): AttachedVolume | undefined;
  /** Whether another copy (an ha-update fill) runs for the volume on this node: the manager leaves it alone then. */
  busy?(volumeId: string): boolean;
  /**
   * Attaches a volume attached nowhere on this node for a resync of its replicas (R19, resync-detached.ts). Without
   * it, such volumes wait for their next attach.
   */
  attachForResync?(record: VolumeRecord): Promise<BlockDevice>;
  /** Deletes a hidden base snapshot (engine deleteSnapshot). */
  deleteSnapshot(snapshotId: string): Promise<void>;
  /** Called with every volume record this module commits. */
  recordChanged?(record: VolumeRecord): void;
  /** Problems of background copies (default: a process warning). */
  log?(message: string): void;
  /** Copy tuning (fillReplica's options). */
  copy?: { stepBytes?: number; depth?: number; flushBytes?: number };
  /**
   * Time between two progress commits (ms), at most. Default 100: a copy killed part way resends little (R14a).
   * Sooner once `progressBytes` were copied since the last (default 8 MiB, but not within 20 ms of it): a fast copy
   * would otherwise resend what 100 ms of it carry (20 MiB at 200 MiB/s).
   */
  progressIntervalMs?: number;
  progressBytes?: number;
  /** Time between two passes over the attached volumes (ms). Default 3000. */
  retryMs?: number;
  /** The bandwidth caps (default: the manager's own). */
  caps?: BandwidthCaps;
  /** Milliseconds since the epoch (tests move time). Default Date.now. */
  now?(): number;
}

/** A copy running on this node. */
interface Running {
  volumeId: string;
  nodeId: string;
  abort: AbortController;
  /** Set when the copy is stopped on purpose (close, the entry gone): no out-of-sync marking then. */
  quiet: boolean;
  done: Promise<void>;
}

const stateOf = (r: ReplicaRecord): string => r.state ?? 'in-sync';
const replicasOf = (record: VolumeRecord): ReplicaRecord[] => record.replicas ?? [];
const keyOf = (volumeId: string, nodeId: string): string => `${volumeId}/${nodeId}`;

/** Resyncs and replaces the out-of-sync replicas of the volumes attached here (see the file comment). */
export class ResyncManager {
  /** The bandwidth caps every copy on this node takes from (ha-update's fills too). */
  readonly caps: BandwidthCaps;
  private readonly running = new Map<string, Running>();
  /** Failed copies whose low base is being frozen (volume/node): not resumed meanwhile. */
  private readonly lowering = new Map<string, Promise<void>>();
  /**
   * Filling entries seen outside the fan-out, with when they were first seen so (an ha-update may be about to add
   * them): taken for orphans only after two retry intervals.
   */
  private suspects = new Map<string, number>();
  /** Stale replicas replaced whose node has not yet dropped its layers: node -> volume ids. */
  private readonly drops = new Map<string, Set<string>>();
  private settings: ReplicationSettings = {};
  /** When each replica (volume/node) was last tried, and the nodes that came online since the last pass. */
  private readonly tried = new Map<string, number>();
  private cameOnline = new Set<string>();
  private readonly watches: Watch[] = [];
  private timer: NodeJS.Timeout | undefined;
  private passing: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Volumes attached nowhere that this node resyncs (R19); undefined without ResyncContext.attachForResync. */
  private readonly detached: DetachedResyncs | undefined;
  private passes = 0;

  constructor(private readonly ctx: ResyncContext) {
    this.caps = ctx.caps ?? new BandwidthCaps();
    const attach = ctx.attachForResync;
    this.detached =
      attach === undefined
        ? undefined
        : new DetachedResyncs({
            store: ctx.store,
            nodeId: ctx.nodeId,
            attach: (record) => attach(record),
            expired: (r) => this.expired(r),
            retryMs: ctx.retryMs ?? 3000,
            now: () => this.now(),
            log: (message) => this.log(message),
          });
  }

  /** The cluster-wide settings as last read. */
  get current(): ReplicationSettings {
    return { ...this.settings };
  }

  /** Reads the settings, starts the watches and the periodic pass. */
  async start(): Promise<void> {
    // Each watch is running before its state is read (and read again when it restarts): no change falls between.
    const readSettings = async (): Promise<void> => {
      this.applySettings(await this.ctx.store.get<ReplicationSettings>(REPLICATION_SETTINGS_KEY));
    };
    await Promise.all([
      this.follow<ReplicationSettings>(
        REPLICATION_SETTINGS_KEY,
        (e) => {
          if (e.key === REPLICATION_SETTINGS_KEY) this.applySettings(e.type === 'put' ? e.value : undefined);
        },
        readSettings,
      ),
      this.follow<VolumeRecord>(
        catalogKeys.volume(''),
        (e) => {
          const id = e.key.slice(catalogKeys.volume('').length);
          if (e.type === 'delete') this.caps.forget(id);
          else if (e.value !== undefined) this.caps.setVolumeRate(id, e.value.resync_bandwidth);
          const candidate = this.detached?.note(id, e.type === 'put' ? e.value : undefined) === true;
          if (candidate || this.ctx.attached(id) !== undefined) this.poke();
        },
        async () => {
          // What changed while no watch ran: the records as they are now.
          if (this.detached !== undefined) {
            const prefix = catalogKeys.volume('');
            for (const kv of await this.ctx.store.list<VolumeRecord>(prefix)) {
              this.detached.note(kv.key.slice(prefix.length), kv.value);
            }
          }
          this.poke();
        },
      ),
      this.follow(
        YIELD_PREFIX,
        (e) => {
          const id = e.key.slice(YIELD_PREFIX.length);
          if (e.type === 'put' && this.detached?.has(id) === true) {
            void this.detached.giveUp(id).catch((err: unknown) => this.log(`volume ${id}: ${err}`));
          }
        },
        async () => undefined,
      ),
      this.follow(
        NODES_PREFIX,
        (e) => {
          if (e.type !== 'put') return;
          this.cameOnline.add(e.key.slice(NODES_PREFIX.length));
          this.poke();
        },
        async () => this.poke(),
      ),
    ]);
    const every = this.ctx.retryMs ?? 3000;
    this.timer = setInterval(() => this.poke(), every);
    this.timer.unref();
  }

  /** Runs a pass soon (a node came online, a record changed). */
  poke(): void {
    if (this.closed) return;
    void this.pass().catch((err: unknown) => this.log(`resync pass: ${err}`));
  }

  /** One pass over the volumes attached here; passes do not overlap (one asked meanwhile runs after). */
  async pass(): Promise<void> {
    if (this.passing !== undefined) {
      this.again = true;
      return this.passing;
    }
    this.passing = (async () => {
      try {
        do {
          this.again = false;
          await this.passOnce();
        } while (this.again && !this.closed);
      } finally {
        this.passing = undefined;
      }
    })();
    return this.passing;
  }

  /** Resolves when no copy of `volumeId` (or of any volume) runs here. */
  async settled(volumeId?: string): Promise<void> {
    const runs = [...this.running.values()].filter((r) => volumeId === undefined || r.volumeId === volumeId);
    await Promise.all(runs.map((r) => r.done));
    await Promise.all(this.lowersOf(volumeId));
  }

  /** The low bases being frozen for failed copies of `volumeId` (of every volume when undefined). */
  private lowersOf(volumeId: string | undefined): Promise<void>[] {
    return [...this.lowering].filter(([k]) => volumeId === undefined || k.startsWith(`${volumeId}/`)).map(([, p]) => p);
  }

  /** The nodes whose replica of `volumeId` this node is copying to. */
  copying(volumeId: string): string[] {
    return [...this.running.values()].filter((r) => r.volumeId === volumeId).map((r) => r.nodeId);
  }

  /** Ends this node's attach of `volumeId` for a resync (R19), if it has one: another use of the volume needs it. */
  async giveUp(volumeId: string): Promise<void> {
    await this.detached?.giveUp(volumeId);
  }

  /** Stops the copies of `volumeId` (a detach: each goes back out-of-sync) and waits for them. */
  async stop(volumeId: string): Promise<void> {
    const runs = [...this.running.values()].filter((r) => r.volumeId === volumeId);
    for (const r of runs) r.abort.abort(new FerryError('UNAVAILABLE', 'the volume is detaching'));
    await Promise.all(runs.map((r) => r.done));
  }

  /** Stops the watches, the passes and every copy. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await Promise.allSettled(this.watches.map((w) => w.close()));
    for (const r of this.running.values()) r.abort.abort(new FerryError('UNAVAILABLE', 'the node is stopping'));
    await this.passing?.catch(() => undefined);
    await this.detached?.close();
    await this.settled();
  }

  // ---- passes --------------------------------------------------------------------------------------------------

  private applySettings(value: ReplicationSettings | undefined): void {
    const timeout = this.settings.replica_timeout_seconds;
    this.settings = value ?? {};
    this.caps.setNodeRate(this.settings.resync_bandwidth);
    // A shorter timeout may make a replica due for replacement now.
    if (this.settings.replica_timeout_seconds !== timeout) this.poke();
  }

  /**
   * Runs `onEvent` on the watch of `prefix` until close (a broken watch is started again), and `onStarted` each time
   * the watch is established (what changed while none ran is read then). Resolves once the first is established.
   */
  private follow<T>(
    prefix: string,
    onEvent: (e: { type: 'put' | 'delete'; key: string; value?: T }) => void,
    onStarted: () => Promise<void>,
  ): Promise<void> {
    let started!: () => void;
    const first = new Promise<void>((resolve) => {
      started = resolve;
    });
    const loop = async (): Promise<void> => {
      while (!this.closed) {
        try {
          const watch = await this.ctx.store.watch<T>(prefix);
          this.watches.push(watch);
          if (this.closed) await watch.close();
          await onStarted();
          started();
          for await (const e of watch) onEvent(e);
        } catch (err: unknown) {
          if (!this.closed) this.log(`watching ${prefix}: ${err}`);
          started();
        }
        if (!this.closed) await new Promise((r) => setTimeout(r, this.ctx.retryMs ?? 3000).unref());
      }
    };
    void loop();
    return first;
  }

  private async passOnce(): Promise<void> {
    if (this.ctx.replicas === undefined) return;
    await this.retryDrops();
    const suspects = new Map<string, number>();
    const online = this.cameOnline;
    this.cameOnline = new Set();
    const every = this.ctx.retryMs ?? 3000;
    const pass = ++this.passes;
    for (const id of this.ctx.attachedVolumes()) {
      if (this.closed) return;
      const use = this.ctx.attached(id);
      if (use === undefined || this.ctx.busy?.(id) === true) continue;
      const entry = await this.ctx.store.getEntry<VolumeRecord>(catalogKeys.volume(id));
      if (entry === undefined) continue;
      const record = entry.value;
      this.caps.setVolumeRate(id, record.resync_bandwidth);
      const inFanOut = new Set(use.coordinator.replicas.map((r) => r.nodeId));
      for (const r of replicasOf(record)) {
        const key = keyOf(id, r.node_id);
        if (this.running.has(key) || this.lowering.has(key)) continue;
        let lagging = stateOf(r) === 'out-of-sync';
        // A filling entry nobody copies to (a copy stopped by a crash): out of sync in fact, seen on two passes; at
        // once on a volume attached here for its resync (R19: nobody else can be copying to it).
        if (stateOf(r) === 'filling' && !inFanOut.has(r.node_id)) {
          const seen = this.suspects.get(key) ?? this.now();
          suspects.set(key, seen);
          lagging = this.detached?.has(id) === true || this.now() - seen >= 2 * every;
        }
        if (!lagging) continue;
        try {
          if (this.expired(r)) {
            await this.replace(record, r, use);
            continue;
          }
          // Once per retry interval (a replica that opens but fails at once must not spin), or when its node is back.
          const due = online.has(r.node_id) || this.now() - (this.tried.get(key) ?? 0) >= every;
          if (!due) continue;
          this.tried.set(key, this.now());
          await this.resume(record, r, use);
        } catch (err: unknown) {
          this.log(`volume ${record.name}: replica on node ${r.node_id}: ${err}`);
        }
      }
    }
    this.suspects = suspects;
    if (this.detached === undefined || this.closed) return;
    await this.detached.endIdle(pass, (id) => this.copying(id).length > 0 || this.lowersOf(id).length > 0);
    for (const id of await this.detached.attachDue(pass, online)) {
      // Its replicas are tried on the next pass, whenever they were last.
      for (const key of [...this.tried.keys()]) if (key.startsWith(`${id}/`)) this.tried.delete(key);
      this.again = true;
    }
  }

  private expired(r: ReplicaRecord): boolean {
    if (r.since === undefined) return false;
    const timeout = (this.settings.replica_timeout_seconds ?? DEFAULT_REPLICA_TIMEOUT_SECONDS) * 1000;
    return this.now() - Date.parse(r.since) > timeout;
  }

  private now(): number {
    return this.ctx.now?.() ?? Date.now();
  }

  // ---- resuming ------------------------------------------------------------------------------------------------

  /** Opens an out-of-sync replica; when it answers, records it `filling` and copies what it lacks. */
  private async resume(record: VolumeRecord, r: ReplicaRecord, use: AttachedVolume): Promise<void> {
    const connector = this.ctx.replicas as ReplicaConnector;
    let replica: Replica;
    try {
      replica = await connector.open(r.node_id, { volumeId: record.id, epoch: use.epoch });
    } catch {
      // Not back yet: the next pass (or its node coming online) tries again.
      return;
    }
    try {
      const source = use.coordinator.primary;
      let resync: ReplicaResync = r.resync ?? { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' };
      // A filling entry left outside the fan-out missed writes anywhere: its cursor says nothing any more.
      if (stateOf(r) === 'filling') resync = { ...resync, cursor: 0, copied_bytes: 0 };
      if (resync.own_writes === true && resync.cursor === 0) {
        resync = await withOwnWrites(resync, replica);
      }
      let total = resync.total_bytes;
      if (resync.cursor === 0 || total === 0) {
        try {
          total = await resyncBytes(source, record.size, resync);
        } catch (err: unknown) {
          if (!isFerryError(err, 'NOT_FOUND') || resync.kind !== 'dirty') throw err;
          // The source lacks the base snapshot: what the replica lacks is unknown, so a fill.
          resync = { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' };
          total = await resyncBytes(source, record.size, resync);
        }
      }
      const started: ReplicaResync = {
        ...resync,
        total_bytes: total,
        started: new Date(this.now()).toISOString(),
      };
      const next = await this.change(record.id, use.compares, (cur) => {
        const mine = replicasOf(cur).find((x) => x.node_id === r.node_id);
        if (mine === undefined || stateOf(mine) === 'in-sync') return undefined;
        if (mine.resync?.base_snapshot_id !== r.resync?.base_snapshot_id) return undefined;
        return withReplica(cur, r.node_id, { ...mine, state: 'filling', resync: started });
      });
      if (next === undefined) {
        await replica.close();
        return;
      }
      // A fall back to a fill leaves the old bases unnamed.
      await this.dropBase(record.name, next, r.resync?.base_snapshot_id);
      await this.dropBase(record.name, next, r.resync?.low?.base_snapshot_id);
      await this.run(next, r.node_id, replica, use, started);
    } catch (err: unknown) {
      await replica.close().catch(() => undefined);
      throw err;
    }
  }

  // ---- replacing -----------------------------------------------------------------------------------------------

  /** Places a new replica instead of the stale one `r` (one C1 transaction), fills it, and drops the stale one. */
  private async replace(record: VolumeRecord, stale: ReplicaRecord, use: AttachedVolume): Promise<void> {
    const placement = this.ctx.placement;
    if (placement === undefined) return;
    const holders = replicasOf(record).map((x) => x.node_id);
    // One node more than the holders (the stale one included: it is being replaced, not reused).
    const chosen = await placement.place({ ha_level: holders.length + 1, exclude: holders, size: record.size });
    const node = chosen.find((n) => !holders.includes(n));
    if (node === undefined) {
      this.log(`volume ${record.name}: no node can take the place of the stale replica on node ${stale.node_id}`);
      return;
    }
    const total = await resyncBytes(use.coordinator.primary, record.size, { kind: 'fill' });
    const resync: ReplicaResync = {
      kind: 'fill',
      cursor: 0,
      copied_bytes: 0,
      total_bytes: total,
      started: new Date(this.now()).toISOString(),
    };
    const next = await this.change(record.id, use.compares, (cur) => {
      const old = replicasOf(cur).find((x) => x.node_id === stale.node_id);
      if (old === undefined || stateOf(old) !== stateOf(stale) || old.since !== stale.since) return undefined;
      if (replicasOf(cur).some((x) => x.node_id === node)) return undefined;
      return withReplica(cur, stale.node_id, {
        node_id: node,
        state: 'filling',
        resync,
        reason: `replaces the replica on node ${stale.node_id}, out of sync since ${stale.since}`,
      });
    });
    if (next === undefined) return;
    this.log(`volume ${record.name}: the replica on node ${stale.node_id} is replaced by one on node ${node}`);
    await this.forgetStale(next, stale);
    let replica: Replica;
    try {
      replica = await (this.ctx.replicas as ReplicaConnector).open(node, { volumeId: record.id, epoch: use.epoch });
    } catch (err: unknown) {
      await this.markOut(record, node, use, err, true);
      return;
    }
    await this.run(next, node, replica, use, resync, true);
  }

  /** The stale replica is out of the record: its base snapshot goes, and its node is told to drop its layers. */
  private async forgetStale(record: VolumeRecord, stale: ReplicaRecord): Promise<void> {
    await this.dropBase(record.name, record, stale.resync?.base_snapshot_id);
    await this.dropBase(record.name, record, stale.resync?.low?.base_snapshot_id);
    const volumeId = record.id;
    const set = this.drops.get(stale.node_id) ?? new Set<string>();
    set.add(volumeId);
    this.drops.set(stale.node_id, set);
    await this.retryDrops();
  }

  /** Deletes a hidden base snapshot no replica of `record` (as committed) resyncs from any more. */
  private async dropBase(name: string, record: VolumeRecord, base: string | undefined): Promise<void> {
    if (base === undefined || basesOf(record).has(base)) return;
    await this.ctx
      .deleteSnapshot(base)
      .catch((err: unknown) => this.log(`volume ${name}: deleting the base snapshot ${base}: ${err}`));
  }

  private async retryDrops(): Promise<void> {
    const connector = this.ctx.replicas;
    if (connector === undefined) return;
    for (const [node, ids] of this.drops) {
      for (const id of [...ids]) {
        try {
          await connector.drop(node, id);
          ids.delete(id);
        } catch {
          // Unreachable: the next pass tries again (and the node drops it itself when it restarts, R18).
        }
      }
      if (ids.size === 0) this.drops.delete(node);
    }
  }

  // ---- copying -------------------------------------------------------------------------------------------------

  /** Adds `replica` (recorded `filling` in `record`) to the fan-out and copies to it in the background. */
  private async run(
    record: VolumeRecord,
    node: string,
    replica: Replica,
    use: AttachedVolume,
    resync: ReplicaResync,
    targetIsNew = false,
  ): Promise<void> {
    const key = keyOf(record.id, node);
    const run: Running = {
      volumeId: record.id,
      nodeId: node,
      abort: new AbortController(),
      quiet: false,
      done: Promise.resolve(),
    };
    this.running.set(key, run);
    try {
      // A live write the replica fails: recorded out of sync (cursor back to 0) before that write is acknowledged.
      await use.coordinator.addFilling(replica, async (err: unknown) => {
        run.quiet = true;
        await this.markOut(record, node, use, err, true);
        run.abort.abort(err);
      });
    } catch (err: unknown) {
      // Not in the fan-out (another copy has it): the entry is that copy's to change.
      this.running.delete(key);
      throw err;
    }
    run.done = this.copy(record, node, replica, use, resync, run, targetIsNew).finally(() => {
      this.running.delete(key);
      // A volume attached only for its resync is let go by the next pass once its copies are over.
      if (this.detached?.has(record.id) === true) this.poke();
    });
  }

  private async copy(
    record: VolumeRecord,
    node: string,
    replica: Replica,
    use: AttachedVolume,
    resync: ReplicaResync,
    run: Running,
    targetIsNew: boolean,
  ): Promise<void> {
    const { coordinator } = use;
    const interval = this.ctx.progressIntervalMs ?? 100;
    const everyBytes = this.ctx.progressBytes ?? 8 * 1024 * 1024;
    const before = resync.cursor === 0 ? 0 : resync.copied_bytes;
    let last = { at: this.now(), copied: 0 };
    /** The rate shown (inspect, ETA) is measured over `interval` at least, however often progress is committed. */
    let sample = last;
    let rate: number | undefined;
    const onProgress = async (p: FillProgress): Promise<void> => {
      const at = this.now();
      const due = at - last.at >= interval || (p.copied - last.copied >= everyBytes && at - last.at >= 20);
      if (!due || p.cursor >= record.size) return;
      last = { at, copied: p.copied };
      if (at - sample.at >= interval) {
        rate = Math.round(((p.copied - sample.copied) * 1000) / (at - sample.at));
        sample = last;
      }
      try {
        const next = await this.change(record.id, use.compares, (cur) => {
          const mine = replicasOf(cur).find((x) => x.node_id === node);
          if (mine?.state !== 'filling' || mine.resync === undefined) return undefined;
          return withReplica(cur, node, {
            ...mine,
            resync: {
              ...mine.resync,
              cursor: p.cursor,
              copied_bytes: before + p.copied,
              ...(rate !== undefined && { rate }),
            },
          });
        });
        if (next === undefined) {
          run.quiet = true;
          run.abort.abort(new FerryError('FAILED_PRECONDITION', `replica ${node} is no longer filling`));
        }
      } catch (err: unknown) {
        this.log(`volume ${record.name}: recording the resync's progress failed: ${err}`);
      }
    };
    try {
      const options = {
        coordinator,
        source: coordinator.primary,
        target: replica,
        size: record.size,
        startAt: resync.cursor,
        total: Math.max(0, resync.total_bytes - before),
        signal: run.abort.signal,
        onProgress,
        limiter: this.caps.limiterFor(record.id),
        ...this.ctx.copy,
      };
      // A new replica (a replacement) starts empty: the allocated data only, its holes cost nothing.
      if (targetIsNew) await fillReplica(options);
      else await resyncReplica({ ...options, resync });
      // R15: writes held, the replica flushed, then in-sync in the record, then read.
      const release = await coordinator.holdRange(0, Number.MAX_SAFE_INTEGER);
      let done: VolumeRecord | undefined;
      try {
        await replica.flush();
        done = await this.change(record.id, use.compares, (cur) => {
          const mine = replicasOf(cur).find((x) => x.node_id === node);
          if (mine?.state !== 'filling') return undefined;
          return withReplica(cur, node, { node_id: node, state: 'in-sync' });
        });
        if (done === undefined) throw new FerryError('FAILED_PRECONDITION', `replica ${node} is no longer filling`);
        coordinator.promote(node);
      } finally {
        release();
      }
      await this.dropBase(record.name, done as VolumeRecord, resync.base_snapshot_id);
      await this.dropBase(record.name, done as VolumeRecord, resync.low?.base_snapshot_id);
    } catch (err: unknown) {
      if (coordinator.fillingNodes().includes(node)) await coordinator.removeReplica(node).catch(() => undefined);
      else await replica.close().catch(() => undefined);
      if (!run.quiet) {
        await this.markOut(record, node, use, err, true).catch((e: unknown) => this.log(`${record.name}: ${e}`));
      }
    }
  }

  /**
   * Records node `node`'s filling replica `out-of-sync` again (C1) with its cursor back to 0 (writes go on without
   * it), `since` now for a new replica (its timeout counts from its failure); then freezes a low base for the part it
   * had copied (recordFailedCopy). Call it before awaiting anything at the failure (it holds writes at once).
   */
  private async markOut(
    record: VolumeRecord,
    node: string,
    use: AttachedVolume,
    why: unknown,
    _reset: boolean,
  ): Promise<void> {
    const key = keyOf(record.id, node);
    const { marked, settled } = recordFailedCopy({
      coordinator: use.coordinator,
      markFilling: use.markFilling,
      nodeId: node,
      error: why,
      log: (m) => this.log(`volume ${record.name}: ${m}`),
      markOut: async () => {
        let mark: FailedCopyMark | undefined;
        const next = await this.change(record.id, use.compares, (cur) => {
          const failed = failedFilling(cur, node, why, new Date(this.now()).toISOString());
          mark = failed?.mark;
          return failed?.record;
        });
        return next === undefined ? undefined : mark;
      },
    });
    const done = settled.finally(() => {
      if (this.lowering.get(key) === done) this.lowering.delete(key);
    });
    this.lowering.set(key, done);
    await marked;
    this.log(`volume ${record.name}: resyncing the replica on node ${node} failed, it is out of sync: ${why}`);
  }

  // ---- records -------------------------------------------------------------------------------------------------

  /** A C1 change of volume `id`'s record (undefined from `mutate`: nothing to do); a lost race decides again. */
  private async change(
    id: string,
    compares: readonly Compare[] | undefined,
    mutate: (record: VolumeRecord) => VolumeRecord | undefined,
  ): Promise<VolumeRecord | undefined> {
    const key = catalogKeys.volume(id);
    for (let attempt = 0; attempt < 20; attempt++) {
      const entry = await this.ctx.store.getEntry<VolumeRecord>(key);
      if (entry === undefined) return undefined;
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
      for (const c of compares ?? []) {
        const e = await this.ctx.store.getEntry(c.key);
        if ((e?.modRevision ?? 0) !== c.modRevision) {
          throw new FerryError('FAILED_PRECONDITION', `volume ${id}: this node no longer coordinates it (${c.key})`);
        }
      }
    }
    throw new FerryError('UNAVAILABLE', `volume ${id}: its record keeps changing; try again`);
  }

  private log(message: string): void {
    if (this.ctx.log !== undefined) this.ctx.log(message);
    else process.emitWarning(message, 'FerryEngineWarning');
  }
}

/** The cluster-wide replication settings as stored (REPLICATION_SETTINGS_KEY), defaults filled in. */
/**
 * A returning replica may hold writes the others never got (an old coordinator's own replica applied them, the rest
 * failed, and they were never acknowledged): its own recent writes join what it lacks, recorded with the rest so
 * that a resumed copy covers them too. When it cannot tell them (it restarted), its history is unknown: a fill.
 */
async function withOwnWrites(resync: ReplicaResync, replica: Replica): Promise<ReplicaResync> {
  const own = await replica.recentWrites();
  // Unknown: a fill of everything (the bases it no longer names are deleted once the change is committed).
  if (!own.complete) return { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' };
  const { own_writes: _, low, ...rest } = resync;
  return {
    ...rest,
    extra: unionRanges([resync.extra ?? [], own.ranges]),
    ...(low !== undefined && { low: { ...low, extra: unionRanges([low.extra ?? [], own.ranges]) } }),
  };
}

export async function readReplicationSettings(store: ClusterStore): Promise<Required<ReplicationSettings>> {
  const stored = (await store.get<ReplicationSettings>(REPLICATION_SETTINGS_KEY)) ?? {};
  return {
    resync_bandwidth: stored.resync_bandwidth ?? 0,
    replica_timeout_seconds: stored.replica_timeout_seconds ?? DEFAULT_REPLICA_TIMEOUT_SECONDS,
  };
}

/**
 * Changes the given cluster-wide replication settings (the others stay; C1 on the settings key, retried on a lost
 * race). `resync_bandwidth` is bytes per second, 0 for none; `replica_timeout_seconds` at least 1. Every node's
 * resync manager follows the key by watch, so the change applies at once. Returns the settings after it.
 */
export async function updateReplicationSettings(
  store: ClusterStore,
  patch: ReplicationSettings,
): Promise<Required<ReplicationSettings>> {
  const { resync_bandwidth: bandwidth, replica_timeout_seconds: timeout } = patch;
  if (bandwidth !== undefined && (!Number.isSafeInteger(bandwidth) || bandwidth < 0)) {
    throw invalidArgument('resync_bandwidth', 'bytes per second, a whole number (0: no cap)');
  }
  if (timeout !== undefined && (!Number.isSafeInteger(timeout) || timeout < 1)) {
    throw invalidArgument('replica_timeout_seconds', 'a whole number of seconds, at least 1');
  }
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await store.getEntry<ReplicationSettings>(REPLICATION_SETTINGS_KEY);
    const next: ReplicationSettings = {
      ...entry?.value,
      ...(bandwidth !== undefined && { resync_bandwidth: bandwidth }),
      ...(timeout !== undefined && { replica_timeout_seconds: timeout }),
    };
    const done = await store.txn(
      [{ key: REPLICATION_SETTINGS_KEY, modRevision: entry?.modRevision ?? 0 }],
      [{ op: 'put', key: REPLICATION_SETTINGS_KEY, value: next }],
    );
    if (done.succeeded) return readReplicationSettings(store);
  }
  throw new FerryError('UNAVAILABLE', 'the replication settings keep changing; try again');
}

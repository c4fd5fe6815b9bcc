/**
 * The coordinator of an open volume: the one place its I/O goes through on the node where it is attached, above
 * its replicas (docs/REPLICATION.md). Reads come from one in-sync replica, this node's own when it holds one (R4);
 * every change (write, zeroes, trim) and every flush goes to every in-sync and filling replica and is acknowledged
 * once all have acknowledged it (overlapping changes one after the other, so that every replica applies them in the
 * same order); a snapshot is staged on all of them with one head id and committed in one store
 * transaction by the engine.
 *
 * A replica being filled (`addFilling`, node/engine/fill.ts) receives every write from then on but is never read;
 * the fill copies the source's data range by range under `holdRange` (R14), which makes overlapping writes wait and
 * waits for the overlapping writes in flight. A filling replica that fails a change is taken out of the fan-out and
 * its failure handler (the fill's owner, which records it `out-of-sync`) runs before the change is acknowledged
 * (R7).
 *
 * An in-sync replica that fails a change or a flush (R6: an error, a broken connection, a timeout) is taken out of
 * the fan-out, and, when the engine gave `onInSyncFailure`, that change and every later one wait for the handler (the
 * C1 transaction that records it out-of-sync, node/engine/out-of-sync.ts) before they are acknowledged; if it fails,
 * they fail, and so does every change until a later call succeeds (R7). New changes are not sent while it runs, so
 * the handler sees a quiet volume (`drain`). Without a handler, the failure fails the I/O. The last in-sync replica
 * never leaves: its failure fails the request (UNAVAILABLE naming the replicas that failed before it, or the
 * replica's own error on a volume of one replica) and nothing is acknowledged until it answers again (R9). Late
 * answers of a failed replica are ignored.
 * A replica failing to stage a snapshot leaves it too, and is handed to the handler once the snapshot is committed
 * or abandoned (S2). The handler learns which ranges the replica may lack or hold differently (`extra`): those
 * changed since the last flush that completed on every replica, plus the changes in flight.
 */
import { FerryError } from '../../common/index.js';
import type { Compare, StoreOp } from '../cluster/types.js';
import { headNotAbandoned } from './local-layers.js';
import { coalesce, type Span } from './ranges.js';
import { unionRanges } from './recent-writes.js';
import type { RangeTuple } from './records.js';
import type { RecentWrites, Replica, ReplicaDiffRequest, ReplicaSnapshot } from './replica.js';
import type { ChangedBlocksPage, StatusExtent, WriteOptions } from './types.js';

/** An in-sync replica that failed, as the coordinator hands it to its `onInSyncFailure` handler. */
export interface InSyncFailure {
  /** The node holding the replica. */
  nodeId: string;
  /** What failed it (the replica's error, or its broken connection's). */
  error: unknown;
  /**
   * Ranges `[offset, length]` it may lack or hold differently besides the changes the others get after the failure:
   * changes since the last flush completed on every replica and the changes in flight. Coalesced; may over-cover.
   */
  extra: RangeTuple[];
  /**
   * Recorded by a coordinator other than the one that last wrote to it (a takeover): it may also hold writes of the
   * old epoch that nobody else got, so its own recent writes join what it lacks when it comes back.
   */
  ownWrites?: boolean;
}

/**
 * Records in-sync replicas that failed as out-of-sync (one C1 transaction for all of them). The changes waiting on
 * it are acknowledged once it resolves and fail when it rejects. It may call `drain` and `snapshot` on the
 * coordinator (new changes are held while it runs), never a change or flush (they would wait for it).
 */
export type InSyncFailureHandler = (failures: readonly InSyncFailure[]) => Promise<void>;

export interface CoordinatorOptions {
  /** This node's id: reads come from its replica when it holds an in-sync one. Default: the first replica's. */
  localNodeId?: string;
  /** Records failed in-sync replicas out-of-sync (R7). Default none: a failed in-sync replica fails the I/O. */
  onInSyncFailure?: InSyncFailureHandler;
  /** After the handler failed, how long changes fail at once before it is tried again, ms. Default 1000. */
  retryMs?: number;
}

/** Called when a filling replica fails a change; the change is acknowledged once it resolves (fails if it rejects). */
export type FillingFailure = (err: unknown) => Promise<void>;

/** A snapshot staged by the coordinator: every replica's staged changes, with the replicas that failed to stage. */
export interface CoordinatedSnapshot extends ReplicaSnapshot {
  /** Node ids of the in-sync replicas that failed to stage it and left the fan-out (S2); empty when none did. */
  readonly failed: readonly string[];
  /**
   * What the commit's transaction must compare besides its own: that no replica gave up its staged head (S4: one
   * whose connection ended before the commit reached it settles it by the store, and a tombstone there says it
   * abandoned it).
   */
  readonly compares: readonly Compare[];
}

interface Hold extends Span {
  released: Promise<void>;
}

interface Flight extends Span {
  done: Promise<void>;
}

interface Filling {
  replica: Replica;
  onFailure: FillingFailure | undefined;
  /** Set once it failed: the first failure's handler, which later changes in flight also wait for. */
  failed?: Promise<void>;
}

const overlaps = (a: Span, b: Span): boolean => a.start < b.end && b.start < a.end;

const GONE = Symbol('gone');

/** Changes that span more than this many ranges in one window are coalesced (memory bound between flushes). */
const WINDOW_LIMIT = 4096;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class VolumeCoordinator {
  private inSync: Replica[];
  /** In-sync replicas that failed (closed with the others at `close`). */
  private readonly failed: Replica[] = [];
  private filling: Filling[] = [];
  private readonly localNodeId: string | undefined;
  private readonly holds = new Set<Hold>();
  private readonly flights = new Set<Flight>();
  private handler: InSyncFailureHandler | undefined;
  private readonly retryMs: number;
  /** Failed in-sync replicas not yet recorded out-of-sync. */
  private readonly unhandled = new Map<string, InSyncFailure>();
  /** The handler call under way. */
  private handling: Promise<void> | undefined;
  /** Set while a snapshot that lost replicas awaits its commit or abandon (their handling starts after it). */
  private paused: Promise<void> | undefined;
  private lastError: unknown;
  private lastErrorAt = 0;
  /** Resolves when the replica left the fan-out (its sends in flight stop being waited for). */
  private readonly gone = new Map<Replica, { promise: Promise<typeof GONE>; resolve: () => void }>();
  /** Ranges changed since the flushes that completed on every replica, newest window last. */
  private windows: Span[][] = [[]];

  constructor(replicas: readonly Replica[], options: CoordinatorOptions = {}) {
    if (replicas.length === 0) throw new FerryError('INTERNAL', 'a volume coordinator needs at least one replica');
    this.inSync = [...replicas];
    this.localNodeId = options.localNodeId;
    this.handler = options.onInSyncFailure;
    this.retryMs = options.retryMs ?? 1000;
  }

  /** Sets (or clears) the handler of in-sync failures (the engine wires it once it knows the tenure). */
  setInSyncFailureHandler(handler: InSyncFailureHandler | undefined): void {
    this.handler = handler;
  }

  /** Every replica that receives changes: the in-sync ones, then the filling ones. */
  get replicas(): readonly Replica[] {
    return [...this.inSync, ...this.filling.map((f) => f.replica)];
  }

  /** The node ids of the in-sync replicas (the ones a snapshot taken now is complete on: SnapshotRecord.holders). */
  inSyncNodes(): string[] {
    return this.inSync.map((r) => r.nodeId);
  }

  /** The node ids of the replicas being filled. */
  fillingNodes(): string[] {
    return this.filling.map((f) => f.replica.nodeId);
  }

  /** The node ids of the in-sync replicas that failed and are not recorded out-of-sync yet. */
  failingNodes(): string[] {
    return [...this.unhandled.keys()];
  }

  /** The replica reads come from: this node's in-sync one when there is one, else the first in-sync one (R4). */
  get primary(): Replica {
    const local = this.localNodeId === undefined ? undefined : this.inSync.find((r) => r.nodeId === this.localNodeId);
    return local ?? (this.inSync[0] as Replica);
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.primary.read(offset, length, into);
  }

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.change({ start: offset, end: offset + data.length }, (r) => r.write(offset, data, options));
  }

  writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.change({ start: offset, end: offset + length }, (r) => r.writeZeroes(offset, length, options));
  }

  trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.change({ start: offset, end: offset + length }, (r) => r.trim(offset, length, options));
  }

  /** Durable on every in-sync and filling replica when it resolves (the contract of Replica.flush, on all of them). */
  flush(): Promise<void> {
    return this.change(undefined, (r) => r.flush());
  }

  async blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    return this.primary.blockStatus(offset, length);
  }

  async changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    return this.primary.changedBlocks(request);
  }

  /** The union of the in-sync replicas' recent writes (R12); complete only when every one's is. */
  async recentWrites(): Promise<RecentWrites> {
    const all = await Promise.all(this.inSync.map((r) => r.recentWrites()));
    return { complete: all.every((w) => w.complete), ranges: unionRanges(all.map((w) => w.ranges)) };
  }

  /** The lowest generation among the in-sync replicas: what every one of them has applied. */
  generation(): number {
    return Math.min(...this.inSync.map((r) => r.generation()));
  }

  /** Resolves once every change and flush sent to the replicas has settled there (not yet acknowledged, maybe). */
  async drain(): Promise<void> {
    while (this.flights.size > 0) await Promise.allSettled([...this.flights].map((f) => f.done));
  }

  /**
   * Stages snapshot `snapshotId` on every replica, in-sync and filling, with `headId` as every replica's new head
   * (the caller holds writes). A filling replica stages it too, so that its head keeps the volume's layer ids, but
   * its frozen point is incomplete: the snapshot's holders are `inSyncNodes()` only (S3). The result's `ops` are
   * every replica's; `point` and `head` are the primary's. With a failure handler, an in-sync replica that fails to
   * stage leaves the fan-out (`failed`) and is handed to the handler once the result is committed or abandoned (S2);
   * changes wait until then. Without one, or when a filling replica or every in-sync one fails, the others' stages
   * are abandoned and it rejects.
   */
  async snapshot(snapshotId: string, headId?: string): Promise<CoordinatedSnapshot> {
    const replicas = this.replicas;
    if (replicas.length === 1) {
      const one = await this.primary.snapshot(snapshotId, headId);
      return {
        ops: one.ops,
        point: one.point,
        head: one.head,
        failed: [],
        compares: [headNotAbandoned(this.primary.nodeId, one.head)],
        commit: () => one.commit(),
        abandon: () => one.abandon(),
      };
    }
    const settled = await Promise.allSettled(replicas.map((r) => r.snapshot(snapshotId, headId)));
    const staged = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failedAt = replicas.flatMap((r, i) => (settled[i]?.status === 'rejected' ? [r] : []));
    const fatal =
      failedAt.length > 0 &&
      (this.handler === undefined ||
        failedAt.some((r) => !this.inSync.includes(r)) ||
        this.inSync.every((r) => failedAt.includes(r)));
    if (fatal) {
      for (const s of staged) s.abandon();
      const first = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult;
      throw first.reason;
    }
    for (const r of failedAt) {
      const reason = (settled[replicas.indexOf(r)] as PromiseRejectedResult).reason;
      this.fail(r, reason, false);
    }
    let resume: () => void = () => undefined;
    if (failedAt.length > 0) {
      this.paused = new Promise<void>((resolve) => {
        resume = () => {
          this.paused = undefined;
          resolve();
          this.kick();
        };
      });
    }
    const ops: StoreOp[] = staged.flatMap((s) => [...s.ops]);
    const ok = replicas.filter((r) => !failedAt.includes(r));
    const mine = staged[ok.indexOf(this.primary)] as ReplicaSnapshot;
    return {
      ops,
      point: mine.point,
      head: mine.head,
      failed: failedAt.map((r) => r.nodeId),
      compares: ok.map((r, i) => headNotAbandoned(r.nodeId, (staged[i] as ReplicaSnapshot).head)),
      commit: () => {
        for (const s of staged) s.commit();
        resume();
      },
      abandon: () => {
        for (const s of staged) s.abandon();
        resume();
      },
    };
  }

  /**
   * Starts sending every later change and flush to `replica`, which is being filled: it is never read. When it fails
   * a change, it stops receiving them and `onFailure` runs before that change is acknowledged (R7); without one, the
   * change fails. Resolves once the changes in flight when it was called (sent before it, so not to `replica`) have
   * completed: a fill started after that finds them on its source (R14).
   */
  async addFilling(replica: Replica, onFailure?: FillingFailure): Promise<void> {
    if (this.replicas.some((r) => r.nodeId === replica.nodeId)) {
      throw new FerryError('FAILED_PRECONDITION', `node ${replica.nodeId} already holds a replica of this volume`);
    }
    this.filling.push({ replica, onFailure });
    await Promise.allSettled([...this.flights].map((f) => f.done));
  }

  /** A filling replica becomes in-sync: it may be read from now on (R15: the caller holds writes and has flushed it). */
  promote(nodeId: string): void {
    const i = this.filling.findIndex((f) => f.replica.nodeId === nodeId);
    if (i < 0) throw new FerryError('FAILED_PRECONDITION', `node ${nodeId} holds no replica being filled`);
    const [f] = this.filling.splice(i, 1);
    this.inSync.push((f as Filling).replica);
  }

  /**
   * Stops sending changes to node `nodeId`'s replica, waits for the changes in flight, and closes it. Never the last
   * in-sync replica. Resolves when it held none.
   */
  async removeReplica(nodeId: string): Promise<void> {
    let replica: Replica | undefined;
    const i = this.inSync.findIndex((r) => r.nodeId === nodeId);
    if (i >= 0) {
      if (this.inSync.length === 1) {
        throw new FerryError('FAILED_PRECONDITION', `node ${nodeId} holds the last in-sync replica; it cannot go`);
      }
      replica = this.inSync[i];
      this.inSync = this.inSync.filter((_, j) => j !== i);
    } else {
      const f = this.filling.find((x) => x.replica.nodeId === nodeId);
      this.filling = this.filling.filter((x) => x !== f);
      replica = f?.replica;
    }
    if (replica === undefined) return;
    await Promise.allSettled([...this.flights].map((f) => f.done));
    await replica.close();
  }

  /**
   * Holds the byte range [offset, offset+length) for a copy (R14): new changes overlapping it wait until the returned
   * release is called; resolves once the overlapping changes already in flight have completed. Other ranges go on.
   * Holds do not exclude each other (the fill's steps are disjoint).
   */
  async holdRange(offset: number, length: number): Promise<() => void> {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const hold: Hold = { start: offset, end: offset + length, released };
    this.holds.add(hold);
    const waiting = [...this.flights].filter((f) => overlaps(f, hold)).map((f) => f.done);
    if (waiting.length > 0) await Promise.allSettled(waiting);
    return () => {
      if (this.holds.delete(hold)) release();
    };
  }

  /** Releases every replica's resources for this open (flush first), those that failed included. */
  async close(): Promise<void> {
    // Failures found last (a snapshot's, S2) are recorded before the tenure ends: its lock is what they commit under.
    if (this.unhandled.size > 0 || this.handling !== undefined) await this.settled().catch(() => undefined);
    await Promise.allSettled(this.failed.map((r) => r.close()));
    await Promise.all(this.replicas.map((r) => r.close()));
  }

  /**
   * A change of `span` (a flush: none): after the holds over it and any failure handling under way, tracked while in
   * flight, sent to every replica; acknowledged once every replica that failed meanwhile is recorded (R7).
   */
  private async change(span: Span | undefined, fn: (r: Replica) => Promise<void>): Promise<void> {
    if (span !== undefined && this.holds.size > 0) {
      for (;;) {
        const blocking = [...this.holds].find((h) => overlaps(h, span));
        if (blocking === undefined) break;
        await blocking.released;
      }
    }
    // Checked and entered in one turn: a handler that starts meanwhile has drained without this change.
    while (this.busy()) await this.settled();
    let done!: () => void;
    const flight: Flight = {
      ...(span ?? { start: 0, end: 0 }),
      done: new Promise<void>((resolve) => {
        done = resolve;
      }),
    };
    let covered: Span[][] = [];
    if (span !== undefined) this.noteChange(span);
    else {
      // A flush covers what was changed before it (and what is in flight: R5); later changes start a new window.
      covered = this.windows;
      this.windows = [...covered, [...this.flights].filter((f) => f.end > f.start).map((f) => ({ ...f }))];
    }
    // Overlapping changes reach the replicas one after the other, in the order they entered: two in flight at once
    // could land in different orders on different replicas and leave them holding different bytes.
    const earlier = span === undefined ? [] : [...this.flights].filter((f) => f.end > f.start && overlaps(f, span));
    this.flights.add(flight);
    let clean: boolean;
    try {
      if (earlier.length > 0) await Promise.all(earlier.map((f) => f.done));
      clean = await this.fanOut(fn);
    } finally {
      this.flights.delete(flight);
      done();
    }
    if (span === undefined && clean) this.windows = this.windows.filter((w) => !covered.includes(w));
    await this.settled();
  }

  private busy(): boolean {
    return this.paused !== undefined || this.handling !== undefined || this.unhandled.size > 0;
  }

  /** Waits until no failure is being handled or waits to be; rejects when one cannot be recorded (or none is left). */
  private async settled(): Promise<void> {
    for (;;) {
      if (this.paused !== undefined) {
        await this.paused;
        continue;
      }
      if (this.handling !== undefined) {
        try {
          await this.handling;
        } catch (err: unknown) {
          throw this.unrecorded(err);
        }
        continue;
      }
      if (this.unhandled.size === 0) return;
      if (!this.kick()) throw this.unrecorded(this.lastError);
    }
  }

  private unrecorded(err: unknown): FerryError {
    const nodes = [...this.unhandled.keys()].join(', ');
    return new FerryError(
      'UNAVAILABLE',
      `replica(s) on node ${nodes || '?'} failed and could not be recorded out of sync (${message(err)}); I/O fails until they are`,
      { cause: err },
    );
  }

  /** Starts the handler for the failures waiting, unless one runs already; false while a failed one cools down. */
  private kick(): boolean {
    if (this.handling !== undefined || this.paused !== undefined || this.unhandled.size === 0) return true;
    const handler = this.handler;
    if (handler === undefined) {
      this.lastError = new Error('no handler records failed replicas out of sync');
      return false;
    }
    if (this.lastErrorAt > 0 && Date.now() - this.lastErrorAt < this.retryMs) return false;
    const run = async (): Promise<void> => {
      await this.drain();
      const batch = [...this.unhandled.values()];
      await handler(batch);
      for (const f of batch) if (this.unhandled.get(f.nodeId) === f) this.unhandled.delete(f.nodeId);
    };
    const handling = run();
    this.handling = handling;
    handling.then(
      () => {
        this.handling = undefined;
        this.lastErrorAt = 0;
        this.kick();
      },
      (err: unknown) => {
        this.handling = undefined;
        this.lastError = err;
        this.lastErrorAt = Date.now();
      },
    );
    return true;
  }

  /** Records a change's range in the newest window (coalesced when the window grows large). */
  private noteChange(span: Span): void {
    const current = this.windows[this.windows.length - 1] as Span[];
    current.push({ ...span });
    if (current.length > WINDOW_LIMIT) {
      const merged = coalesce(current, WINDOW_LIMIT / 8).map(([o, l]) => ({ start: o, end: o + l }));
      current.splice(0, current.length, ...merged);
    }
  }

  /**
   * What a replica failing now may lack or hold differently: the ranges changed since the last flush that completed
   * on every replica, and those in flight (coalesced; may over-cover).
   */
  unflushedRanges(): RangeTuple[] {
    return coalesce([...this.windows.flat(), ...this.flights]);
  }

  /**
   * Takes in-sync replica `r` out of the fan-out after `err` (its first failure; later ones are late answers). The
   * last in-sync replica stays (R9: nothing is left to go on with, so nothing is acknowledged until it answers again):
   * then the error the request fails with is returned, the replica's own when it is the volume's only one.
   */
  private fail(r: Replica, err: unknown, kick = true): { error: unknown } | undefined {
    if (!this.inSync.includes(r)) return undefined;
    if (this.inSync.length === 1) {
      if (this.failed.length === 0) return { error: err };
      const before = this.failed.map((x) => x.nodeId).join(', node ');
      return {
        error: new FerryError(
          'UNAVAILABLE',
          `no in-sync replica of this volume is left: node ${before} failed before, and the last one, node ${r.nodeId}, failed now (${message(err)}); nothing is acknowledged until it answers`,
          { cause: err },
        ),
      };
    }
    this.inSync = this.inSync.filter((x) => x !== r);
    this.failed.push(r);
    this.goneOf(r);
    this.gone.get(r)?.resolve();
    this.unhandled.set(r.nodeId, { nodeId: r.nodeId, error: err, extra: this.unflushedRanges() });
    if (kick) this.kick();
    return undefined;
  }

  private goneOf(r: Replica): Promise<typeof GONE> {
    let entry = this.gone.get(r);
    if (entry === undefined) {
      let resolve!: () => void;
      const promise = new Promise<typeof GONE>((res) => {
        resolve = () => res(GONE);
      });
      entry = { promise, resolve };
      this.gone.set(r, entry);
    }
    return entry.promise;
  }

  /** Sends to every in-sync and filling replica; false when one of them failed it. */
  private async fanOut(fn: (r: Replica) => Promise<void>): Promise<boolean> {
    const inSync = [...this.inSync];
    const filling = [...this.filling];
    if (this.handler === undefined) {
      if (filling.length === 0 && inSync.length === 1) {
        await fn(inSync[0] as Replica);
        return true;
      }
      await Promise.all([...inSync.map(fn), ...filling.map((f) => this.toFilling(f, fn))]);
      return true;
    }
    if (filling.length === 0 && inSync.length === 1) {
      // The last in-sync replica: nothing to race it against (it never leaves the fan-out).
      const only = inSync[0] as Replica;
      try {
        await fn(only);
      } catch (err: unknown) {
        throw this.fail(only, err)?.error ?? err;
      }
      return true;
    }
    const results = await Promise.all([
      ...inSync.map((r) => this.toInSync(r, fn)),
      ...filling.map((f) => this.toFilling(f, fn).then(() => true)),
    ]);
    return results.every((ok) => ok);
  }

  /** Sends to an in-sync replica; its failure takes it out of the fan-out (false). */
  private async toInSync(r: Replica, fn: (r: Replica) => Promise<void>): Promise<boolean> {
    const outcome = await Promise.race([
      fn(r).then(
        (): true => true,
        (err: unknown) => ({ err }),
      ),
      this.goneOf(r),
    ]);
    if (outcome === true) return true;
    if (outcome !== GONE) {
      const last = this.fail(r, outcome.err);
      if (last !== undefined) throw last.error;
    }
    return false;
  }

  /** Sends a change to a filling replica; its failure takes it out of the fan-out and runs its handler. */
  private async toFilling(f: Filling, fn: (r: Replica) => Promise<void>): Promise<void> {
    try {
      await fn(f.replica);
    } catch (err: unknown) {
      if (f.onFailure === undefined) throw err;
      if (f.failed === undefined) {
        this.filling = this.filling.filter((x) => x !== f);
        f.failed = f.onFailure(err);
      }
      await f.failed;
    }
  }
}

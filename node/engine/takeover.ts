/**
 * A writer's attach of a replicated volume as a takeover (docs/REPLICATION.md, F2 c-f and F5): every replica of the
 * record is opened under the new epoch at once, each with a bounded wait; the in-sync ones that do not answer and
 * every filling one are marked out-of-sync (a filling one's copied part gets a low base, R14a); the answering in-sync ones (the survivors) are reconciled over their
 * recent writes (R12) from one source, so that each block reads alike on all of them, before any I/O is served.
 *
 * A replica refusing the epoch (StaleEpochError: a later coordinator opened it) fails the whole attach: this node is
 * not the volume's latest coordinator, and marking that replica out-of-sync would be wrong.
 */
import { FerryError } from '../../common/index.js';
import { GRANULE } from './constants.js';
import { unionRanges } from './recent-writes.js';
import type { RangeTuple, ReplicaRecord, ReplicaResync, VolumeRecord } from './records.js';
import { type RecentWrites, type Replica, StaleEpochError } from './replica.js';

/** How long each replica's open (and its recent writes) may take before it counts as unreachable. */
export const TAKEOVER_OPEN_TIMEOUT_MS = 3000;
/** Bytes compared per step of the reconciliation. */
const RECONCILE_CHUNK = 1024 * 1024;

/** One replica to mark out-of-sync at takeover. */
export interface TakeoverMark {
  nodeId: string;
  /** `dirty`: it lacks at most the changes since the base the marking freezes plus `extra`; `fill`: unknown. */
  kind: 'dirty' | 'fill';
  /** `dirty`: the ranges the survivors changed recently (what it may lack or hold differently). */
  extra: RangeTuple[];
  /** For inspect: why. */
  reason: string;
  /**
   * A filling replica whose copied part is of unknown state (the survivors' recent writes are unknown): its cursor
   * goes back to 0 without a low part. Otherwise a filling one's copied part gets the marking's base as its `low`.
   */
  restart?: boolean;
}

/** What the takeover needs from the engine. */
export interface TakeoverPorts {
  /** This node's id (its replica, when it holds one, is the reconciliation's source). */
  nodeId: string;
  /** Opens node `nodeId`'s replica of the volume under the new epoch (this node's too). */
  open(nodeId: string): Promise<Replica>;
  /**
   * Commits the marks (C1, comparing the attach lock) with `survivors` as the replicas that stay in-sync (a `dirty`
   * mark freezes its base on them): resolves with the record written.
   */
  markOutOfSync(marks: readonly TakeoverMark[], survivors: readonly Replica[]): Promise<VolumeRecord>;
  /** Per-replica bound on the open and on its recent writes; default TAKEOVER_OPEN_TIMEOUT_MS. */
  openTimeoutMs?: number;
}

/** The result: the record after the marks, and the in-sync replicas to coordinate over (reconciled). */
export interface TakenOver {
  record: VolumeRecord;
  replicas: Replica[];
  /** Bytes copied to make the survivors agree (F5), for the log and the tests. */
  reconciledBytes: number;
}

const stateOf = (r: ReplicaRecord): string => r.state ?? 'in-sync';

/** `promise`, or UNAVAILABLE after `ms`; a late result is closed (when it is a replica) by `late`. */
async function bounded<T>(promise: Promise<T>, ms: number, what: string, late?: (value: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new FerryError('UNAVAILABLE', `${what} did not answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
    if (timedOut && late !== undefined) promise.then(late, () => undefined);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Opens every replica of `record` (the caller holds the attach lock and has written `epoch` and `attached`), marks
 * the ones lost, and reconciles the survivors. UNAVAILABLE naming the replicas when no in-sync one answers (nothing
 * marked); StaleEpochError when a replica holds a later epoch. On failure, everything opened is closed.
 */
export async function takeOver(record: VolumeRecord, ports: TakeoverPorts): Promise<TakenOver> {
  const ms = ports.openTimeoutMs ?? TAKEOVER_OPEN_TIMEOUT_MS;
  const all = record.replicas ?? [];
  const settled = await Promise.allSettled(
    all.map((r) =>
      bounded(ports.open(r.node_id), ms, `node ${r.node_id}'s replica of ${record.name}`, (late) => {
        void late.close().catch(() => undefined);
      }),
    ),
  );
  const opened: Replica[] = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const closeAll = (which: readonly Replica[]) => Promise.allSettled(which.map((r) => r.close()));
  try {
    const fenced = settled.find((s) => s.status === 'rejected' && s.reason instanceof StaleEpochError);
    if (fenced !== undefined) throw (fenced as PromiseRejectedResult).reason;
    const failures = new Map<string, string>();
    const survivors: Replica[] = [];
    all.forEach((r, i) => {
      const s = settled[i] as PromiseSettledResult<Replica>;
      if (stateOf(r) === 'in-sync') {
        if (s.status === 'fulfilled') survivors.push(s.value);
        else failures.set(r.node_id, message(s.reason));
      }
    });
    if (survivors.length === 0) {
      const why = [...failures].map(([n, m]) => `${n}: ${m}`).join('; ');
      throw new FerryError(
        'UNAVAILABLE',
        `volume ${record.name} has no in-sync replica that answers (${why || 'none is in-sync'}); it cannot be attached until one is back`,
      );
    }
    // The survivors' recent writes; one that cannot tell them is lost too.
    const recents = new Map<Replica, RecentWrites>();
    await Promise.all(
      survivors.map(async (r) => {
        try {
          recents.set(r, await bounded(r.recentWrites(), ms, `node ${r.nodeId}'s recent writes`));
        } catch (err: unknown) {
          if (err instanceof StaleEpochError) throw err;
          failures.set(r.nodeId, message(err));
        }
      }),
    );
    const answering = survivors.filter((r) => recents.has(r));
    if (answering.length === 0) {
      throw new FerryError('UNAVAILABLE', `no in-sync replica of volume ${record.name} answers its recent writes`);
    }
    const source = pickSource(answering, recents, ports.nodeId);
    const sourceComplete = (recents.get(source) as RecentWrites).complete;
    // A survivor that cannot tell its recent writes (its node restarted) is copied in full, unless it is the source.
    const kept = answering.filter((r) => r === source || (recents.get(r) as RecentWrites).complete);
    const incomplete = answering.filter((r) => !kept.includes(r));
    const ranges = unionRanges(kept.map((r) => (recents.get(r) as RecentWrites).ranges));
    let reconciledBytes = 0;
    const diverged: Replica[] = [];
    for (const target of kept) {
      if (target === source) continue;
      try {
        reconciledBytes += await reconcile(source, target, ranges);
        await target.flush();
      } catch (err: unknown) {
        if (err instanceof StaleEpochError) throw err;
        failures.set(target.nodeId, message(err));
        diverged.push(target);
      }
    }
    if (reconciledBytes > 0) await source.flush();
    const inSync = kept.filter((r) => !diverged.includes(r));
    const marks = marksFor(all, {
      inSync,
      incomplete,
      failures,
      ranges,
      // What a lost replica may lack: every survivor's recent ranges (unknown when one survivor's are).
      lostKind: sourceComplete && incomplete.length === 0 ? 'dirty' : 'fill',
    });
    const next = marks.length > 0 ? await ports.markOutOfSync(marks, inSync) : record;
    await closeAll(opened.filter((r) => !inSync.includes(r)));
    return { record: next, replicas: inSync, reconciledBytes };
  } catch (err: unknown) {
    await closeAll(opened);
    throw err;
  }
}

interface Outcome {
  /** The replicas that stay in-sync. */
  inSync: readonly Replica[];
  /** Survivors that could not tell their recent writes (copied in full). */
  incomplete: readonly Replica[];
  /** Why each lost replica was lost. */
  failures: ReadonlyMap<string, string>;
  /** The survivors' recent ranges. */
  ranges: RangeTuple[];
  /** How an in-sync replica that did not answer is marked. */
  lostKind: 'dirty' | 'fill';
}

/** The marks of a takeover: every replica of the record but the in-sync ones kept (out-of-sync ones stay as they are). */
function marksFor(all: readonly ReplicaRecord[], o: Outcome): TakeoverMark[] {
  const marks: TakeoverMark[] = [];
  for (const r of all) {
    const node = r.node_id;
    if (o.inSync.some((s) => s.nodeId === node)) continue;
    if (stateOf(r) === 'filling') {
      // Below its cursor it lacks the writes made without it from now on (the base frozen now) and the survivors'
      // recent ones (lost in flight when the old coordinator went): R14a, out-of-sync.ts `lowered`.
      const known = o.lostKind === 'dirty';
      marks.push({
        nodeId: node,
        kind: 'dirty',
        extra: known ? o.ranges : [],
        reason: 'being filled at takeover',
        ...(!known && { restart: true }),
      });
    } else if (stateOf(r) === 'in-sync') {
      const restarted = o.incomplete.some((s) => s.nodeId === node);
      const kind = restarted ? 'fill' : o.lostKind;
      marks.push({
        nodeId: node,
        kind,
        extra: kind === 'dirty' ? o.ranges : [],
        reason: restarted
          ? 'restarted while attached: its recent writes are unknown (takeover)'
          : `unreachable at takeover: ${o.failures.get(node) ?? 'no answer'}`,
      });
    }
  }
  return marks;
}

/** This node's replica when it knows its recent writes, else the first that does, else this node's or the first. */
function pickSource(answering: readonly Replica[], recents: Map<Replica, RecentWrites>, nodeId: string): Replica {
  const complete = answering.filter((r) => (recents.get(r) as RecentWrites).complete);
  const from = complete.length > 0 ? complete : answering;
  return from.find((r) => r.nodeId === nodeId) ?? (from[0] as Replica);
}

/**
 * Makes `target` hold `source`'s bytes over `ranges` (aligned out to whole blocks): reads both, writes the blocks
 * that differ. Resolves with the bytes written.
 */
export async function reconcile(source: Replica, target: Replica, ranges: readonly RangeTuple[]): Promise<number> {
  let written = 0;
  for (const [offset, length] of ranges) {
    const start = Math.floor(offset / GRANULE) * GRANULE;
    const end = Math.ceil((offset + length) / GRANULE) * GRANULE;
    for (let at = start; at < end; at += RECONCILE_CHUNK) {
      const n = Math.min(RECONCILE_CHUNK, end - at);
      const [want, have] = await Promise.all([source.read(at, n), target.read(at, n)]);
      let b = 0;
      while (b < n) {
        if (want.compare(have, b, b + GRANULE, b, b + GRANULE) === 0) {
          b += GRANULE;
          continue;
        }
        let e = b + GRANULE;
        while (e < n && want.compare(have, e, e + GRANULE, e, e + GRANULE) !== 0) e += GRANULE;
        await target.write(at + b, want.subarray(b, e));
        written += e - b;
        b = e;
      }
    }
  }
  return written;
}

/**
 * The record change of `fill` marks: each marked replica becomes `out-of-sync` with a `fill` resync (a full copy,
 * safe whatever it lacks), `since` and `reason`; a filling one keeps its kind and base, its cursor back to 0 and no
 * low part (writes below its cursor may have gone on without it).
 */
export function markedRecord(record: VolumeRecord, marks: readonly TakeoverMark[], now: string): VolumeRecord {
  return {
    ...record,
    replicas: (record.replicas ?? []).map((r) => {
      const mark = marks.find((m) => m.nodeId === r.node_id);
      if (mark === undefined) return r;
      const fresh = { cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' };
      const { low: _, rate: __, ...kept } = r.resync ?? { kind: 'fill' as const, ...fresh };
      const resync: ReplicaResync = stateOf(r) === 'filling' ? { ...kept, ...fresh } : { kind: 'fill', ...fresh };
      return { ...r, state: 'out-of-sync', since: now, reason: mark.reason, resync };
    }),
  };
}

/**
 * Recording in-sync replicas out-of-sync (docs/REPLICATION.md, R7, C1, S2): the coordinator's handler of failed
 * in-sync replicas, and what a takeover calls for the replicas that did not answer (F2 d).
 *
 * With the coordinator's changes drained (and new ones held: the coordinator holds them while its handler runs), the
 * remaining in-sync replicas stage one hidden snapshot (label RESYNC_SNAPSHOT_LABEL, whose value lists the failed
 * nodes) with one new head; one C1 transaction (the record's mod revision and the attach lock) then commits the
 * replicas' staged changes, the snapshot record (holders: the replicas that staged it), the new `top`, and each
 * failed replica as `out-of-sync` with `since`, `reason` and `resync: { kind: 'dirty', base_snapshot_id, extra }`.
 * What a failed replica lacks is then what changed on the survivors since the hidden snapshot, plus `extra`.
 * Replicas the record no longer lists as in-sync keep their state (an out-of-sync one keeps its own base).
 *
 * A `filling` replica that failed (R14a: out of the fan-out, or not opened at a takeover) is marked too: when its copy
 * got to a cursor C > 0, the same hidden snapshot becomes its `low` base (`lowered`): below C it lacks only what
 * changes after it plus `extra`, and the copy restarts at 0 over that small part. With C = 0 (or `restart`) it is
 * recorded out-of-sync with the cursor at 0 and no low part, and no snapshot is frozen for it. Hidden bases that no
 * replica's record names any more afterwards (replaced low bases) are deleted.
 */
import { FerryError } from '../../common/index.js';
import type { ClusterStore, Compare, StoreOp } from '../cluster/types.js';
import { catalogKeys, put } from './catalog.js';
import { RESYNC_SNAPSHOT_LABEL } from './constants.js';
import type { InSyncFailure, VolumeCoordinator } from './coordinator.js';
import { newId } from './layer-set.js';
import type { RangeTuple, ReplicaRecord, ReplicaResync, SnapshotRecord, VolumeRecord } from './records.js';
import { readRecord } from './tenure.js';

export interface OutOfSyncOptions {
  store: ClusterStore;
  /** The volume's coordinator: its in-sync replicas stage the hidden snapshot. */
  coordinator: VolumeCoordinator;
  volumeId: string;
  /** The coordinator's attach lock: the transaction holds only while it does (C1). */
  lock: { key: string; revision: number };
  /**
   * Runs `fn` with this node's replica's own writers held (the local volume's gate, as a snapshot does). Never the
   * attachment's device gate: the changes waiting for this call hold it. Default: runs `fn`.
   */
  holdingWrites?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Commits the transaction (the engine wraps it in its space reserve). Default: `store.txn`. */
  txn?: (compares: Compare[], ops: StoreOp[]) => Promise<{ succeeded: boolean }>;
  /** Told the record written and the hidden snapshot (none when no base was needed), after the replicas' commit. */
  committed?: (record: VolumeRecord, snapshot: SnapshotRecord | undefined) => void;
  /** Deletes a hidden base snapshot no replica names any more (engine deleteSnapshot). Default: none deleted. */
  deleteSnapshot?: (snapshotId: string) => Promise<void>;
  /** Record changes to retry on when another writer moved the record meanwhile (default 5). */
  attempts?: number;
}

/** The `reason` of a failure, as inspect shows it. */
function reasonOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** Whether a replica record is in-sync (records before replication have no state). */
const inSync = (r: ReplicaRecord): boolean => (r.state ?? 'in-sync') === 'in-sync';

/** A failed replica to record out-of-sync: an in-sync one (InSyncFailure), or one being filled (R14a). */
export interface ReplicaFailure extends InSyncFailure {
  /** A filling replica's resync as it was when its copy failed (default: its entry's); the cursor is how far it got. */
  copy?: ReplicaResync;
  /**
   * Marks only while the replica's entry is still exactly this one (an out-of-sync entry a failure handler wrote at
   * once, cursor 0, that this call narrows with a low part); absent: in-sync and filling entries are marked.
   */
  entry?: ReplicaRecord;
  /** What it lacks below its cursor is unknown (a takeover without recent writes): cursor 0, no low part. */
  restart?: boolean;
}

/** The hidden base snapshots `record`'s replicas resync from (their bases and low bases). */
export function basesOf(record: VolumeRecord): Set<string> {
  const ids = new Set<string>();
  for (const r of record.replicas ?? []) {
    if (r.resync?.base_snapshot_id !== undefined) ids.add(r.resync.base_snapshot_id);
    if (r.resync?.low !== undefined) ids.add(r.resync.low.base_snapshot_id);
  }
  return ids;
}

/**
 * The resync of a copy that failed at `copy.cursor` (R14a): the cursor back to 0, and, when it got anywhere and `base`
 * (a hidden snapshot frozen after it left the fan-out) is given, `low = { below: cursor, base, extra }` (it replaces
 * an older low part: below the cursor everything was copied; when the cursor is below the old part's end, the rest
 * of it falls to the set of `kind`, a superset). `kind`, `base_snapshot_id` and `extra` stay.
 */
export function lowered(copy: ReplicaResync, base: string | undefined, extra: readonly RangeTuple[]): ReplicaResync {
  const { rate: _, low: __, ...kept } = copy;
  return {
    ...kept,
    cursor: 0,
    copied_bytes: 0,
    total_bytes: 0,
    started: '',
    ...(base !== undefined &&
      copy.cursor > 0 && {
        low: { below: copy.cursor, base_snapshot_id: base, ...(extra.length > 0 && { extra: [...extra] }) },
      }),
  };
}

const fill = (): ReplicaResync => ({ kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' });

/** Whether `failure` marks `r` (as the record has it now), and the copy it had when it is a filling one. */
function qualifies(
  r: ReplicaRecord,
  f: ReplicaFailure,
  fanOut: readonly string[],
): { copy?: ReplicaResync } | undefined {
  if (f.entry !== undefined) {
    return JSON.stringify(r) === JSON.stringify(f.entry) ? { copy: f.copy ?? r.resync ?? fill() } : undefined;
  }
  if (inSync(r)) return {};
  if (r.state === 'filling' && !fanOut.includes(r.node_id)) return { copy: f.copy ?? r.resync ?? fill() };
  return undefined;
}

/** The copy whose cursor a low part would keep (none with `restart`). */
const keeps = (f: ReplicaFailure, copy: ReplicaResync | undefined): boolean =>
  copy !== undefined && copy.cursor > 0 && f.restart !== true;

/** The record with `failures`' replicas out-of-sync on base `snapshotId`, the others as they were. */
function marked(
  record: VolumeRecord,
  failures: ReadonlyMap<string, ReplicaFailure>,
  fanOut: readonly string[],
  snapshotId: string | undefined,
  head: string | undefined,
  since: string,
): VolumeRecord {
  return {
    ...record,
    ...(head !== undefined && { top: head }),
    replicas: (record.replicas ?? []).map((r): ReplicaRecord => {
      const f = failures.get(r.node_id);
      const q = f === undefined ? undefined : qualifies(r, f, fanOut);
      if (f === undefined || q === undefined) return r;
      if (q.copy !== undefined) {
        return {
          ...r,
          state: 'out-of-sync',
          since: r.since ?? since,
          reason: reasonOf(f.error),
          resync: {
            ...lowered(q.copy, keeps(f, q.copy) ? snapshotId : undefined, f.extra),
            ...(f.ownWrites === true && { own_writes: true }),
          },
        };
      }
      if (snapshotId === undefined) return r;
      return {
        ...r,
        state: 'out-of-sync',
        since,
        reason: reasonOf(f.error),
        resync: {
          kind: 'dirty',
          base_snapshot_id: snapshotId,
          extra: f.extra,
          ...(f.ownWrites === true && { own_writes: true }),
          cursor: 0,
          copied_bytes: 0,
          total_bytes: 0,
          started: '',
        },
      };
    }),
  };
}

/**
 * Records the replicas of `failures` out-of-sync (one transaction for all), as the module comment says. Resolves with
 * the record written (the one read, when none of them is in-sync there any more). Rejects, leaving the record as it
 * was, when the transaction cannot be committed (the store unreachable, the attach lock lost: FAILED_PRECONDITION) or
 * when no in-sync replica is left to hold the base (UNAVAILABLE).
 */
export async function markOutOfSync(
  options: OutOfSyncOptions,
  failures: readonly ReplicaFailure[],
): Promise<VolumeRecord> {
  const { store, coordinator, volumeId, lock } = options;
  const holding = options.holdingWrites ?? (<T>(fn: () => Promise<T>) => fn());
  const txn = options.txn ?? ((compares: Compare[], ops: StoreOp[]) => store.txn(compares, ops));
  await coordinator.drain();
  const first = await readRecord(store, volumeId);
  const fanOut = coordinator.replicas.map((r) => r.nodeId);
  const failing = new Map<string, ReplicaFailure>();
  let needsBase = false;
  for (const f of failures) {
    const r = first.record.replicas?.find((x) => x.node_id === f.nodeId);
    const q = r === undefined ? undefined : qualifies(r, f, fanOut);
    if (q === undefined) continue;
    failing.set(f.nodeId, f);
    needsBase ||= q.copy === undefined || keeps(f, q.copy);
  }
  if (failing.size === 0) return first.record;
  const since = new Date().toISOString();
  const compares = (revision: number, id: string): Compare[] => [
    { key: catalogKeys.volume(id), modRevision: revision },
    { key: lock.key, modRevision: lock.revision },
  ];
  /** Commits `next(record)` with `ops`, re-reading on a lost race; undefined when the lock is lost (thrown). */
  const commit = async (
    ops: readonly StoreOp[],
    next: (record: VolumeRecord) => VolumeRecord,
    extraOps: (record: VolumeRecord) => StoreOp[],
    extraCompares: readonly Compare[] = [],
  ): Promise<{ before: VolumeRecord; after: VolumeRecord }> => {
    let { record, revision } = first;
    for (let attempt = 0; ; attempt++) {
      const after = next(record);
      const done = await txn(
        [...compares(revision, record.id), ...extraCompares],
        [...ops, put.volume(after), ...extraOps(record)],
      );
      if (done.succeeded) return { before: record, after };
      for (const c of extraCompares) {
        if ((await store.getEntry(c.key)) !== undefined) {
          throw new FerryError(
            'UNAVAILABLE',
            `a replica of volume ${record.name} gave up the snapshot being staged (${c.key})`,
          );
        }
      }
      const held = await store.getEntry(lock.key);
      if ((held?.modRevision ?? 0) !== lock.revision) {
        throw new FerryError(
          'FAILED_PRECONDITION',
          `fenced: this node lost the attach lock of volume ${record.name}; it cannot record replicas out of sync`,
        );
      }
      if (attempt + 1 >= (options.attempts ?? 5)) {
        throw new FerryError('UNAVAILABLE', `volume ${record.name}'s record keeps changing under this node`);
      }
      ({ record, revision } = await readRecord(store, volumeId));
    }
  };
  let result: { before: VolumeRecord; after: VolumeRecord };
  if (!needsBase) {
    result = await commit(
      [],
      (record) => marked(record, failing, fanOut, undefined, undefined, since),
      () => [],
    );
    options.committed?.(result.after, undefined);
  } else {
    result = await holding(async () => {
      if (coordinator.inSyncNodes().length === 0) {
        throw new FerryError('UNAVAILABLE', `no in-sync replica of volume ${first.record.name} is left to go on with`);
      }
      const snapshotId = newId();
      const staged = await coordinator.snapshot(snapshotId, newId());
      // Replicas that failed to stage it go out of sync with the others (same base: they missed nothing after it).
      for (const nodeId of staged.failed) {
        if (!failing.has(nodeId))
          failing.set(nodeId, { nodeId, error: new Error('failed to stage a snapshot'), extra: [] });
      }
      const fan = coordinator.replicas.map((r) => r.nodeId);
      try {
        let snapshot: SnapshotRecord | undefined;
        const done = await commit(
          staged.ops,
          (record) => marked(record, failing, fan, snapshotId, staged.head, since),
          (record) => {
            snapshot = {
              id: snapshotId,
              name: `ferry-resync-${snapshotId}`,
              volume_id: record.id,
              layer: staged.point,
              size: record.size,
              labels: { [RESYNC_SNAPSHOT_LABEL]: [...failing.keys()].join(',') },
              created: since,
              holders: coordinator.inSyncNodes(),
            };
            return [put.snapshot(snapshot)];
          },
          staged.compares,
        );
        staged.commit();
        options.committed?.(done.after, snapshot);
        return done;
      } catch (err: unknown) {
        staged.abandon();
        throw err;
      }
    });
  }
  // Bases no replica resyncs from any more (a low part replaced by a later one).
  const left = basesOf(result.after);
  for (const id of basesOf(result.before)) {
    if (!left.has(id)) await options.deleteSnapshot?.(id).catch(() => undefined);
  }
  return result.after;
}

/**
 * The top layer of `nodeId`'s own replica of `record`: when that replica is out-of-sync on a dirty base, the base
 * snapshot's layer (its writable head when it left: the in-sync replicas froze that layer and went on above it, so
 * the record's `top` is a layer it never had); else the record's `top`. A node that starts again keeps its replica's
 * data this way (instead of making the record's top anew, empty, and collecting its own chain) for the resync.
 */
export async function replicaTop(
  record: VolumeRecord,
  nodeId: string,
  snapshotOf: (id: string) => Promise<SnapshotRecord | undefined>,
): Promise<string> {
  const mine = record.replicas?.find((r) => r.node_id === nodeId);
  // A copy that failed again left it at the head its low base froze (filling replicas keep the volume's layer ids).
  const baseId =
    mine?.resync?.low?.base_snapshot_id ?? (mine?.resync?.kind === 'dirty' ? mine.resync.base_snapshot_id : undefined);
  if (mine?.state !== 'out-of-sync' || baseId === undefined) return record.top;
  return (await snapshotOf(baseId))?.layer ?? record.top;
}

/** `record` with node `nodeId`'s replica entry replaced by `entry`. */
export function withReplica(record: VolumeRecord, nodeId: string, entry: ReplicaRecord): VolumeRecord {
  return { ...record, replicas: (record.replicas ?? []).map((r) => (r.node_id === nodeId ? entry : r)) };
}

/**
 * `record` with node `nodeId`'s filling replica recorded out-of-sync after `why`, its cursor back at 0 (R14a: writes
 * go on without it), and the mark `recordFailedCopy` narrows later; undefined when that entry is not filling.
 */
export function failedFilling(
  record: VolumeRecord,
  nodeId: string,
  why: unknown,
  since: string,
): { record: VolumeRecord; mark: FailedCopyMark } | undefined {
  const mine = (record.replicas ?? []).find((x) => x.node_id === nodeId);
  if (mine === undefined || mine.state !== 'filling') return undefined;
  const copy: ReplicaResync = mine.resync ?? { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' };
  const { rate: _, ...kept } = copy;
  const entry: ReplicaRecord = {
    ...mine,
    state: 'out-of-sync',
    resync: { ...kept, cursor: 0, copied_bytes: 0, started: '' },
    since: mine.since ?? since,
    reason: why instanceof Error ? why.message : String(why),
  };
  return { record: withReplica(record, nodeId, entry), mark: { entry, copy } };
}

/** Records a failed filling replica with a low base (`markOutOfSync` bound to the coordinator's tenure). */
export type MarkFilling = (failures: readonly ReplicaFailure[]) => Promise<VolumeRecord>;

/** What `recordFailedCopy`'s `markOut` wrote: the out-of-sync entry, and the copy it had (its cursor). */
export interface FailedCopyMark {
  entry: ReplicaRecord;
  copy: ReplicaResync;
}

/**
 * A filling replica's copy failed while the volume stays served (R14a: the resync manager's and ha-update's failure
 * paths). Call it at the failure, before anything is awaited: it holds every new write on `coordinator` at once,
 * records the replica out-of-sync with `markOut` (cursor 0: correct whatever it missed), and resolves. Then, in the
 * background, once the writes in flight at the failure are done, it freezes a low base with `markFilling` (extra: the
 * coordinator's ranges not flushed on every replica at the failure, those in flight included: what the replica may
 * have lost or missed) and narrows the entry to it, unless the entry changed meanwhile; the writes are released after
 * it. `settled` resolves when it is over.
 */
export function recordFailedCopy(options: {
  coordinator: VolumeCoordinator;
  markFilling: MarkFilling | undefined;
  nodeId: string;
  error: unknown;
  markOut: () => Promise<FailedCopyMark | undefined>;
  log: (message: string) => void;
}): { marked: Promise<void>; settled: Promise<void> } {
  const { coordinator, markFilling, nodeId, error } = options;
  // Taken at the failure, before a flush completing on the others could forget what this one never flushed.
  const unflushed = coordinator.unflushedRanges();
  const held = markFilling === undefined ? undefined : coordinator.holdRange(0, Number.MAX_SAFE_INTEGER);
  const release = async (): Promise<void> => {
    if (held !== undefined) (await held)();
  };
  const marking = options.markOut();
  const marked = marking.then(
    () => undefined,
    async (err: unknown) => {
      await release();
      throw err;
    },
  );
  const settled = (async (): Promise<void> => {
    const mark = await marking.catch(() => null);
    // A failed marking: `marked` released the writes.
    if (mark === null) return;
    try {
      if (mark === undefined || held === undefined || markFilling === undefined || mark.copy.cursor === 0) return;
      await held;
      await markFilling([{ nodeId, error, extra: unflushed, copy: mark.copy, entry: mark.entry }]);
    } catch (err: unknown) {
      options.log(`recording the copied part of the replica on node ${nodeId} failed (it is copied again): ${err}`);
    } finally {
      await release();
    }
  })();
  return { marked, settled };
}

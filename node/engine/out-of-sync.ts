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
 */
import { FerryError } from '../../common/index.js';
import type { ClusterStore, Compare, StoreOp } from '../cluster/types.js';
import { catalogKeys, put } from './catalog.js';
import { RESYNC_SNAPSHOT_LABEL } from './constants.js';
import type { InSyncFailure, VolumeCoordinator } from './coordinator.js';
import { newId } from './layer-set.js';
import type { ReplicaRecord, SnapshotRecord, VolumeRecord } from './records.js';
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
  /** Told the record written and the hidden snapshot, after the replicas committed their stages. */
  committed?: (record: VolumeRecord, snapshot: SnapshotRecord) => void;
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

/** The record with `failures`' replicas out-of-sync on base `snapshotId`, the others as they were. */
function marked(
  record: VolumeRecord,
  failures: ReadonlyMap<string, InSyncFailure>,
  snapshotId: string,
  head: string,
  since: string,
): VolumeRecord {
  return {
    ...record,
    top: head,
    replicas: (record.replicas ?? []).map((r): ReplicaRecord => {
      const f = failures.get(r.node_id);
      if (f === undefined || !inSync(r)) return r;
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
  failures: readonly InSyncFailure[],
): Promise<VolumeRecord> {
  const { store, coordinator, volumeId, lock } = options;
  const holding = options.holdingWrites ?? (<T>(fn: () => Promise<T>) => fn());
  const txn = options.txn ?? ((compares: Compare[], ops: StoreOp[]) => store.txn(compares, ops));
  await coordinator.drain();
  const first = await readRecord(store, volumeId);
  const failing = new Map<string, InSyncFailure>();
  for (const f of failures) {
    const r = first.record.replicas?.find((x) => x.node_id === f.nodeId);
    if (r !== undefined && inSync(r)) failing.set(f.nodeId, f);
  }
  if (failing.size === 0) return first.record;
  return holding(async () => {
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
    const since = new Date().toISOString();
    try {
      let { record, revision } = first;
      for (let attempt = 0; ; attempt++) {
        const snapshot: SnapshotRecord = {
          id: snapshotId,
          name: `ferry-resync-${snapshotId}`,
          volume_id: record.id,
          layer: staged.point,
          size: record.size,
          labels: { [RESYNC_SNAPSHOT_LABEL]: [...failing.keys()].join(',') },
          created: since,
          holders: coordinator.inSyncNodes(),
        };
        const next = marked(record, failing, snapshotId, staged.head, since);
        const done = await txn(
          [
            { key: catalogKeys.volume(record.id), modRevision: revision },
            { key: lock.key, modRevision: lock.revision },
          ],
          [...staged.ops, put.volume(next), put.snapshot(snapshot)],
        );
        if (done.succeeded) {
          staged.commit();
          options.committed?.(next, snapshot);
          return next;
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
    } catch (err: unknown) {
      staged.abandon();
      throw err;
    }
  });
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
  const baseId = mine?.resync?.kind === 'dirty' ? mine.resync.base_snapshot_id : undefined;
  if (mine?.state !== 'out-of-sync' || baseId === undefined) return record.top;
  return (await snapshotOf(baseId))?.layer ?? record.top;
}

/**
 * A coordinator's tenure of a volume, cluster-wide (docs/REPLICATION.md, section 3): the attach lock
 * `/ferry/locks/attach-<volume id>` (node/cluster/lock.ts) held by the coordinating node, whose revision is the
 * epoch, and the volume record's `epoch` and `attached`, changed only by transactions that compare the record's mod
 * revision (C1). An attach holds the tenure until its last device closes; a snapshot, delete or resize of a volume
 * attached nowhere holds it for that one operation.
 */
import { FerryError, notFound } from '../../common/index.js';
import { type HeldLock, type LockOptions, type LockRecord, lock, lockKey, tryLock } from '../cluster/lock.js';
import type { ClusterStore, Compare, StoreOp } from '../cluster/types.js';
import { catalogKeys } from './catalog.js';
import { RunsElsewhere } from './cluster-ports.js';
import type { VolumeRecord } from './records.js';

/** The key of volume `volumeId`'s attach lock. */
export function attachLockKey(volumeId: string): string {
  return lockKey(`attach-${volumeId}`);
}

/** A volume record with its mod revision (what a C1 transaction compares). */
export interface RecordEntry {
  record: VolumeRecord;
  revision: number;
}

/** The record of volume `id` and its mod revision; NOT_FOUND when it is gone. */
export async function readRecord(store: ClusterStore, id: string, name = id): Promise<RecordEntry> {
  const entry = await store.getEntry<VolumeRecord>(catalogKeys.volume(id));
  if (entry === undefined)
    throw notFound(`volume ${name} not found (it was deleted): list volumes with 'ferry volume list'`);
  return { record: entry.value, revision: entry.modRevision };
}

/** A node's hostname from its membership record (`/ferry/nodes/<id>`), or its id when it has none. */
export async function hostOf(store: ClusterStore, nodeId: string): Promise<string> {
  const record = await store.get<{ hostname?: string }>(`/ferry/nodes/${nodeId}`).catch(() => undefined);
  return record?.hostname ?? nodeId;
}

/** Prefix of the requests to give up a resync's attach (R19): `<prefix><volume id>`, put by whoever waits for it. */
export const YIELD_PREFIX = '/ferry/yield/';

/** How long an attach or operation waits for a resync's attach to be given up before it gives up itself. */
const YIELD_WAIT_MS = 30_000;

/**
 * Takes volume `record`'s attach lock for `nodeId`. Another node's hold is RunsElsewhere naming it when a client has
 * the volume attached there; when none has (that node attached it only to resync it, the record's `attached.for`,
 * R19, or is about to, or runs a brief operation), this asks it to give the volume up (a put under YIELD_PREFIX) and
 * waits for the lock, up to `yieldWaitMs` (0: it neither asks nor waits). A hold of this node's that `ownHold` says
 * this process does not have (left by an earlier process of this node that died before its lease expired) is taken
 * over; one it has (another attach or operation under way) is FAILED_PRECONDITION. `ttlSeconds` is the lock's lease
 * (how long a dead holder blocks a takeover, F6; default the lock's 10 s).
 */
export async function takeAttachLock(
  store: ClusterStore,
  record: VolumeRecord,
  nodeId: string,
  ownHold: () => boolean,
  ttlSeconds?: number,
  yieldWaitMs = YIELD_WAIT_MS,
): Promise<HeldLock> {
  const key = attachLockKey(record.id);
  const options = { holder: nodeId, ...(ttlSeconds !== undefined && { ttlSeconds }) };
  let asked = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    const held = await tryLock(store, key, options);
    if (held !== undefined) return held;
    const entry = await store.getEntry<LockRecord>(key);
    if (entry === undefined) continue;
    const holder = entry.value.holder;
    if (holder === nodeId) {
      if (!ownHold()) {
        await store.txn([{ key, modRevision: entry.modRevision }], [{ op: 'delete', key }]);
        continue;
      }
      throw new FerryError(
        'FAILED_PRECONDITION',
        `volume ${record.name} is being attached or changed on this node right now; try again in a moment`,
      );
    }
    // No client's attach recorded: the holder is attaching for a resync (its lock comes before its record), or is
    // resyncing, or runs a brief operation; it is asked to give way and waited for.
    const attached = (await store.get<VolumeRecord>(catalogKeys.volume(record.id)))?.attached;
    const noClient = attached === undefined || (attached.for === 'resync' && attached.node_id === holder);
    if (!asked && yieldWaitMs > 0 && noClient) {
      asked = true;
      const taken = await afterYield(store, record.id, key, { ...options, signal: AbortSignal.timeout(yieldWaitMs) });
      if (taken !== undefined) return taken;
    }
    throw attachedElsewhere(record.name, holder, await hostOf(store, holder));
  }
  throw new FerryError('UNAVAILABLE', `the attach lock of volume ${record.name} keeps changing hands; try again`);
}

/** Asks the node resyncing volume `volumeId` to give it up and waits for its lock; undefined when the wait ends. */
async function afterYield(
  store: ClusterStore,
  volumeId: string,
  key: string,
  options: LockOptions,
): Promise<HeldLock | undefined> {
  const ask = `${YIELD_PREFIX}${volumeId}`;
  await store.put(ask, { node_id: options.holder, since: new Date().toISOString() });
  try {
    return await lock(store, key, options);
  } catch (err: unknown) {
    if (options.signal?.aborted === true) return undefined;
    throw err;
  } finally {
    await store.delete(ask).catch(() => undefined);
  }
}

/** The node holding volume `volumeId`'s attach lock, if any. */
export async function attachHolder(store: ClusterStore, volumeId: string): Promise<string | undefined> {
  return (await store.get<LockRecord>(attachLockKey(volumeId)))?.holder;
}

/** The refusal of an operation on a volume another node coordinates. */
export function attachedElsewhere(name: string, nodeId: string, host: string): RunsElsewhere {
  return new RunsElsewhere(nodeId, `volume ${name} is attached on node ${nodeId} (${host}); detach it there first`);
}

/**
 * Changes volume `id`'s record by `change` (C1): reads it, applies `change` and commits the result with `extra` ops
 * in a transaction that compares the record's mod revision, again from a fresh read when another writer got there
 * first (up to `attempts` times); `compares` (e.g. the caller's attach lock) must hold too. `change` may throw to give
 * up. Resolves with the record written.
 */
export async function changeRecord(
  store: ClusterStore,
  id: string,
  change: (record: VolumeRecord) => VolumeRecord,
  extra: readonly StoreOp[] = [],
  compares: readonly Compare[] = [],
  attempts = 5,
): Promise<VolumeRecord> {
  for (let i = 0; i < attempts; i++) {
    const { record, revision } = await readRecord(store, id);
    const next = change(record);
    const done = await store.txn(
      [{ key: catalogKeys.volume(id), modRevision: revision }, ...compares],
      [{ op: 'put', key: catalogKeys.volume(id), value: next }, ...extra],
    );
    if (done.succeeded) return next;
    // A compare of the caller's (its lock) that no longer holds will not hold on a fresh read either.
    for (const c of compares) {
      const entry = await store.getEntry(c.key);
      if ((entry?.modRevision ?? 0) !== c.modRevision) {
        throw new FerryError('FAILED_PRECONDITION', `${c.key} changed (a lock was lost); try again`);
      }
    }
  }
  throw new FerryError('UNAVAILABLE', `volume ${id}'s record keeps changing under this node; try again`);
}

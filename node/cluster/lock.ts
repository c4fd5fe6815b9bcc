/**
 * Locks and leader election on the cluster store's leases. A lock is a key created only when absent
 * (a transaction on mod revision 0) and bound to a lease of its holder: it is free again when the holder releases
 * it, or when the holder dies and its lease expires on the store's clock (never on a node's own clock). The key's
 * create revision is a fencing token: a later holder always has a greater one.
 *
 * `lock` waits for a lock (an election: the winner leads until it releases or dies); `tryLock` takes it or not.
 */
import { FerryError } from '../../common/index.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { ClusterStore, LeaseId } from './types.js';

/** Key prefix of the locks of `lockKey`. */
export const LOCKS_PREFIX = '/ferry/locks/';

/** The key of the lock (or election) `name`. */
export function lockKey(name: string): string {
  return `${LOCKS_PREFIX}${encodeURIComponent(name)}`;
}

/** What a lock's key holds. */
export interface LockRecord {
  /** Who holds it (a node id). */
  holder: string;
  /** When it was taken (RFC 3339; for people, not for decisions). */
  since: string;
}

/** Options of tryLock and lock. */
export interface LockOptions {
  /** Who takes it (a node id). */
  holder: string;
  /** Life of the lease without keep-alives, seconds; default 10. */
  ttlSeconds?: number;
  /** Keep the lease alive until release (true, the default) or let it expire after ttlSeconds (false). */
  keepAlive?: boolean;
  /** Stops waiting (lock only). */
  signal?: AbortSignal;
}

/** A held lock. */
export interface HeldLock {
  readonly key: string;
  readonly lease: LeaseId;
  /** The fencing token: the create revision of the lock's key (greater for every later holder). */
  readonly revision: number;
  /** Aborted when the lock is lost (its lease expired or was revoked) or released. */
  readonly lost: AbortSignal;
  /** Renews the lease once; rejects NOT_FOUND when it is lost. */
  renew(): Promise<void>;
  /** Gives the lock back (revokes its lease); nothing when it was lost already. */
  release(): Promise<void>;
}

/** Takes the lock at `key` if it is free; undefined when someone holds it. */
export async function tryLock(store: ClusterStore, key: string, options: LockOptions): Promise<HeldLock | undefined> {
  const ttl = options.ttlSeconds ?? 10;
  const lease = await store.grantLease(ttl);
  const record: LockRecord = { holder: options.holder, since: new Date().toISOString() };
  let taken: { succeeded: boolean; revision: number };
  try {
    taken = await store.txn([{ key, modRevision: 0 }], [{ op: 'put', key, value: record, lease }]);
  } catch (err: unknown) {
    await store.revokeLease(lease).catch(() => undefined);
    throw err;
  }
  if (!taken.succeeded) {
    await store.revokeLease(lease);
    return undefined;
  }
  const keeper = new LeaseKeeper(store, lease, ttl);
  if (options.keepAlive ?? true) keeper.start();
  return {
    key,
    lease,
    revision: taken.revision,
    lost: keeper.lost,
    renew: () => keeper.renew(),
    release: () => keeper.revoke(),
  };
}

/** Waits until the lock at `key` is free and takes it (watching the key, not polling). */
export async function lock(store: ClusterStore, key: string, options: LockOptions): Promise<HeldLock> {
  for (;;) {
    options.signal?.throwIfAborted();
    const held = await tryLock(store, key, options);
    if (held !== undefined) return held;
    const current = await store.getEntry(key);
    if (current === undefined) continue;
    const watch = await store.watch(key, { fromRevision: current.modRevision + 1 });
    const stop = (): void => void watch.close();
    options.signal?.addEventListener('abort', stop, { once: true });
    if (options.signal?.aborted) stop();
    try {
      for await (const e of watch) if (e.key === key && e.type === 'delete') break;
    } finally {
      options.signal?.removeEventListener('abort', stop);
      await watch.close();
    }
  }
}

/** Who holds the lock (or leads the election) at `key`, if anyone. */
export async function holderOf(store: ClusterStore, key: string): Promise<LockRecord | undefined> {
  return store.get<LockRecord>(key);
}

/** The error of an operation that needs a lock it lost. */
export function lockLost(key: string): FerryError {
  return new FerryError('FAILED_PRECONDITION', `the lock ${key} was lost (its lease expired); take it again`);
}

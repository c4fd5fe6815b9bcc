/**
 * The cluster store: a small, durable, ordered key-value map shared by the nodes of a cluster, with revisions,
 * transactions, watches and leases (the shape of etcd v3, which is one of its backends). Backends: `MemoryStore`
 * (tests, the serverless handler), `SqliteStore` (one node, embedded, the default), `EtcdStore` (many nodes).
 *
 * Key layout rules:
 * - Keys are '/'-separated paths that start with `/ferry/`; one record per key, values are JSON-able objects.
 *   Parts taken from user input are URI-encoded, so a part never holds a '/'.
 * - Keys order bytewise (UTF-8); `list`/`listPage` return a prefix's keys in that order, and a prefix ends with '/'
 *   when it names a folder (`/ferry/nodes/`, not `/ferry/nodes`, which would also match `/ferry/nodes-old`).
 * - Records that must vanish with their writer (a node's heartbeat, a lock's holder) are put with a lease.
 * - What exists today: `/ferry/cluster` (the cluster record), `/ferry/nodes/<node id>` (membership, leased),
 *   `/ferry/members/<node id>` (the registry of every node that joined, not leased), `/ferry/secrets/<name>` (sealed
 *   shared secrets), `/ferry/ca/cert` (the cluster CA's certificate),
 *   `/ferry/locks/<name>` (lock holders, leased), `/ferry/leases/<name>` (schedule claims, leased), the engine's
 *   `/ferry/volumes/`, `/ferry/snapshots/`, `/ferry/layers/`, and `/ferry/jobs/`, `/ferry/schedule-policies/`,
 *   `/ferry/cloudbackup-schedules/`, `/ferry/cloudbackup-schedule-state/`, `/ferry/credentials/`,
 *   `/ferry/repositories/`, `/ferry/ownership/`, `/ferry/nbd-identities/` (the table in docs/ARCHITECTURE.md).
 *
 * Revisions: the store has one revision counter; every change (a put, a delete, a commit, a transaction, a lease
 * expiry) raises it by one, and every key records the revision that created it and the one that last changed it.
 */

/** A lease id (etcd's int64, as decimal text). */
export type LeaseId = string;

/** One change of a commit or a transaction. `lease` binds a put key to a lease: the key vanishes with the lease. */
export type StoreOp = { op: 'put'; key: string; value: unknown; lease?: LeaseId } | { op: 'delete'; key: string };

export interface KeyValue<T = unknown> {
  key: string;
  value: T;
}

/** A key with its value and revisions. */
export interface Entry<T = unknown> extends KeyValue<T> {
  /** Revision of the change that created the key (since it last was absent). */
  createRevision: number;
  /** Revision of the change that last wrote it. */
  modRevision: number;
  /** The lease the key is bound to, if any. */
  lease?: LeaseId;
}

/** Options of `listPage`. */
export interface ListOptions {
  /** Most entries in one page; default 1000. */
  limit?: number;
  /** Return only keys after this one (the `next` of the previous page); default from the prefix's first key. */
  after?: string;
}

/** One page of a prefix. */
export interface ListPage<T = unknown> {
  entries: Entry<T>[];
  /** Pass as `after` to read the next page; undefined on the last page. */
  next?: string;
  /** The store's revision the page was read at. */
  revision: number;
}

/** A condition of a transaction: the key's mod revision equals `modRevision` (0 = the key is absent). */
export interface Compare {
  key: string;
  modRevision: number;
}

/** What a transaction answers. */
export interface TxnResult {
  /** True when every compare held and the ops were applied. */
  succeeded: boolean;
  /** The store's revision after the transaction (unchanged when it did not succeed or had no ops). */
  revision: number;
}

/** One change seen by a watch. */
export interface WatchEvent<T = unknown> {
  type: 'put' | 'delete';
  key: string;
  /** The new value (put only). */
  value?: T;
  /** Revision of the change (several events of one commit share it). */
  revision: number;
}

/** Options of `watch`. */
export interface WatchOptions {
  /** First revision to report (events at it and after); default the store's next revision (only new changes). */
  fromRevision?: number;
}

/**
 * A running watch: the events of a prefix in revision order, as an async iterable. A backend that loses its server
 * reconnects and resumes after the last event it delivered (no event lost, none repeated). Iteration throws a
 * FerryError when the watch cannot go on (FAILED_PRECONDITION: `fromRevision` was compacted away).
 */
export interface Watch<T = unknown> extends AsyncIterable<WatchEvent<T>> {
  /** Stops the watch; an iteration in progress ends. */
  close(): Promise<void>;
}

export interface ClusterStore {
  get<T>(key: string): Promise<T | undefined>;
  /** Every entry whose key starts with `prefix`, in key order. */
  list<T>(prefix: string): Promise<KeyValue<T>[]>;
  /** Applies all ops atomically and durably: after it resolves, a crash keeps all of them; before, none. */
  commit(ops: readonly StoreOp[]): Promise<void>;
  /**
   * Compare-and-set of one key, atomically: when the key's current value equals `expected` (compared as JSON;
   * `undefined` means "absent"), sets it to `value` (`undefined` deletes it) and resolves true; otherwise changes
   * nothing and resolves false. ("Run once" decisions shared by several nodes are built on it.)
   */
  compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean>;
  close(): Promise<void>;

  /** A key with its revisions, or undefined when absent. */
  getEntry<T>(key: string): Promise<Entry<T> | undefined>;
  /** The store's current revision. */
  revision(): Promise<number>;
  /** Puts one key (bound to `lease` when given); resolves with the new revision. */
  put(key: string, value: unknown, options?: { lease?: LeaseId }): Promise<number>;
  /** Deletes one key; resolves true when it existed. */
  delete(key: string): Promise<boolean>;
  /** One page of the entries under `prefix`, in key order. */
  listPage<T>(prefix: string, options?: ListOptions): Promise<ListPage<T>>;
  /** When every compare holds, applies `ops` atomically (one revision); otherwise changes nothing. */
  txn(compares: readonly Compare[], ops: readonly StoreOp[]): Promise<TxnResult>;
  /** Watches the keys under `prefix`. */
  watch<T>(prefix: string, options?: WatchOptions): Promise<Watch<T>>;
  /**
   * Grants a lease that lives `ttlSeconds` (a whole number, at least 1) unless kept alive. The store expires it on
   * its own clock: its keys are deleted (delete events, one revision) when it expires or is revoked.
   */
  grantLease(ttlSeconds: number): Promise<LeaseId>;
  /** Renews a lease for its TTL; rejects NOT_FOUND when it already expired or was revoked. */
  keepAlive(lease: LeaseId): Promise<void>;
  /** Revokes a lease, deleting its keys; nothing when it is gone already. */
  revokeLease(lease: LeaseId): Promise<void>;
}

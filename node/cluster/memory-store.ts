/**
 * The cluster store in memory, for tests and for a process that has no cluster store of its own (the serverless
 * handler keeps its one credential, its ownership records and its empty job list here). Lost when the process ends.
 * Several `MemoryStore` clients may share one `MemoryKv` (the "server"), as nodes share an etcd.
 */
import { FerryError } from '../../common/index.js';
import { checkTtl, compacted, compareAndSetByRevision, compareKeys, leaseGone } from './keys.js';
import type {
  ClusterStore,
  Compare,
  Entry,
  KeyValue,
  LeaseId,
  ListOptions,
  ListPage,
  StoreOp,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
} from './types.js';
import { WatchQueue } from './watch-queue.js';

interface Row {
  /** JSON text, so callers never share objects with the store. */
  text: string;
  createRevision: number;
  modRevision: number;
  lease?: LeaseId;
}

interface Change {
  revision: number;
  type: 'put' | 'delete';
  key: string;
  text?: string;
}

interface Lease {
  ttlMs: number;
  timer: NodeJS.Timeout;
}

/** Options of MemoryKv. */
export interface MemoryKvOptions {
  /** Revisions of history kept for watches that start in the past; default 10 000. */
  historyRevisions?: number;
}

/** The shared state of in-memory clients: keys, revision, history, leases. */
export class MemoryKv {
  readonly rows = new Map<string, Row>();
  revision = 0;
  /** Events after `compactedAt`, in revision order. */
  readonly history: Change[] = [];
  compactedAt = 0;
  readonly leases = new Map<LeaseId, Lease>();
  readonly listeners = new Set<(changes: readonly Change[]) => void>();
  private nextLease = 1;
  private readonly historyRevisions: number;

  constructor(options: MemoryKvOptions = {}) {
    this.historyRevisions = options.historyRevisions ?? 10_000;
  }

  /** Applies ops as one revision (none when nothing changes); returns the revision after. */
  apply(ops: readonly StoreOp[]): number {
    for (const o of ops) {
      if (o.op === 'put' && o.lease !== undefined && !this.leases.has(o.lease)) throw leaseGone(o.lease);
    }
    const revision = this.revision + 1;
    const changes: Change[] = [];
    for (const o of ops) {
      if (o.op === 'put') {
        const text = JSON.stringify(o.value);
        const before = this.rows.get(o.key);
        this.rows.set(o.key, {
          text,
          createRevision: before?.createRevision ?? revision,
          modRevision: revision,
          ...(o.lease !== undefined && { lease: o.lease }),
        });
        changes.push({ revision, type: 'put', key: o.key, text });
      } else if (this.rows.delete(o.key)) {
        changes.push({ revision, type: 'delete', key: o.key });
      }
    }
    if (changes.length === 0) return this.revision;
    this.revision = revision;
    this.history.push(...changes);
    const keepAfter = revision - this.historyRevisions;
    if (keepAfter > this.compactedAt) {
      let drop = 0;
      while ((this.history[drop]?.revision ?? Number.POSITIVE_INFINITY) <= keepAfter) drop++;
      this.history.splice(0, drop);
      this.compactedAt = keepAfter;
    }
    for (const listener of this.listeners) listener(changes);
    return revision;
  }

  grant(ttlSeconds: number): LeaseId {
    checkTtl(ttlSeconds);
    const id = String(this.nextLease++);
    const ttlMs = ttlSeconds * 1000;
    this.leases.set(id, { ttlMs, timer: this.expiry(id, ttlMs) });
    return id;
  }

  keepAlive(id: LeaseId): void {
    const lease = this.leases.get(id);
    if (lease === undefined) throw leaseGone(id);
    clearTimeout(lease.timer);
    lease.timer = this.expiry(id, lease.ttlMs);
  }

  revoke(id: LeaseId): void {
    const lease = this.leases.get(id);
    if (lease === undefined) return;
    clearTimeout(lease.timer);
    this.leases.delete(id);
    const keys = [...this.rows].filter(([, row]) => row.lease === id).map(([key]) => key);
    this.apply(keys.map((key) => ({ op: 'delete', key })));
  }

  private expiry(id: LeaseId, ttlMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.revoke(id), ttlMs);
    timer.unref();
    return timer;
  }
}

function toEvent<T>(c: Change): WatchEvent<T> {
  return c.type === 'put'
    ? { type: 'put', key: c.key, value: JSON.parse(c.text ?? 'null') as T, revision: c.revision }
    : { type: 'delete', key: c.key, revision: c.revision };
}

/** A client of a MemoryKv (its own by default). */
export class MemoryStore implements ClusterStore {
  private readonly watches = new Set<WatchQueue<unknown>>();

  constructor(readonly kv: MemoryKv = new MemoryKv()) {}

  async get<T>(key: string): Promise<T | undefined> {
    return (await this.getEntry<T>(key))?.value;
  }

  async getEntry<T>(key: string): Promise<Entry<T> | undefined> {
    const row = this.kv.rows.get(key);
    return row === undefined ? undefined : toEntry<T>(key, row);
  }

  async list<T>(prefix: string): Promise<KeyValue<T>[]> {
    return this.sorted(prefix).map(([key, row]) => ({ key, value: JSON.parse(row.text) as T }));
  }

  async listPage<T>(prefix: string, options: ListOptions = {}): Promise<ListPage<T>> {
    const limit = options.limit ?? 1000;
    const after = options.after;
    const rows = this.sorted(prefix).filter(([key]) => after === undefined || compareKeys(key, after) > 0);
    const page = rows.slice(0, limit);
    const entries = page.map(([key, row]) => toEntry<T>(key, row));
    return {
      entries,
      ...(rows.length > limit && { next: page.at(-1)?.[0] }),
      revision: this.kv.revision,
    };
  }

  async revision(): Promise<number> {
    return this.kv.revision;
  }

  async commit(ops: readonly StoreOp[]): Promise<void> {
    this.kv.apply(ops);
  }

  async put(key: string, value: unknown, options: { lease?: LeaseId } = {}): Promise<number> {
    return this.kv.apply([{ op: 'put', key, value, ...(options.lease !== undefined && { lease: options.lease }) }]);
  }

  async delete(key: string): Promise<boolean> {
    const had = this.kv.rows.has(key);
    this.kv.apply([{ op: 'delete', key }]);
    return had;
  }

  async txn(compares: readonly Compare[], ops: readonly StoreOp[]): Promise<TxnResult> {
    const holds = compares.every((c) => (this.kv.rows.get(c.key)?.modRevision ?? 0) === c.modRevision);
    if (!holds) return { succeeded: false, revision: this.kv.revision };
    return { succeeded: true, revision: this.kv.apply(ops) };
  }

  async compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    return compareAndSetByRevision(this, key, expected, value);
  }

  async watch<T>(prefix: string, options: WatchOptions = {}): Promise<Watch<T>> {
    const from = options.fromRevision ?? this.kv.revision + 1;
    if (from <= this.kv.compactedAt) throw compacted(from, this.kv.compactedAt);
    const matching = (changes: readonly Change[]): WatchEvent<T>[] =>
      changes.filter((c) => c.revision >= from && c.key.startsWith(prefix)).map((c) => toEvent<T>(c));
    const listener = (changes: readonly Change[]): void => queue.push(matching(changes));
    const queue = new WatchQueue<T>(() => {
      this.kv.listeners.delete(listener);
      this.watches.delete(queue as WatchQueue<unknown>);
    });
    queue.push(matching(this.kv.history));
    this.kv.listeners.add(listener);
    this.watches.add(queue as WatchQueue<unknown>);
    return queue;
  }

  async grantLease(ttlSeconds: number): Promise<LeaseId> {
    return this.kv.grant(ttlSeconds);
  }

  async keepAlive(lease: LeaseId): Promise<void> {
    this.kv.keepAlive(lease);
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    this.kv.revoke(lease);
  }

  /** Ends this client's watches; the shared state lives on. */
  async close(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
  }

  private sorted(prefix: string): [string, Row][] {
    if (typeof prefix !== 'string') throw new FerryError('INVALID_ARGUMENT', 'a key prefix is a string');
    return [...this.kv.rows].filter(([key]) => key.startsWith(prefix)).sort(([a], [b]) => compareKeys(a, b));
  }
}

function toEntry<T>(key: string, row: Row): Entry<T> {
  return {
    key,
    value: JSON.parse(row.text) as T,
    createRevision: row.createRevision,
    modRevision: row.modRevision,
    ...(row.lease !== undefined && { lease: row.lease }),
  };
}

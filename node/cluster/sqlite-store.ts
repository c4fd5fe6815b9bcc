import Database from 'better-sqlite3';
import { FerryError } from '../../common/index.js';
import { checkTtl, compacted, compareAndSetByRevision, leaseGone, prefixEnd } from './keys.js';
import { migrate } from './sqlite-schema.js';
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

/** Options of SqliteStore. */
export interface SqliteStoreOptions {
  /** Revisions of history kept for watches that resume in the past; default 10 000. */
  historyRevisions?: number;
  /** How often watches look for changes made by other connections to the file, ms; default 100. */
  pollMs?: number;
  /** How often expired leases are looked for, ms; default 250. */
  sweepMs?: number;
}

interface Row {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
  lease: number | null;
}

interface HistoryRow {
  rev: number;
  key: string;
  value: string | null;
}

interface OpenWatch {
  queue: WatchQueue<unknown>;
  prefix: string;
  /** Last revision delivered (or known to hold nothing for it). */
  seen: number;
}

const SELECT_ROW = 'SELECT key, value, create_rev, mod_rev, lease FROM kv';

/**
 * The embedded cluster store: one SQLite file in WAL mode with full fsync on commit (see sqlite-schema.ts for its
 * tables). Several connections (processes) may share the file: writes serialize in SQLite, watches poll the history.
 */
export class SqliteStore implements ClusterStore {
  private readonly db: Database.Database;
  private readonly historyRevisions: number;
  private readonly pollMs: number;
  private readonly watches = new Set<OpenWatch>();
  private readonly statements = new Map<string, Database.Statement<unknown[], unknown>>();
  private readonly sweeper: NodeJS.Timeout;
  private poller: NodeJS.Timeout | undefined;
  private wakeSoon = false;

  constructor(
    private readonly path: string,
    options: SqliteStoreOptions = {},
  ) {
    this.historyRevisions = options.historyRevisions ?? 10_000;
    this.pollMs = options.pollMs ?? 100;
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      migrate(this.db);
    } catch (err: unknown) {
      if (err instanceof FerryError) throw err;
      // Opening in WAL mode sizes the shared-memory index file: on a full file system that fails as SHMSIZE.
      if (isFull(err) || (isSqliteError(err) && err.code === 'SQLITE_IOERR_SHMSIZE')) {
        throw new FerryError(
          'RESOURCE_EXHAUSTED',
          `cannot open the cluster store at ${path}: its file system is full; free a few MiB on it (docs/OPERATIONS.md, "When the disk fills")`,
          { cause: err },
        );
      }
      throw new FerryError('UNAVAILABLE', `cannot open the cluster store at ${path}: check the data directory`, {
        cause: err,
      });
    }
    this.sweeper = setInterval(() => this.sweep(), options.sweepMs ?? 250);
    this.sweeper.unref();
  }

  async get<T>(key: string): Promise<T | undefined> {
    return (await this.getEntry<T>(key))?.value;
  }

  async getEntry<T>(key: string): Promise<Entry<T> | undefined> {
    const row = this.stmt<Row>(`${SELECT_ROW} WHERE key = ?`).get(key);
    return row === undefined ? undefined : toEntry<T>(row);
  }

  async list<T>(prefix: string): Promise<KeyValue<T>[]> {
    return this.range(prefix, undefined, -1).map((r) => ({ key: r.key, value: JSON.parse(r.value) as T }));
  }

  async listPage<T>(prefix: string, options: ListOptions = {}): Promise<ListPage<T>> {
    const limit = options.limit ?? 1000;
    const read = this.db.transaction(() => ({
      rows: this.range(prefix, options.after, limit + 1),
      revision: this.currentRevision(),
    }));
    const { rows, revision } = read();
    const page = rows.slice(0, limit);
    return {
      entries: page.map((r) => toEntry<T>(r)),
      ...(rows.length > limit && { next: page.at(-1)?.key }),
      revision,
    };
  }

  async revision(): Promise<number> {
    return this.currentRevision();
  }

  async commit(ops: readonly StoreOp[]): Promise<void> {
    this.write(() => this.apply(ops));
  }

  async put(key: string, value: unknown, options: { lease?: LeaseId } = {}): Promise<number> {
    return this.write(() =>
      this.apply([{ op: 'put', key, value, ...(options.lease !== undefined && { lease: options.lease }) }]),
    );
  }

  async delete(key: string): Promise<boolean> {
    return this.write(() => {
      const before = this.currentRevision();
      return this.apply([{ op: 'delete', key }]) !== before;
    });
  }

  async txn(compares: readonly Compare[], ops: readonly StoreOp[]): Promise<TxnResult> {
    return this.write(() => {
      const modOf = this.stmt<{ mod_rev: number }>('SELECT mod_rev FROM kv WHERE key = ?');
      const holds = compares.every((c) => (modOf.get(c.key)?.mod_rev ?? 0) === c.modRevision);
      if (!holds) return { succeeded: false, revision: this.currentRevision() };
      return { succeeded: true, revision: this.apply(ops) };
    });
  }

  async compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    return compareAndSetByRevision(this, key, expected, value);
  }

  async watch<T>(prefix: string, options: WatchOptions = {}): Promise<Watch<T>> {
    const from = options.fromRevision ?? this.currentRevision() + 1;
    const compactedAt = this.meta('compacted');
    if (from <= compactedAt) throw compacted(from, compactedAt);
    const open: OpenWatch = {
      queue: new WatchQueue<unknown>(() => {
        this.watches.delete(open);
        if (this.watches.size === 0 && this.poller !== undefined) {
          clearInterval(this.poller);
          this.poller = undefined;
        }
      }),
      prefix,
      seen: from - 1,
    };
    this.watches.add(open);
    this.pollOne(open);
    if (this.poller === undefined) {
      this.poller = setInterval(() => this.poll(), this.pollMs);
      this.poller.unref();
    }
    return open.queue as WatchQueue<T>;
  }

  async grantLease(ttlSeconds: number): Promise<LeaseId> {
    checkTtl(ttlSeconds);
    const ttlMs = ttlSeconds * 1000;
    const id = this.write(
      () =>
        this.stmt('INSERT INTO leases (ttl_ms, expires_at) VALUES (?, ?)').run(ttlMs, Date.now() + ttlMs)
          .lastInsertRowid,
    );
    return String(id);
  }

  async keepAlive(lease: LeaseId): Promise<void> {
    const renewed = this.write(() => {
      const now = Date.now();
      return this.stmt('UPDATE leases SET expires_at = ? + ttl_ms WHERE id = ? AND expires_at > ?').run(
        now,
        Number(lease),
        now,
      ).changes;
    });
    if (renewed === 0) throw leaseGone(lease);
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    this.write(() => this.dropLeases([Number(lease)]));
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.watches].map((w) => w.queue.close()));
    if (this.db.open) this.db.close();
  }

  private currentRevision(): number {
    return this.meta('revision');
  }

  private meta(name: 'revision' | 'compacted'): number {
    const row = this.stmt<{ value: number }>('SELECT value FROM meta WHERE name = ?').get(name);
    return row?.value ?? 0;
  }

  private range(prefix: string, after: string | undefined, limit: number): Row[] {
    const where = after === undefined ? ['key >= ?'] : ['key > ?', 'key >= ?'];
    const args: unknown[] = after === undefined ? [prefix] : [after, prefix];
    const end = upperBound(prefix);
    if (end !== undefined) {
      where.push(end.sql);
      args.push(end.arg);
    }
    return this.stmt<Row>(`${SELECT_ROW} WHERE ${where.join(' AND ')} ORDER BY key LIMIT ?`).all(...args, limit);
  }

  /** A prepared statement, cached by its text. */
  private stmt<R = unknown>(sql: string): Database.Statement<unknown[], R> {
    let found = this.statements.get(sql);
    if (found === undefined) {
      found = this.db.prepare(sql);
      this.statements.set(sql, found);
    }
    return found as Database.Statement<unknown[], R>;
  }

  /** Runs a write in one immediate transaction, turning "database or disk is full" into RESOURCE_EXHAUSTED. */
  private write<T>(fn: () => T): T {
    try {
      const result = this.db.transaction(fn).immediate();
      this.wake();
      return result;
    } catch (err: unknown) {
      if (isFull(err)) {
        throw new FerryError(
          'RESOURCE_EXHAUSTED',
          `the cluster store ${this.path} cannot be written: its file system is full; free space in the data directory`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Applies ops as one revision (none when nothing changes), inside a write; returns the revision after. */
  private apply(ops: readonly StoreOp[]): number {
    const before = this.currentRevision();
    const rev = before + 1;
    const leaseLive = this.stmt<{ id: number }>('SELECT id FROM leases WHERE id = ?');
    const put = this.stmt(
      'INSERT INTO kv (key, value, create_rev, mod_rev, lease) VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, lease = excluded.lease',
    );
    const del = this.stmt('DELETE FROM kv WHERE key = ?');
    const event = this.stmt('INSERT INTO history (rev, seq, key, value) VALUES (?, ?, ?, ?)');
    let seq = 0;
    for (const o of ops) {
      if (o.op === 'put') {
        const lease = o.lease === undefined ? null : Number(o.lease);
        if (lease !== null && leaseLive.get(lease) === undefined) throw leaseGone(String(o.lease));
        const text = JSON.stringify(o.value);
        put.run(o.key, text, rev, rev, lease);
        event.run(rev, seq++, o.key, text);
      } else if (del.run(o.key).changes > 0) {
        event.run(rev, seq++, o.key, null);
      }
    }
    if (seq === 0) return before;
    this.stmt(`UPDATE meta SET value = ? WHERE name = 'revision'`).run(rev);
    const keepAfter = rev - this.historyRevisions;
    if (keepAfter > 0 && rev % 100 === 0) {
      this.stmt('DELETE FROM history WHERE rev <= ?').run(keepAfter);
      this.stmt(`UPDATE meta SET value = MAX(value, ?) WHERE name = 'compacted'`).run(keepAfter);
    }
    return rev;
  }

  /** Deletes leases and their keys, inside a write. */
  private dropLeases(ids: readonly number[]): void {
    const keys = this.stmt<{ key: string }>('SELECT key FROM kv WHERE lease = ?');
    const drop = this.stmt('DELETE FROM leases WHERE id = ?');
    const ops: StoreOp[] = [];
    for (const id of ids) {
      for (const { key } of keys.all(id)) ops.push({ op: 'delete', key });
      drop.run(id);
    }
    this.apply(ops);
  }

  /** Expires the leases whose time is up (any connection may; the first one does). */
  private sweep(): void {
    if (!this.db.open) return;
    try {
      const due = this.stmt<{ id: number }>('SELECT id FROM leases WHERE expires_at <= ?');
      if (due.all(Date.now()).length === 0) return;
      this.write(() => this.dropLeases(due.all(Date.now()).map((r) => r.id)));
    } catch {
      // Busy or full: the next sweep tries again.
    }
  }

  private wake(): void {
    if (this.watches.size === 0 || this.wakeSoon) return;
    this.wakeSoon = true;
    setImmediate(() => {
      this.wakeSoon = false;
      this.poll();
    });
  }

  private poll(): void {
    if (!this.db.open) return;
    for (const w of [...this.watches]) this.pollOne(w);
  }

  /** Delivers the history after what a watch has seen. */
  private pollOne(w: OpenWatch): void {
    try {
      const read = this.db.transaction(() => {
        const compactedAt = this.meta('compacted');
        if (w.seen < compactedAt) throw compacted(w.seen + 1, compactedAt);
        const end = upperBound(w.prefix);
        const rows = this.stmt<HistoryRow>(
          `SELECT rev, key, value FROM history WHERE rev > ? AND key >= ? ${end === undefined ? '' : `AND ${end.sql}`} ORDER BY rev, seq`,
        ).all(w.seen, w.prefix, ...(end === undefined ? [] : [end.arg]));
        return { rows, revision: this.currentRevision() };
      });
      const { rows, revision } = read();
      const events: WatchEvent[] = rows.map((r) =>
        r.value === null
          ? { type: 'delete', key: r.key, revision: r.rev }
          : { type: 'put', key: r.key, value: JSON.parse(r.value), revision: r.rev },
      );
      w.seen = Math.max(w.seen, revision);
      w.queue.push(events);
    } catch (err: unknown) {
      w.queue.fail(err);
    }
  }
}

/** The condition "key sorts before every key after the prefix's", as text when it can be (so the index serves it). */
function upperBound(prefix: string): { sql: string; arg: string | Buffer } | undefined {
  const end = prefixEnd(prefix);
  if (end.length === 0) return undefined;
  const text = end.toString('utf8');
  return Buffer.from(text).equals(end) ? { sql: 'key < ?', arg: text } : { sql: 'CAST(key AS BLOB) < ?', arg: end };
}

function toEntry<T>(row: Row): Entry<T> {
  return {
    key: row.key,
    value: JSON.parse(row.value) as T,
    createRevision: row.create_rev,
    modRevision: row.mod_rev,
    ...(row.lease !== null && { lease: String(row.lease) }),
  };
}

function isSqliteError(err: unknown): err is { code: unknown } {
  return typeof err === 'object' && err !== null && 'code' in err;
}

/** SQLite's "database or disk is full". */
function isFull(err: unknown): boolean {
  return isSqliteError(err) && err.code === 'SQLITE_FULL';
}

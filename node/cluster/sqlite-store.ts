import Database from 'better-sqlite3';
import { FerryError } from '../../common/errors.js';
import type { ClusterStore, KeyValue, StoreOp } from './types.js';

/** The embedded cluster store: one SQLite file in WAL mode with full fsync on commit. */
export class SqliteStore implements ClusterStore {
  private readonly db: Database.Database;
  private readonly getStmt: Database.Statement<[string], { value: string }>;
  private readonly listStmt: Database.Statement<[string, string], { key: string; value: string }>;
  private readonly putStmt: Database.Statement<[string, string]>;
  private readonly delStmt: Database.Statement<[string]>;

  constructor(private readonly path: string) {
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
    } catch (err: unknown) {
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
    this.getStmt = this.db.prepare('SELECT value FROM kv WHERE key = ?');
    this.listStmt = this.db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key');
    this.putStmt = this.db.prepare(
      'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    );
    this.delStmt = this.db.prepare('DELETE FROM kv WHERE key = ?');
  }

  async get<T>(key: string): Promise<T | undefined> {
    const row = this.getStmt.get(key);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  async list<T>(prefix: string): Promise<KeyValue<T>[]> {
    return this.listStmt.all(prefix, `${prefix}\uffff`).map((r) => ({ key: r.key, value: JSON.parse(r.value) as T }));
  }

  async commit(ops: readonly StoreOp[]): Promise<void> {
    this.writing(() => this.apply(ops));
  }

  /** Runs a write, turning SQLite's "database or disk is full" into RESOURCE_EXHAUSTED (the cause kept). */
  private writing<T>(fn: () => T): T {
    try {
      return fn();
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

  private apply(ops: readonly StoreOp[]): void {
    const apply = this.db.transaction((all: readonly StoreOp[]) => {
      for (const o of all) {
        if (o.op === 'put') this.putStmt.run(o.key, JSON.stringify(o.value));
        else this.delStmt.run(o.key);
      }
    });
    apply(ops);
  }

  async compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    const swap = this.db.transaction((): boolean => {
      const row = this.getStmt.get(key);
      const current = row === undefined ? undefined : JSON.stringify(JSON.parse(row.value));
      if (current !== (expected === undefined ? undefined : JSON.stringify(expected))) return false;
      if (value === undefined) this.delStmt.run(key);
      else this.putStmt.run(key, JSON.stringify(value));
      return true;
    });
    return this.writing(() => swap.immediate());
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function isSqliteError(err: unknown): err is { code: unknown } {
  return typeof err === 'object' && err !== null && 'code' in err;
}

/** SQLite's "database or disk is full". */
function isFull(err: unknown): boolean {
  return isSqliteError(err) && err.code === 'SQLITE_FULL';
}

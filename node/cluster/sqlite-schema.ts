/**
 * The embedded cluster store's SQLite schema, migrated in place on open (`PRAGMA user_version`).
 *
 * Layout (version 1):
 * - `kv(key, value, create_rev, mod_rev, lease)`: the keys; `value` is JSON text, `lease` the lease id or NULL.
 * - `meta(name, value)`: `revision` (the store's revision) and `compacted` (history at and before it is gone).
 * - `history(rev, seq, key, value)`: the changes after `compacted`, `seq` orders those of one revision; a NULL
 *   value is a delete. Watches read it; it is trimmed to the last `historyRevisions` revisions.
 * - `leases(id, ttl_ms, expires_at)`: live leases; `expires_at` is epoch ms on the store's clock.
 *
 * Version 0 (Ferry before the cluster store had revisions) had only `kv(key, value)`. Its keys are given revision 1,
 * and the history starts after it.
 */
import type Database from 'better-sqlite3';
import { FerryError } from '../../common/index.js';

/** The schema version this code writes. */
export const SCHEMA_VERSION = 1;

const V0 = 'CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID';

const V1 = [
  'ALTER TABLE kv ADD COLUMN create_rev INTEGER NOT NULL DEFAULT 1',
  'ALTER TABLE kv ADD COLUMN mod_rev INTEGER NOT NULL DEFAULT 1',
  'ALTER TABLE kv ADD COLUMN lease INTEGER',
  'CREATE INDEX kv_lease ON kv (lease) WHERE lease IS NOT NULL',
  'CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID',
  `INSERT INTO meta (name, value) SELECT 'revision', CASE WHEN COUNT(*) > 0 THEN 1 ELSE 0 END FROM kv`,
  `INSERT INTO meta (name, value) SELECT 'compacted', value FROM meta WHERE name = 'revision'`,
  'CREATE TABLE history (rev INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (rev, seq)) WITHOUT ROWID',
  'CREATE TABLE leases (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL)',
  'CREATE INDEX leases_expiry ON leases (expires_at)',
];

/** Brings the database to SCHEMA_VERSION in one transaction (a crash leaves the old schema or the new one). */
export function migrate(db: Database.Database): void {
  const upgrade = db.transaction(() => {
    db.exec(V0);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `the cluster store's schema version ${version} is newer than this Ferry's (${SCHEMA_VERSION}): run the newer Ferry`,
      );
    }
    if (version < 1) for (const sql of V1) db.exec(sql);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  });
  upgrade.immediate();
}

/**
 * Where every chunk of a repository lives. Index objects (`index/<id>`, sealed) each describe some packs:
 *   per pack: pack id (32) | salt (32) | blob count u32 LE | blob entries (pack.ts, 44 bytes each)
 * A backup writes one every few packs, so a crash loses track of at most those packs.
 *
 * The index of an open repository is kept on disk, not in memory, so a node's memory grows neither with the size of
 * what it backs up nor with the repository's: an anonymous temporary SQLite database (created in SQLITE_TMPDIR,
 * TMPDIR or /var/tmp, deleted when closed or when the process dies), with a page cache of CACHE_KIB. Tables:
 *   chunk:  chunk id -> pack number, offset, length, nonce                  (one row per chunk)
 *   pack:   pack number -> pack id, salt, the pack's encoded blob entries  (one row per pack)
 *   source: index object -> the ids of the packs it describes, in order   (which index objects are merged in)
 * In memory: the references of up to PACK_CACHE packs looked up lately, by number (a restore reads pack after pack).
 */
import Database from 'better-sqlite3';
import { FerryError } from '../../common/index.js';
import { type BlobEntry, encodeEntries, type PackRef } from './pack.js';

/** Bytes of one blob entry in an index object or a pack header. */
export const ENTRY = 44;
/**
 * SQLite page cache of one index, in KiB: beyond it, pages live in the temporary file (and the OS page cache). A
 * 1 GiB volume's index already fills this much, so a larger volume's backup does not hold more.
 */
const CACHE_KIB = 512;
/**
 * Pack references kept in memory (chunk lookups name packs by number), in slots chosen by number: a miss replaces the
 * slot's last reference. A restore reads from a few packs at a time, and packs are numbered in the order they were
 * indexed, so neighbours fall in different slots. 256 kept a large repository's references (and their salts'
 * buffers) where a small one kept its 40. Slots, not a map emptied when full: the same code runs from the first miss
 * on, where a branch first taken after PACK_CACHE packs cost a long job a recompilation a short one never makes.
 */
const PACK_CACHE = 64;

export interface ChunkLocation {
  pack: PackRef;
  offset: number;
  length: number;
  nonce: number;
}

/** A pack as an index object describes it: its reference and its blob entries, encoded (ENTRY bytes each). */
export interface IndexedPack {
  ref: PackRef;
  blobs: Buffer;
}

/** The index form of a pack whose entries are objects (a pack just built). */
export function indexedPack(ref: PackRef, entries: readonly BlobEntry[]): IndexedPack {
  return { ref, blobs: encodeEntries(entries) };
}

/**
 * An anonymous temporary SQLite database (in SQLITE_TMPDIR, TMPDIR or /var/tmp; gone when closed or when the process
 * dies) for data that must not live in memory: no journal, no syncs, one user, a page cache of CACHE_KIB.
 */
export function scratchDatabase(): Database.Database {
  const db = new Database('');
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma(`cache_size = -${CACHE_KIB}`);
  return db;
}

type LocationRow = [pack: number, offset: number, length: number, nonce: number];

/**
 * The index objects merged into an index, each with the ids of the packs it describes (kept in the index's database;
 * shaped like the Map it replaces).
 */
export class IndexObjects {
  /** @param sql The index's statements (opening its database on first use). */
  constructor(private readonly sql: () => Statements) {}

  get size(): number {
    return this.sql().sourceCount.pluck().get() as number;
  }

  has(key: string): boolean {
    return this.sql().sourceHas.get(key) !== undefined;
  }

  /** Records (or replaces) the packs an index object describes. */
  set(key: string, packIds: readonly string[]): this {
    this.sql().setSource(key, packIds);
    return this;
  }

  delete(key: string): boolean {
    return this.sql().sourceDelete.run(key).changes > 0;
  }

  /** Every index object with its packs, read from disk now. */
  entries(): Array<[string, string[]]> {
    const out = new Map<string, string[]>();
    for (const [key, pos, pack] of this.sql().sourceAll.iterate()) {
      const ids = out.get(key) ?? [];
      if (pos >= 0) ids.push(pack.toString('hex'));
      out.set(key, ids);
    }
    return [...out.entries()];
  }

  values(): string[][] {
    return this.entries().map(([, ids]) => ids);
  }

  /** The keys of the index objects merged in (without their packs). */
  keys(): string[] {
    return this.sql().sourceKeys.pluck().all() as string[];
  }

  /** The ids of the packs index object `key` describes (empty for an unknown key). */
  packsOf(key: string): string[] {
    return (this.sql().sourcePacks.pluck().all(key) as Buffer[]).map((b) => b.toString('hex'));
  }
}

export class ChunkIndex {
  private db: Database.Database | undefined;
  private statements: Statements | undefined;
  /** Cached references of packs looked up by number, by slot (`num % PACK_CACHE`). */
  private readonly refs = new Array<{ num: number; ref: PackRef } | undefined>(PACK_CACHE).fill(undefined);
  /** Index objects already merged in, with the ids of the packs each describes. */
  readonly loaded = new IndexObjects(() => this.sql);

  /** The database, opened on first use (a repository that never loads its index costs no file). */
  private get sql(): Statements {
    if (this.statements === undefined) {
      const db = scratchDatabase();
      db.exec(
        'CREATE TABLE chunk (id BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL, ' +
          'length INTEGER NOT NULL, nonce INTEGER NOT NULL) WITHOUT ROWID;' +
          'CREATE TABLE pack (num INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE, salt BLOB NOT NULL, ' +
          'blobs BLOB NOT NULL);' +
          'CREATE TABLE source (key TEXT NOT NULL, pos INTEGER NOT NULL, pack BLOB NOT NULL, PRIMARY KEY (key, pos)) ' +
          'WITHOUT ROWID;',
      );
      this.db = db;
      this.statements = prepare(db);
    }
    return this.statements;
  }

  /** Chunks indexed. */
  get size(): number {
    if (this.statements === undefined) return 0;
    return this.statements.count.pluck().get() as number;
  }

  has(id: Buffer): boolean {
    return this.get(id) !== undefined;
  }

  get(id: Buffer): ChunkLocation | undefined {
    if (this.statements === undefined) return undefined;
    const row = this.statements.get.get(id);
    if (row === undefined) return undefined;
    const pack = this.ref(row[0]);
    if (pack === undefined) return undefined;
    return { pack, offset: row[1], length: row[2], nonce: row[3] };
  }

  /**
   * The reference of pack number `num`, from the cache or the database. A hit changes nothing (a lookup per chunk
   * must not churn the cache); a miss takes the slot of `num`.
   */
  private ref(num: number): PackRef | undefined {
    const cached = this.refs[num % PACK_CACHE];
    if (cached?.num === num) return cached.ref;
    const row = this.sql.refByNumber.get(num);
    if (row === undefined) return undefined;
    const ref = { id: row[0].toString('hex'), salt: row[1] };
    this.refs[num % PACK_CACHE] = { num, ref };
    return ref;
  }

  /** Whether the index knows pack `id`. */
  hasPack(id: string): boolean {
    return this.statements?.numberOf.get(Buffer.from(id, 'hex')) !== undefined;
  }

  /** The blob entries of an indexed pack, or undefined when the index does not know it. */
  pack(id: string): IndexedPack | undefined {
    const row = this.statements?.packById.get(Buffer.from(id, 'hex'));
    if (row === undefined) return undefined;
    return { ref: { id, salt: row[0] }, blobs: row[1] };
  }

  /** Adds a pack's chunks; a chunk already indexed elsewhere keeps its location unless `prefer` is set. */
  add(pack: IndexedPack, prefer = false): void {
    if (pack.blobs.length % ENTRY !== 0) throw new FerryError('INTERNAL', `pack ${pack.ref.id} has a bad blob list`);
    this.sql.addPack(pack, prefer);
  }

  /** Forgets packs (garbage collection or condemned packs): their chunks count as absent. */
  dropPacks(ids: ReadonlySet<string>): void {
    if (ids.size === 0 || this.statements === undefined) return;
    const numbers = this.statements.dropPacks([...ids]);
    for (const n of numbers) if (this.refs[n % PACK_CACHE]?.num === n) this.refs[n % PACK_CACHE] = undefined;
  }

  /** Deletes the on-disk index; the instance is empty afterwards and reopens a new one on next use. */
  close(): void {
    this.db?.close();
    this.db = undefined;
    this.statements = undefined;
    this.refs.fill(undefined);
  }
}

type Statements = ReturnType<typeof prepare>;

function prepare(db: Database.Database) {
  const get = db.prepare<[Buffer], LocationRow>('SELECT pack, offset, length, nonce FROM chunk WHERE id = ?').raw();
  const keep = db.prepare<[Buffer, number, number, number, number]>(
    'INSERT OR IGNORE INTO chunk (id, pack, offset, length, nonce) VALUES (?, ?, ?, ?, ?)',
  );
  const replace = db.prepare<[Buffer, number, number, number, number]>(
    'INSERT OR REPLACE INTO chunk (id, pack, offset, length, nonce) VALUES (?, ?, ?, ?, ?)',
  );
  const putPack = db
    .prepare<[Buffer, Buffer, Buffer], number>(
      'INSERT INTO pack (id, salt, blobs) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET blobs = excluded.blobs ' +
        'RETURNING num',
    )
    .pluck();
  const numberOf = db.prepare<[Buffer], number>('SELECT num FROM pack WHERE id = ?').pluck();
  const dropChunks = db.prepare<[number]>('DELETE FROM chunk WHERE pack = ?');
  const dropPack = db.prepare<[number]>('DELETE FROM pack WHERE num = ?');
  const sourceDelete = db.prepare<[string]>('DELETE FROM source WHERE key = ?');
  const sourceAdd = db.prepare<[string, number, Buffer]>('INSERT INTO source (key, pos, pack) VALUES (?, ?, ?)');
  return {
    get,
    count: db.prepare<[], number>('SELECT count(*) FROM chunk'),
    numberOf,
    refByNumber: db.prepare<[number], [Buffer, Buffer]>('SELECT id, salt FROM pack WHERE num = ?').raw(),
    packById: db.prepare<[Buffer], [Buffer, Buffer]>('SELECT salt, blobs FROM pack WHERE id = ?').raw(),
    addPack: db.transaction((pack: IndexedPack, prefer: boolean) => {
      const { blobs } = pack;
      const number = putPack.get(Buffer.from(pack.ref.id, 'hex'), pack.ref.salt, blobs) as number;
      const insert = prefer ? replace : keep;
      for (let o = 0; o < blobs.length; o += ENTRY) {
        insert.run(
          blobs.subarray(o, o + 32),
          number,
          blobs.readUInt32LE(o + 32),
          blobs.readUInt32LE(o + 36),
          blobs.readUInt32LE(o + 40),
        );
      }
    }),
    /** Deletes packs and their chunks; returns the numbers the packs had. */
    dropPacks: db.transaction((ids: string[]): number[] => {
      const numbers: number[] = [];
      for (const id of ids) {
        const number = numberOf.get(Buffer.from(id, 'hex')) as number | undefined;
        if (number === undefined) continue;
        dropChunks.run(number);
        dropPack.run(number);
        numbers.push(number);
      }
      return numbers;
    }),
    sourceCount: db.prepare<[], number>('SELECT count(DISTINCT key) FROM source'),
    sourceHas: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM source WHERE key = ? LIMIT 1'),
    sourceDelete,
    sourceAll: db.prepare<[], [string, number, Buffer]>('SELECT key, pos, pack FROM source ORDER BY key, pos').raw(),
    sourceKeys: db.prepare<[], string>('SELECT DISTINCT key FROM source'),
    sourcePacks: db.prepare<[string], Buffer>('SELECT pack FROM source WHERE key = ? AND pos >= 0 ORDER BY pos'),
    setSource: db.transaction((key: string, packIds: readonly string[]) => {
      sourceDelete.run(key);
      // An index object that describes no pack is still merged in: a row at position -1 says so.
      if (packIds.length === 0) sourceAdd.run(key, -1, Buffer.alloc(0));
      packIds.forEach((id, pos) => {
        sourceAdd.run(key, pos, Buffer.from(id, 'hex'));
      });
    }),
  };
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of packs) {
    const head = Buffer.alloc(68);
    Buffer.from(p.ref.id, 'hex').copy(head, 0);
    p.ref.salt.copy(head, 32);
    head.writeUInt32LE(p.blobs.length / ENTRY, 64);
    parts.push(head, p.blobs);
  }
  return Buffer.concat(parts);
}

export function decodeIndex(b: Buffer, what: string): IndexedPack[] {
  const out: IndexedPack[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 68 > b.length) throw new FerryError('DATA_CORRUPTION', `${what} is truncated`);
    const ref = { id: b.subarray(o, o + 32).toString('hex'), salt: Buffer.from(b.subarray(o + 32, o + 64)) };
    const n = b.readUInt32LE(o + 64);
    o += 68;
    if (o + n * ENTRY > b.length) throw new FerryError('DATA_CORRUPTION', `${what} is truncated`);
    out.push({ ref, blobs: b.subarray(o, o + n * ENTRY) });
    o += n * ENTRY;
  }
  return out;
}

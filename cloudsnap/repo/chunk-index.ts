/**
 * Where every chunk of a repository lives. Index objects (`index/<id>`, sealed) each describe some packs:
 *   per pack: pack id (32) | salt (32) | blob count u32 LE | blob entries (pack.ts, 44 bytes each)
 * A backup writes one every few packs, so a crash loses track of at most those packs.
 *
 * The index of an open repository is kept on disk, not in memory, so a node's memory does not grow with the size of
 * what it backs up: an anonymous temporary SQLite database (created in SQLITE_TMPDIR, TMPDIR or /var/tmp, deleted
 * when closed or when the process dies), with a page cache of CACHE_KIB. Tables:
 *   chunk: chunk id -> pack number, offset, length, nonce      (one row per chunk)
 *   pack:  pack number -> the pack's encoded blob entries       (for garbage collection's rewrites)
 * Pack references (id and salt) and which index object names which packs stay in memory: a few hundred bytes a pack.
 */
import Database from 'better-sqlite3';
import { FerryError } from '../../common/errors.js';
import { type BlobEntry, encodeEntries, type PackRef } from './pack.js';

/** Bytes of one blob entry in an index object or a pack header. */
export const ENTRY = 44;
/**
 * SQLite page cache of one index, in KiB: beyond it, pages live in the temporary file (and the OS page cache). A
 * 1 GiB volume's index already fills this much, so a larger volume's backup does not hold more.
 */
const CACHE_KIB = 512;

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

/** Chunk ids (hex) of a pack's blobs. */
export function packChunkIds(pack: IndexedPack): string[] {
  const ids: string[] = [];
  for (let o = 0; o < pack.blobs.length; o += ENTRY) ids.push(pack.blobs.toString('hex', o, o + 32));
  return ids;
}

type LocationRow = [pack: number, offset: number, length: number, nonce: number];

export class ChunkIndex {
  private db: Database.Database | undefined;
  private statements: ReturnType<typeof prepare> | undefined;
  /** Packs by number (number 0 is never used); undefined once dropped. */
  private readonly byNumber: Array<PackRef | undefined> = [undefined];
  private readonly numbers = new Map<string, number>();
  readonly packs = new Map<string, PackRef>();
  /** Index objects already merged in, with the ids of the packs each describes. */
  readonly loaded = new Map<string, string[]>();

  /** The database, opened on first use (a repository that never loads its index costs no file). */
  private get sql(): ReturnType<typeof prepare> {
    if (this.statements === undefined) {
      const db = new Database('');
      db.pragma('journal_mode = OFF');
      db.pragma('synchronous = OFF');
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma(`cache_size = -${CACHE_KIB}`);
      db.exec(
        'CREATE TABLE chunk (id BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL, ' +
          'length INTEGER NOT NULL, nonce INTEGER NOT NULL) WITHOUT ROWID;' +
          'CREATE TABLE pack (num INTEGER PRIMARY KEY, blobs BLOB NOT NULL);',
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
    const pack = this.byNumber[row[0]];
    if (pack === undefined) return undefined;
    return { pack, offset: row[1], length: row[2], nonce: row[3] };
  }

  /** The blob entries of an indexed pack, or undefined when the index does not know it. */
  pack(id: string): IndexedPack | undefined {
    const number = this.numbers.get(id);
    const ref = this.packs.get(id);
    if (number === undefined || ref === undefined) return undefined;
    const blobs = this.sql.blobs.pluck().get(number) as Buffer | undefined;
    return blobs === undefined ? undefined : { ref, blobs };
  }

  /** Adds a pack's chunks; a chunk already indexed elsewhere keeps its location unless `prefer` is set. */
  add(pack: IndexedPack, prefer = false): void {
    if (pack.blobs.length % ENTRY !== 0) throw new FerryError('INTERNAL', `pack ${pack.ref.id} has a bad blob list`);
    const sql = this.sql;
    let number = this.numbers.get(pack.ref.id);
    if (number === undefined) {
      number = this.byNumber.length;
      this.byNumber.push(pack.ref);
      this.numbers.set(pack.ref.id, number);
    }
    this.packs.set(pack.ref.id, pack.ref);
    sql.addPack(pack.blobs, number, prefer);
  }

  /** Forgets packs (garbage collection or condemned packs): their chunks count as absent. */
  dropPacks(ids: ReadonlySet<string>): void {
    const numbers: number[] = [];
    for (const id of ids) {
      const number = this.numbers.get(id);
      if (number !== undefined) {
        this.byNumber[number] = undefined;
        this.numbers.delete(id);
        numbers.push(number);
      }
      this.packs.delete(id);
    }
    if (numbers.length > 0) this.sql.drop(JSON.stringify(numbers));
  }

  /** Deletes the on-disk index; the instance is empty afterwards and reopens a new one on next use. */
  close(): void {
    this.db?.close();
    this.db = undefined;
    this.statements = undefined;
    this.byNumber.length = 1;
    this.numbers.clear();
    this.packs.clear();
    this.loaded.clear();
  }
}

function prepare(db: Database.Database) {
  const get = db.prepare<[Buffer], LocationRow>('SELECT pack, offset, length, nonce FROM chunk WHERE id = ?').raw();
  const keep = db.prepare<[Buffer, number, number, number, number]>(
    'INSERT OR IGNORE INTO chunk (id, pack, offset, length, nonce) VALUES (?, ?, ?, ?, ?)',
  );
  const replace = db.prepare<[Buffer, number, number, number, number]>(
    'INSERT OR REPLACE INTO chunk (id, pack, offset, length, nonce) VALUES (?, ?, ?, ?, ?)',
  );
  const putBlobs = db.prepare<[number, Buffer]>('INSERT OR REPLACE INTO pack (num, blobs) VALUES (?, ?)');
  const dropChunks = db.prepare<[string]>('DELETE FROM chunk WHERE pack IN (SELECT value FROM json_each(?))');
  const dropBlobs = db.prepare<[string]>('DELETE FROM pack WHERE num IN (SELECT value FROM json_each(?))');
  return {
    get,
    count: db.prepare<[], number>('SELECT count(*) FROM chunk'),
    blobs: db.prepare<[number], Buffer>('SELECT blobs FROM pack WHERE num = ?'),
    addPack: db.transaction((blobs: Buffer, number: number, prefer: boolean) => {
      putBlobs.run(number, blobs);
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
    drop: db.transaction((numbers: string) => {
      dropChunks.run(numbers);
      dropBlobs.run(numbers);
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

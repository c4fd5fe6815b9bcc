/**
 * Verify's own view of a repository, built from what the store holds now (never from a node's cached index): the
 * chunks the checked backups name, and the packs the index objects (or pack headers) describe, in a scratch database
 * on disk, so that memory does not grow with the repository.
 *   need: chunk id -> the pack number chosen to check it in (NULL until a pack is found that holds it)
 *   pack: pack number -> pack id, salt, its blob entries (44 bytes each), the index object that named it, the
 *         positions of the blobs it is to check (u32 each)
 */
import type Database from 'better-sqlite3';
import { ENTRY, scratchDatabase } from './chunk-index.js';

/** A pack as verify plans to check it. */
export interface PlannedPack {
  num: number;
  id: string;
  salt: Buffer;
  /** Blob entries, ENTRY bytes each, in offset order. */
  blobs: Buffer;
  /** The index object that named it, or undefined when only its header did. */
  source: string | undefined;
  /** Positions (in `blobs`) of the blobs this verify checks: chunks no other pack is checked for. */
  needed: number[];
}

type PackRow = [num: number, id: Buffer, salt: Buffer, blobs: Buffer, source: string | null, needed: Buffer | null];

export class VerifyScan {
  private readonly db: Database.Database = scratchDatabase();
  private readonly sql;

  constructor() {
    this.db.exec(
      'CREATE TABLE need (id BLOB PRIMARY KEY, pack INTEGER) WITHOUT ROWID;' +
        'CREATE TABLE pack (num INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE, salt BLOB NOT NULL, ' +
        'blobs BLOB NOT NULL, source TEXT, needed BLOB);',
    );
    const addNeed = this.db.prepare<[Buffer]>('INSERT OR IGNORE INTO need (id) VALUES (?)');
    const claim = this.db.prepare<[number, Buffer]>('UPDATE need SET pack = ? WHERE id = ? AND pack IS NULL');
    const setNeeded = this.db.prepare<[Buffer, number]>('UPDATE pack SET needed = ? WHERE num = ?');
    const insertPack = this.db
      .prepare<[Buffer, Buffer, Buffer, string | null], number>(
        'INSERT INTO pack (id, salt, blobs, source) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING num',
      )
      .pluck();
    this.sql = {
      addNeeds: this.db.transaction((ids: readonly Buffer[]) => {
        for (const id of ids) addNeed.run(id);
      }),
      /** Adds a pack and claims the needed chunks it holds that no pack has claimed; returns how many. */
      addPack: this.db.transaction((id: string, salt: Buffer, blobs: Buffer, source: string | null): number => {
        const num = insertPack.get(Buffer.from(id, 'hex'), salt, blobs, source) as number | undefined;
        if (num === undefined) return 0;
        const needed: number[] = [];
        for (let o = 0, i = 0; o < blobs.length; o += ENTRY, i++) {
          if (claim.run(num, blobs.subarray(o, o + 32)).changes > 0) needed.push(i);
        }
        if (needed.length > 0) setNeeded.run(Buffer.from(new Uint32Array(needed).buffer), num);
        return needed.length;
      }),
      needCount: this.db.prepare<[], number>('SELECT count(*) FROM need').pluck(),
      unclaimedCount: this.db.prepare<[], number>('SELECT count(*) FROM need WHERE pack IS NULL').pluck(),
      unclaimed: this.db.prepare<[], Buffer>('SELECT id FROM need WHERE pack IS NULL').pluck(),
      hasPack: this.db.prepare<[Buffer], number>('SELECT num FROM pack WHERE id = ?').pluck(),
      neededPacks: this.db.prepare<[], number>('SELECT num FROM pack WHERE needed IS NOT NULL').pluck(),
      packByNum: this.db
        .prepare<[number], PackRow>('SELECT num, id, salt, blobs, source, needed FROM pack WHERE num = ?')
        .raw(),
    };
  }

  /** Chunks the checked backups name. */
  addNeeds(ids: readonly Buffer[]): void {
    this.sql.addNeeds(ids);
  }

  /** Distinct chunks needed. */
  get needed(): number {
    return this.sql.needCount.get() as number;
  }

  /** Adds a pack (once) and returns how many needed chunks it is now the one to check. */
  addPack(id: string, salt: Buffer, blobs: Buffer, source: string | undefined): number {
    return this.sql.addPack(id, salt, blobs, source ?? null);
  }

  hasPack(id: string): boolean {
    return this.numberOf(id) !== undefined;
  }

  /** The number of pack `id`, if added. */
  numberOf(id: string): number | undefined {
    return this.sql.hasPack.get(Buffer.from(id, 'hex'));
  }

  /** Needed chunks no pack holds, so far. */
  get unclaimed(): number {
    return this.sql.unclaimedCount.get() as number;
  }

  unclaimedIds(): Buffer[] {
    return this.sql.unclaimed.all();
  }

  /** Numbers of the packs that hold chunks to check. */
  neededPacks(): number[] {
    return this.sql.neededPacks.all();
  }

  pack(num: number): PlannedPack {
    const row = this.sql.packByNum.get(num) as PackRow;
    const needed = row[5] === null ? [] : [...new Uint32Array(new Uint8Array(row[5]).buffer)];
    return { num, id: row[1].toString('hex'), salt: row[2], blobs: row[3], source: row[4] ?? undefined, needed };
  }

  close(): void {
    this.db.close();
  }
}

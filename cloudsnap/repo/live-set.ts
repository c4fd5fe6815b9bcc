import { ENTRY, type IndexedPack, scratchDatabase } from './chunk-index.js';
import { decodeLeaf, decodeRoot } from './manifest.js';
import type { BackupRecord, Repository } from './repository.js';

/**
 * A set of chunk ids kept in a scratch database on disk (as the chunk index is), with the manifest pages
 * already read: garbage collection's memory does not grow with the repository. Close it when done.
 */
export class LiveSet {
  private readonly db = scratchDatabase();
  private readonly statements;

  constructor() {
    this.db.exec(
      'CREATE TABLE live (id BLOB PRIMARY KEY) WITHOUT ROWID; CREATE TABLE page (id BLOB PRIMARY KEY) WITHOUT ROWID;',
    );
    const add = this.db.prepare<[Buffer]>('INSERT OR IGNORE INTO live (id) VALUES (?)');
    this.statements = {
      addAll: this.db.transaction((ids: Iterable<Buffer>) => {
        for (const id of ids) add.run(id);
      }),
      has: this.db.prepare<[Buffer], { one: number }>('SELECT 1 AS one FROM live WHERE id = ?'),
      count: this.db.prepare<[], number>('SELECT count(*) FROM live').pluck(),
      addPage: this.db.prepare<[Buffer]>('INSERT OR IGNORE INTO page (id) VALUES (?)'),
    };
  }

  /** Adds chunk ids (in one transaction). */
  addAll(ids: Iterable<Buffer>): void {
    this.statements.addAll(ids);
  }

  has(id: Buffer): boolean {
    return this.statements.has.get(id) !== undefined;
  }

  get size(): number {
    return this.statements.count.get() as number;
  }

  /** Notes a manifest page; true the first time it is seen (its chunks are then still to add). */
  firstSight(page: Buffer): boolean {
    return this.statements.addPage.run(page).changes === 1;
  }

  /** Whether any chunk of a pack is in the set. */
  holdsAnyOf(pack: IndexedPack): boolean {
    for (let o = 0; o < pack.blobs.length; o += ENTRY) if (this.has(pack.blobs.subarray(o, o + 32))) return true;
    return false;
  }

  close(): void {
    this.db.close();
  }
}

/**
 * Every chunk id the committed backups name: what garbage collection must keep. `records` are the backups to walk
 * (default: every record of the repository that opens).
 */
export async function liveChunks(
  repo: Repository,
  signal?: AbortSignal,
  records?: readonly BackupRecord[],
): Promise<LiveSet> {
  const live = new LiveSet();
  try {
    for (const record of records ?? (await repo.listBackups(signal))) {
      const root = decodeRoot(
        await repo.getPage(Buffer.from(record.root, 'hex'), signal),
        `root of backup ${record.id}`,
      );
      for (const [n, pageId] of root.leaves) {
        if (!live.firstSight(pageId)) continue;
        const leaf = decodeLeaf(await repo.getPage(pageId, signal), `leaf ${n} of backup ${record.id}`);
        live.addAll(leaf.values());
      }
    }
    return live;
  } catch (err: unknown) {
    live.close();
    throw err;
  }
}

/**
 * The durable epochs of a node's replicas (docs/REPLICATION.md, F3): for each volume it holds a replica of, the
 * highest coordinator epoch the replica was opened under, one small file per volume under `<dataDir>/epochs/`,
 * written and synced (file and directory) before an open under a higher epoch answers, and read at start, so a
 * restart does not forget which coordinators are fenced.
 */
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';
import { fsyncDir } from './fsutil.js';

/** Volume ids are file names here: letters, digits, `-` and `_` only. */
const SAFE_ID = /^[A-Za-z0-9_-]+$/;

export class EpochBook {
  private readonly held = new Map<string, number>();
  /** Writes of one volume's file, one after another. */
  private readonly writing = new Map<string, Promise<void>>();

  private constructor(private readonly dir: string) {}

  /** Opens the epochs under `dir` (created when absent), reading every file there. */
  static async open(dir: string): Promise<EpochBook> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const book = new EpochBook(dir);
    for (const name of await readdir(dir)) {
      if (!SAFE_ID.test(name)) continue;
      const text = await readFile(join(dir, name), 'utf8').catch(() => '');
      const epoch = Number(text.trim());
      if (Number.isSafeInteger(epoch) && epoch > 0) book.held.set(name, epoch);
    }
    return book;
  }

  /** The highest epoch volume `volumeId`'s replica was opened under here (0: none). */
  epochOf(volumeId: string): number {
    return this.held.get(volumeId) ?? 0;
  }

  /**
   * Makes `epoch` volume `volumeId`'s when it is higher than the one held: resolves once that is durable. A lower
   * one changes nothing (the caller refuses it first).
   */
  async raise(volumeId: string, epoch: number): Promise<void> {
    if (!SAFE_ID.test(volumeId)) throw new FerryError('INVALID_ARGUMENT', `volume id ${volumeId} is not a safe name`);
    const run = (this.writing.get(volumeId) ?? Promise.resolve()).then(async () => {
      if (epoch <= this.epochOf(volumeId)) return;
      const path = join(this.dir, volumeId);
      const tmp = `${path}.tmp`;
      const file = await open(tmp, 'w', 0o600);
      try {
        await file.writeFile(`${epoch}\n`);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, path);
      await fsyncDir(path);
      this.held.set(volumeId, Math.max(epoch, this.epochOf(volumeId)));
    });
    const tail = run.catch(() => undefined);
    this.writing.set(volumeId, tail);
    void tail.then(() => {
      if (this.writing.get(volumeId) === tail) this.writing.delete(volumeId);
    });
    await run;
  }

  /** Forgets volume `volumeId` (its replica left this node). */
  async forget(volumeId: string): Promise<void> {
    this.held.delete(volumeId);
    if (!SAFE_ID.test(volumeId)) return;
    await unlink(join(this.dir, volumeId)).catch(() => undefined);
  }
}

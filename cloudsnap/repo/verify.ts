/**
 * Verify: checks backups against what the store holds now, never against a node's cached index or records.
 *   1. records: every `backups/` record (or the ones asked for) opens and names itself;
 *   2. manifests: every root and leaf page opens and matches its id (each page once, however many backups share it);
 *      the chunks they name are gathered, each once;
 *   3. index: every index object opens; the packs they describe (and, for chunks they miss, the headers of packs no
 *      index object names) say which pack holds each chunk;
 *   4. packs: every pack that holds a needed chunk exists with the size its entries give (from one listing);
 *   5. data (`dataPercent` of those packs, chosen at random): each is read once, whole, in a few large ranged reads;
 *      its head and trailing header are checked against the index, and every chunk it is checked for is
 *      authenticated, decompressed and re-hashed, once, however many backups name it.
 * Every problem is collected (nothing stops at the first), one per damaged object, with the backups, volume ranges
 * and chunks it affects (verify-report.ts).
 */
import { FerryError, isFerryError } from '../../common/index.js';
import { type Progress, ProgressTracker } from '../progress.js';
import { decodeIndex } from './chunk-index.js';
import { parseConfig } from './config.js';
import { openJson, openObject } from './envelope.js';
import { backupKey, CONFIG_KEY, packKey, pageKey } from './layout.js';
import { decodeRoot, leafEntries, pageId, type Root } from './manifest.js';
import type { BackupRecord, Repository } from './repository.js';
import { expectedPackSize, openTrailer, PACK_HEAD, PackChecker } from './verify-packs.js';
import { ProblemBook, type VerifyProblem } from './verify-report.js';
import { type PlannedPack, VerifyScan } from './verify-scan.js';

export type { VerifyProblem, VerifyProblemKind, VerifyRange } from './verify-report.js';

export interface VerifyOptions {
  /** Backups to check; default all. */
  backupIds?: string[];
  /**
   * Share of the packs that hold the backups' chunks to read whole and check chunk by chunk (0-100, chosen at
   * random); default 0 (metadata only: records, pages, index objects, and each pack's presence and size).
   */
  dataPercent?: number;
  /** Packs read at once; default 6 (each is read one range after another). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Progress: bytes of packs read of those to read, and the counts so far. */
  onProgress?: (progress: Progress, counts: VerifyCounts) => void;
  /** Waits while the job is paused (called between ranged reads). */
  pause?: () => Promise<void>;
}

/** What a verify has checked (so far, while it runs). */
export interface VerifyCounts {
  /** Backups checked. */
  backups: number;
  /** Distinct manifest pages read. */
  pages: number;
  /** Chunk references in the backups' manifests. */
  chunks: number;
  /** Distinct chunks among them: what a 100% verify checks. */
  chunks_unique: number;
  /** Chunks read, authenticated, decompressed and re-hashed. */
  chunks_read: number;
  /** Index objects read. */
  index_objects: number;
  /** Packs holding the backups' chunks. */
  packs: number;
  /** Packs chosen to read (all of them at 100%). */
  packs_to_read: number;
  /** Packs read so far. */
  packs_read: number;
  /** Bytes of those packs. */
  bytes_to_read: number;
  bytes_read: number;
}

export interface VerifyResult extends VerifyCounts {
  data_percent: number;
  /** Every problem found, one per damaged object, with what it affects. Empty when all is well. */
  problems: VerifyProblem[];
}

/** Decoded pages kept between the first walk of the manifests and the one that places damaged chunks. */
const PAGE_CACHE_BYTES = 64 * 1024 * 1024;
/** Small objects (records, pages, index objects, pack headers) fetched at once. */
const FETCHES = 8;

interface Checked {
  record: BackupRecord;
  root: Root;
}

/** Checks backups (see the file comment). Rejects only when the store cannot be read or the signal aborts. */
export async function verifyBackups(repo: Repository, options: VerifyOptions = {}): Promise<VerifyResult> {
  return new Verify(repo, options).run();
}

class Verify {
  private readonly book = new ProblemBook();
  private readonly scan = new VerifyScan();
  private readonly progress: ProgressTracker;
  private readonly signal: AbortSignal | undefined;
  private readonly share: number;
  readonly counts: VerifyCounts = { ...ZERO_COUNTS };
  /** Leaf pages by id (hex): the problem that made it unreadable, or its chunk count. */
  private readonly leaves = new Map<string, { problem: number } | { count: number }>();
  /** Roots by id (hex): the problem that made it unreadable. */
  private readonly badRoots = new Map<string, number>();
  private readonly pageCache = new Map<string, Buffer>();
  private pageCacheBytes = 0;

  constructor(
    private readonly repo: Repository,
    private readonly options: VerifyOptions,
  ) {
    this.signal = options.signal;
    this.share = Math.max(0, Math.min(100, options.dataPercent ?? 0));
    const report = options.onProgress;
    this.progress = new ProgressTracker(report === undefined ? undefined : (p) => report(p, { ...this.counts }));
  }

  async run(): Promise<VerifyResult> {
    try {
      this.progress.phase('preparing');
      await this.checkConfig();
      const records = await this.readRecords();
      const checked: Checked[] = [];
      for (const record of records) {
        const root = await this.walk(record);
        if (root !== undefined) checked.push({ record, root });
      }
      this.counts.chunks_unique = this.scan.needed;
      await this.readIndex();
      const sizes = await this.listPacks();
      if (this.scan.unclaimed > 0) await this.searchUnindexed(sizes);
      this.reportLost();
      const chosen = this.planPacks(sizes);
      this.progress.setTotal(this.counts.bytes_to_read);
      await this.readPacks(chosen);
      this.progress.phase('committing');
      if (this.book.hasConcerns) for (const c of checked) await this.place(c);
      this.progress.phase('done');
      return { ...this.counts, data_percent: this.share, problems: this.book.problems() };
    } finally {
      this.scan.close();
    }
  }

  /** A GET that answers undefined for a missing object. */
  private async getIfPresent(key: string): Promise<Buffer | undefined> {
    try {
      return await this.repo.getObject(key, { ...(this.signal !== undefined && { signal: this.signal }) });
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) return undefined;
      throw err;
    }
  }

  private async *keysUnder(prefix: string): AsyncGenerator<{ key: string; size: number }> {
    yield* this.repo.objectsUnder(prefix, this.signal);
  }

  /** Objects fetched FETCHES at a time, handed to `use` in order. */
  private async fetchAll(keys: readonly string[], use: (key: string, body: Buffer | undefined) => void) {
    const window: Array<Promise<Buffer | undefined>> = [];
    let next = 0;
    const more = (): void => {
      const key = keys[next++];
      if (key === undefined) return;
      const p = this.getIfPresent(key);
      p.catch(() => undefined);
      window.push(p);
    };
    while (window.length < FETCHES && next < keys.length) more();
    for (const key of keys) {
      const body = await window.shift();
      more();
      use(key, body);
    }
  }

  private async checkConfig(): Promise<void> {
    const raw = await this.getIfPresent(CONFIG_KEY);
    if (raw === undefined) {
      this.book.add('config', CONFIG_KEY, 'the repository config is missing: nothing can be restored without it');
      return;
    }
    try {
      const config = parseConfig(raw, this.repo.location);
      if (config.id !== this.repo.id) {
        this.book.add('config', CONFIG_KEY, `the config names repository ${config.id}, not ${this.repo.id}`);
      }
    } catch (err: unknown) {
      if (!isFerryError(err)) throw err;
      this.book.add('config', CONFIG_KEY, err.message);
    }
  }

  /** The records to check, read from the store; damaged ones become problems. */
  private async readRecords(): Promise<BackupRecord[]> {
    const ids: string[] = [];
    if (this.options.backupIds !== undefined) ids.push(...this.options.backupIds);
    else for await (const o of this.keysUnder('backups/')) ids.push(o.key.slice('backups/'.length));
    const out: BackupRecord[] = [];
    await this.fetchAll(
      ids.map((id) => backupKey(id)),
      (key, sealed) => {
        const id = key.slice('backups/'.length);
        if (sealed === undefined) {
          if (this.options.backupIds !== undefined) {
            throw new FerryError('NOT_FOUND', `backup ${id} not found in ${this.repo.location}`);
          }
          return; // deleted since the listing
        }
        this.counts.backups++;
        try {
          const record = openJson<BackupRecord>(this.repo.keys, key, sealed);
          if (record.id !== id) throw new FerryError('DATA_CORRUPTION', `backup record ${key} names another backup`);
          out.push(record);
        } catch (err: unknown) {
          if (!isFerryError(err, 'DATA_CORRUPTION') && !(err instanceof SyntaxError)) throw err;
          const n = this.book.add('record', key, `${err.message}: the backup is unreadable`);
          this.book.affect(n, id);
        }
      },
    );
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Reads and checks a page: its plaintext, or the problem it is. */
  private async page(id: Buffer): Promise<Buffer | { problem: string }> {
    const hex = id.toString('hex');
    const cached = this.pageCache.get(hex);
    if (cached !== undefined) return cached;
    const key = pageKey(hex);
    const sealed = await this.getIfPresent(key);
    if (sealed === undefined) return { problem: 'the manifest page is missing' };
    try {
      const plaintext = openObject(this.repo.keys, key, sealed);
      if (!pageId(this.repo.keys, plaintext).equals(id)) return { problem: 'the manifest page does not match its id' };
      if (this.pageCacheBytes + plaintext.length <= PAGE_CACHE_BYTES) {
        this.pageCache.set(hex, plaintext);
        this.pageCacheBytes += plaintext.length;
      }
      return plaintext;
    } catch (err: unknown) {
      if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
      return { problem: err.message };
    }
  }

  /** Bytes of the volume that leaf `leafNo` covers. */
  private static leafRange(root: Root, leafNo: number): { offset: number; length: number } {
    const offset = leafNo * root.leafChunks * root.chunkSize;
    return { offset, length: Math.max(0, Math.min(root.leafChunks * root.chunkSize, root.size - offset)) };
  }

  /** Walks a backup's manifest: pages checked (each once), chunks gathered. Its root, when readable. */
  private async walk(record: BackupRecord): Promise<Root | undefined> {
    this.signal?.throwIfAborted();
    const whole = { offset: 0, length: record.size };
    const known = this.badRoots.get(record.root);
    if (known !== undefined) {
      this.book.affect(known, record.id, whole);
      return undefined;
    }
    const rootKey = pageKey(record.root);
    let root: Root;
    const page = await this.page(Buffer.from(record.root, 'hex'));
    try {
      if (!Buffer.isBuffer(page)) throw new FerryError('DATA_CORRUPTION', page.problem);
      root = decodeRoot(page, `root page ${rootKey}`);
      this.counts.pages++;
    } catch (err: unknown) {
      if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
      const n = this.book.add('manifest', rootKey, `${err.message}: the whole backup is unreadable`);
      this.badRoots.set(record.root, n);
      this.book.affect(n, record.id, whole);
      return undefined;
    }
    if (root.chunkSize !== record.chunk_size || root.size !== record.size) {
      const n = this.book.add('record', backupKey(record.id), 'the record and its manifest root disagree on sizes');
      this.book.affect(n, record.id);
    }
    const leaves = [...root.leaves.entries()].sort((a, b) => a[0] - b[0]);
    // Pages not read yet, each once (one backup may name the same leaf page at several places).
    const fresh = [...new Map(leaves.map(([n, id]) => [id.toString('hex'), [n, id] as const])).entries()]
      .filter(([hex]) => !this.leaves.has(hex))
      .map(([, entry]) => entry);
    const window: Array<Promise<Buffer | { problem: string }>> = [];
    let next = 0;
    const more = (): void => {
      const entry = fresh[next++];
      if (entry === undefined) return;
      const p = this.page(entry[1]);
      p.catch(() => undefined);
      window.push(p);
    };
    while (window.length < FETCHES && next < fresh.length) more();
    let chunks = 0;
    for (const [leafNo, id] of leaves) {
      const hex = id.toString('hex');
      const seen = this.leaves.get(hex);
      if (seen === undefined) {
        this.signal?.throwIfAborted();
        const body = await (window.shift() as Promise<Buffer | { problem: string }>);
        more();
        this.leaves.set(hex, this.readLeaf(body, pageKey(hex)));
      }
      const state = this.leaves.get(hex) as { problem: number } | { count: number };
      if ('problem' in state) this.book.affect(state.problem, record.id, Verify.leafRange(root, leafNo));
      else chunks += state.count;
    }
    this.counts.chunks += chunks;
    const leafProblems = leaves.some(([, id]) => 'problem' in (this.leaves.get(id.toString('hex')) ?? {}));
    if (!leafProblems && chunks !== record.chunks_total) {
      const n = this.book.add(
        'record',
        backupKey(record.id),
        `the record counts ${record.chunks_total} chunks where its manifest names ${chunks}`,
      );
      this.book.affect(n, record.id);
    }
    return root;
  }

  private readLeaf(body: Buffer | { problem: string }, key: string): { problem: number } | { count: number } {
    try {
      if (!Buffer.isBuffer(body)) throw new FerryError('DATA_CORRUPTION', body.problem);
      const entries = leafEntries(body, `leaf page ${key}`);
      const ids: Buffer[] = [];
      for (let i = 0; i < entries.count; i++) ids.push(entries.id(i));
      this.scan.addNeeds(ids);
      this.counts.pages++;
      return { count: entries.count };
    } catch (err: unknown) {
      if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
      return { problem: this.book.add('manifest', key, `${err.message}: the chunks it lists are unreadable`) };
    }
  }

  /** Reads every index object; the packs they describe claim the chunks they hold. */
  private async readIndex(): Promise<void> {
    const keys: string[] = [];
    for await (const o of this.keysUnder('index/')) keys.push(o.key);
    await this.fetchAll(keys, (key, sealed) => {
      if (sealed === undefined) return; // merged or rewritten by a collection since the listing
      this.counts.index_objects++;
      try {
        const packs = decodeIndex(openObject(this.repo.keys, key, sealed), `index object ${key}`);
        for (const p of packs) this.scan.addPack(p.ref.id, p.ref.salt, p.blobs, key);
      } catch (err: unknown) {
        if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
        this.book.add(
          'index',
          key,
          `${err.message}: index objects are rebuilt from pack headers (\`ferry cloudsnap repair index\`); ` +
            'chunks only it located are reported below if no pack header names them',
        );
      }
    });
  }

  /** Pack id -> size, from one listing. */
  private async listPacks(): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    for await (const o of this.keysUnder('packs/')) sizes.set(o.key.slice(o.key.lastIndexOf('/') + 1), o.size);
    return sizes;
  }

  /** For chunks no index object locates: the headers of packs no index object names. */
  private async searchUnindexed(sizes: Map<string, number>): Promise<void> {
    for (const [id, size] of sizes) {
      if (this.scan.unclaimed === 0) return;
      if (this.scan.hasPack(id)) continue;
      this.signal?.throwIfAborted();
      const key = packKey(id);
      let header: { salt: Buffer; blobs: Buffer };
      try {
        header = await this.readHeader(key, size);
      } catch (err: unknown) {
        if (!isFerryError(err, 'DATA_CORRUPTION') && !isFerryError(err, 'INVALID_ARGUMENT')) throw err;
        this.book.add(
          'pack',
          key,
          `no index object names this pack and its header cannot be read (${err.message}): chunks only it holds are lost`,
        );
        continue;
      }
      if (this.scan.addPack(id, header.salt, header.blobs, undefined) === 0) continue;
      const n = this.book.add(
        'index',
        key,
        'no index object names this pack, which holds chunks the backups use: restores of them fail until the ' +
          'index is rebuilt (`ferry cloudsnap repair index`)',
      );
      const pack = this.planned(id);
      for (const i of pack.needed) this.book.concern(n, pack.blobs.subarray(i * 44, i * 44 + 32));
    }
  }

  private planned(id: string): PlannedPack {
    const num = this.scan.numberOf(id);
    if (num === undefined) throw new FerryError('INTERNAL', `pack ${id} is not planned`);
    return this.scan.pack(num);
  }

  /** A pack's salt and blob entries from its head and trailing header (two or three small ranged reads). */
  private async readHeader(key: string, size: number): Promise<{ salt: Buffer; blobs: Buffer }> {
    const get = (offset: number, length: number): Promise<Buffer> =>
      this.repo.getObject(key, {
        range: { offset, length },
        ...(this.signal !== undefined && { signal: this.signal }),
      });
    if (size < PACK_HEAD + 28) throw new FerryError('DATA_CORRUPTION', `pack ${key} is truncated (${size} bytes)`);
    const head = await get(0, PACK_HEAD);
    const salt = Buffer.from(head.subarray(8, PACK_HEAD));
    let tail = await get(Math.max(0, size - 64 * 1024), Math.min(size, 64 * 1024));
    const len = tail.readUInt32LE(tail.length - 12);
    if (len + 12 > tail.length && len + 12 <= size - PACK_HEAD) tail = await get(size - len - 12, len + 12);
    return { salt, blobs: Buffer.from(openTrailer(this.repo.keys, salt, tail, `pack ${key}`)) };
  }

  /** Chunks that no pack holds: lost. */
  private reportLost(): void {
    if (this.scan.unclaimed === 0) return;
    const n = this.book.add(
      'chunk',
      'packs/',
      'chunks the manifests name are in no pack of the repository (neither an index object nor a pack header names them): they are lost',
    );
    for (const id of this.scan.unclaimedIds()) this.book.concern(n, id);
  }

  /** Checks every needed pack's presence and size; returns the packs to read, chosen at random at `dataPercent`. */
  private planPacks(sizes: Map<string, number>): Array<{ num: number; size: number; whole: boolean }> {
    const readable: Array<{ num: number; size: number; whole: boolean }> = [];
    for (const num of this.scan.neededPacks()) {
      const pack = this.scan.pack(num);
      this.counts.packs++;
      const key = packKey(pack.id);
      const named = pack.source === undefined ? 'its header' : `index object ${pack.source}`;
      const size = sizes.get(pack.id);
      const concernAll = (n: number): void => {
        for (const i of pack.needed) this.book.concern(n, pack.blobs.subarray(i * 44, i * 44 + 32));
      };
      if (size === undefined) {
        concernAll(this.book.add('pack', key, `the pack is missing (${named} names it): its chunks are lost`));
        continue;
      }
      const expected = expectedPackSize(pack.blobs);
      if (size < expected) {
        const lost = pack.needed.filter(
          (i) => pack.blobs.readUInt32LE(i * 44 + 32) + pack.blobs.readUInt32LE(i * 44 + 36) > size,
        );
        const n = this.book.add(
          'pack',
          key,
          `the pack is truncated: ${size} bytes where ${named} gives ${expected}; its trailing header` +
            (lost.length > 0 ? ' and the chunks past its end are lost' : ' is lost'),
        );
        if (lost.length === 0) concernAll(n);
        for (const i of lost) this.book.concern(n, pack.blobs.subarray(i * 44, i * 44 + 32));
      } else if (size > expected) {
        concernAll(this.book.add('pack', key, `the pack is ${size} bytes where ${named} gives ${expected}`));
      }
      readable.push({ num, size, whole: size === expected });
    }
    let chosen = readable;
    if (this.share < 100) {
      const k = Math.ceil((readable.length * this.share) / 100);
      const shuffled = [...readable];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [shuffled[i], shuffled[j]] = [
          shuffled[j] as (typeof shuffled)[number],
          shuffled[i] as (typeof shuffled)[number],
        ];
      }
      chosen = shuffled.slice(0, k);
    }
    this.counts.packs_to_read = chosen.length;
    for (const c of chosen) this.counts.bytes_to_read += c.size;
    return chosen;
  }

  /** Reads the chosen packs, `concurrency` at a time. */
  private async readPacks(chosen: Array<{ num: number; size: number; whole: boolean }>): Promise<void> {
    const checker = new PackChecker({
      read: (key, options) => this.repo.getObject(key, options),
      keys: this.repo.keys,
      book: this.book,
      chunkSize: this.repo.chunkSize,
      onRange: (bytes, chunks) => {
        this.counts.bytes_read += bytes;
        this.counts.chunks_read += chunks;
        this.progress.add(bytes);
      },
      ...(this.options.pause !== undefined && { pause: this.options.pause }),
      ...(this.signal !== undefined && { signal: this.signal }),
    });
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let c = chosen[next++]; c !== undefined; c = chosen[next++]) {
        await checker.check(this.scan.pack(c.num), c.size, c.whole);
        this.counts.packs_read++;
      }
    };
    const workers = Array.from({ length: Math.max(1, this.options.concurrency ?? 6) }, worker);
    const settled = await Promise.allSettled(workers);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
  }

  /** Places the damaged chunks: which ranges of this backup's volume they are. */
  private async place({ record, root }: Checked): Promise<void> {
    for (const [leafNo, id] of [...root.leaves.entries()].sort((a, b) => a[0] - b[0])) {
      this.signal?.throwIfAborted();
      const page = await this.page(id);
      if (!Buffer.isBuffer(page)) continue;
      let entries: ReturnType<typeof leafEntries>;
      try {
        entries = leafEntries(page, 'leaf');
      } catch {
        continue; // reported by the walk
      }
      for (let i = 0; i < entries.count; i++) {
        const problems = this.book.concerning(entries.id(i));
        if (problems === undefined) continue;
        const offset = (leafNo * root.leafChunks + entries.position(i)) * root.chunkSize;
        const range = { offset, length: Math.min(root.chunkSize, root.size - offset) };
        for (const n of problems) this.book.affect(n, record.id, range);
      }
    }
  }
}

/**
 * The results of verifies of several repositories (a credential's own and its KEK overrides') as one report, with at
 * most `maxProblems` problems kept (`problems_total` counts them all), each cut to REPORT_RANGES ranges and
 * REPORT_CHUNK_IDS chunk ids (its `chunks` and `backups` still count and name them all).
 */
export function verifyReport(
  results: readonly VerifyResult[],
  maxProblems = MAX_REPORT_PROBLEMS,
): VerifyResult & { problems_total: number } {
  const out: VerifyResult & { problems_total: number } = {
    ...ZERO_COUNTS,
    data_percent: results[0]?.data_percent ?? 0,
    problems: [],
    problems_total: 0,
  };
  for (const r of results) {
    for (const k of COUNT_KEYS) out[k] += r[k];
    out.problems_total += r.problems.length;
    for (const p of r.problems) {
      if (out.problems.length >= maxProblems) break;
      const cut = p.ranges.length > REPORT_RANGES;
      out.problems.push({
        ...p,
        ranges: p.ranges.slice(0, REPORT_RANGES),
        ...((cut || p.ranges_truncated === true) && { ranges_truncated: true }),
        chunk_ids: p.chunk_ids.slice(0, REPORT_CHUNK_IDS),
      });
    }
  }
  return out;
}

/**
 * Problems a report keeps by default, and ranges and chunk ids per problem: a job's record lives in the cluster store,
 * whose values must stay well under etcd's 1.5 MiB (200 problems at most are about 500 KiB).
 */
export const MAX_REPORT_PROBLEMS = 200;
const REPORT_RANGES = 20;
const REPORT_CHUNK_IDS = 5;

/** Every count at zero: a new verify's, and the sum's start. */
const ZERO_COUNTS: Readonly<VerifyCounts> = {
  backups: 0,
  pages: 0,
  chunks: 0,
  chunks_unique: 0,
  chunks_read: 0,
  index_objects: 0,
  packs: 0,
  packs_to_read: 0,
  packs_read: 0,
  bytes_to_read: 0,
  bytes_read: 0,
};
const COUNT_KEYS = Object.keys(ZERO_COUNTS) as (keyof VerifyCounts)[];

/**
 * What a verify found: one problem per damaged object (a record, a manifest page, an index object, a pack), each
 * saying what it affects: the backups, the byte ranges of their volumes and the chunks. Problems about chunks are
 * attributed once the packs are checked (`concern` records which chunks a problem touches; the manifests then say
 * where those chunks sit in which backups).
 */

/** Where a problem lies. */
export type VerifyProblemKind = 'config' | 'record' | 'manifest' | 'index' | 'pack' | 'chunk';

/** A byte range of a backup's volume, `[offset, offset + length)`. */
export interface VerifyRange {
  backup: string;
  offset: number;
  length: number;
}

export interface VerifyProblem {
  /** Always DATA_CORRUPTION: the repository holds something it should not, or lacks something it needs. */
  code: 'DATA_CORRUPTION';
  kind: VerifyProblemKind;
  /** The object at fault (its key in the store), or what is missing. */
  object: string;
  message: string;
  /** Backups whose restores this problem breaks or puts at risk (empty: none, e.g. an index object alone). */
  backups: string[];
  /** Volume ranges it affects, merged, at most MAX_RANGES of them (`ranges_truncated` then says so). */
  ranges: VerifyRange[];
  ranges_truncated?: boolean;
  /** Distinct chunks it affects. */
  chunks: number;
  /** Ids (hex) of the first MAX_CHUNK_IDS of those chunks. */
  chunk_ids: string[];
}

/** Ranges kept per problem. */
const MAX_RANGES = 100;
/** Chunk ids kept per problem. */
const MAX_CHUNK_IDS = 20;

interface Entry {
  problem: VerifyProblem;
  backups: Set<string>;
  chunks: Set<string>;
  /** Last range per backup, to extend it when the next affected chunk follows. */
  last: Map<string, VerifyRange>;
}

export class ProblemBook {
  private readonly entries: Entry[] = [];
  private readonly byKey = new Map<string, number>();
  /** Chunk id (hex) -> the problems that concern it. */
  private readonly concerns = new Map<string, number[]>();

  /** Records a problem (once per kind, object and message) and returns its number. */
  add(kind: VerifyProblemKind, object: string, message: string): number {
    const key = `${kind}\u0000${object}\u0000${message}`;
    const known = this.byKey.get(key);
    if (known !== undefined) return known;
    const problem: VerifyProblem = {
      code: 'DATA_CORRUPTION',
      kind,
      object,
      message,
      backups: [],
      ranges: [],
      chunks: 0,
      chunk_ids: [],
    };
    this.entries.push({ problem, backups: new Set(), chunks: new Set(), last: new Map() });
    this.byKey.set(key, this.entries.length - 1);
    return this.entries.length - 1;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Problem `n` affects this backup (and, when given, this byte range of its volume). */
  affect(n: number, backup: string, range?: { offset: number; length: number }): void {
    const entry = this.entries[n] as Entry;
    entry.backups.add(backup);
    if (range === undefined) return;
    const last = entry.last.get(backup);
    if (last !== undefined && last.offset + last.length === range.offset) {
      last.length += range.length;
      return;
    }
    if (entry.problem.ranges.length >= MAX_RANGES) {
      entry.problem.ranges_truncated = true;
      return;
    }
    const added = { backup, offset: range.offset, length: range.length };
    entry.problem.ranges.push(added);
    entry.last.set(backup, added);
  }

  /** Problem `n` concerns this chunk: wherever a manifest names it, it affects that backup's range. */
  concern(n: number, chunkId: Buffer): void {
    const hex = chunkId.toString('hex');
    const entry = this.entries[n] as Entry;
    if (entry.chunks.has(hex)) return;
    entry.chunks.add(hex);
    if (entry.problem.chunk_ids.length < MAX_CHUNK_IDS) entry.problem.chunk_ids.push(hex);
    const list = this.concerns.get(hex);
    if (list === undefined) this.concerns.set(hex, [n]);
    else list.push(n);
  }

  /** Whether any problem concerns chunks (then the manifests are walked again to place them). */
  get hasConcerns(): boolean {
    return this.concerns.size > 0;
  }

  /** The problems concerning a chunk, if any. */
  concerning(chunkId: Buffer): readonly number[] | undefined {
    return this.concerns.get(chunkId.toString('hex'));
  }

  /** The problems found, in the order found. */
  problems(): VerifyProblem[] {
    return this.entries.map((e) => ({
      ...e.problem,
      backups: [...e.backups].sort(),
      chunks: e.chunks.size,
      ranges: e.problem.ranges.map((r) => ({ ...r })),
    }));
  }
}

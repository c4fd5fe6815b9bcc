/**
 * Resync of a returning replica (docs/REPLICATION.md, R13-R16): copies what a replica lacks, as its record's
 * `resync` says, with the range-copy loop of the fill (fill.ts `copyExtents`: range holds, steps in flight, target
 * flushes, cursor reports, bandwidth caps).
 *
 * - `dirty`: the blocks the source changed since the hidden base snapshot frozen when the replica left
 *   (`changedBlocks` base -> live head) united with the record's `extra` ranges, in offset order from the cursor.
 * - `fill`: the source's allocated data, the target trimmed where the source has holes (a replica of unknown
 *   history keeps its data: `targetIsNew: false`).
 *
 * - `low` (a copy that failed again at `low.below`, R14a): below `low.below`, only the blocks changed since the later
 *   base `low.base_snapshot_id` and `low.extra`; the set above at and above it.
 *
 * The set is a function of the record (base, extra, low) and the source's live head: a restart of the copy
 * recomputes it alike and resumes from the committed cursor. What the target receives besides (live writes while it fills) is sent
 * by the coordinator, not here.
 */

import { type CopyOptions, changedExtents, copyExtents, type FillProgress, fillReplica, type Span } from './fill.js';
import type { RangeTuple, ReplicaResync } from './records.js';
import type { Replica } from './replica.js';

export interface ResyncOptions extends CopyOptions {
  /** What the target lacks: the record's `resync` (kind, base snapshot, extra ranges). */
  resync: Pick<ReplicaResync, 'kind' | 'base_snapshot_id' | 'extra' | 'low'>;
}

/** `extra` as sorted, coalesced spans clipped to [from, size). */
export function extraSpans(extra: readonly RangeTuple[] | undefined, size: number, from = 0): Span[] {
  const spans = (extra ?? [])
    .map(([offset, length]) => ({ start: Math.max(from, offset), end: Math.min(size, offset + length) }))
    .filter((s) => s.end > s.start)
    .sort((a, b) => a.start - b.start);
  const out: Span[] = [];
  for (const s of spans) {
    const last = out.at(-1);
    if (last !== undefined && s.start <= last.end) last.end = Math.max(last.end, s.end);
    else out.push({ ...s });
  }
  return out;
}

/** The union of two sorted streams of spans, sorted and coalesced. */
async function* union(a: AsyncIterable<Span>, b: readonly Span[]): AsyncGenerator<Span> {
  let i = 0;
  let current: Span | undefined;
  const add = function* (s: Span): Generator<Span> {
    if (current !== undefined && s.start <= current.end) {
      current.end = Math.max(current.end, s.end);
      return;
    }
    if (current !== undefined) yield current;
    current = { start: s.start, end: s.end };
  };
  for await (const s of a) {
    while (i < b.length && (b[i] as Span).start <= s.start) yield* add(b[i++] as Span);
    yield* add(s);
  }
  while (i < b.length) yield* add(b[i++] as Span);
  if (current !== undefined) yield current;
}

/** The spans a dirty resync copies from `from`: the source's changes since `base`, and `extra`. */
export function dirtySpans(
  source: Replica,
  size: number,
  from: number,
  base: string,
  extra: readonly RangeTuple[] | undefined,
): AsyncGenerator<Span> {
  return union(changedExtents(source, size, from, base), extraSpans(extra, size, from));
}

/** `spans` cut at `end`. */
async function* below(spans: AsyncIterable<Span>, end: number): AsyncGenerator<Span> {
  for await (const s of spans) {
    if (s.start >= end) return;
    yield { start: s.start, end: Math.min(end, s.end) };
  }
}

/** Where the set of `kind` starts: `low.below` when there is a low part (never past the volume). */
function mainFrom(resync: ResyncOptions['resync'], size: number, from: number): number {
  return Math.max(from, Math.min(size, resync.low?.below ?? 0));
}

/**
 * Every span a resync copies from `from`, in offset order (see the file comment): the low part, then the set of
 * `kind` (a `dirty` one without base: the source's allocated data, as a fill).
 */
export async function* resyncSpans(
  source: Replica,
  size: number,
  resync: ResyncOptions['resync'],
  from = 0,
): AsyncGenerator<Span> {
  const { low } = resync;
  const main = mainFrom(resync, size, from);
  if (low !== undefined && from < main) {
    yield* below(dirtySpans(source, size, from, low.base_snapshot_id, low.extra), main);
  }
  if (resync.kind === 'dirty' && resync.base_snapshot_id !== undefined) {
    yield* dirtySpans(source, size, main, resync.base_snapshot_id, resync.extra);
  } else {
    yield* changedExtents(source, size, main);
  }
}

/** Bytes a resync copies from `from` (the record's `total_bytes` when counted from 0). */
export async function resyncBytes(
  source: Replica,
  size: number,
  resync: ResyncOptions['resync'],
  from = 0,
): Promise<number> {
  let total = 0;
  for await (const s of resyncSpans(source, size, resync, from)) total += s.end - s.start;
  return total;
}

/**
 * Copies what the target lacks (see the file comment) from `startAt`. Resolves with the final progress (cursor =
 * size) once the target is flushed; rejects like `fillReplica` (abort: after reporting the cursor reached). A dirty
 * resync whose base snapshot the source does not hold rejects NOT_FOUND (the caller falls back to a fill).
 */
export async function resyncReplica(options: ResyncOptions): Promise<FillProgress> {
  const { resync, source, size } = options;
  const dirty = resync.kind === 'dirty' && resync.base_snapshot_id !== undefined;
  if (!dirty && resync.low === undefined) return fillReplica({ ...options, targetIsNew: false });
  const from = options.startAt ?? 0;
  const total = options.total ?? (await resyncBytes(source, size, resync, from));
  // A fill trims the target where the source has holes, above the low part only (below it, gaps are copied data).
  const holes = dirty ? false : mainFrom(resync, size, from);
  return copyExtents({ ...options, total }, resyncSpans(source, size, resync, from), holes);
}

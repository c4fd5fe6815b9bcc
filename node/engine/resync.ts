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
 * The set is a function of the record (base, extra) and the source's live head: a restart of the copy recomputes it
 * alike and resumes from the committed cursor. What the target receives besides (live writes while it fills) is sent
 * by the coordinator, not here.
 */

import { type CopyOptions, changedExtents, copyExtents, type FillProgress, fillReplica, type Span } from './fill.js';
import type { RangeTuple, ReplicaResync } from './records.js';
import type { Replica } from './replica.js';

export interface ResyncOptions extends CopyOptions {
  /** What the target lacks: the record's `resync` (kind, base snapshot, extra ranges). */
  resync: Pick<ReplicaResync, 'kind' | 'base_snapshot_id' | 'extra'>;
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

/** Bytes a resync copies from `from` (the record's `total_bytes` when counted from 0). */
export async function resyncBytes(
  source: Replica,
  size: number,
  resync: ResyncOptions['resync'],
  from = 0,
): Promise<number> {
  let total = 0;
  const spans =
    resync.kind === 'dirty' && resync.base_snapshot_id !== undefined
      ? dirtySpans(source, size, from, resync.base_snapshot_id, resync.extra)
      : changedExtents(source, size, from);
  for await (const s of spans) total += s.end - s.start;
  return total;
}

/**
 * Copies what the target lacks (see the file comment) from `startAt`. Resolves with the final progress (cursor =
 * size) once the target is flushed; rejects like `fillReplica` (abort: after reporting the cursor reached). A dirty
 * resync whose base snapshot the source does not hold rejects NOT_FOUND (the caller falls back to a fill).
 */
export async function resyncReplica(options: ResyncOptions): Promise<FillProgress> {
  const { resync, source, size } = options;
  if (resync.kind !== 'dirty' || resync.base_snapshot_id === undefined) {
    return fillReplica({ ...options, targetIsNew: false });
  }
  const from = options.startAt ?? 0;
  const total = options.total ?? (await resyncBytes(source, size, resync, from));
  return copyExtents(
    { ...options, total },
    dirtySpans(source, size, from, resync.base_snapshot_id, resync.extra),
    false,
  );
}

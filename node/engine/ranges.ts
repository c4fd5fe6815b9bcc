import type { RangeTuple } from './records.js';

/** A byte range [start, end). */
export interface Span {
  start: number;
  end: number;
}

/** Most ranges `coalesce` returns by default (records are JSON in the cluster store: keep them short). */
export const MAX_RANGES = 512;

/**
 * The union of `spans` as sorted, disjoint `[offset, length]` tuples, touching ones merged. When more than `max`
 * remain, neighbours separated by the smallest gaps are merged (the result over-covers, which callers accept).
 */
export function coalesce(spans: readonly Span[], max = MAX_RANGES): RangeTuple[] {
  const sorted = spans.filter((s) => s.end > s.start).sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: Span[] = [];
  for (const s of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && s.start <= last.end) last.end = Math.max(last.end, s.end);
    else merged.push({ start: s.start, end: s.end });
  }
  let out = merged;
  if (out.length > max) {
    const gaps = out.slice(1).map((s, i) => s.start - (out[i] as Span).end);
    // Merge every gap up to the (n - max)-th smallest: at most `max` ranges remain.
    const limit = [...gaps].sort((a, b) => a - b)[out.length - max - 1] as number;
    const fewer: Span[] = [{ ...(out[0] as Span) }];
    for (let i = 1; i < out.length; i++) {
      const s = out[i] as Span;
      const last = fewer[fewer.length - 1] as Span;
      if ((gaps[i - 1] as number) <= limit) last.end = s.end;
      else fewer.push({ ...s });
    }
    out = fewer;
  }
  return out.map((s) => [s.start, s.end - s.start]);
}

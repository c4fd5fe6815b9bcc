/**
 * A replica's recent writes (docs/REPLICATION.md, R12, kept in memory): the byte ranges it changed since its
 * second-to-last completed flush. A takeover unions them over the surviving replicas to know which blocks may differ
 * between them (F5) and what a replica left behind may lack (F2).
 */
import type { RangeTuple } from './records.js';
import type { RecentWrites } from './replica.js';

/** Ranges kept before neighbours are merged (over-covering is safe; the list stays small). */
export const MAX_RECENT_RANGES = 512;

/** Sorted, disjoint [start, end) ranges; touching ones merge, and past `max` the closest neighbours merge. */
export class RangeSet {
  private readonly spans: [number, number][] = [];

  constructor(private readonly max = MAX_RECENT_RANGES) {}

  get size(): number {
    return this.spans.length;
  }

  /** Adds [offset, offset+length). */
  add(offset: number, length: number): void {
    if (length <= 0) return;
    let start = offset;
    let end = offset + length;
    const spans = this.spans;
    // The first span that ends at or after `start`.
    let lo = 0;
    let hi = spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((spans[mid] as [number, number])[1] < start) lo = mid + 1;
      else hi = mid;
    }
    let last = lo;
    while (last < spans.length && (spans[last] as [number, number])[0] <= end) {
      const s = spans[last] as [number, number];
      start = Math.min(start, s[0]);
      end = Math.max(end, s[1]);
      last++;
    }
    spans.splice(lo, last - lo, [start, end]);
    while (spans.length > this.max) this.mergeClosest();
  }

  /** Adds every range of `ranges`. */
  addAll(ranges: readonly RangeTuple[]): void {
    for (const [offset, length] of ranges) this.add(offset, length);
  }

  /** The ranges as `[offset, length]` tuples, in order. */
  tuples(): RangeTuple[] {
    return this.spans.map(([s, e]) => [s, e - s]);
  }

  private mergeClosest(): void {
    const spans = this.spans;
    let best = 0;
    let gap = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < spans.length; i++) {
      const g = (spans[i + 1] as [number, number])[0] - (spans[i] as [number, number])[1];
      if (g < gap) {
        gap = g;
        best = i;
      }
    }
    const a = spans[best] as [number, number];
    const b = spans[best + 1] as [number, number];
    spans.splice(best, 2, [a[0], b[1]]);
  }
}

/** The union of several replicas' ranges, coalesced. */
export function unionRanges(lists: readonly (readonly RangeTuple[])[], max = MAX_RECENT_RANGES): RangeTuple[] {
  const set = new RangeSet(max);
  for (const list of lists) set.addAll(list);
  return set.tuples();
}

/**
 * The log of one replica's changes by flush window: a change goes to the current window; a flush seals it when it
 * starts, and once it completes, the windows up to the one sealed by the flush before it are dropped (they are
 * durable here and, as a coordinator's flushes go to every replica and a client sends the next one after the
 * previous one was acknowledged, on every replica that is still in sync).
 */
export class RecentWriteLog {
  private readonly windows = new Map<number, RangeSet>();
  private current = 0;
  /** The two highest windows sealed by completed flushes. */
  private readonly flushed: number[] = [];
  private known: boolean;

  /** `complete`: false when changes made before this log existed may not be flushed everywhere (a restart). */
  constructor(complete = true) {
    this.known = complete;
    this.windows.set(0, new RangeSet());
  }

  /** Records a change of [offset, offset+length) (before it is applied: a change that fails may still have landed). */
  note(offset: number, length: number): void {
    (this.windows.get(this.current) as RangeSet).add(offset, length);
  }

  /** A flush starts: seals the current window; pass the result to `flushed` when the flush completes. */
  flushStarted(): number {
    const sealed = this.current++;
    this.windows.set(this.current, new RangeSet());
    return sealed;
  }

  /** The flush that sealed window `sealed` completed. */
  flushDone(sealed: number): void {
    this.flushed.push(sealed);
    this.flushed.sort((a, b) => b - a);
    this.flushed.length = Math.min(this.flushed.length, 2);
    const keepAbove = this.flushed[1];
    if (keepAbove === undefined) return;
    // Two flushes since the log began: whatever came before it is flushed everywhere too.
    this.known = true;
    for (const id of [...this.windows.keys()]) if (id <= keepAbove) this.windows.delete(id);
  }

  /** The ranges changed since the second-to-last completed flush. */
  recent(): RecentWrites {
    const set = new RangeSet();
    for (const w of this.windows.values()) set.addAll(w.tuples());
    return { complete: this.known, ranges: set.tuples() };
  }
}

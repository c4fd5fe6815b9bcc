import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { collectAll, Reclaimer } from './reclaim.js';

/** The collections seen while `fn` ran and just after, as Node's performance timeline reports them. */
async function gcEntries(fn: () => void): Promise<{ kind: number; flags: number }[]> {
  const entries: { kind: number; flags: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number; flags?: number } }>)
      entries.push({ kind: e.detail?.kind ?? -1, flags: e.detail?.flags ?? 0 });
  });
  observer.observe({ entryTypes: ['gc'] });
  fn();
  // GC entries are delivered asynchronously.
  await new Promise((r) => setTimeout(r, 50));
  observer.disconnect();
  return entries;
}

/** Kinds of the collections `fn` caused, as Node's performance timeline reports them. */
async function collections(fn: () => void): Promise<number[]> {
  return (await gcEntries(fn)).map((e) => e.kind);
}

/**
 * The collections a caller asked for, by their flags: the `gc` extension's are FORCED, compactHeap's (a memory
 * pressure notification) ALL_AVAILABLE_GARBAGE. V8's own, which the test process's allocations may start at any
 * moment, carry neither.
 */
const ASKED_FOR =
  constants.NODE_PERFORMANCE_GC_FLAGS_FORCED | constants.NODE_PERFORMANCE_GC_FLAGS_ALL_AVAILABLE_GARBAGE;

const MAJOR = constants.NODE_PERFORMANCE_GC_MAJOR;
const MINOR = constants.NODE_PERFORMANCE_GC_MINOR;

describe('Reclaimer', () => {
  it('collects nothing until `every` bytes went by, then the young generation', async () => {
    const r = new Reclaimer(1000, 1000, 1024 ** 3);
    const before = await gcEntries(() => r.processed(999));
    expect(before.filter((e) => (e.flags & ASKED_FOR) !== 0)).toEqual([]);
    // (V8 may finish a collection of its own meanwhile, so only the young one is certain.)
    expect(await collections(() => r.processed(1))).toContain(MINOR);
  });

  it('runs a real full collection every `majorEvery` collections', async () => {
    const r = new Reclaimer(1, 3, 1024 ** 3);
    const seen = await gcEntries(() => {
      for (let i = 0; i < 3; i++) r.processed(1);
    });
    // Only the collections asked for: V8 may run a full one of its own meanwhile (Node 24 did, once).
    // One request may be several passes (a memory-pressure collection repeats while it frees memory: Node 24 shows 2).
    expect(seen.filter((e) => e.kind === MAJOR && (e.flags & ASKED_FOR) !== 0).length).toBeGreaterThanOrEqual(1);
  });

  it('runs a full collection as soon as the heap grew `headroom` past what the last one left', async () => {
    const r = new Reclaimer(1, 1000, 4 * 1024 * 1024);
    let kept: unknown[] = [];
    const kinds = await collections(() => {
      // About 16 MiB of objects that live long enough to be promoted, then die.
      for (let round = 0; round < 16; round++) {
        for (let i = 0; i < 20_000; i++) kept.push({ round, i, pad: [round, i] });
        r.processed(1);
        r.processed(1);
        if (round % 4 === 3) kept = [];
      }
    });
    expect(kept.length).toBe(0);
    expect(kinds.filter((k) => k === MAJOR).length).toBeGreaterThanOrEqual(1);
  });

  it('collectAll runs one full collection at once (a job calls it after its setup)', async () => {
    expect((await collections(() => collectAll())).filter((k) => k === MAJOR)).toHaveLength(1);
  });

  it('compacts: the partly used pages an ordinary full collection keeps are emptied and handed back', () => {
    setFlagsFromString('--expose-gc');
    const ordinary = runInNewContext('gc') as () => void;
    // Promoted objects of which one in 20 stays alive: after an ordinary collection, pages mostly free but kept.
    const kept: object[] = [];
    for (let i = 0; i < 400_000; i++) {
      const o = { i, s: `x${i}`, a: [i] };
      if (i % 20 === 0) kept.push(o);
    }
    ordinary();
    const fragmented = getHeapStatistics().total_heap_size;
    collectAll();
    const compacted = getHeapStatistics().total_heap_size;
    expect(kept).toHaveLength(20_000);
    expect(fragmented - compacted).toBeGreaterThan(1024 * 1024);
  });
});

import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { collectAll, Reclaimer } from './reclaim.js';

/** Kinds of the collections `fn` caused, as Node's performance timeline reports them. */
async function collections(fn: () => void): Promise<number[]> {
  const kinds: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>)
      kinds.push(e.detail?.kind ?? -1);
  });
  observer.observe({ entryTypes: ['gc'] });
  fn();
  // GC entries are delivered asynchronously.
  await new Promise((r) => setTimeout(r, 50));
  observer.disconnect();
  return kinds;
}

const MAJOR = constants.NODE_PERFORMANCE_GC_MAJOR;
const MINOR = constants.NODE_PERFORMANCE_GC_MINOR;

describe('Reclaimer', () => {
  it('collects nothing until `every` bytes went by, then the young generation', async () => {
    const r = new Reclaimer(1000, 1000, 1024 ** 3);
    expect(await collections(() => r.processed(999))).toEqual([]);
    // (V8 may finish a collection of its own meanwhile, so only the young one is certain.)
    expect(await collections(() => r.processed(1))).toContain(MINOR);
  });

  it('runs a real full collection every `majorEvery` collections', async () => {
    const r = new Reclaimer(1, 3, 1024 ** 3);
    const kinds = await collections(() => {
      for (let i = 0; i < 3; i++) r.processed(1);
    });
    expect(kinds.filter((k) => k === MAJOR)).toHaveLength(1);
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
});

import { describe, expect, it } from 'vitest';
import { CHUNK_GRANULES } from './constants.js';
import { ABSENT, CHUNK_BYTES, DATA, GranuleMap, type GranuleState, stateAt, ZERO } from './granule-map.js';

/** Index of the first granule where `a` and `b` differ, or -1 (a quick check that still says where). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Every way of reading the map agrees with a plain array of states. */
function expectMatches(map: GranuleMap, model: Uint8Array): void {
  const span = model.length;
  const got = new Uint8Array(span);
  for (let g = 0; g < span; g++) got[g] = map.get(g);
  expect(firstDiff(got, model)).toBe(-1);
  expect(map.dataCount).toBe(model.filter((s) => s === DATA).length);
  expect(map.presentCount).toBe(model.filter((s) => s !== ABSENT).length);
  const fromRuns = new Uint8Array(span);
  let last = -1;
  for (const r of map.presentRuns()) {
    expect(r.start).toBeGreaterThan(last);
    last = r.start + r.count - 1;
    fromRuns.fill(r.state, r.start, r.start + r.count);
  }
  expect(firstDiff(fromRuns, model)).toBe(-1);
  // A window that starts and ends inside runs.
  const window = new Uint8Array(span);
  for (const r of map.presentRuns(1001, span - 999)) {
    expect(r.start).toBeGreaterThanOrEqual(1001);
    expect(r.start + r.count).toBeLessThanOrEqual(span - 999);
    window.fill(r.state, r.start, r.start + r.count);
  }
  expect(firstDiff(window.subarray(1001, span - 999), model.subarray(1001, span - 999))).toBe(-1);
  const scratch = new Uint8Array(CHUNK_BYTES).fill(0xff);
  const unpacked = new Uint8Array(span);
  for (let key = 0; key * CHUNK_GRANULES < span; key++) {
    const packed = map.chunkStates(key, scratch);
    const chunk = model.subarray(key * CHUNK_GRANULES, (key + 1) * CHUNK_GRANULES);
    expect(map.chunkKeys().includes(key)).toBe(chunk.some((s) => s !== ABSENT));
    // Two bits per granule; an empty chunk has none.
    if (packed !== undefined) expect(packed.length).toBe(CHUNK_BYTES);
    for (let i = 0; i < CHUNK_GRANULES; i++) unpacked[key * CHUNK_GRANULES + i] = stateAt(packed, i);
  }
  expect(firstDiff(unpacked, model)).toBe(-1);
}

/** Whether chunk `key` is kept as a run list (its packed states are then written out into the scratch buffer). */
function isRunList(map: GranuleMap, key: number): boolean {
  const scratch = new Uint8Array(CHUNK_BYTES);
  return map.chunkStates(key, scratch) === scratch;
}

describe('GranuleMap', () => {
  it('matches a one-state-per-granule model through random runs that cross chunk and byte boundaries', () => {
    const span = CHUNK_GRANULES * 3;
    const model = new Uint8Array(span);
    const map = new GranuleMap();
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const states: GranuleState[] = [ABSENT, DATA, ZERO];
    for (let step = 1; step <= 2000; step++) {
      const start = rand(span);
      // Mostly short runs (they turn chunks into packed states), every tenth a long one (a chunk may turn uniform).
      const count = 1 + rand(Math.min(span - start, step % 10 === 0 ? 6000 : 9));
      const state = states[rand(3)] as GranuleState;
      map.set(start, count, state);
      model.fill(state, start, start + count);
      if (step % 250 === 0 || step < 40) expectMatches(map, model);
    }
  });

  it('keeps a chunk written in few extents as a run list, packs it past 64 runs, and lists it again once uniform', () => {
    const map = new GranuleMap();
    const model = new Uint8Array(CHUNK_GRANULES * 2);
    const set = (start: number, count: number, state: GranuleState): void => {
      map.set(start, count, state);
      model.fill(state, start, start + count);
    };
    // Sequential writes, as a restore makes them: one run.
    for (let g = 0; g < CHUNK_GRANULES; g += 256) set(g, 256, DATA);
    expect(isRunList(map, 0)).toBe(true);
    // 1 MiB extents with holes between them: still runs.
    for (let g = 0; g < CHUNK_GRANULES; g += 512) set(g + 256, 256, ABSENT);
    set(CHUNK_GRANULES - 3, 6, ZERO);
    expect(isRunList(map, 0)).toBe(true);
    expect(isRunList(map, 1)).toBe(true);
    expectMatches(map, model);
    // Every other granule of a stretch: 65 runs and more.
    for (let g = 1; g < 140; g += 2) set(g, 1, ZERO);
    expect(isRunList(map, 0)).toBe(false);
    expectMatches(map, model);
    // Overwritten whole: one run again.
    set(0, CHUNK_GRANULES, ZERO);
    expect(isRunList(map, 0)).toBe(true);
    expectMatches(map, model);
  });

  it('drops a chunk once nothing in it is present', () => {
    const map = new GranuleMap();
    map.set(CHUNK_GRANULES - 2, 4, DATA);
    expect(map.chunkKeys()).toEqual([0, 1]);
    map.set(CHUNK_GRANULES - 2, 2, ABSENT);
    expect(map.chunkKeys()).toEqual([1]);
    expect(map.isEmpty).toBe(false);
    map.set(CHUNK_GRANULES, 2, ABSENT);
    expect(map.isEmpty).toBe(true);
    // Likewise once packed.
    for (let g = 0; g < 200; g += 2) map.set(g, 1, DATA);
    expect(isRunList(map, 0)).toBe(false);
    map.set(0, 200, ABSENT);
    expect(map.isEmpty).toBe(true);
    expect(map.dataCount).toBe(0);
  });
});

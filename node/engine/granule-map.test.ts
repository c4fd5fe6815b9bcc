import { describe, expect, it } from 'vitest';
import { CHUNK_GRANULES } from './constants.js';
import { ABSENT, DATA, GranuleMap, type GranuleState, stateAt, ZERO } from './granule-map.js';

/** The packed map against a plain array of states, through random runs that cross chunk and byte boundaries. */
describe('GranuleMap', () => {
  it('matches a one-state-per-granule model: get, runs, counts and the packed chunk states', () => {
    const span = CHUNK_GRANULES * 3;
    const model = new Uint8Array(span);
    const map = new GranuleMap();
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const states: GranuleState[] = [ABSENT, DATA, ZERO];
    for (let step = 0; step < 2000; step++) {
      const start = rand(span);
      const count = 1 + rand(Math.min(span - start, step % 10 === 0 ? 3000 : 9));
      const state = states[rand(3)] as GranuleState;
      map.set(start, count, state);
      model.fill(state, start, start + count);
    }
    for (let g = 0; g < span; g++) expect(map.get(g)).toBe(model[g]);
    expect(map.dataCount).toBe(model.filter((s) => s === DATA).length);
    expect(map.presentCount).toBe(model.filter((s) => s !== ABSENT).length);
    const fromRuns = new Uint8Array(span);
    for (const r of map.presentRuns()) fromRuns.fill(r.state, r.start, r.start + r.count);
    expect(fromRuns).toEqual(model);
    for (const key of map.chunkKeys()) {
      const packed = map.chunkStates(key) as Uint8Array;
      // Two bits per granule.
      expect(packed.length).toBe(CHUNK_GRANULES / 4);
      for (let i = 0; i < CHUNK_GRANULES; i++) expect(stateAt(packed, i)).toBe(model[key * CHUNK_GRANULES + i]);
    }
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
  });
});

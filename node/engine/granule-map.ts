import { CHUNK_GRANULES } from './constants.js';

/**
 * Per-layer state of every granule, stored sparsely: two bits per granule (four to a byte) in chunks of
 * CHUNK_GRANULES, allocated only for chunks that hold something. Memory follows what was written, not the size of
 * the volume: 1 KiB per 16 MiB region that holds data (256 KiB for a 4 GiB spread).
 */
export const ABSENT = 0;
export const DATA = 1;
export const ZERO = 2;
export type GranuleState = typeof ABSENT | typeof DATA | typeof ZERO;

/** A run of consecutive granules with one state. */
export interface Run {
  start: number;
  count: number;
  state: GranuleState;
}

/** Bytes of a chunk's packed states. */
const CHUNK_BYTES = CHUNK_GRANULES / 4;

/** The state of granule `i` of a chunk from its packed states (as `chunkStates` returns them; none: ABSENT). */
export function stateAt(packed: Uint8Array | undefined, i: number): GranuleState {
  return packed === undefined ? ABSENT : ((((packed[i >> 2] as number) >> ((i & 3) << 1)) & 3) as GranuleState);
}

interface Chunk {
  /** Two bits per granule, granule i in bits 2(i%4)..2(i%4)+1 of byte i/4. */
  states: Uint8Array;
  /** Granules in this chunk that are not ABSENT. */
  present: number;
  /** Granules in this chunk that are DATA. */
  data: number;
}

export class GranuleMap {
  private readonly chunks = new Map<number, Chunk>();
  private sortedKeys: number[] | undefined;
  private dataGranules = 0;

  /** Number of granules not ABSENT. */
  get presentCount(): number {
    let n = 0;
    for (const c of this.chunks.values()) n += c.present;
    return n;
  }

  /** Number of granules in the DATA state. */
  get dataCount(): number {
    return this.dataGranules;
  }

  get isEmpty(): boolean {
    return this.chunks.size === 0;
  }

  get(granule: number): GranuleState {
    const chunk = this.chunks.get(Math.floor(granule / CHUNK_GRANULES));
    return stateAt(chunk?.states, granule % CHUNK_GRANULES);
  }

  /** Sets `count` granules from `start` to `state`. */
  set(start: number, count: number, state: GranuleState): void {
    let g = start;
    const end = start + count;
    while (g < end) {
      const key = Math.floor(g / CHUNK_GRANULES);
      const from = g % CHUNK_GRANULES;
      const to = Math.min(CHUNK_GRANULES, from + (end - g));
      let chunk = this.chunks.get(key);
      if (chunk === undefined) {
        if (state === ABSENT) {
          g += to - from;
          continue;
        }
        chunk = { states: new Uint8Array(CHUNK_BYTES), present: 0, data: 0 };
        this.chunks.set(key, chunk);
        this.sortedKeys = undefined;
      }
      const states = chunk.states;
      for (let i = from; i < to; i++) {
        const old = stateAt(states, i);
        if (old === state) continue;
        if (old === ABSENT) chunk.present++;
        else if (state === ABSENT) chunk.present--;
        if (old === DATA) {
          chunk.data--;
          this.dataGranules--;
        } else if (state === DATA) {
          chunk.data++;
          this.dataGranules++;
        }
        const shift = (i & 3) << 1;
        states[i >> 2] = ((states[i >> 2] as number) & ~(3 << shift)) | (state << shift);
      }
      if (chunk.present === 0) {
        this.chunks.delete(key);
        this.sortedKeys = undefined;
      }
      g += to - from;
    }
  }

  /** Chunk indexes holding something, ascending. */
  chunkKeys(): readonly number[] {
    if (this.sortedKeys === undefined) this.sortedKeys = [...this.chunks.keys()].sort((a, b) => a - b);
    return this.sortedKeys;
  }

  /** The packed states of one chunk (read them with `stateAt`; do not modify), or undefined when it is empty. */
  chunkStates(key: number): Uint8Array | undefined {
    return this.chunks.get(key)?.states;
  }

  /** Runs of non-ABSENT granules in [start, end), ascending. */
  *presentRuns(start = 0, end = Number.MAX_SAFE_INTEGER): Generator<Run> {
    for (const key of this.chunkKeys()) {
      const base = key * CHUNK_GRANULES;
      if (base + CHUNK_GRANULES <= start) continue;
      if (base >= end) return;
      const states = this.chunks.get(key)?.states;
      if (states === undefined) continue;
      const from = Math.max(0, start - base);
      const to = Math.min(CHUNK_GRANULES, end - base);
      let i = from;
      while (i < to) {
        const s = stateAt(states, i);
        if (s === ABSENT) {
          i++;
          continue;
        }
        let j = i + 1;
        while (j < to && stateAt(states, j) === s) j++;
        yield { start: base + i, count: j - i, state: s };
        i = j;
      }
    }
  }
}

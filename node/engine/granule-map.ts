import { CHUNK_GRANULES } from './constants.js';

/**
 * Per-layer state of every granule, stored sparsely in chunks of CHUNK_GRANULES, allocated only for chunks that hold
 * something. A chunk is kept in one of two forms:
 *   - a run list, while it has at most MAX_RUNS runs: a string of two bytes per run of one state (a filesystem's
 *     extents, a restore's sequential writes); a 16 MiB chunk of one state is one run, shared by every such chunk;
 *   - packed states, once it has more (small random writes): two bits per granule, four to a byte, 1 KiB a chunk.
 * Memory follows the number of extents written: an entry in the chunk table per 16 MiB region that holds something,
 * plus its runs, up to 1 KiB.
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
export const CHUNK_BYTES = CHUNK_GRANULES / 4;
/** Runs a run-list chunk may hold (their list is then 128 bytes); one more and it is packed instead. */
const MAX_RUNS = 64;

/** The state of granule `i` of a chunk from its packed states (as `chunkStates` returns them; none: ABSENT). */
export function stateAt(packed: Uint8Array | undefined, i: number): GranuleState {
  return packed === undefined ? ABSENT : ((((packed[i >> 2] as number) >> ((i & 3) << 1)) & 3) as GranuleState);
}

/** Writes `state` into packed states for granules [from, to): whole bytes at once, the edges granule by granule. */
function fillStates(packed: Uint8Array, from: number, to: number, state: GranuleState): void {
  let i = from;
  for (; i < to && (i & 3) !== 0; i++) setState(packed, i, state);
  const wholeEnd = to & ~3;
  if (i < wholeEnd) {
    packed.fill(state * 0x55, i >> 2, wholeEnd >> 2);
    i = wholeEnd;
  }
  for (; i < to; i++) setState(packed, i, state);
}

function setState(packed: Uint8Array, i: number, state: GranuleState): void {
  const shift = (i & 3) << 1;
  packed[i >> 2] = ((packed[i >> 2] as number) & ~(3 << shift)) | (state << shift);
}

/**
 * A run list, kept as a string of 16-bit code units (immutable, and held inline by the string: about 16 bytes plus
 * two a run, with no typed array, array buffer and backing store per chunk). Unit k is (start << 2) | state, starts
 * ascending from 0; run k ends where run k + 1 starts, the last at CHUNK_GRANULES. Neighbouring runs differ in
 * state. A chunk of one state is a one-unit string, which V8 keeps once for the whole process: a fully written or
 * zeroed chunk costs only its entry in the chunk table.
 */
type RunList = string;

const runStart = (runs: RunList, k: number): number => runs.charCodeAt(k) >> 2;
const runState = (runs: RunList, k: number): GranuleState => (runs.charCodeAt(k) & 3) as GranuleState;
const runEnd = (runs: RunList, k: number): number => (k + 1 < runs.length ? runStart(runs, k + 1) : CHUNK_GRANULES);

/** Index of the run holding granule `i`. */
function runAt(runs: RunList, i: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (runStart(runs, mid) <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Granules of a run list that are not ABSENT, and that are DATA. */
function runTotals(runs: RunList): { present: number; data: number } {
  let present = 0;
  let data = 0;
  for (let k = 0; k < runs.length; k++) {
    const s = runState(runs, k);
    const n = runEnd(runs, k) - runStart(runs, k);
    if (s !== ABSENT) present += n;
    if (s === DATA) data += n;
  }
  return { present, data };
}

/** A chunk with more than MAX_RUNS runs. */
interface PackedChunk {
  /** Two bits per granule, granule i in bits 2(i%4)..2(i%4)+1 of byte i/4. */
  packed: Uint8Array;
  /** Granules in this chunk that are not ABSENT. */
  present: number;
  /** Granules in this chunk that are DATA. */
  data: number;
}

type Chunk = RunList | PackedChunk;

export class GranuleMap {
  private readonly chunks = new Map<number, Chunk>();
  private sortedKeys: number[] | undefined;
  private dataGranules = 0;

  /** Number of granules not ABSENT. */
  get presentCount(): number {
    let n = 0;
    for (const c of this.chunks.values()) n += typeof c === 'string' ? runTotals(c).present : c.present;
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
    if (chunk === undefined) return ABSENT;
    const i = granule % CHUNK_GRANULES;
    return typeof chunk === 'string' ? runState(chunk, runAt(chunk, i)) : stateAt(chunk.packed, i);
  }

  /** Sets `count` granules from `start` to `state`. */
  set(start: number, count: number, state: GranuleState): void {
    let g = start;
    const end = start + count;
    while (g < end) {
      const key = Math.floor(g / CHUNK_GRANULES);
      const from = g % CHUNK_GRANULES;
      const to = Math.min(CHUNK_GRANULES, from + (end - g));
      g += to - from;
      const chunk = this.chunks.get(key);
      if (chunk === undefined && state === ABSENT) continue;
      let next: Chunk;
      if (typeof chunk === 'object') {
        this.dataGranules -= chunk.data;
        next = setPacked(chunk, from, to, state);
      } else {
        const runs = chunk ?? EMPTY;
        this.dataGranules -= runTotals(runs).data;
        next = setRuns(runs, from, to, state);
      }
      const totals = typeof next === 'string' ? runTotals(next) : next;
      this.dataGranules += totals.data;
      if (totals.present === 0) {
        this.chunks.delete(key);
        this.sortedKeys = undefined;
        continue;
      }
      if (chunk === undefined) this.sortedKeys = undefined;
      if (next !== chunk) this.chunks.set(key, next);
    }
  }

  /** Chunk indexes holding something, ascending. */
  chunkKeys(): readonly number[] {
    if (this.sortedKeys === undefined) this.sortedKeys = [...this.chunks.keys()].sort((a, b) => a - b);
    return this.sortedKeys;
  }

  /**
   * The packed states of one chunk (read them with `stateAt`; do not modify), or undefined when it is empty. A chunk
   * kept as a run list is written out into `scratch` (CHUNK_BYTES long), which is returned.
   */
  chunkStates(key: number, scratch: Uint8Array): Uint8Array | undefined {
    const chunk = this.chunks.get(key);
    if (chunk === undefined) return undefined;
    if (typeof chunk === 'object') return chunk.packed;
    for (let k = 0; k < chunk.length; k++)
      fillStates(scratch, runStart(chunk, k), runEnd(chunk, k), runState(chunk, k));
    return scratch;
  }

  /** Runs of non-ABSENT granules in [start, end), ascending. */
  *presentRuns(start = 0, end = Number.MAX_SAFE_INTEGER): Generator<Run> {
    for (const key of this.chunkKeys()) {
      const base = key * CHUNK_GRANULES;
      if (base + CHUNK_GRANULES <= start) continue;
      if (base >= end) return;
      const chunk = this.chunks.get(key);
      if (chunk === undefined) continue;
      const from = Math.max(0, start - base);
      const to = Math.min(CHUNK_GRANULES, end - base);
      if (typeof chunk === 'string') {
        for (let k = runAt(chunk, from); k < chunk.length && runStart(chunk, k) < to; k++) {
          const s = runState(chunk, k);
          if (s === ABSENT) continue;
          const a = Math.max(from, runStart(chunk, k));
          yield { start: base + a, count: Math.min(to, runEnd(chunk, k)) - a, state: s };
        }
        continue;
      }
      const packed = chunk.packed;
      let i = from;
      while (i < to) {
        const s = stateAt(packed, i);
        if (s === ABSENT) {
          i++;
          continue;
        }
        let j = i + 1;
        while (j < to && stateAt(packed, j) === s) j++;
        yield { start: base + i, count: j - i, state: s };
        i = j;
      }
    }
  }
}

/** The run list of a chunk with nothing in it (never kept in the map: a chunk that empties is dropped). */
const EMPTY: RunList = String.fromCharCode(ABSENT);

/** Adds the change of `n` granules from state `old` to `state` to the chunk's totals. */
function count(chunk: PackedChunk, old: GranuleState, state: GranuleState, n: number): void {
  if (old === state) return;
  if (old === ABSENT) chunk.present += n;
  else if (state === ABSENT) chunk.present -= n;
  if (old === DATA) chunk.data -= n;
  else if (state === DATA) chunk.data += n;
}

/** Sets granules [from, to) of a packed chunk; one whose granules all share a state becomes a run list again. */
function setPacked(chunk: PackedChunk, from: number, to: number, state: GranuleState): Chunk {
  const packed = chunk.packed;
  for (let i = from; i < to; i++) count(chunk, stateAt(packed, i), state, 1);
  fillStates(packed, from, to, state);
  if (chunk.present === 0) return EMPTY;
  if (chunk.present === CHUNK_GRANULES && (chunk.data === 0 || chunk.data === CHUNK_GRANULES)) {
    return String.fromCharCode(chunk.data === 0 ? ZERO : DATA);
  }
  return chunk;
}

/** Granules [from, to) of a run list set to `state`: a new run list, or packed states past MAX_RUNS runs. */
function setRuns(runs: RunList, from: number, to: number, state: GranuleState): Chunk {
  const out: number[] = [];
  const push = (start: number, s: GranuleState): void => {
    if (out.length > 0 && ((out[out.length - 1] as number) & 3) === s) return;
    out.push((start << 2) | s);
  };
  let k = 0;
  for (; k < runs.length && runStart(runs, k) < from; k++) push(runStart(runs, k), runState(runs, k));
  // The run that holds `from` (k - 1, if it started before it) now ends there.
  let after: GranuleState = k > 0 ? runState(runs, k - 1) : ABSENT;
  push(from, state);
  for (; k < runs.length && runStart(runs, k) < to; k++) after = runState(runs, k);
  // What lay under [from, to) resumes at `to` unless a run starts there.
  if (to < CHUNK_GRANULES && (k === runs.length || runStart(runs, k) > to)) push(to, after);
  for (; k < runs.length; k++) push(runStart(runs, k), runState(runs, k));
  if (out.length <= MAX_RUNS) return String.fromCharCode(...out);
  const chunk: PackedChunk = { packed: new Uint8Array(CHUNK_BYTES), present: 0, data: 0 };
  for (let j = 0; j < out.length; j++) {
    const start = (out[j] as number) >> 2;
    const end = j + 1 < out.length ? (out[j + 1] as number) >> 2 : CHUNK_GRANULES;
    const s = ((out[j] as number) & 3) as GranuleState;
    fillStates(chunk.packed, start, end, s);
    count(chunk, ABSENT, s, end - start);
  }
  return chunk;
}

import { CHUNK_GRANULES } from './constants.js';
import { ABSENT, CHUNK_BYTES, DATA, stateAt, ZERO } from './granule-map.js';
import type { Layer } from './layer.js';

/** A run of granules whose content comes from one place: a layer's data, or zeros. */
export interface Segment {
  start: number;
  count: number;
  /** The layer holding the data; undefined for zeros. */
  layer: Layer | undefined;
  state: typeof DATA | typeof ZERO;
}

/** The layers a view reads through, topmost first. */
export function chainOf(top: Layer): Layer[] {
  const chain: Layer[] = [];
  for (let l: Layer | undefined = top; l !== undefined; l = l.parent) chain.push(l);
  return chain;
}

export function chainLoaded(chain: readonly Layer[]): boolean {
  for (const l of chain) if (!l.loaded) return false;
  return true;
}

/** Loads the maps of every layer in the chain. */
export async function loadChain(chain: readonly Layer[]): Promise<void> {
  for (const l of chain) if (!l.loaded) await l.load();
}

/** Where `resolve` writes out chunks kept as run lists, one per layer of the longest chain yet (it never yields). */
const scratch: Uint8Array[] = [];

/**
 * Where granules [g0, g1) of the view come from: the topmost layer that is not ABSENT decides. Cost is per
 * touched granule only inside chunks some layer holds; empty chunks cost one lookup per layer.
 */
export function resolve(chain: readonly Layer[], g0: number, g1: number): Segment[] {
  const out: Segment[] = [];
  const push = (start: number, count: number, layer: Layer | undefined, state: typeof DATA | typeof ZERO): void => {
    const last = out[out.length - 1];
    if (last !== undefined && last.layer === layer && last.state === state && last.start + last.count === start) {
      last.count += count;
    } else {
      out.push({ start, count, layer, state });
    }
  };
  const arrays: (Uint8Array | undefined)[] = new Array(chain.length);
  while (scratch.length < chain.length) scratch.push(new Uint8Array(CHUNK_BYTES));
  for (let key = Math.floor(g0 / CHUNK_GRANULES); key * CHUNK_GRANULES < g1; key++) {
    const base = key * CHUNK_GRANULES;
    const from = Math.max(g0, base);
    const to = Math.min(g1, base + CHUNK_GRANULES);
    let any = false;
    for (let j = 0; j < chain.length; j++) {
      const a = (chain[j] as Layer).granules.chunkStates(key, scratch[j] as Uint8Array);
      arrays[j] = a;
      if (a !== undefined) any = true;
    }
    if (!any) {
      push(from, to - from, undefined, ZERO);
      continue;
    }
    for (let g = from; g < to; g++) {
      const i = g - base;
      let layer: Layer | undefined;
      let state: typeof DATA | typeof ZERO = ZERO;
      for (let j = 0; j < chain.length; j++) {
        const s = stateAt(arrays[j], i);
        if (s === ABSENT) continue;
        if (s === DATA) {
          layer = chain[j];
          state = DATA;
        }
        break;
      }
      push(g, 1, layer, state);
    }
  }
  return out;
}

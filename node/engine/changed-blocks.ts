import { CHUNK_GRANULES, GRANULE } from './constants.js';
import { ABSENT, CHUNK_BYTES, DATA, stateAt } from './granule-map.js';
import type { Layer } from './layer.js';
import type { ChangedBlocksPage, Extent } from './types.js';

/**
 * 'union': granules any of the layers holds (DATA or ZERO): what changed between two views that share every
 * layer outside `layers`. 'data': granules whose topmost state in the chain is DATA (the allocation map).
 */
export type DiffMode = 'union' | 'data';

function unionKeys(layers: readonly Layer[]): number[] {
  const all = new Set<number>();
  for (const l of layers) for (const k of l.granules.chunkKeys()) all.add(k);
  return [...all].sort((a, b) => a - b);
}

/** Changed granule runs in [g0, gEnd), ascending, merged across chunk boundaries. Cost follows touched chunks. */
export function* changedRuns(
  layers: readonly Layer[],
  mode: DiffMode,
  g0: number,
  gEnd: number,
): Generator<{ start: number; count: number }> {
  let open: { start: number; count: number } | undefined;
  const arrays: (Uint8Array | undefined)[] = new Array(layers.length);
  // This generator's own (it yields midway through a chunk, so another one may run in between).
  const scratch = layers.map(() => new Uint8Array(CHUNK_BYTES));
  for (const key of unionKeys(layers)) {
    const base = key * CHUNK_GRANULES;
    if (base + CHUNK_GRANULES <= g0) continue;
    if (base >= gEnd) break;
    for (let j = 0; j < layers.length; j++)
      arrays[j] = (layers[j] as Layer).granules.chunkStates(key, scratch[j] as Uint8Array);
    const to = Math.min(CHUNK_GRANULES, gEnd - base);
    for (let i = Math.max(0, g0 - base); i < to; i++) {
      let changed = false;
      for (let j = 0; j < arrays.length; j++) {
        const s = stateAt(arrays[j], i);
        if (s === ABSENT) continue;
        changed = mode === 'union' || s === DATA;
        if (changed || mode === 'data') break;
      }
      if (!changed) continue;
      const g = base + i;
      if (open !== undefined && open.start + open.count === g) {
        open.count++;
      } else {
        if (open !== undefined) yield open;
        open = { start: g, count: 1 };
      }
    }
  }
  if (open !== undefined) yield open;
}

/** Layers whose union is the difference between the views topped by `base` and `target`. */
export function diffLayers(base: Layer, target: Layer): Layer[] {
  const ancestorsOfBase = new Set<Layer>();
  for (let l: Layer | undefined = base; l !== undefined; l = l.parent) ancestorsOfBase.add(l);
  const out: Layer[] = [];
  let lca: Layer | undefined = target;
  while (lca !== undefined && !ancestorsOfBase.has(lca)) {
    out.push(lca);
    lca = lca.parent;
  }
  for (let l: Layer | undefined = base; l !== undefined && l !== lca; l = l.parent) out.push(l);
  return out;
}

/** One page of changed extents, starting at byte `offset`, at most `limit` extents. */
export function changedPage(
  layers: readonly Layer[],
  mode: DiffMode,
  size: number,
  offset: number,
  limit: number,
): ChangedBlocksPage {
  const gEnd = Math.ceil(size / GRANULE);
  const extents: Extent[] = [];
  let next: number | undefined;
  for (const run of changedRuns(layers, mode, Math.floor(offset / GRANULE), gEnd)) {
    if (extents.length === limit) {
      next = run.start * GRANULE;
      break;
    }
    const start = run.start * GRANULE;
    const end = Math.min(size, (run.start + run.count) * GRANULE);
    extents.push({ offset: start, length: end - start });
  }
  return next === undefined
    ? { extents, block_size: GRANULE, size }
    : { extents, block_size: GRANULE, size, next_offset: next };
}

/**
 * Prompt release of dropped buffers and objects. Backups and restores allocate a few MiB of ArrayBuffers per batch in
 * every thread; V8 frees one only when a collection finds its (tiny) JS handle dead, and a thread whose heap is small
 * waits until tens of MiB of buffers have piled up. In a chunk worker, whose requests' buffers die with them, a
 * young-generation collection every few MiB of data (well under a millisecond each) keeps its young garbage to a few
 * MiB. Objects that lived through two of those are promoted and die in the old generation, which V8 lets grow to
 * tens of MiB before collecting it; so a full collection runs whenever the heap has grown a few MiB past what the
 * last full one left alive. A job's main thread reuses its buffers and runs only full collections, one every
 * MAIN_THREAD_RECLAIM bytes. Either way a thread's heap stays within its live objects plus a constant, however long
 * the job. Full collections compact (compactHeap): after hundreds of them, a heap otherwise keeps the partly used
 * pages each one left, and a long job's heap ends MiB larger.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { compactHeap } from '../../common/native/index.js';

/** V8's `gc` extension, for young-generation collections (`{ type: 'minor' }`); full ones are compactHeap's. */
type Gc = (options: { type: 'minor' }) => void;

let collect: Gc | undefined;

function gc(): Gc {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Gc;
  }
  return collect;
}

/**
 * A full collection now: after a job's setup (loading a repository's index leaves megabytes of dead objects), so
 * they are gone before the job's buffers are made rather than adding to its peak.
 */
export function collectAll(): void {
  compactHeap();
}

/**
 * The thread's heap in use plus the buffers its objects own. Buffers count: a dead buffer promoted to the old
 * generation (an object read while a few others were in flight) is freed only by a full collection, and its handle
 * is too small for the heap's growth to show it; loading a large repository's index piled up megabytes of them.
 */
function held(): number {
  const s = getHeapStatistics();
  return s.used_heap_size + s.external_memory;
}

/**
 * Bytes a backup or restore processes on its main thread between full collections (Reclaimer(MAIN_THREAD_RECLAIM, 1)).
 * Its buffers are reused, so what the collector finds there is small objects, which V8's own young collections take
 * while they are young. Forced young ones every few MiB, as in the workers, moved the objects of every batch in
 * flight to the old generation instead (they live through two of them): in a 16 GiB restore it grew 1-1.5 MiB per
 * 256 MiB with them and 0.1-0.5 MiB without.
 */
export const MAIN_THREAD_RECLAIM = 256 * 1024 * 1024;

/**
 * Counts bytes processed and runs a young-generation collection every `every` bytes; a full one instead when the
 * heap holds more than `headroom` bytes beyond what the last full collection left, or every `majorEvery` collections.
 */
export class Reclaimer {
  private since = 0;
  private minors = 0;
  /** Held just after the last full collection (its live objects and buffers); until the first one, at start. */
  private live = held();

  /**
   * @param every Bytes between collections; default 8 MiB.
   * @param majorEvery Collections between full ones at most; default 32 (a full collection every 256 MiB, a few ms).
   * @param headroom Growth of the heap and buffers together past what the last full collection left that triggers
   *   a full one; default 6 MiB.
   * @param afterFull Called after each full collection (the main thread returns freed malloc memory there).
   */
  constructor(
    private readonly every = 8 * 1024 * 1024,
    private readonly majorEvery = 32,
    private readonly headroom = 6 * 1024 * 1024,
    private readonly afterFull?: () => void,
  ) {}

  /** Notes `bytes` processed, collecting when enough have gone by since the last collection. */
  processed(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    this.minors++;
    if (this.minors < this.majorEvery && held() <= this.live + this.headroom) {
      gc()({ type: 'minor' });
      return;
    }
    compactHeap();
    this.minors = 0;
    this.live = held();
    this.afterFull?.();
  }
}

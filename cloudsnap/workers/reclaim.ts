/**
 * Prompt release of dropped buffers. Backups and restores allocate a few MiB of ArrayBuffers per batch in every
 * thread; V8 frees one only when a collection finds its (tiny) JS handle dead, and a thread whose heap is small waits
 * until tens of MiB of buffers have piled up. A young-generation collection every few MiB of data (well under a
 * millisecond each) and a full one every few hundred MiB keep each thread's garbage to a few MiB, which is what
 * bounds a node's peak memory.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options: { type: 'minor' | 'major' }) => void;

let collect: Gc | undefined;

function gc(): Gc {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Gc;
  }
  return collect;
}

/**
 * Counts bytes processed and runs a young-generation collection every `every` bytes, and a full one every
 * `majorEvery` of those: buffers that lived long enough to be promoted (a pack waiting for its upload) are otherwise
 * freed only when V8 next collects the old generation, which on a long backup would make memory follow its length.
 */
export class Reclaimer {
  private since = 0;
  private minors = 0;

  /**
   * @param every Bytes between collections; default 8 MiB.
   * @param majorEvery Collections between full ones; default 32 (a full collection every 256 MiB, a few ms each).
   */
  constructor(
    private readonly every = 8 * 1024 * 1024,
    private readonly majorEvery = 32,
  ) {}

  /** Notes `bytes` processed, collecting when enough have gone by since the last collection. */
  processed(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    this.minors = (this.minors + 1) % this.majorEvery;
    gc()({ type: this.minors === 0 ? 'major' : 'minor' });
  }
}

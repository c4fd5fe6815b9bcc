/**
 * Filling a replica (docs/REPLICATION.md, R14, R14a, R16): copies the source replica's allocated data (its allocation
 * map: `changedBlocks` with no base on its live head, read a page at a time) to the target, in offset order, while
 * the volume stays in use. Each step holds its range on the coordinator (overlapping live writes wait, the ones in
 * flight finish), reads the range from the source, writes it to the target and releases the range, so a live write
 * reaches the target either before the copy's read (the copy carries it) or after the copy's write (it overwrites
 * it). Several steps run at once on disjoint ranges, each with one of a fixed number of buffers: memory is
 * `depth x stepBytes` whatever the size of the volume. The target is flushed every `flushBytes` copied, then the
 * cursor (the offset below which every step is done and flushed) is reported; the copy goes on while the target
 * flushes, up to `8 x flushBytes` ahead of the flush under way. The loop (`copyExtents`) copies any
 * sorted set of extents: a resync (resync.ts) gives it the blocks changed since a base snapshot, and both take their
 * bytes from the bandwidth caps (bandwidth.ts) when given a limiter.
 */
import { FerryError } from '../../common/index.js';
import type { CopyLimiter } from './bandwidth.js';
import { directBuffer } from './layer.js';
import type { Replica } from './replica.js';

const MiB = 1024 * 1024;
/** The options of a copy's writes to the target. */
const UNCACHED = { uncached: true } as const;

/** Most steps in flight at once, small ones included. */
const MAX_SMALL_STEPS = 64;

/** What the fill needs of the coordinator: range holds (VolumeCoordinator.holdRange). */
export interface RangeHolder {
  holdRange(offset: number, length: number): Promise<() => void>;
}

/** Progress of a fill: `cursor` is flushed on the target (R14a). */
export interface FillProgress {
  /** Bytes of data copied so far (this run). */
  copied: number;
  /** Bytes of data to copy from `startAt` (the source's allocated bytes there when the fill started). */
  total: number;
  /** Every byte below it is copied and flushed on the target. */
  cursor: number;
}

/** What every range copy (a fill, a resync: node/engine/resync.ts) is given. */
export interface CopyOptions {
  coordinator: RangeHolder;
  /** An in-sync replica to copy from. */
  source: Replica;
  /** The replica being filled (already receiving every live write: VolumeCoordinator.addFilling). */
  target: Replica;
  /** The volume's size in bytes. */
  size: number;
  /** Resume from this cursor (everything below it is on the target already). Default 0. */
  startAt?: number;
  /** `total` of the progress reports when the caller has counted it already (allocatedBytes); default: counted here. */
  total?: number;
  /** Largest range one step copies. Default 4 MiB. */
  stepBytes?: number;
  /**
   * Full steps in flight at once (each with its buffer of `stepBytes`). Default 8. The bytes in flight stay within
   * `depth x stepBytes`; steps much smaller than `stepBytes` (scattered changed blocks) run up to 64 at once, each
   * with a buffer of its own size, so that small extents do not leave the link idle.
   */
  depth?: number;
  /** Bytes copied between flushes of the target (each reports the cursor). Default 8 MiB. */
  flushBytes?: number;
  /** Taken before each step's data is read (the bandwidth caps, R17). Default: none. */
  limiter?: CopyLimiter;
  /** Stops the copy between steps: it then flushes, reports its cursor and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each flush of the target, in cursor order; awaited (a slow callback slows the copy). */
  onProgress?: (progress: FillProgress) => void | Promise<void>;
}

export interface FillOptions extends CopyOptions {
  /**
   * Whether the target starts empty (a new replica, the default): holes of the source cost nothing. When false (a
   * replica of unknown history), the target is trimmed where the source has holes.
   */
  targetIsNew?: boolean;
}

/** A byte range [start, end) of the volume. */
export interface Span {
  start: number;
  end: number;
}

/** One step: a range of the volume to copy (`data`) or to trim on the target (`hole`). */
interface Step {
  start: number;
  end: number;
  /** Data pieces inside [start, end), or none for a hole. */
  pieces: { offset: number; length: number }[];
  hole: boolean;
}

/** Page size of the allocation map reads. */
const PAGE = 1024;
/** Largest hole one trim covers. */
const MAX_HOLE = 1024 * MiB;

/**
 * The extents of the source's `changedBlocks` (since `base`, a snapshot id, or since empty: its allocation map) at or
 * after `from`, in offset order, clipped to [from, size).
 */
export async function* changedExtents(
  source: Replica,
  size: number,
  from: number,
  base?: string,
): AsyncGenerator<Span> {
  let offset = from;
  for (;;) {
    const page = await source.changedBlocks({
      size,
      offset,
      limit: PAGE,
      ...(base !== undefined && { base_snapshot_id: base }),
    });
    for (const e of page.extents) {
      const start = Math.max(from, e.offset);
      const end = Math.min(size, e.offset + e.length);
      if (end > start) yield { start, end };
    }
    if (page.next_offset === undefined || page.next_offset <= offset) return;
    offset = page.next_offset;
  }
}

/** Bytes the source holds at or after `from`: the fill's `total` (one pass over the allocation map). */
export async function allocatedBytes(source: Replica, size: number, from = 0): Promise<number> {
  let total = 0;
  for await (const e of changedExtents(source, size, from)) total += e.end - e.start;
  return total;
}

/**
 * The steps of a fill from `from`: data grouped by aligned windows of `step` bytes (one step copies the pieces of
 * one window), and the gaps between them at or after `holesFrom` as trims.
 */
async function* stepsOf(
  extents: AsyncIterable<Span>,
  size: number,
  from: number,
  step: number,
  holesFrom: number,
): AsyncGenerator<Step> {
  let at = from;
  let current: Step | undefined;
  const gap = function* (to: number): Generator<Step> {
    for (let s = Math.max(at, holesFrom); s < to; s = Math.min(to, s + MAX_HOLE)) {
      yield { start: s, end: Math.min(to, s + MAX_HOLE), pieces: [], hole: true };
    }
  };
  for await (const e of extents) {
    let start = e.start;
    while (start < e.end) {
      const window = Math.floor(start / step) * step;
      const end = Math.min(e.end, window + step);
      if (current !== undefined && Math.floor(current.start / step) * step !== window) {
        yield current;
        current = undefined;
      }
      if (current === undefined) {
        yield* gap(start);
        current = { start, end, pieces: [], hole: false };
      } else if (start > Math.max(current.end, holesFrom)) {
        // A gap inside the window: trimmed by its own step, after the data before it.
        yield current;
        yield* gap(start);
        current = { start, end, pieces: [], hole: false };
      }
      current.pieces.push({ offset: start, length: end - start });
      current.end = end;
      at = end;
      start = end;
    }
  }
  if (current !== undefined) yield current;
  yield* gap(size);
}

/**
 * Copies the source's allocated data to the target (see the file comment). Resolves with the final progress (cursor
 * = size) once the target is flushed; rejects with the signal's reason when aborted (after flushing and reporting the
 * cursor reached), or with the first failure of a step (the cursor last reported stays valid).
 */
export async function fillReplica(options: FillOptions): Promise<FillProgress> {
  const { source, size } = options;
  const from = checkStart(options);
  const total = options.total ?? (await allocatedBytes(source, size, from));
  return copyExtents({ ...options, total }, changedExtents(source, size, from), options.targetIsNew === false);
}

function checkStart(options: CopyOptions): number {
  const from = options.startAt ?? 0;
  if (!Number.isSafeInteger(from) || from < 0 || from > options.size) {
    throw new FerryError('INVALID_ARGUMENT', `a copy cannot start at ${from} of a ${options.size}-byte volume`);
  }
  return from;
}

/**
 * The range-copy loop of fills and resyncs (see the file comment): copies `extents` (sorted, disjoint, at or after
 * `startAt`) from the source to the target in steps under range holds, taking each step's bytes from the limiter,
 * and, when `holes`, trims the target between them (a number: only at and after that offset). `total` is what the
 * progress reports give as the whole.
 */
export async function copyExtents(
  options: CopyOptions & { total: number },
  extents: AsyncIterable<Span>,
  holes: boolean | number,
): Promise<FillProgress> {
  const { coordinator, source, target, size, signal, onProgress, limiter, total } = options;
  const from = checkStart(options);
  const stepBytes = options.stepBytes ?? 4 * MiB;
  const depth = options.depth ?? 8;
  const flushBytes = options.flushBytes ?? 8 * MiB;
  const free: Buffer[] = [];
  // Page-aligned, so that a target on this node can write them past its page cache (UNCACHED below).
  for (let i = 0; i < depth; i++) free.push(directBuffer(stepBytes));
  const budget = depth * stepBytes;
  let inFlight = 0;

  let copied = 0;
  let sinceFlush = 0;
  /** Steps started, by sequence; `frontier` is the end of the last of the completed prefix. */
  const ends = new Map<number, number>();
  const completed = new Set<number>();
  let nextSeq = 0;
  let doneSeq = 0;
  let frontier = from;
  /** The cursor waiting for the next flush, and the loop flushing and reporting (one at a time, coalesced). */
  let wanted: number | undefined;
  let flusher: Promise<void> | undefined;
  /** Bytes of steps completed (this run), and their count when the flush under way began (it covers those). */
  let stepped = 0;
  let steppedAtFlush = 0;
  let failure: unknown;
  const running = new Set<Promise<void>>();
  let smallRunning = 0;
  const aborted = (): boolean => signal?.aborted === true;

  const drain = async (): Promise<void> => {
    try {
      while (wanted !== undefined) {
        const cursor = wanted;
        wanted = undefined;
        steppedAtFlush = stepped;
        await target.flush();
        await onProgress?.({ copied, total, cursor });
      }
    } finally {
      flusher = undefined;
    }
  };
  /** Flushes the target, then reports `cursor` (a later request made meanwhile replaces it). */
  const report = (cursor: number): Promise<void> => {
    wanted = cursor;
    flusher ??= drain();
    return flusher;
  };

  const runStep = async (seq: number, step: Step): Promise<void> => {
    const release = await coordinator.holdRange(step.start, step.end - step.start);
    try {
      if (step.hole) {
        await target.trim(step.start, step.end - step.start);
      } else {
        const span = step.end - step.start;
        const small = span <= stepBytes / 8;
        const buf = small ? Buffer.allocUnsafe(span) : (free.pop() as Buffer);
        try {
          const base = step.start;
          await Promise.all(
            step.pieces.map((p) =>
              source.read(p.offset, p.length, buf.subarray(p.offset - base, p.offset - base + p.length)),
            ),
          );
          // Uncached: nothing reads a copy's data back soon, and the target makes it durable at every flush anyway;
          // through the page cache the flushes held the copy to the disk's write-back rate (a third of its direct one
          // here), while nbdcopy, its yardstick, leaves its data dirty.
          await Promise.all(
            step.pieces.map((p) =>
              target.write(p.offset, buf.subarray(p.offset - base, p.offset - base + p.length), UNCACHED),
            ),
          );
        } finally {
          if (!small) free.push(buf);
        }
        const n = step.end - step.start;
        copied += step.pieces.reduce((sum, p) => sum + p.length, 0);
        sinceFlush += n;
        stepped += n;
      }
    } finally {
      release();
    }
    completed.add(seq);
    while (completed.has(doneSeq)) {
      completed.delete(doneSeq);
      frontier = ends.get(doneSeq) as number;
      ends.delete(doneSeq);
      doneSeq++;
    }
    if (sinceFlush >= flushBytes) {
      sinceFlush = 0;
      report(frontier).catch((err: unknown) => {
        failure ??= err;
      });
    }
  };

  const holesFrom = holes === true ? 0 : holes === false ? Number.POSITIVE_INFINITY : holes;
  for await (const step of stepsOf(extents, size, from, stepBytes, holesFrom)) {
    if (failure !== undefined || aborted()) break;
    const span = step.hole ? 0 : step.end - step.start;
    const small = span <= stepBytes / 8;
    const fullSteps = (): number => running.size - smallRunning;
    while (
      running.size >= MAX_SMALL_STEPS ||
      (!small && fullSteps() >= depth) ||
      (running.size > 0 && inFlight + span > budget)
    ) {
      await Promise.race(running);
    }
    if (limiter !== undefined && !step.hole) {
      const bytes = step.pieces.reduce((sum, p) => sum + p.length, 0);
      try {
        await limiter.take(bytes, signal);
      } catch {
        break;
      }
    }
    // The copy goes on while the target flushes (a flush blocks its writes for a while: waiting for it as well idled
    // the copy for a third of its time). Once it is eight flushes' worth ahead of the flush under way, it waits: a
    // target or progress callback slower than the copy slows it, and a resume re-copies little more than that.
    if (wanted !== undefined && flusher !== undefined && stepped - steppedAtFlush > 8 * flushBytes) {
      await flusher.catch(() => undefined);
    }
    if (failure !== undefined || aborted()) break;
    const seq = nextSeq++;
    ends.set(seq, step.end);
    inFlight += span;
    if (small) smallRunning++;
    const p: Promise<void> = runStep(seq, step)
      .catch((err: unknown) => {
        failure ??= err;
      })
      .finally(() => {
        running.delete(p);
        inFlight -= span;
        if (small) smallRunning--;
      });
    running.add(p);
  }
  await Promise.all(running);
  await flusher?.catch(() => undefined);
  if (failure !== undefined) throw failure;
  if (aborted()) {
    await report(frontier);
    throw signal?.reason;
  }
  await report(size);
  return { copied, total, cursor: size };
}

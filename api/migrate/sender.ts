/**
 * Ships the difference between two snapshots of a volume (or all of a snapshot's allocated data) to the other
 * cluster: the changed extents, read from the snapshot's export in pieces of at most 1 MiB a few at a time ahead,
 * zero pieces sent as headers, the others zstd-compressed, in data calls of at most CALL_BYTES each (a call that
 * fails is sent again from its start: it rewrites the same ranges).
 */
import { failpoint, type VolumeEngine } from '../../node/index.js';
import type { PeerClient } from '../pairs/channel.js';
import { FrameEncoder, MAX_FRAME_BYTES } from './frames.js';

/** Most bytes of ranges in one data call. */
const CALL_BYTES = 16 << 20;
/** Pieces read and encoded ahead of the link. */
const READ_AHEAD = 6;
/** Data calls sent and not yet answered, at most. */
const CALLS_AT_ONCE = 2;
/** Extents asked per page of changed blocks. */
const PAGE = 10_000;
/** Times one data call is tried. */
const ATTEMPTS = 3;

/** What to ship. */
export interface Delta {
  volumeId: string;
  /** `VOLUME@SNAPSHOT` of the target. */
  exportName: string;
  /** Absent: every allocated block of the target. */
  baseSnapshotId?: string;
  targetSnapshotId: string;
}

interface Piece {
  offset: number;
  length: number;
}

/** The pieces of a delta, page by page (memory bounded by one page). */
async function* pieces(engine: VolumeEngine, delta: Delta): AsyncGenerator<Piece> {
  let offset: number | undefined = 0;
  while (offset !== undefined) {
    const page = await engine.changedBlocks(delta.volumeId, {
      ...(delta.baseSnapshotId !== undefined && { base_snapshot_id: delta.baseSnapshotId }),
      target_snapshot_id: delta.targetSnapshotId,
      offset,
      limit: PAGE,
    });
    for (const e of page.extents) {
      for (let at = e.offset; at < e.offset + e.length; at += MAX_FRAME_BYTES) {
        yield { offset: at, length: Math.min(MAX_FRAME_BYTES, e.offset + e.length - at) };
      }
    }
    offset = page.next_offset;
  }
}

/** The bytes a delta covers. */
export async function deltaBytes(engine: VolumeEngine, delta: Delta): Promise<number> {
  let total = 0;
  for await (const p of pieces(engine, delta)) total += p.length;
  return total;
}

/** Progress of a shipment: bytes of ranges sent, and their size on the wire. */
export type ShipProgress = (bytes: number, wire: number) => void;

/** Sends `delta` over `link` to `path` (the destination volume's data route). Resolves with bytes and wire bytes. */
export async function shipDelta(
  engine: VolumeEngine,
  delta: Delta,
  link: PeerClient,
  path: string,
  signal: AbortSignal,
  progress: ShipProgress,
  /** Encodes a frame (a worker pool's); default: here, on the event loop. */
  encode?: (offset: number, data: Buffer) => Promise<Buffer>,
): Promise<{ bytes: number; wire: number }> {
  const device = await engine.openExport(delta.exportName);
  const encoder = new FrameEncoder();
  const encodeFrame = encode ?? (async (offset: number, data: Buffer) => encoder.encode(offset, data));
  let bytes = 0;
  let wire = 0;
  const ahead: Promise<{ piece: Piece; frame: Buffer }>[] = [];
  try {
    const source = pieces(engine, delta)[Symbol.asyncIterator]();
    let exhausted = false;
    const fill = async (): Promise<void> => {
      while (!exhausted && ahead.length < READ_AHEAD) {
        const next = await source.next();
        if (next.done === true) {
          exhausted = true;
          break;
        }
        const piece = next.value;
        ahead.push(
          device
            .read(piece.offset, piece.length)
            .then(async (data) => ({ piece, frame: await encodeFrame(piece.offset, data) })),
        );
      }
    };
    // Frames are read and encoded ahead while earlier ones are on the wire; a call keeps its frames until it is
    // answered, so that a failed call is sent again from its start.
    const pull = async (): Promise<{ piece: Piece; frame: Buffer } | undefined> => {
      await fill();
      const next = ahead.shift();
      return next === undefined ? undefined : await next;
    };
    // A call takes its frames as they are ready; the next one starts once it has all of them (while it waits for its
    // answer: the destination's write and flush), so the link does not idle between calls.
    const running = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    for (;;) {
      if (failure !== undefined) break;
      signal.throwIfAborted();
      await fill();
      if (ahead.length === 0) break;
      const call = new Call(pull);
      const sent: Promise<void> = sendCall(link, path, () => call.body(), signal)
        .then(
          () => {
            failpoint('migrate.call-acked');
            bytes += call.bytes;
            wire += call.wire;
            progress(bytes, wire);
          },
          (err: unknown) => {
            failure ??= { err };
          },
        )
        .finally(() => running.delete(sent));
      running.add(sent);
      await Promise.race([call.pulled, sent]);
      while (running.size >= CALLS_AT_ONCE) await Promise.race(running);
    }
    await Promise.all(running);
    if (failure !== undefined) throw (failure as { err: unknown }).err;
  } finally {
    // Pieces read ahead and never sent (a failed or cancelled shipment) settle before the device closes under them,
    // and their failures are nobody's to report.
    await Promise.allSettled(ahead);
    await device.close();
  }
  return { bytes, wire };
}

/** One data call's frames: taken from the shared read-ahead as its body is sent, kept for a retry. */
class Call {
  readonly frames: Buffer[] = [];
  bytes = 0;
  wire = 0;
  /** Settles once the call has taken all its frames. */
  readonly pulled: Promise<void>;
  private finished = false;
  private finish: () => void = () => undefined;

  constructor(private readonly pull: () => Promise<{ piece: Piece; frame: Buffer } | undefined>) {
    this.pulled = new Promise((resolve) => {
      this.finish = () => {
        this.finished = true;
        resolve();
      };
    });
  }

  /** The body of one attempt: the frames taken so far, then new ones until the call is full or the delta ends. */
  async *body(): AsyncGenerator<Buffer> {
    for (let i = 0; ; i++) {
      if (i < this.frames.length) {
        yield this.frames[i] as Buffer;
        continue;
      }
      if (this.finished) return;
      const item = await this.pull();
      if (item === undefined) {
        this.finish();
        return;
      }
      this.frames.push(item.frame);
      this.bytes += item.piece.length;
      this.wire += item.frame.length;
      if (this.bytes >= CALL_BYTES) this.finish();
      yield item.frame;
    }
  }
}

async function sendCall(
  link: PeerClient,
  path: string,
  body: () => AsyncIterable<Buffer>,
  signal: AbortSignal,
): Promise<void> {
  let last: unknown;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    signal.throwIfAborted();
    try {
      await link.call('PUT', path, { bytes: body() }, signal);
      return;
    } catch (err: unknown) {
      last = err;
      if (signal.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
  throw last;
}

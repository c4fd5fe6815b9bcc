/**
 * The body of a data call between paired clusters: a run of frames, each a range of the volume.
 *
 *   offset 0  u8   kind: 1 data as is, 2 data zstd-compressed, 3 zeros (no payload)
 *          1  u8x3 zero
 *          4  u32  length of the range (bytes, at most MAX_FRAME_BYTES)
 *          8  u64  offset of the range in the volume
 *         16  u32  length of the payload that follows
 *         20  ...  payload
 *
 * Integrity and secrecy come from the link (TLS); a frame that does not parse or decompress to its length is
 * DATA_CORRUPTION and the call writes nothing more.
 */
import zstd, { type CCtx, type DCtx } from 'zstd-napi/binding.js';
import { FerryError } from '../../common/index.js';

export const RAW = 1;
export const ZSTD = 2;
export const ZEROS = 3;
export const HEADER_BYTES = 20;
/** Largest range of one frame. */
export const MAX_FRAME_BYTES = 1 << 20;
/** zstd level 1: the link is usually faster than level 3 could keep up with on one core. */
const LEVEL = 1;
/** The part of a range tried first: when it does not shrink, the range is sent raw. */
const SAMPLE_BYTES = 32 * 1024;

/** A decoded frame. */
export interface Frame {
  kind: typeof RAW | typeof ZSTD | typeof ZEROS;
  offset: number;
  length: number;
  /** The range's bytes (RAW, ZSTD), decompressed; absent for ZEROS. */
  data?: Buffer;
}

const ZERO = Buffer.alloc(MAX_FRAME_BYTES);

/** Whether `data` (at most MAX_FRAME_BYTES) is all zero bytes. */
export function isZero(data: Buffer): boolean {
  return data.equals(ZERO.subarray(0, data.length));
}

/** Encodes ranges into frames, compressing where it shrinks them. */
export class FrameEncoder {
  private readonly cctx: CCtx = new zstd.CCtx();
  private readonly sample = Buffer.allocUnsafe(SAMPLE_BYTES);

  /**
   * Whether a range is worth compressing: its first SAMPLE_BYTES shrink by at least 3% (random or already compressed
   * data does not, and is then sent as it is without spending a whole compression on it).
   */
  private worthCompressing(data: Buffer): boolean {
    if (data.length <= SAMPLE_BYTES * 2) return true;
    try {
      const n = this.cctx.compress(this.sample, data.subarray(0, SAMPLE_BYTES), LEVEL);
      return n > 0 && n < SAMPLE_BYTES * 0.97;
    } catch {
      return false;
    }
  }

  /** The frame of `data` at `offset` (a new buffer: header and payload). */
  encode(offset: number, data: Buffer): Buffer {
    if (data.length > MAX_FRAME_BYTES) throw new FerryError('INTERNAL', `a frame of ${data.length} bytes is too long`);
    if (isZero(data)) return header(ZEROS, offset, data.length, 0);
    const out = Buffer.allocUnsafe(HEADER_BYTES + data.length);
    let n = 0;
    if (this.worthCompressing(data)) {
      try {
        n = this.cctx.compress(out.subarray(HEADER_BYTES, HEADER_BYTES + data.length - 1), data, LEVEL);
      } catch {
        n = 0;
      }
    }
    if (n > 0) {
      header(ZSTD, offset, data.length, n).copy(out);
      return out.subarray(0, HEADER_BYTES + n);
    }
    header(RAW, offset, data.length, data.length).copy(out);
    data.copy(out, HEADER_BYTES);
    return out;
  }
}

function header(kind: number, offset: number, length: number, payload: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt8(kind, 0);
  h.writeUInt32LE(length, 4);
  h.writeBigUInt64LE(BigInt(offset), 8);
  h.writeUInt32LE(payload, 16);
  return h;
}

function corrupt(message: string): FerryError {
  return new FerryError('DATA_CORRUPTION', `a migration frame is damaged: ${message}`);
}

/** Bytes received and not decoded yet, as the chunks came (joined only where a frame spans several). */
class Pending {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Uint8Array): void {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.chunks.push(b);
    this.length += b.length;
  }

  /** The first `n` bytes (n <= length), contiguous: a view of the first chunk when it holds them all. */
  peek(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const out = this.peek(n);
    const first = this.chunks[0] as Buffer;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.length -= n;
    return out;
  }
}

/** Decodes the frames of a body as its chunks arrive. */
export async function* decodeFrames(body: AsyncIterable<Uint8Array>): AsyncGenerator<Frame> {
  const dctx: DCtx = new zstd.DCtx();
  const pending = new Pending();
  for await (const chunk of body) {
    pending.push(chunk);
    for (;;) {
      if (pending.length < HEADER_BYTES) break;
      const head = pending.peek(HEADER_BYTES);
      const kind = head.readUInt8(0);
      const length = head.readUInt32LE(4);
      const offset = Number(head.readBigUInt64LE(8));
      const payload = head.readUInt32LE(16);
      if (kind !== RAW && kind !== ZSTD && kind !== ZEROS) throw corrupt(`unknown kind ${kind}`);
      if (length === 0 || length > MAX_FRAME_BYTES || !Number.isSafeInteger(offset)) {
        throw corrupt(`a range of ${length} bytes at ${offset}`);
      }
      if (payload > length || (kind === ZEROS && payload !== 0) || (kind === RAW && payload !== length)) {
        throw corrupt(`a payload of ${payload} bytes for ${length}`);
      }
      if (pending.length < HEADER_BYTES + payload) break;
      pending.take(HEADER_BYTES);
      // The chunks are the stream's own (never reused), so a payload is handed on without a copy.
      const bytes = pending.take(payload);
      if (kind === ZEROS) yield { kind, offset, length };
      else if (kind === RAW) yield { kind, offset, length, data: bytes };
      else {
        const data = Buffer.allocUnsafe(length);
        let n: number;
        try {
          n = dctx.decompress(data, bytes);
        } catch (err: unknown) {
          throw corrupt(`zstd: ${String(err)}`);
        }
        if (n !== length) throw corrupt(`decompressed to ${n} bytes, not ${length}`);
        yield { kind, offset, length, data };
      }
    }
  }
  if (pending.length > 0) throw corrupt(`${pending.length} bytes left after the last frame`);
}

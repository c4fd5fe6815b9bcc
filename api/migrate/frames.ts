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

  /** The frame of `data` at `offset` (a new buffer: header and payload). */
  encode(offset: number, data: Buffer): Buffer {
    if (data.length > MAX_FRAME_BYTES) throw new FerryError('INTERNAL', `a frame of ${data.length} bytes is too long`);
    if (isZero(data)) return header(ZEROS, offset, data.length, 0);
    const out = Buffer.allocUnsafe(HEADER_BYTES + data.length);
    let n = 0;
    try {
      n = this.cctx.compress(out.subarray(HEADER_BYTES, HEADER_BYTES + data.length - 1), data, LEVEL);
    } catch {
      n = 0;
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

/** Decodes the frames of a body as its chunks arrive. */
export async function* decodeFrames(body: AsyncIterable<Uint8Array>): AsyncGenerator<Frame> {
  const dctx: DCtx = new zstd.DCtx();
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
    for (;;) {
      if (pending.length < HEADER_BYTES) break;
      const kind = pending.readUInt8(0);
      const length = pending.readUInt32LE(4);
      const offset = Number(pending.readBigUInt64LE(8));
      const payload = pending.readUInt32LE(16);
      if (kind !== RAW && kind !== ZSTD && kind !== ZEROS) throw corrupt(`unknown kind ${kind}`);
      if (length === 0 || length > MAX_FRAME_BYTES || !Number.isSafeInteger(offset)) {
        throw corrupt(`a range of ${length} bytes at ${offset}`);
      }
      if (payload > length || (kind === ZEROS && payload !== 0) || (kind === RAW && payload !== length)) {
        throw corrupt(`a payload of ${payload} bytes for ${length}`);
      }
      if (pending.length < HEADER_BYTES + payload) break;
      const body = pending.subarray(HEADER_BYTES, HEADER_BYTES + payload);
      pending = pending.subarray(HEADER_BYTES + payload);
      if (kind === ZEROS) yield { kind, offset, length };
      else if (kind === RAW) yield { kind, offset, length, data: Buffer.from(body) };
      else {
        const data = Buffer.allocUnsafe(length);
        let n: number;
        try {
          n = dctx.decompress(data, body);
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

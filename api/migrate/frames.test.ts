import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { decodeFrames, FrameEncoder, HEADER_BYTES, MAX_FRAME_BYTES, RAW, ZEROS, ZSTD } from './frames.js';

async function* chunked(data: Buffer, sizes: readonly number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length] as number;
    yield data.subarray(at, at + n);
    at += n;
  }
}

async function decodeAll(body: AsyncIterable<Buffer>) {
  const out = [];
  for await (const f of decodeFrames(body)) out.push(f);
  return out;
}

describe('migration frames', () => {
  it('carry random, compressible and zero ranges through any split of the body', async () => {
    const enc = new FrameEncoder();
    const ranges = [
      { offset: 0, data: randomBytes(MAX_FRAME_BYTES) },
      { offset: MAX_FRAME_BYTES, data: Buffer.alloc(65536, 'abcd') },
      { offset: 5 * MAX_FRAME_BYTES, data: Buffer.alloc(4096) },
      { offset: 2 ** 40, data: randomBytes(4096) },
    ];
    const frames = ranges.map((r) => enc.encode(r.offset, r.data));
    expect(frames.map((f) => f[0])).toEqual([RAW, ZSTD, ZEROS, RAW]);
    expect(frames[1]?.length).toBeLessThan(1000);
    expect(frames[2]?.length).toBe(HEADER_BYTES);
    const body = Buffer.concat(frames);
    for (const sizes of [[body.length], [1], [7, 13, 4096], [HEADER_BYTES - 1, 100_000]]) {
      const got = await decodeAll(chunked(body, sizes));
      expect(got.map((f) => [f.offset, f.length])).toEqual(ranges.map((r) => [r.offset, r.data.length]));
      expect(got[0]?.data?.equals(ranges[0]?.data as Buffer)).toBe(true);
      expect(got[1]?.data?.equals(ranges[1]?.data as Buffer)).toBe(true);
      expect(got[2]?.data).toBeUndefined();
    }
  });

  it('refuse damaged bodies as DATA_CORRUPTION', async () => {
    const enc = new FrameEncoder();
    const good = enc.encode(0, Buffer.alloc(65536, 'x'));
    const cases: Buffer[] = [
      Buffer.concat([good, good.subarray(0, 10)]),
      Buffer.from([9, ...good.subarray(1)]),
      (() => {
        const b = Buffer.from(good);
        b.fill(0xff, HEADER_BYTES, HEADER_BYTES + 8);
        return b;
      })(),
      (() => {
        const b = Buffer.from(good);
        b.writeUInt32LE(MAX_FRAME_BYTES + 1, 4);
        return b;
      })(),
    ];
    for (const body of cases) {
      await expect(decodeAll(chunked(body, [body.length]))).rejects.toSatisfy((err: unknown) =>
        isFerryError(err, 'DATA_CORRUPTION'),
      );
    }
  });
});

import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import zstd from 'zstd-napi/binding.js';
import { decodeChunkInto, encodeChunk, RAW, sealBody, ZSTD } from './chunk-codec.js';
import { RepoKeys } from './crypto.js';

const keys = new RepoKeys(Buffer.alloc(32, 3));
const key = Buffer.alloc(32, 4);
const dctx = new zstd.DCtx();
const CHUNK = 65536;

function decode(sealed: Buffer, id: Buffer, out = Buffer.alloc(CHUNK)): Buffer {
  const n = decodeChunkInto(
    keys,
    dctx,
    key,
    9,
    id,
    sealed,
    () => 'chunk x of a test',
    out,
    Buffer.alloc(sealed.length),
  );
  return out.subarray(0, n);
}

it('decodes raw and zstd chunks into the caller buffer', () => {
  for (const plain of [randomBytes(CHUNK), Buffer.alloc(CHUNK, 'words and more words ')]) {
    const id = keys.id(plain);
    expect(decode(encodeChunk(key, 9, id, plain), id).equals(plain)).toBe(true);
  }
});

it('names every way a blob can be wrong as DATA_CORRUPTION, never returning its bytes', () => {
  const plain = Buffer.alloc(CHUNK, 'text ');
  const id = keys.id(plain);
  const sealed = encodeChunk(key, 9, id, plain);
  const cases: Array<[Buffer, RegExp]> = [
    // Sealed by the key holder, but its content is not what the id says.
    [
      sealBody(key, 9, id, Buffer.concat([Buffer.of(RAW), Buffer.alloc(CHUNK, 'other ')])),
      /does not match its chunk id/,
    ],
    [sealBody(key, 9, id, Buffer.concat([Buffer.of(7), plain])), /unknown codec 7/],
    [sealBody(key, 9, id, Buffer.concat([Buffer.of(ZSTD), Buffer.alloc(100, 1)])), /does not decompress/],
    [sealBody(key, 9, id, Buffer.concat([Buffer.of(RAW), Buffer.alloc(CHUNK + 1)])), /longer than a chunk/],
    [
      Buffer.concat([sealed.subarray(0, 40), Buffer.of((sealed[40] as number) ^ 1), sealed.subarray(41)]),
      /failed authentication/,
    ],
    [sealed.subarray(0, 10), /truncated/],
  ];
  for (const [blob, message] of cases) {
    expect(() => decode(blob, id)).toThrow(message);
    try {
      decode(blob, id);
    } catch (err: unknown) {
      expect(err).toMatchObject({ code: 'DATA_CORRUPTION', message: expect.stringContaining('chunk x of a test') });
    }
  }
});

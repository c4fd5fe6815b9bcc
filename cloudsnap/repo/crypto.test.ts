import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { OBJECT_KEYS, open, openChunk, RepoKeys, seal, sealInto, TAG_SIZE } from './crypto.js';

/** Blob sealing and opening in place (OpenSSL through the native addon) against Node's own AES-GCM. */
describe('sealInto / openChunk', () => {
  const key = randomBytes(32);
  const aad = randomBytes(32);
  const where = (): string => 'chunk X';

  it('sealInto writes exactly what Node crypto seals, at the offset, and nothing around it', () => {
    for (const [size, counter] of [
      [0, 0],
      [1, 1],
      [65537, 4095],
      [200_000, 2 ** 32 + 7],
    ] as const) {
      const plain = randomBytes(size);
      const reference = seal(key, counter, plain, aad);
      const target = Buffer.alloc(size + TAG_SIZE + 10, 0xee);
      expect(sealInto(key, counter, plain, aad, target, 5)).toBe(size + TAG_SIZE);
      expect(target.subarray(5, 5 + size + TAG_SIZE).equals(reference)).toBe(true);
      expect(target.subarray(0, 5).equals(Buffer.alloc(5, 0xee))).toBe(true);
      expect(target.subarray(5 + size + TAG_SIZE).equals(Buffer.alloc(5, 0xee))).toBe(true);
      expect(open(key, counter, target.subarray(5, 5 + size + TAG_SIZE), aad, 'blob').equals(plain)).toBe(true);
    }
  });

  it('openChunk puts a raw payload (codec 0) in `out` and any other in `scratch`, sealed by Node crypto', () => {
    for (const [codec, size, counter] of [
      [0, 0, 3],
      [0, 65536, 2 ** 33],
      [1, 1, 9],
      [1, 40_000, 1],
      [7, 10, 2],
    ] as const) {
      const payload = randomBytes(size);
      const sealed = seal(key, counter, Buffer.concat([Buffer.of(codec), payload]), aad);
      const out = Buffer.alloc(65536, 0xaa);
      const scratch = Buffer.alloc(65536, 0xbb);
      const opened = openChunk(key, counter, sealed, aad, out, scratch, where);
      expect(opened % 256).toBe(codec);
      expect((opened - codec) / 256).toBe(size);
      const [into, untouched] = codec === 0 ? [out, scratch] : [scratch, out];
      expect(into.subarray(0, size).equals(payload)).toBe(true);
      expect(untouched.every((b) => b === (codec === 0 ? 0xbb : 0xaa))).toBe(true);
    }
  });

  it('fails as DATA_CORRUPTION naming the blob: altered byte, codec byte, tag, aad, nonce or key; truncated', () => {
    const sealed = seal(key, 3, Buffer.concat([Buffer.of(0), randomBytes(4096)]), aad);
    const out = Buffer.alloc(8192);
    const flip = (at: number): Buffer => {
      const s = Buffer.from(sealed);
      s[at] = (s[at] as number) ^ 1;
      return s;
    };
    const attempts: Array<[() => number, RegExp]> = [
      [() => openChunk(key, 3, flip(100), aad, out, out, where), /failed authentication/],
      [() => openChunk(key, 3, flip(0), aad, out, out, where), /failed authentication/],
      [() => openChunk(key, 3, flip(sealed.length - 1), aad, out, out, where), /failed authentication/],
      [() => openChunk(key, 3, sealed, randomBytes(32), out, out, where), /failed authentication/],
      [() => openChunk(key, 4, sealed, aad, out, out, where), /failed authentication/],
      [() => openChunk(randomBytes(32), 3, sealed, aad, out, out, where), /failed authentication/],
      [() => openChunk(key, 3, sealed.subarray(0, sealed.length - 1), aad, out, out, where), /failed authentication/],
      [() => openChunk(key, 3, sealed.subarray(0, TAG_SIZE), aad, out, out, where), /truncated/],
      [() => openChunk(key, 3, sealed, aad, Buffer.alloc(4095), out, where), /longer than a chunk/],
    ];
    for (const [attempt, reason] of attempts) {
      let caught: unknown;
      try {
        attempt();
      } catch (err: unknown) {
        caught = err;
      }
      expect(isFerryError(caught, 'DATA_CORRUPTION')).toBe(true);
      expect(String((caught as Error).message)).toMatch(/^chunk X /);
      expect(String((caught as Error).message)).toMatch(reason);
    }
  });

  it('refuses a target without room, a bad counter or a wrong-sized key, leaving the target as it was', () => {
    const target = Buffer.alloc(40, 1);
    expect(() => sealInto(key, 0, randomBytes(30), aad, target, 0)).toThrow(RangeError);
    expect(() => sealInto(key, 0, randomBytes(8), aad, target, 20)).toThrow(RangeError);
    expect(() => sealInto(key, -1, randomBytes(8), aad, target, 0)).toThrow(RangeError);
    expect(() => sealInto(key, 1.5, randomBytes(8), aad, target, 0)).toThrow(RangeError);
    expect(() => sealInto(randomBytes(16), 0, randomBytes(8), aad, target, 0)).toThrow(RangeError);
    expect(target.equals(Buffer.alloc(40, 1))).toBe(true);
  });
});

describe('RepoKeys.objectKey', () => {
  it('keeps at most OBJECT_KEYS keys, and a key derived again after making room is the same key', () => {
    const keys = new RepoKeys(randomBytes(32));
    const salts = Array.from({ length: OBJECT_KEYS * 3 }, () => randomBytes(32));
    const first = salts.map((s) => Buffer.from(keys.objectKey(s)));
    expect(keys.cachedObjectKeys).toBe(OBJECT_KEYS);
    expect(new Set(first.map((k) => k.toString('hex'))).size).toBe(salts.length);
    salts.forEach((s, i) => {
      expect(keys.objectKey(s).equals(first[i] as Buffer)).toBe(true);
    });
    expect(keys.cachedObjectKeys).toBe(OBJECT_KEYS);
    // A hit returns the cached buffer itself.
    const last = salts[salts.length - 1] as Buffer;
    expect(keys.objectKey(last)).toBe(keys.objectKey(last));
  });
});

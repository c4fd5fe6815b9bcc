import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/errors.js';
import { open, openInto, seal, sealInto, TAG_SIZE } from './crypto.js';

/** Blob sealing and opening in place (OpenSSL through the native addon) against Node's own AES-GCM. */
describe('sealInto / openInto', () => {
  const key = randomBytes(32);
  const aad = randomBytes(32);

  it('writes exactly what Node crypto seals, at the offset, and opens what Node crypto sealed', () => {
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
      const out = Buffer.alloc(size + 3);
      expect(openInto(key, counter, reference, aad, out, 'blob')).toBe(size);
      expect(out.subarray(0, size).equals(plain)).toBe(true);
    }
  });

  it('fails authentication as DATA_CORRUPTION naming the blob: altered byte, tag, aad, nonce or key', () => {
    const plain = randomBytes(4096);
    const sealed = seal(key, 3, plain, aad);
    const out = Buffer.alloc(4096);
    const attempts: Array<() => number> = [
      () => {
        const s = Buffer.from(sealed);
        s[100] = (s[100] as number) ^ 1;
        return openInto(key, 3, s, aad, out, 'chunk X');
      },
      () => {
        const s = Buffer.from(sealed);
        s[s.length - 1] = (s[s.length - 1] as number) ^ 1;
        return openInto(key, 3, s, aad, out, 'chunk X');
      },
      () => openInto(key, 3, sealed, randomBytes(32), out, 'chunk X'),
      () => openInto(key, 4, sealed, aad, out, 'chunk X'),
      () => openInto(randomBytes(32), 3, sealed, aad, out, 'chunk X'),
      () => openInto(key, 3, sealed.subarray(0, sealed.length - 1), aad, out, 'chunk X'),
    ];
    for (const attempt of attempts) {
      let caught: unknown;
      try {
        attempt();
      } catch (err: unknown) {
        caught = err;
      }
      expect(isFerryError(caught, 'DATA_CORRUPTION')).toBe(true);
      expect(String((caught as Error).message)).toContain('chunk X');
    }
  });

  it('rejects a blob shorter than a tag, or one whose plaintext would not fit, before decrypting', () => {
    const out = Buffer.alloc(10);
    expect(() => openInto(key, 0, Buffer.alloc(TAG_SIZE - 1), aad, out, 'b')).toThrow(/truncated/);
    expect(() => openInto(key, 0, seal(key, 0, randomBytes(11), aad), aad, out, 'b')).toThrow(/longer than a chunk/);
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

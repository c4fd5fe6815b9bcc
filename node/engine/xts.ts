/**
 * Encryption at rest of a volume's granules: AES-256-XTS, one data unit per 4 KiB granule, tweak = the granule's
 * index in the volume (its byte offset / 4096) as a 128-bit little-endian number (dm-crypt's `plain64`).
 *
 * Length-preserving and keyed by position in the volume, not in a file: a granule's ciphertext stays valid wherever
 * the layer tree moves it (merges and clones copy raw bytes between layers at the same volume offset), so only the
 * device's read and write paths encrypt or decrypt.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { FerryError } from '../../common/index.js';
import { GRANULE } from './constants.js';

/** Bytes of an AES-256-XTS key (two AES-256 keys). */
export const XTS_KEY_BYTES = 64;

/** The cipher name stored in a volume's encryption record. */
export const XTS_CIPHER = 'aes-256-xts';

/** Checks a data key: 64 bytes whose two halves differ (OpenSSL refuses equal halves). */
export function checkXtsKey(key: Buffer): void {
  if (key.length !== XTS_KEY_BYTES) {
    throw new FerryError('DATA_CORRUPTION', `a volume data key must be ${XTS_KEY_BYTES} bytes, got ${key.length}`);
  }
  if (key.subarray(0, 32).equals(key.subarray(32))) {
    throw new FerryError('DATA_CORRUPTION', 'a volume data key must have two different halves');
  }
}

/** Encrypts and decrypts whole granules of one volume's layer tree. */
export class GranuleCipher {
  private key: KeyObject | undefined;
  private readonly tweak = Buffer.alloc(16);

  /** @param key The 64-byte data key; it is copied into a KeyObject, so the caller may wipe its Buffer. */
  constructor(key: Buffer) {
    checkXtsKey(key);
    this.key = createSecretKey(key);
  }

  private keyFor(granule: number): KeyObject {
    if (this.key === undefined) throw new FerryError('FAILED_PRECONDITION', 'the volume key was released');
    this.tweak.writeUInt32LE(granule >>> 0, 0);
    this.tweak.writeUInt32LE(Math.floor(granule / 2 ** 32), 4);
    return this.key;
  }

  /**
   * Encrypts `length` bytes (whole granules) of `src` from `srcOffset`, whose first granule is `granule`, into `out`
   * (a new Buffer unless given; the source, often the caller's write buffer, is left as it is). Returns `out`.
   */
  encrypt(
    src: Buffer,
    srcOffset: number,
    length: number,
    granule: number,
    out: Buffer = Buffer.allocUnsafe(length),
  ): Buffer {
    checkWhole(length);
    if (out.length < length) throw new FerryError('INTERNAL', `encryption of ${length} bytes into ${out.length}`);
    for (let at = 0; at < length; at += GRANULE) {
      const g = granule + at / GRANULE;
      const c = createCipheriv(XTS_CIPHER, this.keyFor(g), this.tweak);
      c.update(src.subarray(srcOffset + at, srcOffset + at + GRANULE)).copy(out, at);
      c.final();
    }
    return out;
  }

  /** Decrypts `length` bytes (whole granules) of `buf` from `offset` in place; the first is granule `granule`. */
  decryptInPlace(buf: Buffer, offset: number, length: number, granule: number): void {
    checkWhole(length);
    for (let at = 0; at < length; at += GRANULE) {
      const g = granule + at / GRANULE;
      const d = createDecipheriv(XTS_CIPHER, this.keyFor(g), this.tweak);
      d.update(buf.subarray(offset + at, offset + at + GRANULE)).copy(buf, offset + at);
      d.final();
    }
  }

  /** Drops the key (a device does this on close); further use is FAILED_PRECONDITION. */
  release(): void {
    this.key = undefined;
  }
}

function checkWhole(length: number): void {
  if (length % GRANULE !== 0) throw new FerryError('INTERNAL', `encryption of ${length} bytes: not whole granules`);
}

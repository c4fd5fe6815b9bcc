/**
 * Repository cryptography. One 32-byte master secret per repository (wrapped by a KeyProvider, see FORMAT.md);
 * every other key is derived from it with HKDF-SHA256:
 *   chunk ids      HMAC-SHA256(K_id, plaintext)        K_id = HKDF(master, salt="", info="ferry/v1/chunk-id")
 *   object keys    AES-256-GCM key per object            K_obj = HKDF(master, salt=<32 random bytes of the object>,
 *                                                                     info="ferry/v1/object")
 * Each object (pack, index, manifest page, backup record) has its own random salt, hence its own key, and numbers
 * the nonces it uses 0, 1, 2, ... (96-bit big-endian counters): no key ever sees more than 2^32 nonces, and no
 * nonce repeats under a key.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { FerryError } from '../../common/index.js';
import { native } from '../../common/native/index.js';

export const KEY_SIZE = 32;
export const SALT_SIZE = 32;
export const TAG_SIZE = 16;
export const ID_SIZE = 32;

function hkdf(master: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, info, KEY_SIZE));
}

function nonce(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
  n.writeUInt32BE(counter >>> 0, 8);
  return n;
}

/** Object keys a repository keeps derived: well over the packs a restore reads from at once (restore.ts). */
export const OBJECT_KEYS = 64;

/** Keys of one repository, derived from its master secret. */
export class RepoKeys {
  private readonly idKey: Buffer;
  private readonly objectKeys = new Map<string, Buffer>();

  constructor(private readonly master: Buffer) {
    if (master.length !== KEY_SIZE) throw new FerryError('INTERNAL', 'repository master secret must be 32 bytes');
    this.idKey = hkdf(master, Buffer.alloc(0), 'ferry/v1/chunk-id');
  }

  /** Overwrites the master secret and every derived key with zeros (when an open repository is dropped). */
  wipe(): void {
    this.master.fill(0);
    this.idKey.fill(0);
    for (const key of this.objectKeys.values()) key.fill(0);
    this.objectKeys.clear();
  }

  /** The HMAC key of chunk ids, for worker threads that compute ids off the main thread. */
  get idKeyBytes(): Buffer {
    return this.idKey;
  }

  /** The keyed id of a chunk or manifest page: nobody without the key can confirm known content. */
  id(data: Buffer): Buffer {
    return createHmac('sha256', this.idKey).update(data).digest();
  }

  /**
   * The AES-256-GCM key of the object with this salt, cached: a restore decrypts many blobs of one pack, a few packs
   * at a time. At most OBJECT_KEYS are kept, the oldest making room (not wiped: a caller may still be using it). The
   * cache held up to 4096: every pack a job touched, so a 16 GiB volume's backup or restore kept about 650 keys
   * with their strings and buffers (some 300 KiB), a 1 GiB one's 40.
   */
  objectKey(salt: Buffer): Buffer {
    const k = salt.toString('hex');
    let key = this.objectKeys.get(k);
    if (key === undefined) {
      key = hkdf(this.master, salt, 'ferry/v1/object');
      if (this.objectKeys.size >= OBJECT_KEYS) this.objectKeys.delete(this.objectKeys.keys().next().value as string);
      this.objectKeys.set(k, key);
    }
    return key;
  }

  /** Object keys cached now (at most OBJECT_KEYS). */
  get cachedObjectKeys(): number {
    return this.objectKeys.size;
  }
}

/** Encrypts with AES-256-GCM; returns ciphertext followed by the 16-byte tag. */
export function seal(key: Buffer, counter: number, plaintext: Buffer, aad: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce(counter));
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/**
 * `seal` written straight into `target` at `at` (which must have room for plaintext + TAG_SIZE bytes); returns the
 * sealed length. Saves a buffer and a copy per blob when many are sealed into one object (OpenSSL through the native
 * addon, common/native/gcm.c: Node's cipher would return each blob in a new buffer).
 */
export function sealInto(
  key: Buffer,
  counter: number,
  plaintext: Buffer,
  aad: Buffer,
  target: Buffer,
  at: number,
): number {
  return native.gcmSealInto(key, counter, plaintext, aad, target, at);
}

/**
 * Opens a blob sealed as codec byte | payload, with no buffer allocated and no copy: a raw payload (codec 0) is
 * decrypted straight into `out`, any other into `scratch` (to be decompressed from there) (common/native/gcm.c).
 * Returns payload length * 256 + codec. DATA_CORRUPTION naming `what` (called only then) when authentication fails
 * or the payload does not fit where its codec sends it; what was written there must not be used.
 */
export function openChunk(
  key: Buffer,
  counter: number,
  sealed: Buffer,
  aad: Buffer,
  out: Buffer,
  scratch: Buffer,
  what: () => string,
): number {
  if (sealed.length < TAG_SIZE + 1) throw new FerryError('DATA_CORRUPTION', `${what()} is truncated`);
  const opened = native.gcmOpenChunk(key, counter, sealed, aad, out, scratch);
  if (opened === -2) throw new FerryError('DATA_CORRUPTION', `${what()} is longer than a chunk`);
  if (opened < 0) throw unauthentic(what());
  return opened;
}

function unauthentic(what: string, cause?: unknown): FerryError {
  return new FerryError(
    'DATA_CORRUPTION',
    `${what} failed authentication: it was altered, truncated, or belongs to another repository or key`,
    { cause },
  );
}

/** Decrypts what `seal` produced; `what` names the object for the DATA_CORRUPTION message. */
export function open(key: Buffer, counter: number, sealed: Buffer, aad: Buffer, what: string): Buffer {
  if (sealed.length < TAG_SIZE) throw new FerryError('DATA_CORRUPTION', `${what} is truncated`);
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce(counter));
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const head = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    const tail = d.final();
    // GCM is a stream mode: final() yields nothing more, so the plaintext needs no second copy.
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch (err: unknown) {
    throw unauthentic(what, err);
  }
}

export function newSalt(): Buffer {
  return randomBytes(SALT_SIZE);
}

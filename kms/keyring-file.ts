/**
 * The local keyring file. Layout (bytes):
 *
 *   0   8  magic "FERRYKR1"
 *   8   1  format version, 1
 *   9   1  key source: 1 = passphrase through scrypt, 2 = raw 32-byte key file
 *  10   1  scrypt log2(N) (15)        } zero for a key file
 *  11   1  scrypt r (8)               }
 *  12   1  scrypt p (1)               }
 *  13  16  scrypt salt (random)       }
 *  29  12  AES-256-GCM nonce (random on every write)
 *  41  16  AES-256-GCM tag
 *  57   -  ciphertext of the body, UTF-8 JSON:
 *          { "keks": { NAME: { "created", "destroyed"?, "versions": [{ "version", "created", "key"? }] } } }
 *          where "key" is a version's 32 bytes in base64, absent once the KEK is destroyed.
 *
 * Bytes 0-28 (the header) are the GCM additional data, so neither the KDF settings nor the salt can be changed
 * unnoticed.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { FerryError } from '../common/index.js';

const MAGIC = Buffer.from('FERRYKR1', 'ascii');
const FORMAT_VERSION = 1;
const HEADER_BYTES = 29;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SALT_BYTES = 16;

/** Where the file key comes from. */
export type KeySource = { kind: 'passphrase'; passphrase: string } | { kind: 'key-file'; key: Buffer };

/** scrypt cost: N = 2^15, r = 8, p = 1 (about 32 MiB and a tenth of a second). */
export const SCRYPT = { log2N: 15, r: 8, p: 1 } as const;

/** One version of a KEK as the body stores it. */
export interface KekVersionRecord {
  version: number;
  created: string;
  /** The 32 key bytes, base64; absent once destroyed. */
  key?: string;
}

/** One KEK as the body stores it. */
export interface KekRecord {
  created: string;
  /** When it was destroyed (crypto-shredded), RFC 3339. */
  destroyed?: string;
  versions: KekVersionRecord[];
}

/** The decrypted content of the file. */
export interface KeyringBody {
  keks: Record<string, KekRecord>;
}

/** The parsed header plus the key it yields; kept open so writes need no new scrypt run. */
export interface KeyringHeader {
  bytes: Buffer;
  source: 'passphrase' | 'key-file';
}

function deriveScrypt(passphrase: string, salt: Buffer, log2N: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** log2N;
  return new Promise((resolve, reject) => {
    scrypt(passphrase, salt, 32, { N, r, p, maxmem: 256 * N * r }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A fresh header for a new keyring (new salt for a passphrase). */
export function newHeader(source: KeySource['kind']): KeyringHeader {
  const bytes = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(bytes, 0);
  bytes[8] = FORMAT_VERSION;
  if (source === 'passphrase') {
    bytes[9] = 1;
    bytes[10] = SCRYPT.log2N;
    bytes[11] = SCRYPT.r;
    bytes[12] = SCRYPT.p;
    randomBytes(SALT_BYTES).copy(bytes, 13);
  } else {
    bytes[9] = 2;
  }
  return { bytes, source };
}

/** Reads the header of `file`; DATA_CORRUPTION when it is not a keyring file of a known format. */
export function parseHeader(file: Buffer, path: string): KeyringHeader {
  if (file.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES || !file.subarray(0, 8).equals(MAGIC)) {
    throw new FerryError('DATA_CORRUPTION', `${path} is not a Ferry keyring file (bad magic or too short)`);
  }
  if (file[8] !== FORMAT_VERSION) {
    throw new FerryError('FAILED_PRECONDITION', `${path} has keyring format ${file[8]}; this Ferry reads format 1`);
  }
  const kind = file[9];
  if (kind !== 1 && kind !== 2) throw new FerryError('DATA_CORRUPTION', `${path} names an unknown key source`);
  return { bytes: Buffer.from(file.subarray(0, HEADER_BYTES)), source: kind === 1 ? 'passphrase' : 'key-file' };
}

/** The AES key that protects the file: scrypt of the passphrase with the header's settings, or the key file. */
export async function fileKey(header: KeyringHeader, source: KeySource, path: string): Promise<Buffer> {
  if (header.source !== source.kind) {
    const wants = header.source === 'passphrase' ? 'a passphrase' : 'a key file';
    throw new FerryError('FAILED_PRECONDITION', `keyring ${path} is protected by ${wants}; open it with that`);
  }
  if (source.kind === 'key-file') return Buffer.from(source.key);
  const b = header.bytes;
  const [log2N, r, p] = [b[10] ?? 0, b[11] ?? 0, b[12] ?? 0];
  if (log2N < 10 || log2N > 22 || r < 1 || r > 32 || p < 1 || p > 16) {
    throw new FerryError('DATA_CORRUPTION', `keyring ${path} has scrypt settings out of range`);
  }
  return deriveScrypt(source.passphrase, b.subarray(13, 13 + SALT_BYTES), log2N, r, p);
}

/** Encrypts `body` into a whole file under `key`, with a fresh nonce. */
export function encodeKeyring(header: KeyringHeader, key: Buffer, body: KeyringBody): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(header.bytes);
  const plaintext = Buffer.from(JSON.stringify(body), 'utf8');
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  plaintext.fill(0);
  return Buffer.concat([header.bytes, nonce, cipher.getAuthTag(), ciphertext]);
}

/**
 * Decrypts a whole file. UNAUTHENTICATED when the key does not open it (wrong passphrase or key file, or the file was
 * altered); DATA_CORRUPTION when it opens but the body is not a keyring.
 */
export function decodeKeyring(header: KeyringHeader, key: Buffer, file: Buffer, path: string): KeyringBody {
  const nonce = file.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
  const tag = file.subarray(HEADER_BYTES + NONCE_BYTES, HEADER_BYTES + NONCE_BYTES + TAG_BYTES);
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(header.bytes);
    decipher.setAuthTag(tag);
    plaintext = Buffer.concat([
      decipher.update(file.subarray(HEADER_BYTES + NONCE_BYTES + TAG_BYTES)),
      decipher.final(),
    ]);
  } catch (err: unknown) {
    const what = header.source === 'passphrase' ? 'the passphrase is wrong' : 'the key file is not the right one';
    throw new FerryError('UNAUTHENTICATED', `cannot open keyring ${path}: ${what}, or the file was altered`, {
      cause: err,
    });
  }
  try {
    const body: unknown = JSON.parse(plaintext.toString('utf8'));
    if (typeof body !== 'object' || body === null || !('keks' in body) || typeof body.keks !== 'object') {
      throw new Error('no keks object');
    }
    return body as KeyringBody;
  } catch {
    // No cause: a JSON parse error quotes the text it failed on, which holds key material.
    throw new FerryError('DATA_CORRUPTION', `keyring ${path} opened but does not hold a keyring body`);
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Sealed small objects (index, manifest page, backup record).
 *
 * Layout: "FRYOBJ01" (8 bytes) | salt (32) | AES-256-GCM(K_obj(salt), nonce 0, aad = magic | object key) of the
 * zstd-compressed payload, tag last. The object's key (its path in the store) is bound in, so an object moved or
 * renamed no longer opens.
 */
import { compress, decompress } from 'zstd-napi';
import { FerryError } from '../../common/index.js';
import { newSalt, open, type RepoKeys, SALT_SIZE, seal } from './crypto.js';

const MAGIC = Buffer.from('FRYOBJ01', 'ascii');

export function sealObject(keys: RepoKeys, objectKey: string, payload: Buffer): Buffer {
  const salt = newSalt();
  const aad = Buffer.concat([MAGIC, Buffer.from(objectKey, 'utf8')]);
  return Buffer.concat([MAGIC, salt, seal(keys.objectKey(salt), 0, compress(payload), aad)]);
}

export function openObject(keys: RepoKeys, objectKey: string, sealed: Buffer): Buffer {
  if (sealed.length < MAGIC.length + SALT_SIZE || !sealed.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new FerryError('DATA_CORRUPTION', `object ${objectKey} is not a Ferry object (bad header or truncated)`);
  }
  const salt = sealed.subarray(MAGIC.length, MAGIC.length + SALT_SIZE);
  const aad = Buffer.concat([MAGIC, Buffer.from(objectKey, 'utf8')]);
  const body = open(keys.objectKey(salt), 0, sealed.subarray(MAGIC.length + SALT_SIZE), aad, `object ${objectKey}`);
  try {
    return decompress(body);
  } catch (err: unknown) {
    throw new FerryError('DATA_CORRUPTION', `object ${objectKey} does not decompress`, { cause: err });
  }
}

export function sealJson(keys: RepoKeys, objectKey: string, value: unknown): Buffer {
  return sealObject(keys, objectKey, Buffer.from(JSON.stringify(value), 'utf8'));
}

export function openJson<T>(keys: RepoKeys, objectKey: string, sealed: Buffer): T {
  return JSON.parse(openObject(keys, objectKey, sealed).toString('utf8')) as T;
}

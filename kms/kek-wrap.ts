/**
 * The local keyring's wrap format, shared by its two backends (the keyring file, the cluster store): AES-256-GCM
 * under one KEK version with a random 96-bit nonce, additional data = canonical JSON of { kek, version, context },
 * ciphertext = base64(nonce | tag | ct). The same format on both, so what a node wrapped before it joined a cluster
 * unwraps in the cluster once its KEKs are moved there.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { checkWrappedKey, wrapAad, wrappedKeyMismatch } from './context.js';
import type { EncryptionContext, KeyProvider, WrappedKey } from './types.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Wraps `plaintext` under `key` (version `version` of KEK `kek`); returns the base64 ciphertext. */
export function sealUnderKek(
  key: Buffer,
  kek: string,
  version: number,
  plaintext: Buffer,
  context: Record<string, string>,
): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(wrapAad(kek, version, context));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, cipher.getAuthTag(), ct]).toString('base64');
}

/** Opens what `sealUnderKek` made; DATA_CORRUPTION when it does not authenticate. */
export function openUnderKek(
  key: Buffer,
  kek: string,
  version: number,
  ciphertext: string,
  context: Record<string, string>,
): Buffer {
  const raw = Buffer.from(ciphertext, 'base64');
  if (raw.length <= NONCE_BYTES + TAG_BYTES) throw wrappedKeyMismatch();
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, NONCE_BYTES));
    decipher.setAAD(wrapAad(kek, version, context));
    decipher.setAuthTag(raw.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES + TAG_BYTES)), decipher.final()]);
  } catch (err: unknown) {
    throw wrappedKeyMismatch(err);
  }
}

/**
 * Rewraps through the keyring's own unwrap and wrap (the plaintext passes through this process, wiped afterwards):
 * under the newest version of the KEK that wrapped it.
 */
export async function rewrapThrough(
  keyring: Pick<KeyProvider, 'wrap' | 'unwrap'>,
  wrapped: WrappedKey,
  context: EncryptionContext,
): Promise<WrappedKey> {
  const plaintext = await keyring.unwrap(wrapped, context);
  try {
    return await keyring.wrap(checkWrappedKey(wrapped).kek_id, plaintext, context);
  } finally {
    plaintext.fill(0);
  }
}

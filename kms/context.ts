/**
 * Checks shared by every key provider: KEK names, encryption contexts, the size of what may be wrapped, and the
 * canonical JSON that binds a wrap to its KEK, version and context.
 */
import { FerryError, invalidArgument } from '../common/index.js';
import type { EncryptionContext, WrappedKey } from './types.js';

/** Largest secret `wrap` accepts: 4 KiB. */
export const MAX_WRAP_BYTES = 4096;

/** Longest KEK name. */
export const MAX_KEK_NAME_LENGTH = 128;

const KEK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Rejects a KEK name that is not 1-128 letters, digits, '.', '_', '-' (starting with a letter or digit). */
export function checkKekName(name: unknown, field = 'kek'): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(field, 'a KEK name is required');
  if (name.length > MAX_KEK_NAME_LENGTH || !KEK_NAME.test(name)) {
    throw invalidArgument(
      field,
      `must be 1-${MAX_KEK_NAME_LENGTH} letters, digits, ".", "_", "-", starting with a letter or digit`,
    );
  }
  return name;
}

/** Rejects a context that is not an object of string values. */
export function checkContext(context: unknown): EncryptionContext {
  if (typeof context !== 'object' || context === null || Array.isArray(context)) {
    throw invalidArgument('context', 'must be an object of string values');
  }
  for (const [key, value] of Object.entries(context)) {
    if (typeof value !== 'string') throw invalidArgument(`context.${key}`, 'must be a string');
  }
  return context as EncryptionContext;
}

/** Rejects a secret to wrap that is not a Buffer of 1 to MAX_WRAP_BYTES bytes. */
export function checkPlaintext(plaintext: unknown): Buffer {
  if (!Buffer.isBuffer(plaintext)) throw invalidArgument('plaintext', 'must be a Buffer');
  if (plaintext.length === 0 || plaintext.length > MAX_WRAP_BYTES) {
    throw invalidArgument('plaintext', `must be 1 to ${MAX_WRAP_BYTES} bytes`);
  }
  return plaintext;
}

/** Checks the shape of a wrapped key (it usually comes back from storage) before a provider reads it. */
export function checkWrappedKey(wrapped: unknown): WrappedKey {
  const w = wrapped as Partial<Record<keyof WrappedKey, unknown>> | null;
  if (typeof w !== 'object' || w === null) throw invalidArgument('wrapped', 'must be a wrapped key object');
  if (typeof w.provider !== 'string') throw invalidArgument('wrapped.provider', 'must be a string');
  if (typeof w.kek_id !== 'string') throw invalidArgument('wrapped.kek_id', 'must be a string');
  if (typeof w.kek_version !== 'number' || !Number.isSafeInteger(w.kek_version) || w.kek_version < 1) {
    throw invalidArgument('wrapped.kek_version', 'must be a whole number from 1');
  }
  if (typeof w.ciphertext !== 'string') throw invalidArgument('wrapped.ciphertext', 'must be a base64 string');
  return { provider: w.provider, kek_id: w.kek_id, kek_version: w.kek_version, ciphertext: w.ciphertext };
}

/** JSON with object keys sorted at every level, so equal values always give equal bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The additional authenticated data of a wrap: canonical JSON of `{ kek, version, context }`. */
export function wrapAad(kek: string, version: number, context: EncryptionContext): Buffer {
  return Buffer.from(canonicalJson({ kek, version, context }), 'utf8');
}

/** The one answer for a wrapped key that fails authentication. */
export function wrappedKeyMismatch(cause?: unknown): FerryError {
  return new FerryError('DATA_CORRUPTION', 'wrapped key does not match its context or was altered', { cause });
}

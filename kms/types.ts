/**
 * The key-provider contract: envelope encryption of small secrets (data keys, repository master secrets) under a
 * named key-encryption key (KEK) that never leaves the provider. Providers: the local keyring (embedded default),
 * HashiCorp Vault Transit and AWS KMS. An encryption context is bound into every wrap: unwrapping with a
 * different context fails, so a wrapped key copied elsewhere is useless. Rejections are FerryErrors: NOT_FOUND
 * (unknown KEK), PERMISSION_DENIED (KEK destroyed or access revoked: the message says the data is unreadable),
 * DATA_CORRUPTION (wrapped key tampered or context mismatch), UNAVAILABLE (provider unreachable, naming it).
 */

/** Key/value pairs bound into a wrap, e.g. { repository: '...', tenant: '...' }. */
export type EncryptionContext = Record<string, string>;

/** A data key wrapped by a KEK; JSON-safe, stored next to what it protects. */
export interface WrappedKey {
  /** Provider name, e.g. 'local', 'vault', 'aws-kms'. */
  provider: string;
  /** The KEK's id as the provider names it. */
  kek_id: string;
  /** KEK version that wrapped it. */
  kek_version: number;
  /** Provider-specific ciphertext, base64. */
  ciphertext: string;
}

export interface DataKey {
  /** The key itself; keep it in memory only. */
  plaintext: Buffer;
  wrapped: WrappedKey;
}

export interface KekInfo {
  id: string;
  /** Newest version: new wraps use it. */
  version: number;
}

export interface KeyProvider {
  readonly name: string;
  /** A new random 32-byte data key, with its wrapped form. */
  generateDataKey(kek: string, context: EncryptionContext): Promise<DataKey>;
  /** Wraps a given secret (up to 4 KiB). */
  wrap(kek: string, plaintext: Buffer, context: EncryptionContext): Promise<WrappedKey>;
  unwrap(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer>;
  /** Re-wraps under the KEK's newest version without exposing the plaintext to the caller. */
  rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey>;
  describeKek(kek: string): Promise<KekInfo>;
}

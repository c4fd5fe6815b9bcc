/**
 * How the engine gets the data keys of encrypted volumes without knowing about key providers: the node injects a
 * `VolumeKeyResolver` (the daemon wires one over its keyring and key providers; see kms/volume-keys.ts). The engine
 * keeps only the wrapped key, in the volume's record; it unwraps it each time an export of the volume (or of one of
 * its snapshots) is opened, and the device drops it on close.
 */
import { FerryError, isFerryError } from '../../common/index.js';

/** Label every encrypted volume carries (value 'true'); set at creation, it cannot be changed. */
export const ENCRYPTED_LABEL = 'ferry.io/encrypted';
/** Label naming the KEK of the volume's data key (and of its backups). */
export const KEK_LABEL = 'ferry.io/kek';
/** Label naming the key provider of `ferry.io/kek`. */
export const KEY_PROVIDER_LABEL = 'ferry.io/key-provider';

/** A data key wrapped by a key provider (the same fields as the key providers' `WrappedKey`), JSON-safe. */
export interface WrappedVolumeKey {
  /** Provider name, e.g. 'local', 'vault', 'aws-kms'. */
  provider: string;
  /** The KEK's id as the provider names it. */
  kek_id: string;
  /** KEK version that wrapped it. */
  kek_version: number;
  /** Provider-specific ciphertext, base64. */
  ciphertext: string;
}

/**
 * The encryption of a volume's layer tree, stored in its volume record. Clones of the volume (and clones of its
 * snapshots) share the tree's layers, so they carry a copy of the same record and read with the same key.
 */
export interface VolumeEncryption {
  /** Always 'aes-256-xts' (per 4 KiB granule, tweak = granule index in the volume). */
  cipher: 'aes-256-xts';
  /** The KEK that wraps the data key, as it was named at creation (e.g. 'default', 'alias/ferry'). */
  kek: string;
  /** The key provider holding the KEK ('local', 'vault', 'aws-kms'). */
  key_provider: string;
  /** Id of the volume the key was made for: bound into the wrap's encryption context. Clones keep their origin's. */
  key_volume_id: string;
  /** The 64-byte data key, wrapped. */
  wrapped: WrappedVolumeKey;
}

/** Makes and opens volume data keys; the engine's only access to key providers. */
export interface VolumeKeyResolver {
  /**
   * A new random 64-byte AES-XTS data key for volume `volumeId`, wrapped under `kek` of `keyProvider` with an
   * encryption context binding the volume id. `kek` and `keyProvider` default to the resolver's (e.g. the local
   * keyring's `default`). Rejects with INVALID_ARGUMENT (field `kek` or `key_provider`), NOT_FOUND (no such KEK),
   * FAILED_PRECONDITION (no such provider on this node), PERMISSION_DENIED, UNAVAILABLE.
   */
  createKey(request: {
    volumeId: string;
    kek?: string;
    keyProvider?: string;
  }): Promise<{ key: Buffer; encryption: VolumeEncryption }>;
  /** The plaintext data key of a stored encryption record (the caller wipes it). Same rejections as the provider's. */
  unwrapKey(encryption: VolumeEncryption): Promise<Buffer>;
  /**
   * Why the data key can never be unwrapped again (e.g. "KEK team-a destroyed"), from what the node knows in memory,
   * or undefined. Called for every volume listing, so it must not ask a remote provider. Optional: default unknown.
   */
  unusable?(encryption: Pick<VolumeEncryption, 'kek' | 'key_provider'>): string | undefined;
}

/** The error for an encrypted volume whose key cannot be unwrapped: it names the KEK and keeps the provider's code. */
export function keyUnavailable(volume: string, encryption: VolumeEncryption, err: unknown): FerryError {
  const detail = err instanceof Error ? err.message : String(err);
  const code = isFerryError(err) ? err.code : 'INTERNAL';
  return new FerryError(
    code,
    `encrypted volume ${volume} cannot be opened: its data key is wrapped under KEK "${encryption.kek}" of key provider "${encryption.key_provider}", which could not unwrap it: ${detail}`,
    { cause: err },
  );
}

/** The error for encryption asked of a node that has no key resolver. */
export function noResolver(what: string): FerryError {
  return new FerryError(
    'FAILED_PRECONDITION',
    `${what}: this engine was opened without a key resolver (a ferry node always has one; pass EngineOptions.keys)`,
  );
}

/**
 * Data keys of encrypted volumes (the block engine's encryption at rest): a random 64-byte AES-256-XTS key per
 * volume, wrapped by a KEK of one of the node's key providers, with the encryption context
 * `{ "ferry.io/volume": <volume id> }` so a wrapped key copied to another volume's record does not unwrap there.
 * The result has the shape of the engine's `VolumeKeyResolver` (node/engine/keys.ts); kms does not import node, the
 * daemon passes it to `openEngine({ keys })`.
 */
import { randomBytes } from 'node:crypto';
import { invalidArgument } from '../common/index.js';
import { DEFAULT_KEK } from './default-keyring.js';
import { LOCAL_PROVIDER } from './local-keyring.js';
import { KEY_PROVIDER_NAMES, type KeyProviderLookup } from './registry.js';
import type { WrappedKey } from './types.js';

/** The context key bound into every volume key wrap. */
export const VOLUME_CONTEXT_KEY = 'ferry.io/volume';

/** Bytes of a volume data key (AES-256-XTS takes two AES-256 keys). */
const VOLUME_KEY_BYTES = 64;

/** What is stored about an encrypted volume's key (the engine's `VolumeEncryption`). */
export interface VolumeKeyRecord {
  cipher: 'aes-256-xts';
  /** The KEK, as named at creation. */
  kek: string;
  /** Name of the provider holding the KEK. */
  key_provider: string;
  /** The volume id bound into the wrap's context. */
  key_volume_id: string;
  wrapped: WrappedKey;
}

/** Makes and unwraps volume data keys (the engine's `VolumeKeyResolver`). */
export interface VolumeKeys {
  /**
   * A new key for `volumeId` under `kek` (default `default` for the local keyring, required for the others) of
   * `keyProvider` (default `local`). INVALID_ARGUMENT on `kek` or `key_provider`; the provider's own rejections.
   */
  createKey(request: {
    volumeId: string;
    kek?: string;
    keyProvider?: string;
  }): Promise<{ key: Buffer; encryption: VolumeKeyRecord }>;
  /** The plaintext key of a stored record, from the provider that wrapped it. */
  unwrapKey(encryption: VolumeKeyRecord): Promise<Buffer>;
  /**
   * Why the key of a stored record can never be unwrapped again, as far as this node knows without asking a remote
   * provider (a destroyed local KEK: "KEK team-a destroyed"), or undefined. Memory only: called for every listing.
   */
  unusable(encryption: Pick<VolumeKeyRecord, 'kek' | 'key_provider'>): string | undefined;
}

/** Options of `volumeKeys`. */
export interface VolumeKeysOptions {
  /** The node's key providers by name (e.g. `KeyProviders.lookup`). */
  providers: KeyProviderLookup;
  /** The local keyring, to tell a volume whose KEK was destroyed. Default none: `unusable` then knows nothing. */
  keyring?: { destroyedAt(name: string): string | undefined };
}

function newKey(): Buffer {
  for (;;) {
    const key = randomBytes(VOLUME_KEY_BYTES);
    // XTS refuses a key whose halves are equal (a 2^-256 chance, but cheap to rule out).
    if (!key.subarray(0, 32).equals(key.subarray(32))) return key;
  }
}

/** Volume data keys over the node's key providers. */
export function volumeKeys(options: VolumeKeysOptions): VolumeKeys {
  const context = (volumeId: string): Record<string, string> => ({ [VOLUME_CONTEXT_KEY]: volumeId });
  return {
    async createKey(request) {
      const providerName = request.keyProvider ?? LOCAL_PROVIDER;
      if (!(KEY_PROVIDER_NAMES as readonly string[]).includes(providerName)) {
        throw invalidArgument('key_provider', `must be one of ${KEY_PROVIDER_NAMES.join(', ')}`);
      }
      const provider = options.providers(providerName);
      const kek = request.kek ?? (providerName === LOCAL_PROVIDER ? DEFAULT_KEK : undefined);
      if (kek === undefined) {
        throw invalidArgument('kek', `a KEK name is required for the "${providerName}" key provider`);
      }
      const key = newKey();
      try {
        const wrapped = await provider.wrap(kek, key, context(request.volumeId));
        const encryption: VolumeKeyRecord = {
          cipher: 'aes-256-xts',
          kek,
          key_provider: providerName,
          key_volume_id: request.volumeId,
          wrapped,
        };
        return { key, encryption };
      } catch (err: unknown) {
        key.fill(0);
        throw err;
      }
    },
    async unwrapKey(encryption) {
      return options.providers(encryption.key_provider).unwrap(encryption.wrapped, context(encryption.key_volume_id));
    },
    unusable(encryption) {
      if (encryption.key_provider !== LOCAL_PROVIDER) return undefined;
      const when = options.keyring?.destroyedAt(encryption.kek);
      return when === undefined ? undefined : `KEK ${encryption.kek} destroyed`;
    },
  };
}

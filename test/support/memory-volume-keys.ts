/**
 * An in-memory VolumeKeyResolver for engine tests: KEKs are random AES-256-GCM keys held here, wraps bind the volume
 * id as additional data, and a KEK can be destroyed (its unwraps then fail PERMISSION_DENIED naming it), as the local
 * keyring's do. The node itself uses kms/volume-keys.ts over its real key providers.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { FerryError } from '../../common/index.js';
import type { VolumeEncryption, VolumeKeyResolver } from '../../node/index.js';

export interface MemoryVolumeKeys extends VolumeKeyResolver {
  /** Calls so far. */
  calls: { create: number; unwrap: number };
  /** Every plaintext data key handed out, to look for on disk. */
  issued: Buffer[];
  /** Makes a KEK's wraps unreadable. */
  destroy(kek: string): void;
}

export function memoryVolumeKeys(): MemoryVolumeKeys {
  const keks = new Map<string, Buffer | undefined>();
  const kekOf = (name: string): Buffer => {
    if (!keks.has(name)) keks.set(name, randomBytes(32));
    const key = keks.get(name);
    if (key === undefined) {
      throw new FerryError('PERMISSION_DENIED', `KEK "${name}" was destroyed; data protected by it is unreadable`);
    }
    return key;
  };
  const self: MemoryVolumeKeys = {
    calls: { create: 0, unwrap: 0 },
    issued: [],
    destroy: (name) => {
      keks.set(name, undefined);
    },
    async createKey({ volumeId, kek, keyProvider }) {
      self.calls.create++;
      const name = kek ?? 'default';
      const key = randomBytes(64);
      self.issued.push(Buffer.from(key));
      const nonce = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', kekOf(name), nonce);
      c.setAAD(Buffer.from(volumeId));
      const ct = Buffer.concat([c.update(key), c.final()]);
      const encryption: VolumeEncryption = {
        cipher: 'aes-256-xts',
        kek: name,
        key_provider: keyProvider ?? 'local',
        key_volume_id: volumeId,
        wrapped: {
          provider: keyProvider ?? 'local',
          kek_id: name,
          kek_version: 1,
          ciphertext: Buffer.concat([nonce, c.getAuthTag(), ct]).toString('base64'),
        },
      };
      return { key, encryption };
    },
    async unwrapKey(encryption) {
      self.calls.unwrap++;
      const raw = Buffer.from(encryption.wrapped.ciphertext, 'base64');
      const d = createDecipheriv('aes-256-gcm', kekOf(encryption.kek), raw.subarray(0, 12));
      d.setAAD(Buffer.from(encryption.key_volume_id));
      d.setAuthTag(raw.subarray(12, 28));
      try {
        return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
      } catch (err: unknown) {
        throw new FerryError('DATA_CORRUPTION', 'wrapped key does not match its context or was altered', {
          cause: err,
        });
      }
    },
  };
  return self;
}

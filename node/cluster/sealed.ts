/**
 * Secrets every node of a cluster shares (the API's signing secret, the cluster CA's key, the keyring's KEKs), kept
 * in the cluster store sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the cluster secret that every
 * node is given when it starts (`--cluster-secret-file`). The store alone (an etcd backup, a snooping operator)
 * reveals none of them; the key name is bound into each seal, so a sealed value moved to another name does not open.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { FerryError } from '../../common/index.js';
import type { ClusterStore } from './types.js';

/** Prefix of the sealed values in the store. */
export const SECRETS_PREFIX = '/ferry/secrets/';

interface SealedValue {
  /** base64: 12-byte nonce, ciphertext, 16-byte tag. */
  sealed: string;
}

/** The shared secrets of one cluster. */
export class ClusterSecrets {
  private readonly key: Buffer;

  /** `clusterSecret`: at least 32 bytes, the same on every node of the cluster. */
  constructor(
    private readonly store: ClusterStore,
    clusterSecret: Buffer,
  ) {
    if (clusterSecret.length < 32) {
      throw new FerryError('INVALID_ARGUMENT', 'the cluster secret must be at least 32 bytes');
    }
    this.key = Buffer.from(hkdfSync('sha256', clusterSecret, Buffer.alloc(0), 'ferry cluster secrets v1', 32));
  }

  /** The secret `name`, or undefined. DATA_CORRUPTION when it does not open (wrong cluster secret, or tampered). */
  async get(name: string): Promise<Buffer | undefined> {
    const value = await this.store.get<SealedValue>(SECRETS_PREFIX + name);
    return value === undefined ? undefined : this.open(name, value);
  }

  /** Sets the secret `name` (replacing it). */
  async put(name: string, secret: Buffer): Promise<void> {
    await this.store.put(SECRETS_PREFIX + name, this.seal(name, secret));
  }

  /** Removes the secret `name` (nothing when absent). */
  async delete(name: string): Promise<void> {
    await this.store.delete(SECRETS_PREFIX + name);
  }

  /** The names of the secrets under `prefix` (a name prefix, e.g. `keyring/`). */
  async names(prefix: string): Promise<string[]> {
    const entries = await this.store.list(SECRETS_PREFIX + prefix);
    return entries.map((e) => e.key.slice(SECRETS_PREFIX.length));
  }

  /**
   * The secret `name`; the first caller in the cluster creates it with `make` (a transaction on "absent", so every
   * node ends with the same value however many start at once).
   */
  async obtain(name: string, make: () => Buffer): Promise<Buffer> {
    const key = SECRETS_PREFIX + name;
    for (;;) {
      const existing = await this.store.get<SealedValue>(key);
      if (existing !== undefined) return this.open(name, existing);
      const fresh = make();
      const result = await this.store.txn(
        [{ key, modRevision: 0 }],
        [{ op: 'put', key, value: this.seal(name, fresh) }],
      );
      if (result.succeeded) return fresh;
    }
  }

  private seal(name: string, secret: Buffer): SealedValue {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(name));
    const body = Buffer.concat([cipher.update(secret), cipher.final()]);
    return { sealed: Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64') };
  }

  private open(name: string, value: SealedValue): Buffer {
    const raw = Buffer.from(value.sealed, 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(name));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
    } catch (err: unknown) {
      throw new FerryError(
        'DATA_CORRUPTION',
        `the cluster secret "${name}" does not open with this node's cluster secret: give the node the cluster secret file of the other nodes`,
        { cause: err },
      );
    }
  }
}

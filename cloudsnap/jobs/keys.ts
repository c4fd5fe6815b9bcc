/**
 * Operations on KEKs across the node's repositories: list and create KEKs of the local keyring, rotate a KEK and
 * rewrap the master secret of every repository reached through credentials that use it, and destroy a local KEK
 * (crypto-shredding: every backup under it becomes unreadable, for good).
 */
import { FerryError, isFerryError } from '../../common/index.js';
import { DEFAULT_KEK, type KeyProviders, LOCAL_PROVIDER, type LocalKekInfo } from '../../kms/index.js';
import { type CredentialInfo, type CredentialStore, credentialKek } from '../credentials/index.js';
import { type RewrapResult, rewrapConfig } from '../repo/config.js';
import { CONFIG_KEY } from '../repo/layout.js';
import type { KekRef } from '../repo/repository.js';
import type { ObjectStore } from '../store/index.js';
import { readMarkers } from './kek-repos.js';
import type { RepositoryPool } from './repo-pool.js';

/** What KeyService needs of the local keyring (LocalKeyring has it). */
export interface LocalKekAdmin {
  listKeks(): Promise<LocalKekInfo[]>;
  createKek(name: string): Promise<LocalKekInfo>;
  rotateKek(name: string): Promise<LocalKekInfo>;
  destroyKek(name: string): Promise<void>;
}

export interface KeyServiceOptions {
  /** The node's local keyring. */
  keyring: LocalKekAdmin;
  /** The node's key providers. */
  providers: KeyProviders;
  credentials: CredentialStore;
  /** The open repositories of the node's jobs: emptied after a rotation or destruction. */
  repositories: RepositoryPool;
  /** The KEK sealing credentials' secrets, which `destroy` refuses. Default `default`. */
  secretsKek?: string;
}

/** `POST /v1/keys/rotate`. */
export interface RotateKeyRequest {
  kek: string;
  /** Default 'local'. */
  key_provider?: string;
  /** Only the repositories of this credential (id or name). Default: every credential using the KEK. */
  credential_id?: string;
}

/** One repository whose master secret was rewrapped (or could not be). */
export interface RotatedRepository extends Partial<RewrapResult> {
  credential_id: string;
  location: string;
  /** Why it could not be rewrapped; it still opens with the old version (nothing was written). */
  error?: string;
}

export interface RotateKeyResult {
  kek: string;
  key_provider: string;
  /** The KEK's newest version, which new wraps use. */
  version: number;
  repositories: RotatedRepository[];
}

export interface DestroyKeyResult {
  kek: LocalKekInfo;
  /** Credentials whose backups were protected by it: unreadable from now on. */
  credentials: string[];
}

export class KeyService {
  private readonly secretsKek: string;

  constructor(private readonly options: KeyServiceOptions) {
    this.secretsKek = options.secretsKek ?? DEFAULT_KEK;
  }

  /** KEKs of the local keyring (destroyed ones too) and the names of the node's providers. */
  async list(): Promise<{ keks: LocalKekInfo[]; providers: string[] }> {
    return { keks: await this.options.keyring.listKeks(), providers: this.options.providers.names };
  }

  /** Creates a KEK in the local keyring. ALREADY_EXISTS when the name is taken (also by a destroyed KEK). */
  create(kek: string): Promise<LocalKekInfo> {
    return this.options.keyring.createKek(kek);
  }

  /**
   * Rotates a KEK and rewraps the master secret of every repository reached through credentials that use it (their
   * own repository, and KEK-override repositories under their root). The local keyring gets a new KEK version;
   * for Vault and AWS KMS, rotation is the operator's (in Vault or KMS), and this rewraps under whatever version is
   * newest there. No data object is read or written: only each repository's `config`.
   */
  async rotate(request: RotateKeyRequest, signal?: AbortSignal): Promise<RotateKeyResult> {
    const ref: KekRef = { provider: request.key_provider ?? LOCAL_PROVIDER, kek: request.kek };
    const provider = this.options.providers.get(ref.provider);
    const version =
      ref.provider === LOCAL_PROVIDER
        ? (await this.options.keyring.rotateKek(ref.kek)).version
        : (await provider.describeKek(ref.kek)).version;
    const credentials =
      request.credential_id === undefined
        ? await this.options.credentials.list()
        : [await this.options.credentials.inspect(request.credential_id)];
    const repositories: RotatedRepository[] = [];
    const seen = new Set<string>();
    try {
      for (const credential of credentials) {
        for (const store of await this.storesOf(credential, ref, signal)) {
          if (seen.has(store.location)) continue;
          seen.add(store.location);
          const done = await this.rewrap(credential.credential_id, store, ref, signal);
          if (done !== undefined) repositories.push(done);
        }
      }
    } finally {
      this.options.repositories.invalidateAll();
    }
    return { kek: ref.kek, key_provider: ref.provider, version, repositories };
  }

  /**
   * Destroys a KEK of the local keyring (crypto-shredding) and drops every cached open repository, so no unwrapped
   * master secret outlives it in this process. Backups under it are unreadable from then on, on every node.
   * FAILED_PRECONDITION for the KEK that seals credentials' secrets.
   */
  async destroy(kek: string): Promise<DestroyKeyResult> {
    if (kek === this.secretsKek) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `KEK "${kek}" seals this node's credential secrets and cannot be destroyed; protect backups with their own ` +
          'KEKs (credential kek, or the ferry.io/kek volume label) and destroy those',
      );
    }
    try {
      await this.options.keyring.destroyKek(kek);
    } finally {
      this.options.repositories.invalidateAll();
    }
    const info = (await this.options.keyring.listKeks()).find((k) => k.id === kek);
    if (info === undefined) throw new FerryError('INTERNAL', `KEK "${kek}" is gone from the keyring listing`);
    const credentials = (await this.options.credentials.list())
      .filter((c) => {
        const own = credentialKek(c);
        return own.provider === LOCAL_PROVIDER && own.kek === kek;
      })
      .map((c) => c.name);
    return { kek: info, credentials };
  }

  /** The stores of a credential's repositories whose master secret `ref` wraps (by name: the config decides). */
  private async storesOf(credential: CredentialInfo, ref: KekRef, signal?: AbortSignal): Promise<ObjectStore[]> {
    const pool = this.options.repositories;
    const resolved = await this.options.credentials.resolve(credential.credential_id);
    const root = await pool.storeFor(resolved);
    const own = credentialKek(credential);
    const stores: ObjectStore[] = [];
    if (own.provider === ref.provider && own.kek === ref.kek) stores.push(root);
    for (const marker of await readMarkers(root, signal)) {
      if (marker.provider === ref.provider && marker.kek === ref.kek)
        stores.push(await pool.storeFor(resolved, marker));
    }
    return stores;
  }

  private async rewrap(
    credentialId: string,
    store: ObjectStore,
    ref: KekRef,
    signal?: AbortSignal,
  ): Promise<RotatedRepository | undefined> {
    const base = { credential_id: credentialId, location: store.location };
    try {
      // No repository yet (no backup was taken), or one whose key another KEK wraps: nothing to rewrap.
      if ((await store.head(CONFIG_KEY, { signal })) === undefined) return undefined;
      const result = await rewrapConfig(store, this.options.providers.lookup, signal, ref);
      return result === undefined ? undefined : { ...base, ...result };
    } catch (err: unknown) {
      if (!isFerryError(err)) throw err;
      return { ...base, error: err.message };
    }
  }
}

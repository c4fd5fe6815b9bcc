/**
 * Operations on KEKs across the node's repositories: list and create KEKs of the local keyring, rotate a KEK and
 * rewrap the master secret of every repository reached through credentials that use it, and destroy a local KEK
 * (crypto-shredding: every backup under it becomes unreadable, for good).
 */
import { FerryError, isFerryError } from '../../common/index.js';
import { DEFAULT_KEK, type KeyProviders, LOCAL_PROVIDER, type LocalKekInfo } from '../../kms/index.js';
import { type CredentialInfo, type CredentialStore, credentialKek } from '../credentials/index.js';
import { parseConfig, type RewrapResult, rewrapConfig, unwrapMaster } from '../repo/config.js';
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
  /** Takes back the newest version `version` (a rotation that could not finish). */
  unrotateKek(name: string, version: number): Promise<LocalKekInfo>;
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
  /**
   * The node's volumes (the engine's `listVolumes`), so that `destroy` names the encrypted ones a KEK would make
   * unreadable. Default none: `destroy` then knows of no volume.
   */
  volumes?: () => Promise<readonly { name: string; encryption?: { kek: string; key_provider: string } }[]>;
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

/** One repository whose master secret was rewrapped. */
export interface RotatedRepository extends RewrapResult {
  credential_id: string;
}

export interface RotateKeyResult {
  kek: string;
  key_provider: string;
  /** The KEK's newest version, which new wraps use. */
  version: number;
  repositories: RotatedRepository[];
}

/** `POST /v1/keys/destroy`. */
export interface DestroyKeyRequest {
  kek: string;
  /** Destroy it even though encrypted volumes use it (they become unreadable for good). Default false. */
  force?: boolean;
  /** Only say what destroying it would make unreadable; destroy nothing. Default false. */
  dry_run?: boolean;
}

export interface DestroyKeyResult {
  kek: LocalKekInfo;
  /** Credentials whose backups were protected by it: unreadable from now on. */
  credentials: string[];
  /** Encrypted volumes (and clones) whose data key it wraps: unreadable from now on. */
  volumes: string[];
  /** True when nothing was destroyed (`dry_run`). */
  dry_run?: boolean;
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
   *
   * All or nothing: every repository is found and opened (its master secret unwrapped, its MAC checked) before the
   * KEK gets a new version, and a rewrap that fails after that puts back the configs already rewritten and takes the
   * new version back. A credential whose store does not exist yet holds no repository and is passed over.
   */
  async rotate(request: RotateKeyRequest, signal?: AbortSignal): Promise<RotateKeyResult> {
    const ref: KekRef = { provider: request.key_provider ?? LOCAL_PROVIDER, kek: request.kek };
    const provider = this.options.providers.get(ref.provider);
    const credentials =
      request.credential_id === undefined
        ? await this.options.credentials.list()
        : [await this.options.credentials.inspect(request.credential_id)];
    try {
      const planned = await this.plan(credentials, ref, signal);
      const bumped = ref.provider === LOCAL_PROVIDER ? await this.options.keyring.rotateKek(ref.kek) : undefined;
      const version = bumped?.version ?? (await provider.describeKek(ref.kek)).version;
      const repositories: RotatedRepository[] = [];
      const written: Planned[] = [];
      for (const repo of planned) {
        try {
          const result = await rewrapConfig(repo.store, this.options.providers.lookup, signal, ref);
          written.push(repo);
          if (result !== undefined) repositories.push({ credential_id: repo.credentialId, ...result });
        } catch (err: unknown) {
          // A put that failed may still have landed: put that config back too.
          throw await this.rollBack([...written, repo], ref, bumped?.version, repo, err);
        }
      }
      return { kek: ref.kek, key_provider: ref.provider, version, repositories };
    } finally {
      this.options.repositories.invalidateAll();
    }
  }

  /** Every repository `ref` wraps, with its config as it is now; throws (changing nothing) when one cannot open. */
  private async plan(credentials: CredentialInfo[], ref: KekRef, signal?: AbortSignal): Promise<Planned[]> {
    const planned: Planned[] = [];
    const seen = new Set<string>();
    for (const credential of credentials) {
      let stores: ObjectStore[];
      try {
        stores = await this.storesOf(credential, ref, signal);
      } catch (err: unknown) {
        throw notRotated(ref, `credential ${credential.name}`, err);
      }
      for (const store of stores) {
        if (seen.has(store.location)) continue;
        seen.add(store.location);
        try {
          // No repository yet (no backup was taken), or one whose key another KEK wraps: nothing to rewrap.
          if ((await store.head(CONFIG_KEY, { signal })) === undefined) continue;
          const raw = await store.get(CONFIG_KEY, { signal });
          const config = parseConfig(raw, store.location);
          const wrapped = config.key?.wrapped;
          if (wrapped?.provider !== ref.provider || wrapped.kek_id !== ref.kek) continue;
          (await unwrapMaster(this.options.providers.lookup, config, store.location)).fill(0);
          planned.push({ credentialId: credential.credential_id, store, raw });
        } catch (err: unknown) {
          throw notRotated(ref, `the repository of credential ${credential.name} at ${store.location}`, err);
        }
      }
    }
    return planned;
  }

  /**
   * Puts back the configs of `written` and takes back the KEK's new `version` (only when every config is back: a
   * config left under it must still open). Returns the error to throw.
   */
  private async rollBack(
    written: Planned[],
    ref: KekRef,
    version: number | undefined,
    failed: Planned,
    cause: unknown,
  ): Promise<unknown> {
    const left: string[] = [];
    for (const repo of written) {
      // No signal: an aborted rotation is rolled back to the end.
      await repo.store.put(CONFIG_KEY, repo.raw).catch(() => left.push(repo.store.location));
    }
    let undone = left.length === 0;
    if (undone && version !== undefined) {
      undone = await this.options.keyring.unrotateKek(ref.kek, version).then(
        () => true,
        () => false,
      );
    }
    const code = isFerryError(cause) ? cause.code : 'INTERNAL';
    const what = `rotating KEK ${ref.kek} (${ref.provider}) failed at the repository at ${failed.store.location}: ${cause instanceof Error ? cause.message : String(cause)}`;
    if (undone) {
      const back = 'Rolled back: every repository and the KEK are as before; fix that and run the rotation again';
      return new FerryError(code, `${what}. ${back}`, { cause });
    }
    const kept = version === undefined ? '' : ` KEK version ${version} was kept so that they open.`;
    const still =
      left.length > 0 ? ` The configs at ${left.join(', ')} could not be put back and stay under the new version.` : '';
    return new FerryError(code, `${what}.${still}${kept} Fix that and run the rotation again`, { cause });
  }

  /**
   * Destroys a KEK of the local keyring (crypto-shredding) and drops every cached open repository, so no unwrapped
   * master secret outlives it in this process. Backups under it are unreadable from then on, on every node, and so
   * are the encrypted volumes whose data key it wraps: those are listed, and refused (FAILED_PRECONDITION) unless
   * `force`. `dry_run` only answers what would be lost. FAILED_PRECONDITION for the KEK that seals credentials' secrets.
   */
  async destroy(request: DestroyKeyRequest): Promise<DestroyKeyResult> {
    const kek = request.kek;
    if (kek === this.secretsKek) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `KEK "${kek}" seals this node's credential secrets and cannot be destroyed; protect backups with their own ` +
          'KEKs (credential kek, or the ferry.io/kek volume label) and destroy those',
      );
    }
    const before = await this.kekInfo(kek);
    const credentials = (await this.options.credentials.list())
      .filter((c) => {
        const own = credentialKek(c);
        return own.provider === LOCAL_PROVIDER && own.kek === kek;
      })
      .map((c) => c.name);
    const volumes = (await this.options.volumes?.()) ?? [];
    const locked = volumes
      .filter((v) => v.encryption?.key_provider === LOCAL_PROVIDER && v.encryption.kek === kek)
      .map((v) => v.name)
      .sort();
    if (request.dry_run === true) return { kek: before, credentials, volumes: locked, dry_run: true };
    if (locked.length > 0 && request.force !== true && !before.destroyed) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `destroying KEK ${kek} would make ${locked.length === 1 ? 'encrypted volume' : 'encrypted volumes'} ` +
          `${locked.join(', ')} unreadable, for good: delete ${locked.length === 1 ? 'it' : 'them'} first, or ` +
          'destroy anyway with `ferry keys destroy --force` (API field force)',
      );
    }
    try {
      await this.options.keyring.destroyKek(kek);
    } finally {
      this.options.repositories.invalidateAll();
    }
    return { kek: await this.kekInfo(kek), credentials, volumes: locked };
  }

  /** The local KEK `kek` as listed; NOT_FOUND when the keyring has none of that name. */
  private async kekInfo(kek: string): Promise<LocalKekInfo> {
    const info = (await this.options.keyring.listKeks()).find((k) => k.id === kek);
    if (info === undefined) {
      throw new FerryError(
        'NOT_FOUND',
        `KEK "${kek}" does not exist in the local keyring: list them with ferry keys list`,
      );
    }
    return info;
  }

  /** The stores of a credential's repositories whose master secret `ref` wraps (by name: the config decides). */
  private async storesOf(credential: CredentialInfo, ref: KekRef, signal?: AbortSignal): Promise<ObjectStore[]> {
    const pool = this.options.repositories;
    const resolved = await this.options.credentials.resolve(credential.credential_id);
    const root = await pool.storeFor(resolved);
    const own = credentialKek(credential);
    const stores: ObjectStore[] = [];
    if (own.provider === ref.provider && own.kek === ref.kek) stores.push(root);
    let markers: KekRef[];
    try {
      markers = await readMarkers(root, signal);
    } catch (err: unknown) {
      // Its directory or bucket does not exist (yet): no backup was ever written there, so no repository either.
      if (isFerryError(err) && err.code === 'NOT_FOUND') return [];
      throw err;
    }
    for (const marker of markers) {
      if (marker.provider === ref.provider && marker.kek === ref.kek)
        stores.push(await pool.storeFor(resolved, marker));
    }
    return stores;
  }
}

/** A repository a rotation will rewrap: where it is and its config before. */
interface Planned {
  credentialId: string;
  store: ObjectStore;
  raw: Buffer;
}

/** The error of a rotation that stopped before changing anything. */
function notRotated(ref: KekRef, what: string, cause: unknown): unknown {
  if (!isFerryError(cause)) return cause;
  return new FerryError(
    cause.code,
    `KEK ${ref.kek} (${ref.provider}) was not rotated, nothing changed: ${what} cannot be opened: ${cause.message}`,
    { cause },
  );
}

/**
 * Open repositories, kept per credential (and per KEK override, see kek-repos.ts) so that jobs do not unwrap the
 * master secret and reload the whole chunk index each time. This is the only place unwrapped master secrets are
 * kept, in memory only, for at most `ttlMs` from the unwrap (default 15 minutes): an idle instance is wiped when its
 * time is up, a lent one is not taken back after it. A repository instance is lent to one user at a time: backup.ts
 * adds a pack to the in-memory index before the pack is uploaded (and drops it if the upload fails), so two jobs
 * sharing one instance could dedup against, or restore from, a pack that never lands. Idle instances are reused; one
 * whose user failed is dropped.
 */
import type { KeySource } from '../../kms/index.js';
import type { Credential, CredentialStore, OpenObjectStore } from '../credentials/index.js';
import { credentialKek, storeCredential } from '../credentials/index.js';
import { parseConfig } from '../repo/config.js';
import { backupKey, CONFIG_KEY } from '../repo/layout.js';
import { type KekRef, type RepoOptions, Repository } from '../repo/repository.js';
import type { ObjectStore } from '../store/index.js';
// The file, not store/index.js: that one loads the AWS SDK, which openObjectStore loads only when a credential needs it.
import { MeteredStore, type StoreObserver } from '../store/metered.js';
import { PrefixedStore } from '../store/prefixed.js';
import { kekPrefix, readMarkers, writeMarker } from './kek-repos.js';
import type { RepositoryBindings } from './repo-bindings.js';

/** Default time an unwrapped master secret stays cached: 15 minutes. */
export const KEY_CACHE_TTL_MS = 15 * 60_000;

export interface RepositoryPoolOptions {
  credentials: CredentialStore;
  /**
   * The node's key providers (or one): a repository's master secret is unwrapped by the provider its config names;
   * a new one is wrapped under the credential's `kek` in its `key_provider`.
   */
  keys: KeySource;
  /** Opens the object store of a credential. Default: cloudsnap/store's `openObjectStore`, loaded on first use. */
  openStore?: OpenObjectStore;
  /** Parameters of repositories this node creates (chunk and pack sizes). Default: the format's defaults. */
  repoOptions?: RepoOptions;
  /**
   * How long an open instance, and so its unwrapped master secret, is kept from when it was opened; default
   * KEY_CACHE_TTL_MS (15 minutes). Its index only ever grows, so a fresh open now and then also forgets packs that
   * another node's garbage collection deleted.
   */
  ttlMs?: number;
  /** Idle instances kept per repository; default 2. */
  maxIdle?: number;
  /** Sees every request to the object stores this pool opens (for metrics). Default: none. */
  observeStore?: StoreObserver;
  /** Hears damage a lent repository found and repaired that its user did not take (`takeNotices`). Default: none. */
  warn?: (message: string, fields: Record<string, unknown>) => void;
  /**
   * Which credential each repository belongs to (repo-bindings.ts): a repository is opened through a credential only
   * when they admit it, checked before its key is unwrapped. Default: none (every credential may open any).
   */
  bindings?: RepositoryBindings;
}

/** A repository lent to one user; give it back with `release`. */
export interface RepositoryLease {
  repo: Repository;
  credential: Credential;
  /** The KEK override this repository is for; undefined for the credential's own repository. */
  override: KekRef | undefined;
  /** Returns the instance; `reusable` false (after a failure) closes it instead. */
  release(reusable: boolean): void;
}

interface Idle {
  repo: Repository;
  opened: number;
  timer?: NodeJS.Timeout;
}

function same(a: KekRef, b: KekRef): boolean {
  return a.provider === b.provider && a.kek === b.kek;
}

/** The id in the repository's config, read without unwrapping anything; undefined when there is no repository. */
async function repositoryId(store: ObjectStore, signal?: AbortSignal): Promise<string | undefined> {
  if ((await store.head(CONFIG_KEY, { signal })) === undefined) return undefined;
  return parseConfig(await store.get(CONFIG_KEY, { signal }), store.location).id;
}

export class RepositoryPool {
  private readonly idle = new Map<string, Idle[]>();
  /** Bumped by `invalidate`, so instances lent out before it are not taken back. */
  private readonly generation = new Map<string, number>();
  /** Bumped by `invalidateAll`. */
  private epoch = 0;
  private readonly ttlMs: number;
  private readonly maxIdle: number;

  constructor(private readonly options: RepositoryPoolOptions) {
    this.ttlMs = options.ttlMs ?? KEY_CACHE_TTL_MS;
    this.maxIdle = options.maxIdle ?? 2;
  }

  /** Which credential each repository belongs to; undefined when the pool does not check. */
  get bindings(): RepositoryBindings | undefined {
    return this.options.bindings;
  }

  /** Idle open instances (each holds an unwrapped master secret). */
  get cached(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  /**
   * Lends an open repository of the credential (id or name): its own, or the one for `override` (a volume's
   * `ferry.io/kek`) when that names another KEK. NOT_FOUND for an unknown credential.
   */
  async acquire(credentialRef: string, signal?: AbortSignal, override?: KekRef): Promise<RepositoryLease> {
    const credential = await this.options.credentials.resolve(credentialRef);
    const id = credential.credential_id;
    const target = override === undefined || same(override, credentialKek(credential)) ? undefined : override;
    const key = `${id}\u0000${target === undefined ? '' : kekPrefix(target)}`;
    const generation = this.generation.get(id) ?? 0;
    const epoch = this.epoch;
    const list = this.idle.get(key) ?? [];
    let entry: Idle | undefined;
    for (let e = list.pop(); e !== undefined; e = list.pop()) {
      clearTimeout(e.timer);
      if (Date.now() - e.opened < this.ttlMs) {
        entry = e;
        break;
      }
      e.repo.forget();
    }
    if (entry === undefined) {
      const store = await this.storeFor(credential, target);
      const bindings = this.options.bindings;
      const existing = bindings === undefined ? undefined : await repositoryId(store, signal);
      if (existing !== undefined) await bindings?.admit(credential, existing, store.location);
      // The master secret is unwrapped from here on.
      let opened = Date.now();
      const repo = await Repository.openOrInit(
        store,
        this.options.keys,
        target ?? credentialKek(credential),
        this.options.repoOptions,
        signal,
      );
      try {
        // A repository this open created (or one created by another opener meanwhile) is bound now; a new master
        // secret's time counts from then (it was made, not unwrapped, a moment before).
        if (repo.id !== existing && bindings !== undefined) {
          await bindings.admit(credential, repo.id, store.location);
          if (existing === undefined) opened = Date.now();
        }
        if (target !== undefined) await writeMarker(await this.storeFor(credential), target, signal);
      } catch (err: unknown) {
        repo.forget();
        throw err;
      }
      entry = { repo, opened };
    }
    const lent = entry;
    let released = false;
    return {
      repo: lent.repo,
      credential,
      override: target,
      release: (reusable: boolean) => {
        if (released) return;
        released = true;
        for (const notice of lent.repo.takeNotices()) this.options.warn?.(notice, { credential_id: id });
        // A dropped instance is not wiped here: its failed user may still have work settling that reads its keys.
        if (!reusable || (this.generation.get(id) ?? 0) !== generation || this.epoch !== epoch) return;
        const idle = this.idle.get(key) ?? [];
        const left = this.ttlMs - (Date.now() - lent.opened);
        if (idle.length >= this.maxIdle || left <= 0) {
          lent.repo.forget();
          return;
        }
        lent.timer = setTimeout(() => this.expire(key, lent), left);
        lent.timer.unref();
        idle.push(lent);
        this.idle.set(key, idle);
      },
    };
  }

  /** Runs `fn` with a lent repository and gives it back (dropping it when `fn` throws). */
  async use<T>(
    credentialRef: string,
    fn: (repo: Repository, credential: Credential) => Promise<T>,
    signal?: AbortSignal,
    override?: KekRef,
  ): Promise<T> {
    const lease = await this.acquire(credentialRef, signal, override);
    let ok = false;
    try {
      const result = await fn(lease.repo, lease.credential);
      ok = true;
      return result;
    } finally {
      lease.release(ok);
    }
  }

  /**
   * The object store of a credential's own repository (its root), or of the KEK-override repository for `override`
   * (a sub-prefix of the root). Opens no repository and unwraps nothing.
   */
  async storeFor(credential: Credential, override?: KekRef): Promise<ObjectStore> {
    const open = this.options.openStore ?? (await import('../store/open.js')).openObjectStore;
    const opened = await open(storeCredential(credential));
    const observe = this.options.observeStore;
    const root = observe === undefined ? opened : new MeteredStore(opened, credential.provider, observe);
    return override === undefined ? root : new PrefixedStore(root, kekPrefix(override));
  }

  /** The KEK-override repositories under a credential's root (from their markers). */
  async overrides(credentialRef: string, signal?: AbortSignal): Promise<KekRef[]> {
    const credential = await this.options.credentials.resolve(credentialRef);
    return readMarkers(await this.storeFor(credential), signal);
  }

  /**
   * Which of a credential's repositories holds backup `backupId`: undefined for its own (also when none does, so
   * that opening it answers NOT_FOUND), else the KEK override. Looks at object names only: unwraps nothing.
   */
  async locate(credentialRef: string, backupId: string, signal?: AbortSignal): Promise<KekRef | undefined> {
    const credential = await this.options.credentials.resolve(credentialRef);
    const root = await this.storeFor(credential);
    if ((await root.head(backupKey(backupId), { signal })) !== undefined) return undefined;
    for (const ref of await readMarkers(root, signal)) {
      const store = await this.storeFor(credential, ref);
      if ((await store.head(backupKey(backupId), { signal })) !== undefined) return ref;
    }
    return undefined;
  }

  /** Forgets every instance of a credential (after garbage collection deleted packs they may still index). */
  invalidate(credentialId: string): void {
    for (const [key, list] of this.idle) {
      if (key.startsWith(`${credentialId}\u0000`)) this.drop(key, list);
    }
    this.generation.set(credentialId, (this.generation.get(credentialId) ?? 0) + 1);
  }

  /** Forgets every instance (after a KEK was destroyed or rotated: no unwrapped secret outlives it here). */
  invalidateAll(): void {
    for (const [key, list] of this.idle) this.drop(key, list);
    this.epoch++;
  }

  /** Wipes every idle instance and stops the expiry timers. */
  close(): void {
    this.invalidateAll();
  }

  private drop(key: string, list: Idle[]): void {
    for (const e of list) {
      clearTimeout(e.timer);
      e.repo.forget();
    }
    this.idle.delete(key);
  }

  private expire(key: string, entry: Idle): void {
    const list = this.idle.get(key);
    const at = list?.indexOf(entry) ?? -1;
    if (list === undefined || at < 0) return;
    list.splice(at, 1);
    entry.repo.forget();
  }
}

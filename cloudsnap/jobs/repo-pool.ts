/**
 * Open repositories, kept per credential so that jobs do not unwrap the master secret and reload the whole chunk
 * index each time. A repository instance is lent to one user at a time: backup.ts adds a pack to the in-memory index
 * before the pack is uploaded (and drops it if the upload fails), so two jobs sharing one instance could dedup
 * against, or restore from, a pack that never lands. Idle instances are reused; one whose user failed is dropped.
 */
import type { KeyProvider } from '../../kms/index.js';
import type { Credential, CredentialStore, OpenObjectStore } from '../credentials/index.js';
import { storeCredential } from '../credentials/index.js';
import { type RepoOptions, Repository } from '../repo/repository.js';

export interface RepositoryPoolOptions {
  credentials: CredentialStore;
  /** Unwraps (and, for a new repository, wraps) the master secret under the credential's `kek`. */
  keys: KeyProvider;
  /** Opens the object store of a credential. Default: cloudsnap/store's `openObjectStore`, loaded on first use. */
  openStore?: OpenObjectStore;
  /** Parameters of repositories this node creates (chunk and pack sizes). Default: the format's defaults. */
  repoOptions?: RepoOptions;
  /**
   * How long an instance is kept, from when it was opened; default 10 minutes. Its index only ever grows, so a
   * fresh open now and then also forgets packs that another node's garbage collection deleted.
   */
  maxAgeMs?: number;
  /** Idle instances kept per credential; default 2. */
  maxIdle?: number;
}

/** A repository lent to one user; give it back with `release`. */
export interface RepositoryLease {
  repo: Repository;
  credential: Credential;
  /** Returns the instance; `reusable` false (after a failure) closes it instead. */
  release(reusable: boolean): void;
}

interface Idle {
  repo: Repository;
  opened: number;
}

export class RepositoryPool {
  private readonly idle = new Map<string, Idle[]>();
  /** Bumped by `invalidate`, so instances lent out before it are not taken back. */
  private readonly generation = new Map<string, number>();
  private readonly maxAgeMs: number;
  private readonly maxIdle: number;

  constructor(private readonly options: RepositoryPoolOptions) {
    this.maxAgeMs = options.maxAgeMs ?? 600_000;
    this.maxIdle = options.maxIdle ?? 2;
  }

  /** Lends an open repository of the credential (id or name); NOT_FOUND for an unknown credential. */
  async acquire(credentialRef: string, signal?: AbortSignal): Promise<RepositoryLease> {
    const credential = await this.options.credentials.resolve(credentialRef);
    const id = credential.credential_id;
    const generation = this.generation.get(id) ?? 0;
    const now = Date.now();
    const list = (this.idle.get(id) ?? []).filter((i) => now - i.opened < this.maxAgeMs);
    let entry = list.pop();
    this.idle.set(id, list);
    if (entry === undefined) {
      const open = this.options.openStore ?? (await import('../store/index.js')).openObjectStore;
      const store = open(storeCredential(credential));
      const repo = await Repository.openOrInit(
        store,
        this.options.keys,
        credential.kek,
        this.options.repoOptions,
        signal,
      );
      entry = { repo, opened: now };
    }
    const lent = entry;
    let released = false;
    return {
      repo: lent.repo,
      credential,
      release: (reusable: boolean) => {
        if (released) return;
        released = true;
        if (!reusable || (this.generation.get(id) ?? 0) !== generation) return;
        const idle = this.idle.get(id) ?? [];
        if (idle.length < this.maxIdle) idle.push(lent);
        this.idle.set(id, idle);
      },
    };
  }

  /** Runs `fn` with a lent repository and gives it back (dropping it when `fn` throws). */
  async use<T>(
    credentialRef: string,
    fn: (repo: Repository, credential: Credential) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const lease = await this.acquire(credentialRef, signal);
    let ok = false;
    try {
      const result = await fn(lease.repo, lease.credential);
      ok = true;
      return result;
    } finally {
      lease.release(ok);
    }
  }

  /** Forgets every instance of a credential (after garbage collection deleted packs they may still index). */
  invalidate(credentialId: string): void {
    this.idle.delete(credentialId);
    this.generation.set(credentialId, (this.generation.get(credentialId) ?? 0) + 1);
  }
}

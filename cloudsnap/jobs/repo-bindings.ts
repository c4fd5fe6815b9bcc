/**
 * Which credential a repository belongs to. A credential is only a way to reach a bucket, and anyone may create one
 * that points at a bucket and prefix (or a directory) another tenant's repository lives in; the node holds the KEK and
 * would unwrap that repository's master secret for them. So each repository is bound, by the id in its `config`
 * (authenticated: the master secret's MAC and its wrap context cover it), to the credential that created it, or
 * that first opened it on this cluster, and to that credential's owner:
 * `/ferry/repositories/<repository id>` -> `{ repository_id, credential_id, owner?, location, bound }`.
 *
 * Opening a repository through another credential is allowed only when that credential has the same owner as the
 * binding, or the binding's credential is shared (Write) with that owner; otherwise PERMISSION_DENIED before any key
 * is unwrapped. Who owns a credential is the API's knowledge (ownership records): it is given with `setOwners`; until
 * then every credential counts as unowned (one owner: a node without authentication).
 */
import { FerryError } from '../../common/index.js';
import type { ClusterStore } from '../../node/index.js';
import type { Credential } from '../credentials/index.js';

/** Key prefix of repository bindings in the cluster store. */
export const REPOSITORIES_PREFIX = '/ferry/repositories/';

/** The credential (and its owner) a repository belongs to. */
export interface RepositoryBinding {
  repository_id: string;
  /** The credential that created the repository, or first opened it on this cluster. */
  credential_id: string;
  /** That credential's owner when it was bound; absent when it had none (authentication off). */
  owner?: string;
  /** Where the repository was when it was bound (for messages). */
  location: string;
  /** RFC 3339. */
  bound: string;
}

/** What the bindings need to know of credentials' ownership. */
export interface CredentialOwners {
  /** The owner of a credential; undefined when it has no ownership record. */
  ownerOf(credentialId: string): Promise<string | undefined>;
  /** Whether credential `credentialId` is shared at Write (or more) with user `owner` by its ACLs. */
  sharedWith(credentialId: string, owner: string): Promise<boolean>;
}

const UNOWNED: CredentialOwners = {
  ownerOf: async () => undefined,
  sharedWith: async () => false,
};

/** Binds repositories to credentials and admits (or refuses) credentials to them. */
export class RepositoryBindings {
  private owners: CredentialOwners = UNOWNED;

  constructor(private readonly store: Pick<ClusterStore, 'get' | 'compareAndSet'>) {}

  /** Sets where credentials' owners come from (the API's ownership records). */
  setOwners(owners: CredentialOwners): void {
    this.owners = owners;
  }

  /** The binding of a repository, if any. */
  get(repositoryId: string): Promise<RepositoryBinding | undefined> {
    return this.store.get<RepositoryBinding>(REPOSITORIES_PREFIX + repositoryId);
  }

  /**
   * Resolves when `credential` may open repository `repositoryId` (found at `location`), binding an unbound one to
   * it. PERMISSION_DENIED, saying what to do, when the repository is another owner's and not shared with this one.
   */
  async admit(credential: Credential, repositoryId: string, location: string): Promise<void> {
    for (;;) {
      const existing = await this.get(repositoryId);
      const owner = await this.owners.ownerOf(credential.credential_id);
      if (existing === undefined) {
        const binding: RepositoryBinding = {
          repository_id: repositoryId,
          credential_id: credential.credential_id,
          ...(owner !== undefined && { owner }),
          location,
          bound: new Date().toISOString(),
        };
        if (await this.store.compareAndSet(REPOSITORIES_PREFIX + repositoryId, undefined, binding)) return;
        continue; // bound by someone else meanwhile: decide against that binding
      }
      if (existing.credential_id === credential.credential_id || existing.owner === owner) return;
      if (owner !== undefined && (await this.owners.sharedWith(existing.credential_id, owner))) return;
      throw new FerryError(
        'PERMISSION_DENIED',
        `credential ${credential.name} points at the repository at ${location}, which belongs to another owner's ` +
          'credential: it cannot be opened through this one. Use the credential it belongs to if it is shared with ' +
          'you, or ask its owner to share it with you (ferry auth share credential NAME --user YOU=Write)',
      );
    }
  }
}

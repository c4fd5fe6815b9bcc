/**
 * Credentials' owners for the repository bindings (cloudsnap/jobs/repo-bindings.ts): who owns a credential, and
 * whether one is shared at Write with a given user, from the ownership records. Group ACLs cannot count here (a
 * user's groups are known only from a token, and jobs run without one): share with the user, or publicly.
 */
import type { CredentialOwners } from '../../cloudsnap/index.js';
import { permits } from './ownership.js';
import type { OwnershipStore } from './ownership-store.js';
import { ROLE_USER } from './principal.js';

/** The owners of credentials as `records` know them. */
export function credentialOwners(records: OwnershipStore): CredentialOwners {
  return {
    ownerOf: async (id) => (await records.get({ kind: 'credential', id }))?.owner,
    sharedWith: async (id, owner) =>
      permits({ sub: owner, roles: [ROLE_USER], groups: [] }, await records.get({ kind: 'credential', id }), 'Write'),
  };
}

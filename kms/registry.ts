/**
 * The key providers a node has, by name: the local keyring always, Vault Transit and AWS KMS when configured. A
 * repository's config names the provider that wrapped its master secret; opening it asks this set for that provider.
 */
import { FerryError } from '../common/index.js';
import type { KeyProvider } from './types.js';

/** Names of the key providers Ferry has: the local keyring, Vault Transit, AWS KMS. */
export const KEY_PROVIDER_NAMES = ['local', 'vault', 'aws-kms'] as const;
export type KeyProviderName = (typeof KEY_PROVIDER_NAMES)[number];

/** Finds a provider by name; rejects with FAILED_PRECONDITION when the node has none of that name. */
export type KeyProviderLookup = (name: string) => KeyProvider;

/** A single provider, or a lookup over several: what repositories and credentials are given. */
export type KeySource = KeyProvider | KeyProviderLookup;

/** How to configure each provider this node may lack, for the FAILED_PRECONDITION message. */
const HOW_TO_ENABLE: Readonly<Record<string, string>> = {
  vault: 'set FERRY_VAULT_ADDR (and FERRY_VAULT_TOKEN, or FERRY_VAULT_ROLE_ID and FERRY_VAULT_SECRET_ID)',
  'aws-kms': 'set FERRY_KMS_REGION (or FERRY_KMS_ENABLE=1 to use the AWS SDK defaults)',
};

/** The error for a provider the node does not have. */
export function providerMissing(name: string, have: readonly string[]): FerryError {
  const how = HOW_TO_ENABLE[name];
  return new FerryError(
    'FAILED_PRECONDITION',
    `this node has no "${name}" key provider (it has ${have.map((n) => `"${n}"`).join(', ') || 'none'})` +
      (how === undefined ? '' : `; to enable it, ${how} and restart the node`),
  );
}

/** A fixed set of key providers, one per name. */
export class KeyProviders {
  private readonly byName = new Map<string, KeyProvider>();

  /** @param providers One per name; a second provider of a name is INVALID_ARGUMENT. */
  constructor(providers: readonly KeyProvider[]) {
    for (const p of providers) {
      if (this.byName.has(p.name)) throw new FerryError('INVALID_ARGUMENT', `two key providers are named "${p.name}"`);
      this.byName.set(p.name, p);
    }
  }

  /** Names of the providers, in the order given. */
  get names(): string[] {
    return [...this.byName.keys()];
  }

  /** The provider called `name`; FAILED_PRECONDITION (saying how to enable it) when there is none. */
  get(name: string): KeyProvider {
    const found = this.byName.get(name);
    if (found === undefined) throw providerMissing(name, this.names);
    return found;
  }

  /** `get` as a function, to pass where a KeyProviderLookup is wanted. */
  readonly lookup: KeyProviderLookup = (name) => this.get(name);
}

/** A lookup over `source`: a single provider answers for its own name only. */
export function lookupOf(source: KeySource): KeyProviderLookup {
  if (typeof source === 'function') return source;
  return (name) => {
    if (name !== source.name) throw providerMissing(name, [source.name]);
    return source;
  };
}

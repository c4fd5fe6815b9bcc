/**
 * The repository's `config` object (docs/FORMAT.md, "Keys"): parameters and the master secret wrapped by a key
 * provider, authenticated by a MAC under a key derived from that secret. Here: parsing it, unwrapping the master
 * secret with the provider the config names (errors say which provider and what it means for the backups), and
 * rewrapping it under the KEK's newest version (same id, same master secret, new MAC).
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import { type EncryptionContext, type KeySource, lookupOf, type WrappedKey } from '../../kms/index.js';
import type { ObjectStore } from '../store/types.js';
import { CONFIG_KEY } from './layout.js';

/** The plaintext `config` object: parameters and the wrapped master secret. */
export interface RepoConfig {
  format: 'ferry-repository';
  version: 1;
  id: string;
  created: string;
  chunk_size: number;
  leaf_chunks: number;
  pack_size: number;
  key: { wrapped: WrappedKey; context: EncryptionContext };
  /** HMAC-SHA256 of the rest under a key derived from the master secret: the config cannot be altered unnoticed. */
  mac: string;
}

function canonical(config: Omit<RepoConfig, 'mac'>): string {
  return JSON.stringify(config, Object.keys(config).sort());
}

/** The MAC of a config body under `master`. */
export function configMac(master: Buffer, config: Omit<RepoConfig, 'mac'>): string {
  const k = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'ferry/v1/config', 32));
  return createHmac('sha256', k).update(canonical(config)).update(JSON.stringify(config.key)).digest('hex');
}

/** Parses a config object read from `location`. */
export function parseConfig(raw: Buffer, location: string): RepoConfig {
  let config: RepoConfig;
  try {
    config = JSON.parse(raw.toString('utf8')) as RepoConfig;
  } catch (err: unknown) {
    throw new FerryError('DATA_CORRUPTION', `repository config at ${location} is not valid JSON`, { cause: err });
  }
  if (config.format !== 'ferry-repository' || config.version !== 1) {
    throw new FerryError(
      'FAILED_PRECONDITION',
      `${location} holds no Ferry repository of a version this node reads (format ${String(config.format)}, version ${String(config.version)})`,
    );
  }
  return config;
}

/** Restates a provider's refusal in terms of the repository, keeping its code and cause. */
function unwrapError(err: unknown, provider: string, location: string): unknown {
  if (!isFerryError(err)) return err;
  let message: string;
  switch (err.code) {
    case 'PERMISSION_DENIED':
      message = `the backups in ${location} are unreadable: key provider "${provider}" refused their key: ${err.message}`;
      break;
    case 'UNAVAILABLE':
      message = `key provider "${provider}" is unavailable, so the repository at ${location} cannot be opened: ${err.message}`;
      break;
    default:
      message = `key provider "${provider}" could not unwrap the master secret of the repository at ${location}: ${err.message}`;
  }
  return new FerryError(err.code, message, { cause: err, ...(err.field !== undefined && { field: err.field }) });
}

/**
 * Unwraps the master secret with the provider `config.key.wrapped.provider` names and checks the config's MAC.
 * Keep the result in memory only.
 */
export async function unwrapMaster(keys: KeySource, config: RepoConfig, location: string): Promise<Buffer> {
  const name = String(config.key?.wrapped?.provider);
  let master: Buffer;
  try {
    master = await lookupOf(keys)(name).unwrap(config.key.wrapped, config.key.context);
  } catch (err: unknown) {
    throw unwrapError(err, name, location);
  }
  const { mac, ...body } = config;
  if (master.length !== 32 || configMac(master, body) !== mac) {
    master.fill(0);
    throw new FerryError('DATA_CORRUPTION', `repository config at ${location} was altered (its MAC does not match)`);
  }
  return master;
}

/** What rewrapping one repository's master secret did. */
export interface RewrapResult {
  /** The repository's id. */
  repository: string;
  /** Where it is (never a secret). */
  location: string;
  provider: string;
  kek: string;
  from_version: number;
  to_version: number;
}

/**
 * Rewraps the master secret of the repository in `store` under its KEK's newest version and writes the new config
 * over the old one: same id, same master secret, new wrapped key and MAC. A plain put, so a crash leaves the old
 * config or the new one, and both open. No other object changes. Provider calls: one unwrap (to check the MAC and
 * compute the new one), one rewrap (the provider's own: Vault and KMS never reveal the plaintext to it). With `only`,
 * a repository whose key another KEK wraps is left alone (undefined).
 */
export async function rewrapConfig(
  store: ObjectStore,
  keys: KeySource,
  signal?: AbortSignal,
  only?: { provider: string; kek: string },
): Promise<RewrapResult | undefined> {
  const config = parseConfig(await store.get(CONFIG_KEY, { signal }), store.location);
  const current = config.key?.wrapped;
  if (only !== undefined && (current?.provider !== only.provider || current.kek_id !== only.kek)) return undefined;
  const master = await unwrapMaster(keys, config, store.location);
  try {
    const from = config.key.wrapped;
    let wrapped: WrappedKey;
    try {
      wrapped = await lookupOf(keys)(from.provider).rewrap(from, config.key.context);
    } catch (err: unknown) {
      throw unwrapError(err, from.provider, store.location);
    }
    const { mac: _mac, ...rest } = config;
    const body = { ...rest, key: { wrapped, context: config.key.context } };
    const next: RepoConfig = { ...body, mac: configMac(master, body) };
    await store.put(CONFIG_KEY, Buffer.from(JSON.stringify(next, null, 2)), { signal });
    return {
      repository: config.id,
      location: store.location,
      provider: from.provider,
      kek: from.kek_id,
      from_version: from.kek_version,
      to_version: wrapped.kek_version,
    };
  } finally {
    master.fill(0);
  }
}

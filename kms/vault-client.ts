/**
 * Builds the node-vault client the Vault Transit provider is given: endpoint, namespace, timeout, and the token
 * lifecycle (a given token, or AppRole login) in a VaultSession. The options are the whole truth: node-vault's own
 * fallbacks to VAULT_TOKEN, VAULT_NAMESPACE and VAULT_PREFIX are switched off here.
 */
import type nodeVault from 'node-vault';
import { FerryError, invalidArgument } from '../common/index.js';
import { nodeVaultSdk } from './sdk.js';
import { type VaultAuth, VaultSession } from './vault-session.js';

/** Where Vault is and how to authenticate. Give `token`, or `roleId` and `secretId`. */
export interface VaultClientOptions {
  /** Vault's address, e.g. `https://vault.example.com:8200`. */
  endpoint: string;
  /** A Vault token; renewed on use when it is renewable. */
  token?: string;
  /** AppRole role_id; with `secretId`, the provider logs in with AppRole. */
  roleId?: string;
  /** AppRole secret_id. */
  secretId?: string;
  /** Vault Enterprise namespace, sent as `X-Vault-Namespace` on every request. Default: none (root namespace). */
  namespace?: string;
  /** Path the Transit secrets engine is mounted at. Default 'transit'. */
  mount?: string;
  /** Path the AppRole auth method is mounted at. Default 'approle'. */
  approleMount?: string;
  /** PEM CA certificate(s) for a Vault whose TLS certificate a private CA signed. Default: the system's CAs. */
  ca?: string | Buffer;
  /** Per-request timeout in milliseconds. Default 10000. */
  timeoutMs?: number;
  /** Clock for token expiry, ms since epoch. Default Date.now (tests pass a fake one). */
  now?: () => number;
}

/** A configured node-vault client with its token lifecycle: what VaultTransitProvider is given. */
export interface VaultClient {
  /** The node-vault client. */
  readonly api: NodeVaultClient;
  /** Vault's address, for messages. */
  readonly endpoint: string;
  /** The Transit mount path. */
  readonly mount: string;
  /** The namespace, '' for the root namespace. */
  readonly namespace: string;
  /** Call `ensure()` before each request. */
  readonly session: VaultSession;
}

/** The node-vault client type. */
export type NodeVaultClient = nodeVault.client;

const MOUNT = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

function authOf(options: VaultClientOptions): VaultAuth {
  const approle = options.roleId !== undefined || options.secretId !== undefined;
  if (options.token !== undefined && approle) {
    throw invalidArgument('token', 'give either a token or roleId and secretId, not both');
  }
  if (options.token !== undefined) {
    if (options.token.length === 0) throw invalidArgument('token', 'must not be empty');
    return { method: 'token', token: options.token };
  }
  if (!options.roleId || !options.secretId) {
    throw invalidArgument(options.roleId ? 'secretId' : 'roleId', 'Vault needs a token, or roleId and secretId');
  }
  const mount = options.approleMount ?? 'approle';
  if (!MOUNT.test(mount)) throw invalidArgument('approleMount', 'must be a Vault mount path');
  return { method: 'approle', roleId: options.roleId, secretId: options.secretId, mount };
}

/** Builds a Vault client; nothing is sent until the first provider call. */
export function createVaultClient(options: VaultClientOptions): VaultClient {
  let url: URL;
  try {
    url = new URL(options.endpoint);
  } catch (err: unknown) {
    throw new FerryError('INVALID_ARGUMENT', `endpoint: "${options.endpoint}" is not a URL`, {
      field: 'endpoint',
      cause: err,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalidArgument('endpoint', 'must be an http:// or https:// URL');
  }
  const mount = (options.mount ?? 'transit').replace(/^\/+|\/+$/g, '');
  if (!MOUNT.test(mount)) throw invalidArgument('mount', 'must be a Vault mount path');
  const namespace = (options.namespace ?? '').replace(/^\/+|\/+$/g, '');
  const auth = authOf(options);
  const endpoint = options.endpoint.replace(/\/+$/, '');
  const api = nodeVaultSdk()({
    apiVersion: 'v1',
    endpoint,
    // node-vault would log request bodies (base64 plaintexts) through `debug` when DEBUG=node-vault is set.
    debug: () => undefined,
    requestOptions: { timeout: options.timeoutMs ?? 10_000, ...(options.ca !== undefined && { ca: options.ca }) },
  });
  // Pin what node-vault would otherwise take from VAULT_TOKEN, VAULT_NAMESPACE and VAULT_PREFIX.
  Object.assign(api, { token: '', namespace, pathPrefix: '' });
  const session = new VaultSession(api, auth, endpoint, options.now);
  return { api, endpoint, mount, namespace, session };
}

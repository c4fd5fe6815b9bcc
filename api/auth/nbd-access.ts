/**
 * NBD access by TLS-PSK identity (docs/NBD.md). A user's pre-shared key is derived from the node's admin secret and
 * the user name, so nothing secret is stored: `POST /v1/auth/nbd-key` hands callers their own key and records their
 * principal (sub, roles, groups) under `/ferry/nbd-identities/<sub>`; the NBD server then lets a PSK identity list
 * and open what that principal may use under the API's ownership rules (a volume needs Write, a snapshot Read).
 * `setUpNbdAccess` builds a node's NBD settings from its flags and environment, as node-auth.ts does for the API.
 */
import { createHmac } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import {
  defaultTlsMode,
  isLoopback,
  NBD_TLS_MODES,
  type NbdAuthorize,
  type NbdTlsMode,
  type NbdTlsOptions,
  type VolumeEngine,
} from '../../node/index.js';
import { readAdminSecret } from './admin-secret.js';
import { permits } from './ownership.js';
import { type OwnershipBackend, OwnershipStore } from './ownership-store.js';
import { isAdmin, type Principal, ROLE_ADMIN } from './principal.js';

/** Key prefix of the principals NBD identities speak for. */
export const NBD_IDENTITY_PREFIX = '/ferry/nbd-identities/';

/** The principal a node takes when authentication is off (every API caller is an admin then). */
export const AUTH_OFF_PRINCIPAL: Principal = { sub: 'admin', roles: [ROLE_ADMIN], groups: [] };

/** The TLS-PSK key of `identity` under `secret`: HMAC-SHA256 of a fixed label and the name, 32 bytes. */
export function nbdPskKey(secret: Uint8Array, identity: string): Buffer {
  return createHmac('sha256', secret).update('ferry nbd psk v1\0').update(identity, 'utf8').digest();
}

/** Principals of NBD identities in the cluster store. */
export class NbdIdentities {
  constructor(private readonly store: OwnershipBackend) {}

  private key(sub: string): string {
    return `${NBD_IDENTITY_PREFIX}${encodeURIComponent(sub)}`;
  }

  /** Records (replacing) the principal the identity `principal.sub` speaks for. */
  async record(principal: Principal): Promise<void> {
    const { sub, roles, groups } = principal;
    await this.store.commit([{ op: 'put', key: this.key(sub), value: { sub, roles, groups } }]);
  }

  get(sub: string): Promise<Principal | undefined> {
    return this.store.get<Principal>(this.key(sub));
  }
}

/**
 * The NBD server's authorize callback: a PSK identity may open export `name` when its recorded principal may use
 * the volume (`VOLUME` or `VOLUME@SNAPSHOT`) at Write (writable exports) or Read (snapshots).
 */
export function nbdAuthorizer(options: { engine: VolumeEngine; store: OwnershipBackend }): NbdAuthorize {
  const identities = new NbdIdentities(options.store);
  const ownership = new OwnershipStore(options.store);
  return async (identity, name, write) => {
    const principal = await identities.get(identity.name);
    if (principal === undefined) {
      throw new FerryError(
        'PERMISSION_DENIED',
        `NBD identity ${identity.name} has no key issued by this node; run ferry auth nbd-key as that user`,
      );
    }
    if (isAdmin(principal)) return;
    const volumeName = name.split('@')[0] ?? name;
    let volume: { id: string; name: string };
    try {
      volume = await options.engine.inspectVolume(volumeName);
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) throw new FerryError('NOT_FOUND', `no export named ${name}`);
      throw err;
    }
    const need = write ? 'Write' : 'Read';
    const owned = await ownership.get({ kind: 'volume', id: volume.id, name: volume.name });
    if (permits(principal, owned, need)) return;
    throw new FerryError(
      'PERMISSION_DENIED',
      `${principal.sub} has no ${need} access to volume ${volume.name}; ask its owner to share it (ferry auth share volume ${volume.name} --user ${principal.sub}=${need})`,
    );
  };
}

/** The NBD TLS mode named by `text` (from `source`, for the message); INVALID_ARGUMENT for anything else. */
export function parseNbdTlsMode(text: string, source: string): NbdTlsMode {
  const mode = text.trim().toLowerCase();
  const known: readonly string[] = NBD_TLS_MODES;
  if (!known.includes(mode)) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `${source}: "${text}" is not an NBD TLS mode; use off, optional or require`,
    );
  }
  return mode as NbdTlsMode;
}

/** A TLS-PSK identity the node gives a key to: a user name as tokens carry it (1 to 256 characters). */
function pskIdentityOk(identity: string): boolean {
  return identity.length > 0 && identity.length <= 256;
}

/** What `ferry node start` passes to its NBD server and its API. */
export interface NbdAccess {
  tls: NbdTlsOptions & { mode: NbdTlsMode };
  authorize: NbdAuthorize;
  /** The key of an identity (for `POST /v1/auth/nbd-key`); undefined when there is no admin secret. */
  psk: ((identity: string) => Buffer) | undefined;
}

/**
 * A node's NBD TLS and access settings: the mode from `mode` (`--nbd-tls`), else env FERRY_NBD_TLS, else `require`
 * when `listenHost` is not loopback and `optional` when it is; keys from the admin secret (call it after
 * setUpNodeAuth, which creates that secret). Rejects with INVALID_ARGUMENT for an unknown mode, and when TLS is
 * required but there is no admin secret to derive keys from.
 */
export async function setUpNbdAccess(options: {
  dataDir: string;
  /** `--nbd-tls`. */
  mode?: string;
  listenHost: string;
  engine: VolumeEngine;
  store: OwnershipBackend;
  env?: NodeJS.ProcessEnv;
  log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}): Promise<NbdAccess> {
  const { log } = options;
  const fromEnv = (options.env ?? process.env).FERRY_NBD_TLS;
  const mode =
    options.mode !== undefined
      ? parseNbdTlsMode(options.mode, '--nbd-tls')
      : fromEnv !== undefined && fromEnv !== ''
        ? parseNbdTlsMode(fromEnv, 'FERRY_NBD_TLS')
        : defaultTlsMode(options.listenHost);
  const secret = await readAdminSecret(options.dataDir);
  const psk = secret === undefined ? undefined : (identity: string): Buffer => nbdPskKey(secret, identity);
  if (psk === undefined && mode !== 'off') {
    if (mode === 'require') {
      throw new FerryError(
        'INVALID_ARGUMENT',
        'NBD TLS require needs TLS keys, which derive from the admin secret: start with authentication on once to create it',
      );
    }
    log('warn', 'NBD TLS is not offered: there is no admin secret to derive keys from (authentication is off)');
  }
  if (mode === 'off' && !isLoopback(options.listenHost)) {
    log('warn', 'NBD TLS is off on a non-loopback address: anyone who reaches the port may open every volume', {
      nbd_host: options.listenHost,
    });
  }
  log('info', 'nbd tls', { mode, psk: psk !== undefined });
  return {
    tls: {
      mode,
      ...(psk !== undefined && { pskKey: (identity: string) => (pskIdentityOk(identity) ? psk(identity) : undefined) }),
    },
    authorize: nbdAuthorizer({ engine: options.engine, store: options.store }),
    psk,
  };
}

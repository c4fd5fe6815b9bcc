/**
 * NBD access by TLS-PSK identity (docs/NBD.md). A user's pre-shared key is derived from the node's admin secret and
 * the user name, so nothing secret is stored: `POST /v1/auth/nbd-key` hands callers their own key and records their
 * principal (sub, roles, groups) under `/ferry/nbd-identities/<sub>`; the NBD server then lets a PSK identity list
 * and open what that principal may use under the API's ownership rules (a volume needs Write, a snapshot Read).
 */
import { createHmac } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import type { NbdAuthorize, VolumeEngine } from '../../node/index.js';
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

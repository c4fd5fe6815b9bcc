/**
 * Ferry's auth routes (additions under /v1): GET /v1/auth/whoami (the caller's principal), and the ownership of
 * volumes and credentials: GET /v1/ownership/{volumes|credentials}/{id} (Read access) and PUT with
 * `{ ownership: { owner?, acls? } }` (Admin access; `acls` replaces the old ACLs; changing `owner` is for
 * system.admin only). A snapshot's ownership is its volume's: GET shows it, PUT is refused. POST /v1/auth/nbd-key:
 * the caller's NBD TLS-PSK key (nbd-access.ts).
 */
import type { Context } from 'hono';
import { Hono } from 'hono';
import type { CredentialStore } from '../../cloudsnap/index.js';
import { FerryError, invalidArgument } from '../../common/index.js';
import type { VolumeEngine } from '../../node/index.js';
import { requireEngine } from '../engine-required.js';
import { resolveVolumeOrSnapshot } from '../resolve.js';
import { credentialRefSchema, resourceRefSchema } from '../schemas/index.js';
import { readJsonBody, readParam } from '../validate.js';
import type { ResourceAccess } from './access.js';
import { AUTH_OFF_PRINCIPAL, type NbdIdentities } from './nbd-access.js';
import { mayChangeOwner, type Ownership, ownershipUpdateSchema, type ResourceRef } from './ownership.js';

/** What `POST /v1/auth/nbd-key` needs: the key of an identity, and where identities' principals are recorded. */
export interface NbdKeyIssuer {
  psk: (identity: string) => Buffer;
  identities: NbdIdentities;
}

/** The auth and ownership routes, to mount under `/v1`. */
export function authRoutes(
  access: ResourceAccess,
  engine: VolumeEngine | undefined,
  credentials?: CredentialStore,
  nbd?: NbdKeyIssuer,
): Hono {
  const routes = new Hono();

  routes.post('/auth/nbd-key', async (c) => {
    if (nbd === undefined) {
      throw new FerryError('UNAVAILABLE', 'this node serves no NBD TLS keys; start it with `ferry node start`');
    }
    const principal = access.principal(c) ?? AUTH_OFF_PRINCIPAL;
    await nbd.identities.record(principal);
    // The key is the caller's own; it is never logged (the request log records no bodies).
    return c.json({ identity: principal.sub, psk_key: nbd.psk(principal.sub).toString('hex') });
  });

  routes.get('/auth/whoami', (c) => {
    const principal = access.principal(c);
    return c.json(principal === undefined ? { authentication: 'off' } : { authentication: 'on', ...principal });
  });

  async function volumeRef(c: Context): Promise<{ ref: ResourceRef; snapshot: boolean }> {
    const found = await resolveVolumeOrSnapshot(requireEngine(engine), readParam(c, 'id', resourceRefSchema));
    if (found.kind === 'volume') {
      return { ref: { kind: 'volume', id: found.volume.id, name: found.volume.name }, snapshot: false };
    }
    const { volume_id, volume_name } = found.snapshot;
    return { ref: { kind: 'volume', id: volume_id, name: volume_name }, snapshot: true };
  }

  async function credentialRef(c: Context): Promise<{ ref: ResourceRef; snapshot: boolean }> {
    if (credentials === undefined) {
      throw new FerryError('UNAVAILABLE', 'this node serves no credential store; start it with `ferry node start`');
    }
    const info = await credentials.inspect(readParam(c, 'id', credentialRefSchema));
    return { ref: { kind: 'credential', id: info.credential_id, name: info.name }, snapshot: false };
  }

  const kinds = { volumes: volumeRef, credentials: credentialRef } as const;

  for (const [kind, resolve] of Object.entries(kinds)) {
    routes.get(`/ownership/${kind}/:id`, async (c) => {
      const { ref } = await resolve(c);
      await access.require(c, ref, 'Read');
      const ownership = await access.ownership(ref);
      return c.json({ id: ref.id, ...(ownership !== undefined && { ownership }) });
    });

    routes.put(`/ownership/${kind}/:id`, async (c) => {
      const { ref, snapshot } = await resolve(c);
      if (snapshot) {
        throw invalidArgument('id', `a snapshot has its volume's ownership; set it on volume ${ref.name ?? ref.id}`);
      }
      const body = await readJsonBody(c, ownershipUpdateSchema);
      await access.require(c, ref, 'Admin');
      const principal = access.principal(c);
      const current = await access.ownership(ref);
      const owner = body.ownership.owner ?? current?.owner ?? principal?.sub;
      if (owner === undefined) throw invalidArgument('ownership.owner', 'required: the resource has no owner yet');
      if (principal !== undefined && owner !== current?.owner && !mayChangeOwner(principal)) {
        throw new FerryError('PERMISSION_DENIED', `only a system.admin may change the owner of ${kind} ${ref.id}`);
      }
      const acls = body.ownership.acls ?? current?.acls;
      const next: Ownership = { owner, ...(acls !== undefined && { acls }) };
      await access.records.set(ref, next);
      return c.json({ id: ref.id, ownership: next });
    });
  }

  return routes;
}

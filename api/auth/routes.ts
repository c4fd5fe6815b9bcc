/**
 * Ferry's auth routes (additions under /v1): GET /v1/auth/whoami (the caller's principal), and the ownership of
 * volumes and credentials: GET /v1/ownership/{volumes|credentials}/{id} (Read access) and PUT with
 * `{ ownership: { owner?, acls? } }` (Admin access; `acls` replaces the old ACLs; changing `owner` is for
 * system.admin only). A snapshot's ownership is its volume's: GET shows it, PUT is refused. POST /v1/auth/nbd-key:
 * the caller's NBD TLS-PSK key (nbd-access.ts).
 */
import { type Context, Hono } from 'hono';
import type { z } from 'zod';
import type { CredentialStore } from '../../cloudsnap/index.js';
import { FerryError, invalidArgument } from '../../common/index.js';
import type { VolumeEngine } from '../../node/index.js';
import { requireEngine } from '../engine-required.js';
import { addOperations, operationsWith } from '../operation.js';
import { resolveVolumeOrSnapshot } from '../resolve.js';
import { credentialRefSchema, resourceRefSchema } from '../schemas/index.js';
import type { ResourceAccess } from './access.js';
import { AUTH_OFF_PRINCIPAL, type NbdIdentities } from './nbd-access.js';
import { mayChangeOwner, type Ownership, ownershipUpdateSchema, type ResourceRef } from './ownership.js';

/** What `POST /v1/auth/nbd-key` needs: the key of an identity, and where identities' principals are recorded. */
export interface NbdKeyIssuer {
  psk: (identity: string) => Buffer;
  identities: NbdIdentities;
}

/** What the auth routes work on. */
interface AuthDeps {
  access: ResourceAccess;
  engine: VolumeEngine | undefined;
  credentials: CredentialStore | undefined;
  nbd: NbdKeyIssuer | undefined;
}

/** A resource whose ownership is shown or set; `snapshot` when the request named a snapshot of the volume. */
interface Resolved {
  ref: ResourceRef;
  snapshot: boolean;
}

async function resolveVolume(engine: VolumeEngine, id: string): Promise<Resolved> {
  const found = await resolveVolumeOrSnapshot(engine, id);
  if (found.kind === 'volume') {
    return { ref: { kind: 'volume', id: found.volume.id, name: found.volume.name }, snapshot: false };
  }
  const { volume_id, volume_name } = found.snapshot;
  return { ref: { kind: 'volume', id: volume_id, name: volume_name }, snapshot: true };
}

function noCredentialStore(): never {
  throw new FerryError('UNAVAILABLE', 'this node serves no credential store; start it with `ferry node start`');
}

async function resolveCredential(credentials: CredentialStore | undefined, id: string): Promise<Resolved> {
  if (credentials === undefined) noCredentialStore();
  const info = await credentials.inspect(id);
  return { ref: { kind: 'credential', id: info.credential_id, name: info.name }, snapshot: false };
}

async function showOwnership(c: Context, access: ResourceAccess, { ref }: Resolved): Promise<Response> {
  await access.require(c, ref, 'Read');
  const ownership = await access.ownership(ref);
  return c.json({ id: ref.id, ...(ownership !== undefined && { ownership }) });
}

/** The resource whose ownership a PUT sets: a snapshot has its volume's, so naming one is refused on `id`. */
function settable({ ref, snapshot }: Resolved): ResourceRef {
  if (snapshot) {
    throw invalidArgument('id', `a snapshot has its volume's ownership; set it on volume ${ref.name ?? ref.id}`);
  }
  return ref;
}

async function setOwnership(
  c: Context,
  access: ResourceAccess,
  kind: string,
  ref: ResourceRef,
  body: z.output<typeof ownershipUpdateSchema>,
): Promise<Response> {
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
}

const define = operationsWith<AuthDeps>();

/** The auth and ownership operations. */
export const authOperations = [
  define({
    method: 'get',
    path: '/v1/auth/whoami',
    operationId: 'authWhoami',
    tag: 'Auth',
    summary: "The caller's principal (or that authentication is off).",
    handler: (c, _input, { access }) => {
      const principal = access.principal(c);
      return c.json(principal === undefined ? { authentication: 'off' } : { authentication: 'on', ...principal });
    },
  }),
  define({
    method: 'post',
    path: '/v1/auth/nbd-key',
    operationId: 'authNbdKey',
    tag: 'Auth',
    summary:
      "The caller's NBD TLS-PSK identity and key (hex), for nbds:// clients; records the caller's roles and groups for NBD access.",
    handler: async (c, _input, { access, nbd }) => {
      if (nbd === undefined) {
        throw new FerryError('UNAVAILABLE', 'this node serves no NBD TLS keys; start it with `ferry node start`');
      }
      const principal = access.principal(c) ?? AUTH_OFF_PRINCIPAL;
      await nbd.identities.record(principal);
      // The key is the caller's own; it is never logged (the request log records no bodies).
      return c.json({ identity: principal.sub, psk_key: nbd.psk(principal.sub).toString('hex') });
    },
  }),
  define({
    method: 'get',
    path: '/v1/ownership/volumes/{id}',
    operationId: 'ownershipVolumeInspect',
    tag: 'Auth',
    summary: "A volume's owner and ACLs (a snapshot shows its volume's).",
    params: { id: resourceRefSchema },
    handler: async (c, { params }, { access, engine }) =>
      showOwnership(c, access, await resolveVolume(requireEngine(engine), params.id)),
  }),
  define({
    method: 'put',
    path: '/v1/ownership/volumes/{id}',
    operationId: 'ownershipVolumeUpdate',
    tag: 'Auth',
    summary: "Sets a volume's owner (system.admin only) and ACLs.",
    params: { id: resourceRefSchema },
    body: ownershipUpdateSchema,
    // The volume is found (404), and a snapshot refused, before the body is judged.
    lookup: async (_c, { params }, { engine }) => settable(await resolveVolume(requireEngine(engine), params.id)),
    handler: (c, { body, found }, { access }) => setOwnership(c, access, 'volumes', found, body),
  }),
  define({
    method: 'get',
    path: '/v1/ownership/credentials/{id}',
    operationId: 'ownershipCredentialInspect',
    tag: 'Auth',
    summary: "A credential's owner and ACLs.",
    params: { id: credentialRefSchema },
    handler: async (c, { params }, { access, credentials }) =>
      showOwnership(c, access, await resolveCredential(credentials, params.id)),
  }),
  define({
    method: 'put',
    path: '/v1/ownership/credentials/{id}',
    operationId: 'ownershipCredentialUpdate',
    tag: 'Auth',
    summary: "Sets a credential's owner (system.admin only) and ACLs.",
    params: { id: credentialRefSchema },
    body: ownershipUpdateSchema,
    lookup: async (_c, { params }, { credentials }) => settable(await resolveCredential(credentials, params.id)),
    handler: (c, { body, found }, { access }) => setOwnership(c, access, 'credentials', found, body),
  }),
];

/**
 * The auth and ownership routes, to mount under `/v1`. Without a credential store the credential ownership routes
 * answer UNAVAILABLE, whatever the request.
 */
export function authRoutes(
  access: ResourceAccess,
  engine: VolumeEngine | undefined,
  credentials?: CredentialStore,
  nbd?: NbdKeyIssuer,
): Hono {
  const routes = new Hono();
  if (credentials === undefined) routes.on(['GET', 'PUT'], '/ownership/credentials/:id', noCredentialStore);
  return addOperations(routes, authOperations, { access, engine, credentials, nbd });
}

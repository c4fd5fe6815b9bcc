/**
 * OpenStorageCredentials rpcs (libopenstorage/openstorage api/api.proto, google.api.http options):
 * Create POST /v1/credentials, Enumerate GET /v1/credentials, Inspect GET /v1/credentials/inspect/{credential_id},
 * Delete DELETE /v1/credentials/{credential_id}, Validate GET /v1/credentials/validate/{credential_id}.
 * `{credential_id}` may also be the credential's name. Inspect never returns a secret.
 */
import { Hono } from 'hono';
import type { CredentialStore } from '../../cloudsnap/index.js';
import { FerryError } from '../../common/index.js';
import type { ResourceAccess } from '../auth/access.js';
import { credentialRef } from '../auth/refs.js';
import { addOperations, operationsWith } from '../operation.js';
import { removeWithSchedules } from '../schedules/dependents.js';
import { createCredentialSchema, credentialRefSchema, deleteQuerySchema } from '../schemas/index.js';
import type { ScheduleApi } from './schedule-policies.js';

/** What the credential operations work on. */
interface CredentialDeps {
  credentials: CredentialStore;
  access: ResourceAccess;
  schedules: ScheduleApi | undefined;
}

const define = operationsWith<CredentialDeps>();
const credentialId = { credential_id: credentialRefSchema };

/** The credential rpcs. */
export const credentialOperations = [
  define({
    method: 'post',
    path: '/v1/credentials',
    operationId: 'credentialCreate',
    tag: 'Credentials',
    summary: 'Stores an object-store credential (secrets sealed at rest).',
    rpc: 'OpenStorageCredentials.Create',
    body: createCredentialSchema,
    handler: async (c, { body }, { credentials, access }) => {
      // Only admins may point a directory credential outside the node's directory roots.
      const created = await credentials.create(body, { admin: access.isAdmin(c) });
      await access.own(c, credentialRef(created));
      return c.json({ credential_id: created.credential_id });
    },
  }),
  define({
    method: 'get',
    path: '/v1/credentials',
    operationId: 'credentialEnumerate',
    tag: 'Credentials',
    summary: 'Ids of every credential.',
    rpc: 'OpenStorageCredentials.Enumerate',
    handler: async (c, _input, { credentials, access }) => {
      const visible = await access.filter(c, await credentials.list(), credentialRef);
      return c.json({ credential_ids: visible.map((info) => info.credential_id) });
    },
  }),
  define({
    method: 'get',
    path: '/v1/credentials/inspect/{credential_id}',
    operationId: 'credentialInspect',
    tag: 'Credentials',
    summary: 'A credential without its secrets.',
    rpc: 'OpenStorageCredentials.Inspect',
    params: credentialId,
    handler: async (c, { params }, { credentials, access }) => {
      const info = await credentials.inspect(params.credential_id);
      await access.require(c, credentialRef(info), 'Read');
      return c.json(info);
    },
  }),
  define({
    method: 'delete',
    path: '/v1/credentials/{credential_id}',
    operationId: 'credentialDelete',
    tag: 'Credentials',
    summary: 'Deletes a credential (with_schedules=true: and the backup schedules using it).',
    rpc: 'OpenStorageCredentials.Delete',
    params: credentialId,
    query: deleteQuerySchema,
    handler: async (c, { params, query }, { credentials, access, schedules }) => {
      const info = await credentials.inspect(params.credential_id);
      await access.require(c, credentialRef(info), 'Admin');
      const deleted = await removeWithSchedules(
        schedules,
        { kind: 'credential', id: info.credential_id, name: info.name },
        query.with_schedules === 'true',
        () => credentials.delete(info.credential_id),
      );
      await access.forget(credentialRef(info));
      return c.json(deleted.length > 0 ? { deleted_schedule_ids: deleted } : {});
    },
  }),
  define({
    method: 'get',
    path: '/v1/credentials/validate/{credential_id}',
    operationId: 'credentialValidate',
    tag: 'Credentials',
    summary: 'Checks that the object store answers and the bucket is writable.',
    rpc: 'OpenStorageCredentials.Validate',
    params: credentialId,
    handler: async (c, { params }, { credentials, access }) => {
      const ref = params.credential_id;
      await access.require(c, credentialRef(await credentials.inspect(ref)), 'Read');
      await credentials.validate(ref, { signal: c.req.raw.signal });
      return c.json({});
    },
  }),
];

/**
 * Routes of the credential rpcs, to mount under `/v1`; without a store they answer UNAVAILABLE. Ownership
 * (`access`): create records the caller as owner, enumerate lists what the caller may read, inspect and validate
 * need Read, delete Admin.
 */
export function credentialRoutes(
  credentials: CredentialStore | undefined,
  access: ResourceAccess,
  schedules?: ScheduleApi,
): Hono {
  const routes = new Hono();
  if (credentials === undefined) {
    const unavailable = (): never => {
      throw new FerryError('UNAVAILABLE', 'this node serves no credential store; start it with `ferry node start`');
    };
    routes.all('/credentials', unavailable);
    routes.all('/credentials/*', unavailable);
    return routes;
  }
  return addOperations(routes, credentialOperations, { credentials, access, schedules });
}

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
import { removeWithSchedules } from '../schedules/dependents.js';
import { createCredentialSchema, credentialRefSchema, deleteQuerySchema } from '../schemas/index.js';
import { readJsonBody, readParam, readQuery } from '../validate.js';
import type { ScheduleApi } from './schedule-policies.js';

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

  routes.post('/credentials', async (c) => {
    const body = await readJsonBody(c, createCredentialSchema);
    // Only admins may point a directory credential outside the node's directory roots.
    const created = await credentials.create(body, { admin: access.isAdmin(c) });
    await access.own(c, credentialRef(created));
    return c.json({ credential_id: created.credential_id });
  });

  routes.get('/credentials', async (c) => {
    const visible = await access.filter(c, await credentials.list(), credentialRef);
    return c.json({ credential_ids: visible.map((info) => info.credential_id) });
  });

  routes.get('/credentials/inspect/:credential_id', async (c) => {
    const ref = readParam(c, 'credential_id', credentialRefSchema);
    const info = await credentials.inspect(ref);
    await access.require(c, credentialRef(info), 'Read');
    return c.json(info);
  });

  routes.delete('/credentials/:credential_id', async (c) => {
    const ref = readParam(c, 'credential_id', credentialRefSchema);
    const query = readQuery(c, deleteQuerySchema);
    const info = await credentials.inspect(ref);
    await access.require(c, credentialRef(info), 'Admin');
    const deleted = await removeWithSchedules(
      schedules,
      { kind: 'credential', id: info.credential_id, name: info.name },
      query.with_schedules === 'true',
      () => credentials.delete(info.credential_id),
    );
    await access.forget(credentialRef(info));
    return c.json(deleted.length > 0 ? { deleted_schedule_ids: deleted } : {});
  });

  routes.get('/credentials/validate/:credential_id', async (c) => {
    const ref = readParam(c, 'credential_id', credentialRefSchema);
    await access.require(c, credentialRef(await credentials.inspect(ref)), 'Read');
    await credentials.validate(ref, { signal: c.req.raw.signal });
    return c.json({});
  });

  return routes;
}

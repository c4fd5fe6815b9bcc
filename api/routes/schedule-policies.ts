/**
 * OpenStorageSchedulePolicy rpcs (libopenstorage/openstorage api/api.proto, google.api.http options): Create POST
 * /v1/schedulepolicies, Update PUT /v1/schedulepolicies, Enumerate GET /v1/schedulepolicies, Inspect GET
 * /v1/schedulepolicies/inspect/{name}, Delete DELETE /v1/schedulepolicies/{name}. Policies carry Ferry's `retention`
 * (GFS) and `owner` (the token subject of who created it, '' without authentication).
 */
import { type Context, Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { ScheduleRecords } from '../schedules/index.js';
import { nameSchema, schedulePolicyRequestSchema } from '../schemas/index.js';
import { readJsonBody, readParam } from '../validate.js';

/** What the schedule routes work on. */
export interface ScheduleApi {
  records: ScheduleRecords;
  /** Called after a policy or schedule changed (the daemon wakes its scheduler). Default: nothing. */
  changed?: () => void;
  /** The clock for `next_run` in views; default Date.now. */
  now?: () => number;
}

/** The caller's subject when the app authenticates (`c.get('principal')?.sub`), else ''. */
export function ownerOf(c: Context): string {
  const principal: unknown = (c.get as (key: string) => unknown)('principal');
  if (typeof principal === 'object' && principal !== null && 'sub' in principal && typeof principal.sub === 'string') {
    return principal.sub;
  }
  return '';
}

/** Throws UNAVAILABLE: the app runs without schedules. */
export function schedulesUnavailable(): never {
  throw new FerryError('UNAVAILABLE', 'this node runs no backup schedules; start it with `ferry node start`');
}

/** Routes of the schedule policy rpcs, to mount under `/v1`; without `api` they answer UNAVAILABLE. */
export function schedulePolicyRoutes(api: ScheduleApi | undefined): Hono {
  const routes = new Hono();
  if (api === undefined) {
    routes.all('/schedulepolicies', schedulesUnavailable);
    routes.all('/schedulepolicies/*', schedulesUnavailable);
    return routes;
  }
  const { records } = api;
  const changed = api.changed ?? (() => undefined);

  routes.post('/schedulepolicies', async (c) => {
    const { schedule_policy } = await readJsonBody(c, schedulePolicyRequestSchema);
    await records.createPolicy(schedule_policy, ownerOf(c));
    changed();
    return c.json({});
  });

  routes.put('/schedulepolicies', async (c) => {
    const { schedule_policy } = await readJsonBody(c, schedulePolicyRequestSchema);
    await records.updatePolicy(schedule_policy);
    changed();
    return c.json({});
  });

  routes.get('/schedulepolicies', async (c) => c.json({ policies: await records.listPolicies() }));

  routes.get('/schedulepolicies/inspect/:name', async (c) => {
    const name = readParam(c, 'name', nameSchema);
    return c.json({ policy: await records.inspectPolicy(name) });
  });

  routes.delete('/schedulepolicies/:name', async (c) => {
    const name = readParam(c, 'name', nameSchema);
    await records.deletePolicy(name);
    changed();
    return c.json({});
  });

  return routes;
}

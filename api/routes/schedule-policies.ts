/**
 * OpenStorageSchedulePolicy rpcs (libopenstorage/openstorage api/api.proto, google.api.http options): Create POST
 * /v1/schedulepolicies, Update PUT /v1/schedulepolicies, Enumerate GET /v1/schedulepolicies, Inspect GET
 * /v1/schedulepolicies/inspect/{name}, Delete DELETE /v1/schedulepolicies/{name}. Policies carry Ferry's `retention`
 * (GFS) and `owner` (the token subject of who created it, '' without authentication).
 */
import { type Context, Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import { addOperations, operationsWith } from '../operation.js';
import type { ScheduleRecords } from '../schedules/index.js';
import { nameSchema, schedulePolicyRequestSchema } from '../schemas/index.js';

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

const define = operationsWith<{ records: ScheduleRecords; changed: () => void }>();

/** The schedule policy rpcs. */
export const schedulePolicyOperations = [
  define({
    method: 'post',
    path: '/v1/schedulepolicies',
    operationId: 'schedulePolicyCreate',
    tag: 'Schedules',
    summary: 'Creates a schedule policy (intervals and GFS retention).',
    rpc: 'OpenStorageSchedulePolicy.Create',
    body: schedulePolicyRequestSchema,
    handler: async (c, { body }, { records, changed }) => {
      await records.createPolicy(body.schedule_policy, ownerOf(c));
      changed();
      return c.json({});
    },
  }),
  define({
    method: 'put',
    path: '/v1/schedulepolicies',
    operationId: 'schedulePolicyUpdate',
    tag: 'Schedules',
    summary: 'Replaces a schedule policy.',
    rpc: 'OpenStorageSchedulePolicy.Update',
    body: schedulePolicyRequestSchema,
    handler: async (c, { body }, { records, changed }) => {
      await records.updatePolicy(body.schedule_policy);
      changed();
      return c.json({});
    },
  }),
  define({
    method: 'get',
    path: '/v1/schedulepolicies',
    operationId: 'schedulePolicyEnumerate',
    tag: 'Schedules',
    summary: 'Every schedule policy.',
    rpc: 'OpenStorageSchedulePolicy.Enumerate',
    handler: async (c, _input, { records }) => c.json({ policies: await records.listPolicies() }),
  }),
  define({
    method: 'get',
    path: '/v1/schedulepolicies/inspect/{name}',
    operationId: 'schedulePolicyInspect',
    tag: 'Schedules',
    summary: 'One schedule policy.',
    rpc: 'OpenStorageSchedulePolicy.Inspect',
    params: { name: nameSchema },
    handler: async (c, { params }, { records }) => c.json({ policy: await records.inspectPolicy(params.name) }),
  }),
  define({
    method: 'delete',
    path: '/v1/schedulepolicies/{name}',
    operationId: 'schedulePolicyDelete',
    tag: 'Schedules',
    summary: 'Deletes a schedule policy.',
    rpc: 'OpenStorageSchedulePolicy.Delete',
    params: { name: nameSchema },
    handler: async (c, { params }, { records, changed }) => {
      await records.deletePolicy(params.name);
      changed();
      return c.json({});
    },
  }),
];

/** Routes of the schedule policy rpcs, to mount under `/v1`; without `api` they answer UNAVAILABLE. */
export function schedulePolicyRoutes(api: ScheduleApi | undefined): Hono {
  const routes = new Hono();
  if (api === undefined) {
    routes.all('/schedulepolicies', schedulesUnavailable);
    routes.all('/schedulepolicies/*', schedulesUnavailable);
    return routes;
  }
  return addOperations(routes, schedulePolicyOperations, {
    records: api.records,
    changed: api.changed ?? (() => undefined),
  });
}

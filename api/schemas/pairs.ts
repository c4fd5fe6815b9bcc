/**
 * Schemas of the cluster pair and migration routes (OpenStorageClusterPair and OpenStorageMigrate of
 * libopenstorage/openstorage api/api.proto, snake_case), with Ferry's additions: a pair's name and URL, its live
 * status, the migration's passes and cutover.
 */
import { z } from 'zod';
import { typeError } from './common.js';
import { credentialRefSchema } from './credentials.js';

/** A pair by name, pair id or the other cluster's id. */
export const pairRefSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(128, 'is too long')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a cluster pair name or id as ferry cluster pair list shows it');

/** `GET /v1/clusterpairs/token?ttl_seconds=`. */
export const pairTokenQuerySchema = z.strictObject({
  ttl_seconds: z
    .string(typeError('a number of seconds'))
    .regex(/^[0-9]{1,7}$/, 'must be a whole number of seconds')
    .optional(),
});

/** SdkClusterPairCreateRequest `{ request: {...} }`: Ferry takes `remote_url` (or OpenStorage's ip and port). */
export const pairCreateSchema = z.strictObject(
  {
    request: z.strictObject(
      {
        name: z.string(typeError('a string')).optional(),
        remote_url: z.string(typeError('a URL')).optional(),
        remote_cluster_ip: z.string(typeError('a host')).optional(),
        remote_cluster_port: z.number(typeError('a port')).int().min(1).max(65535).optional(),
        remote_cluster_token: z.string(typeError('a pair token')).min(1, 'must not be empty').max(256),
        credential_id: credentialRefSchema.optional(),
        local_url: z.string(typeError('a URL')).optional(),
      },
      typeError('a JSON object'),
    ),
  },
  typeError('a JSON object'),
);

/** ClusterPairInfo with Ferry's fields. */
export const pairInfoSchema = z.strictObject({
  id: z.string(),
  pair_id: z.string(),
  name: z.string(),
  endpoint: z.string(),
  secure: z.boolean(),
  remote_cluster_name: z.string(),
  created: z.string(),
  initiated: z.boolean(),
  credential_id: z.string().optional(),
  status: z.enum(['Ready', 'Degraded', 'Error']).optional(),
  reason: z.string().optional(),
  rtt_ms: z.number().optional(),
  bandwidth_bytes_per_second: z.number().optional(),
});

/** A pair as the API shows it. */
export type PairInfoView = z.infer<typeof pairInfoSchema>;

const taskIdSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(64, 'is too long')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a task id: letters, digits, ".", "_" or "-"');

const volumeRefSchema = z.string(typeError('a volume name or id')).min(1, 'must not be empty').max(256);

/** SdkCloudMigrateStartRequest with Ferry's `volumes` (several at once) and `cutover`. */
export const migrateStartSchema = z.strictObject(
  {
    cluster_id: pairRefSchema,
    task_id: taskIdSchema.optional(),
    volume: z.strictObject({ volume_id: volumeRefSchema }, typeError('a JSON object')).optional(),
    volumes: z.array(volumeRefSchema, typeError('a list of volumes')).max(64, 'at most 64 volumes').optional(),
    cutover: z.enum(['auto', 'manual'], { error: () => 'must be auto or manual' }).optional(),
    snapshots: z.array(volumeRefSchema, typeError('a list of snapshots')).max(64, 'at most 64 snapshots').optional(),
  },
  typeError('a JSON object'),
);

/** SdkCloudMigrateCancelRequest `{ request: { task_id } }`, and Ferry's cutover call of the same shape. */
export const migrateTaskSchema = z.strictObject(
  { request: z.strictObject({ task_id: taskIdSchema }, typeError('a JSON object')) },
  typeError('a JSON object'),
);

/** SdkCloudMigrateStatusRequest `{ request: { task_id?, cluster_id? } }`. */
export const migrateStatusSchema = z.strictObject(
  {
    request: z
      .strictObject(
        { task_id: taskIdSchema.optional(), cluster_id: pairRefSchema.optional() },
        typeError('a JSON object'),
      )
      .optional(),
  },
  typeError('a JSON object'),
);

/** CloudMigrateInfo with Ferry's fields. */
export const migrateInfoSchema = z.strictObject({
  task_id: z.string(),
  cluster_id: z.string(),
  pair_name: z.string(),
  local_volume_id: z.string(),
  local_volume_name: z.string(),
  remote_volume_id: z.string().optional(),
  current_stage: z.enum(['InitialCopy', 'Incremental', 'AwaitingCutover', 'Cutover', 'Done']),
  status: z.enum(['Queued', 'Active', 'Done', 'Failed', 'Aborted']),
  error_reason: z.string().optional(),
  start_time: z.string(),
  completed_time: z.string().optional(),
  bytes_total: z.number(),
  bytes_done: z.number(),
  eta_seconds: z.number().optional(),
  pass: z.number(),
  bytes_sent: z.number(),
  wire_bytes: z.number(),
  cutover: z.enum(['auto', 'manual']),
  cutover_requested: z.boolean().optional(),
  writes_held_ms: z.number().optional(),
  remote_cleanup: z.enum(['pending', 'done']).optional(),
  snapshots: z.array(z.string()).optional(),
  snapshots_done: z.number().optional(),
  node_id: z.string(),
});

/** A migration as the API shows it. */
export type MigrateInfoView = z.infer<typeof migrateInfoSchema>;

/** Request schemas of the OpenStorageVolume volume rpcs (SdkVolume*Request), snake_case as in api.proto. */
import { z } from 'zod';
import {
  haLevelSchema,
  labelsSchema,
  labelUpdatesSchema,
  MAX_HA_LEVEL,
  MAX_LABEL_VALUE_LENGTH,
  nameSchema,
  resourceRefSchema,
  sizeSchema,
  typeError,
} from './common.js';

/** A node id as `GET /v1/nodes` lists it. */
const nodeRefSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(128, 'is too long')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a node id as GET /v1/nodes lists it');

/** A rack or zone name, as a node's `rack=` / `zone=` label holds it. */
const topologyNameSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(MAX_LABEL_VALUE_LENGTH, `must be at most ${MAX_LABEL_VALUE_LENGTH} characters`)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a label value: letters, digits, ".", "_", "-"');

/** A list of 1 to MAX_HA_LEVEL distinct entries. */
function distinctList<T extends z.ZodType<string>>(item: T, what: string) {
  return z
    .array(item, typeError(`a list of ${what}`))
    .min(1, `must name at least one ${what.replace(/s$/, '')}`)
    .max(MAX_HA_LEVEL, `must name at most ${MAX_HA_LEVEL} ${what}`)
    .refine((list) => new Set(list).size === list.length, `must not name the same ${what.replace(/s$/, '')} twice`);
}

/** OpenStorage ReplicaSet: `{ nodes: [node id] }`, the nodes to hold the replicas. */
export const replicaSetSchema = z.strictObject({ nodes: distinctList(nodeRefSchema, 'nodes') }, typeError('an object'));

/**
 * SdkVolumeCreateRequest: `{ name, spec: { size, ha_level?, replica_set?, racks?, zones?, shared?, encrypted? },
 * labels? }`. `spec.encrypted` (OpenStorage VolumeSpec) encrypts the data at rest under the KEK named by the label
 * `ferry.io/kek`. `spec.replica_set.nodes` (OpenStorage) names the nodes to hold the replicas; `spec.racks` and
 * `spec.zones` (Ferry's simple placement pins, instead of OpenStorage's `placement_strategy` rules) allow only nodes
 * labelled `rack=` / `zone=` one of them.
 */
export const createVolumeSchema = z.strictObject(
  {
    name: nameSchema,
    spec: z.strictObject(
      {
        size: sizeSchema,
        ha_level: haLevelSchema.optional(),
        replica_set: replicaSetSchema.optional(),
        racks: distinctList(topologyNameSchema, 'racks').optional(),
        zones: distinctList(topologyNameSchema, 'zones').optional(),
        shared: z.boolean(typeError('true or false')).optional(),
        encrypted: z.boolean(typeError('true or false')).optional(),
      },
      typeError('an object'),
    ),
    labels: labelsSchema.optional(),
  },
  typeError('a JSON object'),
);

/** VolumeLocator as a filter: `{ name?, volume_labels? }`. */
const locatorSchema = z.strictObject(
  { name: nameSchema.optional(), volume_labels: labelsSchema.optional() },
  typeError('an object'),
);

/** VolumeLocator in an update: only `volume_labels`, where '' removes a label. */
const locatorUpdateSchema = z.strictObject({ volume_labels: labelUpdatesSchema.optional() }, typeError('an object'));

/**
 * SdkVolumeUpdateRequest: `{ volume_id?, labels?, locator? { volume_labels }, spec? { size?, ha_level?,
 * replica_set? } }` (spec is api.proto's VolumeSpecUpdate). `volume_id` comes from the path; if the body repeats it,
 * it must match. A label value of '' removes the label. `spec.ha_level` changes the number of replicas by one (the
 * answer comes at once; a new replica fills in the background, shown by inspect); with it, `spec.replica_set.nodes`
 * names the one node to add the replica on, or to drop it from. `spec.resync_bandwidth` caps the copies that
 * resync or fill the volume's replicas, bytes per second (0: none; null: the cluster-wide cap again).
 */
export const updateVolumeSchema = z.strictObject(
  {
    volume_id: resourceRefSchema.optional(),
    labels: labelUpdatesSchema.optional(),
    locator: locatorUpdateSchema.optional(),
    spec: z
      .strictObject(
        {
          size: sizeSchema.optional(),
          ha_level: haLevelSchema.optional(),
          resync_bandwidth: z
            .union(
              [
                z.number().int('must be a whole number').min(0, 'must not be negative').max(Number.MAX_SAFE_INTEGER),
                z.null(),
              ],
              typeError('bytes per second (0: no cap) or null (the cluster-wide cap)'),
            )
            .optional(),
          replica_set: z
            .strictObject(
              {
                nodes: z
                  .array(nodeRefSchema, typeError('a list of nodes'))
                  .length(1, 'must name exactly one node (the replica to add or drop)'),
              },
              typeError('an object'),
            )
            .optional(),
        },
        typeError('an object'),
      )
      .optional(),
  },
  typeError('a JSON object'),
);

/** SdkVolumeCloneRequest: `{ name, parent_id, additional_labels? }`; parent is a volume or a snapshot. */
export const cloneVolumeSchema = z.strictObject(
  {
    name: nameSchema,
    parent_id: resourceRefSchema,
    additional_labels: labelsSchema.optional(),
  },
  typeError('a JSON object'),
);

/**
 * SdkVolumeEnumerateWithFiltersRequest `{ locator? }`, and the `{ name?, labels? }` filters that
 * SdkVolumeInspectWithFiltersRequest uses; every given filter must match.
 */
export const volumeFiltersSchema = z.strictObject(
  { locator: locatorSchema.optional(), name: nameSchema.optional(), labels: labelsSchema.optional() },
  typeError('a JSON object'),
);

/** Query of `GET /v1/volumes/{volume_id}/changed_blocks` (a Ferry addition). */
/**
 * Query of `DELETE /v1/volumes/{volume_id}` and `DELETE /v1/credentials/{credential_id}` (Ferry): `with_schedules=true`
 * deletes the cloud backup schedules that use it in the same step (without it, those make the delete
 * FAILED_PRECONDITION).
 */
export const deleteQuerySchema = z.strictObject({
  with_schedules: z.enum(['true', 'false'], { error: () => 'must be true or false' }).optional(),
});

export const changedBlocksQuerySchema = z.strictObject({
  base_snapshot_id: resourceRefSchema.optional(),
  target_snapshot_id: resourceRefSchema.optional(),
  offset: z
    .string()
    .regex(/^[0-9]{1,16}$/, 'must be a whole number of bytes')
    .transform(Number)
    .optional(),
  limit: z
    .string()
    .regex(/^[0-9]{1,6}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(1, 'must be at least 1').max(100_000, 'must be at most 100000'))
    .optional(),
});

export type CreateVolumeBody = z.output<typeof createVolumeSchema>;
export type UpdateVolumeBody = z.output<typeof updateVolumeSchema>;
export type CloneVolumeBody = z.output<typeof cloneVolumeSchema>;
export type VolumeFiltersBody = z.output<typeof volumeFiltersSchema>;
export type ChangedBlocksQuery = z.output<typeof changedBlocksQuerySchema>;

/** Ferry: one replica of a volume in a view (node, state, a filling replica's progress). */
export const replicaViewSchema = z.strictObject({
  node_id: z.string(),
  state: z.enum(['in-sync', 'filling', 'out-of-sync']),
  resync: z
    .strictObject({
      kind: z.enum(['fill', 'dirty']),
      copied_bytes: z.number(),
      total_bytes: z.number(),
      bytes_per_second: z.number().optional(),
      eta_seconds: z.number().optional(),
    })
    .optional(),
  since: z.string().optional(),
  reason: z.string().optional(),
});

/** OpenStorage Volume as Ferry answers it (api/views.ts VolumeView): the fields it fills plus Ferry's. */
export const volumeViewSchema = z.strictObject({
  id: z.string(),
  source: z.strictObject({ parent: z.string() }).optional(),
  readonly: z.boolean(),
  locator: z.strictObject({ name: z.string(), volume_labels: z.record(z.string(), z.string()) }),
  ctime: z.string(),
  spec: z.strictObject({ size: z.number(), ha_level: z.number(), shared: z.boolean(), encrypted: z.boolean() }),
  encryption: z.strictObject({ kek: z.string(), key_provider: z.string() }).optional(),
  usage: z.number(),
  status: z.enum(['VOLUME_STATUS_UP', 'VOLUME_STATUS_DEGRADED', 'VOLUME_STATUS_DOWN']),
  state: z.enum(['VOLUME_STATE_AVAILABLE', 'VOLUME_STATE_ATTACHED', 'VOLUME_STATE_RESTORE']),
  snapshot_count: z.number(),
  attached: z.boolean(),
  attached_by: z.array(z.strictObject({ client: z.string(), since: z.string() })).optional(),
  open_problem: z.string().optional(),
  bytes_used: z.number(),
  bytes_used_total: z.number(),
  export_name: z.string(),
  error: z.string().optional(),
  replica_sets: z.array(z.strictObject({ nodes: z.array(z.string()) })).optional(),
  replicas: z.array(replicaViewSchema).optional(),
  attached_on: z.string().optional(),
  attached_for: z.enum(['resync']).optional(),
  migrated_to: z.string().optional(),
  cutover: z.boolean().optional(),
});

/** SdkVolumeInspectResponse: `{ volume, name, labels }`. */
export const volumeInspectResponseSchema = z.strictObject({
  volume: volumeViewSchema,
  name: z.string(),
  labels: z.record(z.string(), z.string()),
});

/** SdkVolumeInspectWithFiltersResponse: `{ volumes: [SdkVolumeInspectResponse] }`. */
export const volumeInspectWithFiltersResponseSchema = z.strictObject({
  volumes: z.array(volumeInspectResponseSchema),
});

/** Why a node is ranked where it is for a volume (`GET /v1/volumes/{volume_id}/locality`). */
export const LOCALITY_REASONS = ['replica', 'filling-replica', 'same-rack', 'same-zone', 'other'] as const;

/**
 * Ferry's data locality answer (what a scheduler extender such as Stork asks): the cluster's online nodes, best
 * first, each with a score (higher is better) and the reason.
 */
export const localityResponseSchema = z.strictObject({
  volume_id: z.string(),
  nodes: z.array(
    z.strictObject({
      node_id: z.string(),
      hostname: z.string(),
      score: z.number(),
      reason: z.enum(LOCALITY_REASONS),
      /** The node's `rack` and `zone` labels, when it has them. */
      rack: z.string().optional(),
      zone: z.string().optional(),
    }),
  ),
});

export type LocalityResponse = z.output<typeof localityResponseSchema>;

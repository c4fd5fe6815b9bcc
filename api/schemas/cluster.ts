/**
 * Schemas of the OpenStorageIdentity, OpenStorageCluster and OpenStorageNode rpcs (libopenstorage/openstorage
 * api/api.proto, snake_case): the one path parameter they take (`node_id`), and their responses, which the OpenAPI
 * document shows and a test checks the routes against.
 */
import { z } from 'zod';
import { typeError } from './common.js';

/** `{node_id}` in a path: a node id (a UUID) as `GET /v1/nodes` lists it. */
export const nodeIdSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(128, 'is too long')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a node id as GET /v1/nodes lists it');

/** api.proto's `Status` enum as the REST gateway writes it (the states Ferry reports). */
export const NODE_STATUSES = [
  'STATUS_NONE',
  'STATUS_INIT',
  'STATUS_OK',
  'STATUS_OFFLINE',
  'STATUS_ERROR',
  'STATUS_MAINTENANCE',
] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

/** OpenStorageService.Type values Ferry can serve. */
export const SERVICE_TYPES = [
  'CLUSTER',
  'CLOUD_BACKUP',
  'CREDENTIALS',
  'NODE',
  'SCHEDULE_POLICY',
  'VOLUME',
  'IDENTITY',
] as const;
export type ServiceType = (typeof SERVICE_TYPES)[number];

/** SdkIdentityVersionResponse. */
export const versionResponseSchema = z.strictObject({
  sdk_version: z.strictObject({ major: z.number(), minor: z.number(), patch: z.number(), version: z.string() }),
  version: z.strictObject({ driver: z.string(), version: z.string(), details: z.record(z.string(), z.string()) }),
});

/** SdkIdentityCapabilitiesResponse: one SdkServiceCapability per service this server answers. */
export const capabilitiesResponseSchema = z.strictObject({
  capabilities: z.array(z.strictObject({ service: z.strictObject({ type: z.enum(SERVICE_TYPES) }) })),
});

/** StorageCluster (SdkClusterInspectCurrentResponse.cluster). */
export const storageClusterSchema = z.strictObject({
  status: z.enum(NODE_STATUSES),
  id: z.string(),
  name: z.string(),
  /** Ferry's: how many nodes are in each state. */
  nodes: z.optional(z.strictObject({ online: z.number(), offline: z.number(), maintenance: z.number() })),
});

/** SdkClusterInspectCurrentResponse. */
export const clusterInspectResponseSchema = z.strictObject({ cluster: storageClusterSchema });

/**
 * Ferry's cluster-wide replication settings (docs/REPLICATION.md, R17 and C3): `resync_bandwidth`, the cap of the
 * copies that resync or fill replicas on each node, bytes per second (0: none); `replica_timeout_seconds`, how long a
 * replica may stay out of sync before a new one replaces it. Each node follows them at once.
 */
export const clusterOptionsSchema = z.strictObject({
  resync_bandwidth: z.number(),
  replica_timeout_seconds: z.number(),
});

/** Body of `PUT /v1/clusters/options`: the settings to change (the others stay). */
export const clusterOptionsUpdateSchema = z.strictObject(
  {
    resync_bandwidth: z
      .number(typeError('bytes per second, a number (0: no cap)'))
      .int('must be a whole number')
      .min(0, 'must not be negative')
      .max(Number.MAX_SAFE_INTEGER, 'is too large')
      .optional(),
    replica_timeout_seconds: z
      .number(typeError('seconds, a number'))
      .int('must be a whole number')
      .min(1, 'must be at least 1 second')
      .max(10 * 365 * 86400, 'is too large')
      .optional(),
  },
  typeError('a JSON object'),
);

/** Answer of `GET` and `PUT /v1/clusters/options`. */
export const clusterOptionsResponseSchema = z.strictObject({ options: clusterOptionsSchema });

/** A replica a node holds (from the catalog). */
export const heldReplicaSchema = z.strictObject({
  volume_id: z.string(),
  volume_name: z.string(),
  state: z.enum(['in-sync', 'filling', 'out-of-sync']),
});

/**
 * StorageNode: the api.proto fields Ferry fills (ids, status, host and memory figures), plus Ferry's `api_url`,
 * `version` and `start_time`, `last_seen` (when the node last announced itself in the cluster store), `state`
 * (Online, Offline, Maintenance: `status` in words), `addresses` (`api`, `nbd`, `repl` URLs), `capacity` of its
 * data directory as last announced, `volumes` (ids of the volumes attached there) and `replicas` (held there).
 */
export const storageNodeSchema = z.strictObject({
  id: z.string(),
  status: z.enum(NODE_STATUSES),
  hostname: z.string(),
  mgmt_ip: z.string(),
  data_ip: z.string(),
  cpu: z.number(),
  mem_total: z.number(),
  mem_used: z.number(),
  mem_free: z.number(),
  avg_load: z.number(),
  node_labels: z.record(z.string(), z.string()),
  api_url: z.string(),
  version: z.string(),
  start_time: z.string(),
  last_seen: z.string(),
  state: z.enum(['Online', 'Offline', 'Maintenance']),
  addresses: z.record(z.string(), z.string()),
  capacity: z.optional(z.strictObject({ size_bytes: z.number(), free_bytes: z.number(), used_bytes: z.number() })),
  volumes: z.array(z.string()),
  replicas: z.array(heldReplicaSchema),
});

/** SdkNodeEnumerateWithFiltersResponse: every node with its details. */
export const nodeEnumerateWithFiltersResponseSchema = z.strictObject({ nodes: z.array(storageNodeSchema) });

/** Body of `POST /v1/nodes/maintenance/{node_id}`. */
export const nodeMaintenanceRequestSchema = z.strictObject({
  maintenance: z.boolean(typeError('true (enter maintenance) or false (exit)')),
});

/** SdkNodeEnumerateResponse. */
export const nodeEnumerateResponseSchema = z.strictObject({ node_ids: z.array(z.string()) });

/** SdkNodeInspectResponse and SdkNodeInspectCurrentResponse. */
export const nodeInspectResponseSchema = z.strictObject({ node: storageNodeSchema });

export type StorageNodeView = z.output<typeof storageNodeSchema>;
export type StorageClusterView = z.output<typeof storageClusterSchema>;

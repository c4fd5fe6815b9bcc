/**
 * OpenStorageVolume volume rpcs (libopenstorage/openstorage api/api.proto, google.api.http options):
 * Create POST /v1/volumes, Clone POST /v1/volumes/clone, Delete DELETE /v1/volumes/{volume_id},
 * Inspect GET /v1/volumes/inspect/{volume_id}, Update PUT /v1/volumes/{volume_id}, Enumerate GET /v1/volumes,
 * EnumerateWithFilters POST /v1/volumes/filters, InspectWithFilters POST /v1/volumes/inspectwithfilters;
 * Ferry additions: GET /v1/volumes/{volume_id}/changed_blocks, GET /v1/volumes/{volume_id}/locality.
 */
import { Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { ChangedBlocksRequest, UpdateVolumeRequest, VolumeEngine, VolumeInfo } from '../../node/index.js';
import type { ResourceAccess } from '../auth/access.js';
import { resolvedRef, volumeRef } from '../auth/refs.js';
import type { ClusterDirectory } from '../cluster-directory.js';
import { rankNodes } from '../locality.js';
import { addOperations, operationsWith } from '../operation.js';
import { renameFields, resolveVolumeOrSnapshot } from '../resolve.js';
import { removeWithSchedules } from '../schedules/dependents.js';
import {
  changedBlocksQuerySchema,
  cloneVolumeSchema,
  createVolumeSchema,
  deleteQuerySchema,
  localityResponseSchema,
  resourceRefSchema,
  type UpdateVolumeBody,
  updateVolumeSchema,
  type VolumeFiltersBody,
  volumeFiltersSchema,
  volumeInspectResponseSchema,
  volumeInspectWithFiltersResponseSchema,
} from '../schemas/index.js';
import { snapshotView, volumeView } from '../views.js';
import { notANode } from './cluster.js';
import type { ScheduleApi } from './schedule-policies.js';

const CREATE_FIELDS = {
  size: 'spec.size',
  ha_level: 'spec.ha_level',
  shared: 'spec.shared',
  replica_nodes: 'spec.replica_set.nodes',
  racks: 'spec.racks',
  zones: 'spec.zones',
} as const;
const UPDATE_FIELDS = {
  size: 'spec.size',
  ha_level: 'spec.ha_level',
  replica_node: 'spec.replica_set.nodes',
  resync_bandwidth: 'spec.resync_bandwidth',
} as const;

/** The engine's update request of an SdkVolumeUpdateRequest (VolumeSpecUpdate's size, ha_level and replica_set). */
function updateRequest(body: UpdateVolumeBody): UpdateVolumeRequest {
  const spec = body.spec;
  if (spec?.replica_set !== undefined && spec.ha_level === undefined) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      'spec.replica_set: give spec.ha_level with it (the replica set changes by one node at a time)',
      { field: 'spec.replica_set' },
    );
  }
  const labels = { ...body.locator?.volume_labels, ...body.labels };
  const node = spec?.replica_set?.nodes[0];
  return {
    ...(spec?.size !== undefined && { size: spec.size }),
    ...(Object.keys(labels).length > 0 && { labels }),
    ...(spec?.ha_level !== undefined && { ha_level: spec.ha_level }),
    ...(node !== undefined && { replica_node: node }),
    ...(spec?.resync_bandwidth !== undefined && { resync_bandwidth: spec.resync_bandwidth }),
  };
}

function matchesFilters(volume: VolumeInfo, filters: VolumeFiltersBody): boolean {
  const name = filters.name ?? filters.locator?.name;
  if (name !== undefined && volume.name !== name) return false;
  const labels = { ...filters.locator?.volume_labels, ...filters.labels };
  return Object.entries(labels).every(([key, value]) => volume.labels[key] === value);
}

/** What the volume operations work on. */
interface VolumeDeps {
  engine: VolumeEngine;
  access: ResourceAccess;
  schedules: ScheduleApi | undefined;
  cluster: ClusterDirectory | undefined;
}

const define = operationsWith<VolumeDeps>();
const volumeId = { volume_id: resourceRefSchema };

/** The volume rpcs. */
export const volumeOperations = [
  define({
    method: 'post',
    path: '/v1/volumes',
    operationId: 'volumeCreate',
    tag: 'Volumes',
    summary: 'Creates a volume (idempotent by name when the spec matches).',
    rpc: 'OpenStorageVolume.Create',
    body: createVolumeSchema,
    handler: async (c, { body }, { engine, access }) => {
      const { volume, created } = await engine
        .createVolume({
          name: body.name,
          size: body.spec.size,
          ...(body.spec.ha_level !== undefined && { ha_level: body.spec.ha_level }),
          ...(body.spec.replica_set !== undefined && { replica_nodes: body.spec.replica_set.nodes }),
          ...(body.spec.racks !== undefined && { racks: body.spec.racks }),
          ...(body.spec.zones !== undefined && { zones: body.spec.zones }),
          ...(body.spec.shared !== undefined && { shared: body.spec.shared }),
          ...(body.spec.encrypted !== undefined && { encrypted: body.spec.encrypted }),
          ...(body.labels !== undefined && { labels: body.labels }),
        })
        .catch(renameFields(CREATE_FIELDS));
      // An existing volume of that name and spec is answered, as OpenStorage does, only to whoever may read it.
      if (created) await access.own(c, volumeRef(volume));
      else await access.require(c, volumeRef(volume), 'Read');
      return c.json({ volume_id: volume.id });
    },
  }),
  define({
    method: 'get',
    path: '/v1/volumes',
    operationId: 'volumeEnumerate',
    tag: 'Volumes',
    summary: 'Ids of every volume.',
    rpc: 'OpenStorageVolume.Enumerate',
    handler: async (c, _input, { engine, access }) => {
      const volumes = await access.filter(c, await engine.listVolumes(), volumeRef);
      return c.json({ volume_ids: volumes.map((v) => v.id) });
    },
  }),
  define({
    method: 'post',
    path: '/v1/volumes/filters',
    operationId: 'volumeEnumerateWithFilters',
    tag: 'Volumes',
    summary: 'Ids of the volumes matching a name and labels.',
    rpc: 'OpenStorageVolume.EnumerateWithFilters',
    body: volumeFiltersSchema,
    handler: async (c, { body }, { engine, access }) => {
      const volumes = await access.filter(c, await engine.listVolumes(), volumeRef);
      return c.json({ volume_ids: volumes.filter((v) => matchesFilters(v, body)).map((v) => v.id) });
    },
  }),
  define({
    method: 'post',
    path: '/v1/volumes/inspectwithfilters',
    operationId: 'volumeInspectWithFilters',
    tag: 'Volumes',
    summary: 'The volumes matching a name and labels, inspected.',
    rpc: 'OpenStorageVolume.InspectWithFilters',
    body: volumeFiltersSchema,
    response: volumeInspectWithFiltersResponseSchema,
    handler: async (c, { body }, { engine, access }) => {
      const volumes = await access.filter(c, await engine.listVolumes(), volumeRef);
      return c.json({ volumes: volumes.filter((v) => matchesFilters(v, body)).map(volumeView) });
    },
  }),
  define({
    method: 'get',
    path: '/v1/volumes/inspect/{volume_id}',
    operationId: 'volumeInspect',
    tag: 'Volumes',
    summary: 'A volume or snapshot (id, name, or VOLUME@SNAPSHOT).',
    rpc: 'OpenStorageVolume.Inspect',
    params: volumeId,
    response: volumeInspectResponseSchema,
    handler: async (c, { params }, { engine, access }) => {
      const found = await resolveVolumeOrSnapshot(engine, params.volume_id);
      await access.require(c, resolvedRef(found), 'Read');
      if (found.kind === 'volume') {
        const view = volumeView(found.volume);
        const problem = await engine.openProblem?.(found.volume.id);
        if (problem !== undefined) view.volume.open_problem = problem;
        return c.json(view);
      }
      const parent = await engine.inspectVolume(found.snapshot.volume_id).catch(() => undefined);
      return c.json(snapshotView(found.snapshot, parent));
    },
  }),
  define({
    method: 'put',
    path: '/v1/volumes/{volume_id}',
    operationId: 'volumeUpdate',
    tag: 'Volumes',
    summary:
      'Grows a volume, sets or removes labels, and changes its number of replicas (spec.ha_level, one step; a new replica fills in the background).',
    rpc: 'OpenStorageVolume.Update',
    params: volumeId,
    body: updateVolumeSchema,
    handler: async (c, { params, body }, { engine, access }) => {
      const ref = params.volume_id;
      if (body.volume_id !== undefined && body.volume_id !== ref) {
        throw new FerryError('INVALID_ARGUMENT', 'volume_id: does not match the volume in the path', {
          field: 'volume_id',
        });
      }
      const request = updateRequest(body);
      await access.require(c, volumeRef(await engine.inspectVolume(ref)), 'Write');
      // The engine refuses a shrink atomically, naming spec.size; an ha_level change answers once it is recorded.
      await engine.updateVolume(ref, request).catch(renameFields(UPDATE_FIELDS));
      return c.json({});
    },
  }),
  define({
    method: 'delete',
    path: '/v1/volumes/{volume_id}',
    operationId: 'volumeDelete',
    tag: 'Volumes',
    summary: 'Deletes a volume or a snapshot (with_schedules=true: and the backup schedules of the volume).',
    rpc: 'OpenStorageVolume.Delete',
    params: volumeId,
    query: deleteQuerySchema,
    handler: async (c, { params, query }, { engine, access, schedules }) => {
      const found = await resolveVolumeOrSnapshot(engine, params.volume_id);
      // OpenStorage: deleting a volume takes Admin access; a snapshot is deleted with Write on its volume.
      await access.require(c, resolvedRef(found), found.kind === 'volume' ? 'Admin' : 'Write');
      if (found.kind === 'snapshot') {
        await engine.deleteSnapshot(found.snapshot.id);
        return c.json({});
      }
      const { id, name } = found.volume;
      const deleted = await removeWithSchedules(
        schedules,
        { kind: 'volume', id, name },
        query.with_schedules === 'true',
        () => engine.deleteVolume(id),
      );
      await access.forget(volumeRef(found.volume));
      return c.json(deleted.length > 0 ? { deleted_schedule_ids: deleted } : {});
    },
  }),
  define({
    method: 'post',
    path: '/v1/volumes/clone',
    operationId: 'volumeClone',
    tag: 'Volumes',
    summary: 'A new volume from a volume or snapshot (copy on write).',
    rpc: 'OpenStorageVolume.Clone',
    body: cloneVolumeSchema,
    handler: async (c, { body }, { engine, access }) => {
      // A parent that does not exist is left to the engine, which names it in its NOT_FOUND.
      const parent = await resolveVolumeOrSnapshot(engine, body.parent_id).catch(() => undefined);
      if (parent !== undefined) await access.require(c, resolvedRef(parent), 'Read');
      const volume = await engine
        .cloneVolume({
          name: body.name,
          parent_id: body.parent_id,
          ...(body.additional_labels !== undefined && { labels: body.additional_labels }),
        })
        .catch(renameFields({ labels: 'additional_labels' }));
      await access.own(c, volumeRef(volume));
      return c.json({ volume_id: volume.id });
    },
  }),
  define({
    method: 'get',
    path: '/v1/volumes/{volume_id}/changed_blocks',
    operationId: 'volumeChangedBlocks',
    tag: 'Volumes',
    summary: 'Extents that differ between two snapshots (or a snapshot and the live volume), paged.',
    params: volumeId,
    query: changedBlocksQuerySchema,
    handler: async (c, { params, query }, { engine, access }) => {
      const ref = params.volume_id;
      await access.require(c, volumeRef(await engine.inspectVolume(ref)), 'Read');
      const request: ChangedBlocksRequest = {};
      if (query.base_snapshot_id !== undefined) request.base_snapshot_id = query.base_snapshot_id;
      if (query.target_snapshot_id !== undefined) request.target_snapshot_id = query.target_snapshot_id;
      if (query.offset !== undefined) request.offset = query.offset;
      if (query.limit !== undefined) request.limit = query.limit;
      return c.json(await engine.changedBlocks(ref, request));
    },
  }),
  define({
    method: 'get',
    path: '/v1/volumes/{volume_id}/locality',
    operationId: 'volumeLocality',
    tag: 'Volumes',
    summary:
      "The cluster's online nodes ranked for running a volume's user: nodes with a replica, then the same rack, then the same zone (for schedulers).",
    params: volumeId,
    response: localityResponseSchema,
    handler: async (c, { params }, { engine, access, cluster }) => {
      const volume = await engine.inspectVolume(params.volume_id);
      await access.require(c, volumeRef(volume), 'Read');
      if (cluster === undefined) notANode();
      return c.json({ volume_id: volume.id, nodes: rankNodes(volume, await cluster.nodes()) });
    },
  }),
];

/**
 * Routes of the volume rpcs, to mount under `/v1`. Ownership (`access`): lists show what the caller may read;
 * inspect and changed blocks need Read, update Write, delete Admin (a snapshot: Write on its volume); create records
 * the caller as owner; clone needs Read on the parent and the caller owns the clone.
 */
export function volumeRoutes(
  engine: VolumeEngine,
  access: ResourceAccess,
  schedules?: ScheduleApi,
  cluster?: ClusterDirectory,
): Hono {
  return addOperations(new Hono(), volumeOperations, { engine, access, schedules, cluster });
}

/**
 * OpenStorageVolume volume rpcs (libopenstorage/openstorage api/api.proto, google.api.http options):
 * Create POST /v1/volumes, Clone POST /v1/volumes/clone, Delete DELETE /v1/volumes/{volume_id},
 * Inspect GET /v1/volumes/inspect/{volume_id}, Update PUT /v1/volumes/{volume_id}, Enumerate GET /v1/volumes,
 * EnumerateWithFilters POST /v1/volumes/filters, InspectWithFilters POST /v1/volumes/inspectwithfilters;
 * Ferry addition: GET /v1/volumes/{volume_id}/changed_blocks.
 */
import { Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { ChangedBlocksRequest, VolumeEngine, VolumeInfo } from '../../node/index.js';
import type { ResourceAccess } from '../auth/access.js';
import { resolvedRef, volumeRef } from '../auth/refs.js';
import { renameFields, resolveVolumeOrSnapshot } from '../resolve.js';
import { removeWithSchedules } from '../schedules/dependents.js';
import {
  changedBlocksQuerySchema,
  cloneVolumeSchema,
  createVolumeSchema,
  deleteQuerySchema,
  resourceRefSchema,
  updateVolumeSchema,
  type VolumeFiltersBody,
  volumeFiltersSchema,
} from '../schemas/index.js';
import { readJsonBody, readParam, readQuery } from '../validate.js';
import { snapshotView, volumeView } from '../views.js';
import type { ScheduleApi } from './schedule-policies.js';

const CREATE_FIELDS = { size: 'spec.size', ha_level: 'spec.ha_level', shared: 'spec.shared' } as const;

function matchesFilters(volume: VolumeInfo, filters: VolumeFiltersBody): boolean {
  const name = filters.name ?? filters.locator?.name;
  if (name !== undefined && volume.name !== name) return false;
  const labels = { ...filters.locator?.volume_labels, ...filters.labels };
  return Object.entries(labels).every(([key, value]) => volume.labels[key] === value);
}

/**
 * Routes of the volume rpcs, to mount under `/v1`. Ownership (`access`): lists show what the caller may read;
 * inspect and changed blocks need Read, update Write, delete Admin (a snapshot: Write on its volume); create records
 * the caller as owner; clone needs Read on the parent and the caller owns the clone.
 */
export function volumeRoutes(engine: VolumeEngine, access: ResourceAccess, schedules?: ScheduleApi): Hono {
  const routes = new Hono();

  routes.post('/volumes', async (c) => {
    const body = await readJsonBody(c, createVolumeSchema);
    const { volume, created } = await engine
      .createVolume({
        name: body.name,
        size: body.spec.size,
        ...(body.spec.ha_level !== undefined && { ha_level: body.spec.ha_level }),
        ...(body.spec.shared !== undefined && { shared: body.spec.shared }),
        ...(body.spec.encrypted !== undefined && { encrypted: body.spec.encrypted }),
        ...(body.labels !== undefined && { labels: body.labels }),
      })
      .catch(renameFields(CREATE_FIELDS));
    // An existing volume of that name and spec is answered, as OpenStorage does, only to whoever may read it.
    if (created) await access.own(c, volumeRef(volume));
    else await access.require(c, volumeRef(volume), 'Read');
    return c.json({ volume_id: volume.id });
  });

  routes.get('/volumes', async (c) => {
    const volumes = await access.filter(c, await engine.listVolumes(), volumeRef);
    return c.json({ volume_ids: volumes.map((v) => v.id) });
  });

  routes.post('/volumes/filters', async (c) => {
    const filters = await readJsonBody(c, volumeFiltersSchema);
    const volumes = await access.filter(c, await engine.listVolumes(), volumeRef);
    return c.json({ volume_ids: volumes.filter((v) => matchesFilters(v, filters)).map((v) => v.id) });
  });

  routes.post('/volumes/inspectwithfilters', async (c) => {
    const filters = await readJsonBody(c, volumeFiltersSchema);
    const volumes = await access.filter(c, await engine.listVolumes(), volumeRef);
    return c.json({ volumes: volumes.filter((v) => matchesFilters(v, filters)).map(volumeView) });
  });

  routes.get('/volumes/inspect/:volume_id', async (c) => {
    const ref = readParam(c, 'volume_id', resourceRefSchema);
    const found = await resolveVolumeOrSnapshot(engine, ref);
    await access.require(c, resolvedRef(found), 'Read');
    if (found.kind === 'volume') {
      const view = volumeView(found.volume);
      const problem = await engine.openProblem?.(found.volume.id);
      if (problem !== undefined) view.volume.open_problem = problem;
      return c.json(view);
    }
    const parent = await engine.inspectVolume(found.snapshot.volume_id).catch(() => undefined);
    return c.json(snapshotView(found.snapshot, parent));
  });

  routes.put('/volumes/:volume_id', async (c) => {
    const ref = readParam(c, 'volume_id', resourceRefSchema);
    const body = await readJsonBody(c, updateVolumeSchema);
    if (body.volume_id !== undefined && body.volume_id !== ref) {
      throw new FerryError('INVALID_ARGUMENT', 'volume_id: does not match the volume in the path', {
        field: 'volume_id',
      });
    }
    await access.require(c, volumeRef(await engine.inspectVolume(ref)), 'Write');
    const size = body.spec?.size;
    const labels = { ...body.locator?.volume_labels, ...body.labels };
    // The engine refuses a shrink atomically, naming spec.size.
    await engine
      .updateVolume(ref, {
        ...(size !== undefined && { size }),
        ...(Object.keys(labels).length > 0 && { labels }),
      })
      .catch(renameFields({ size: 'spec.size' }));
    return c.json({});
  });

  routes.delete('/volumes/:volume_id', async (c) => {
    const ref = readParam(c, 'volume_id', resourceRefSchema);
    const query = readQuery(c, deleteQuerySchema);
    const found = await resolveVolumeOrSnapshot(engine, ref);
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
  });

  routes.post('/volumes/clone', async (c) => {
    const body = await readJsonBody(c, cloneVolumeSchema);
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
  });

  routes.get('/volumes/:volume_id/changed_blocks', async (c) => {
    const ref = readParam(c, 'volume_id', resourceRefSchema);
    const query = readQuery(c, changedBlocksQuerySchema);
    await access.require(c, volumeRef(await engine.inspectVolume(ref)), 'Read');
    const request: ChangedBlocksRequest = {};
    if (query.base_snapshot_id !== undefined) request.base_snapshot_id = query.base_snapshot_id;
    if (query.target_snapshot_id !== undefined) request.target_snapshot_id = query.target_snapshot_id;
    if (query.offset !== undefined) request.offset = query.offset;
    if (query.limit !== undefined) request.limit = query.limit;
    return c.json(await engine.changedBlocks(ref, request));
  });

  return routes;
}

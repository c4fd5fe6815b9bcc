/**
 * OpenStorageVolume snapshot rpcs (libopenstorage/openstorage api/api.proto): SnapshotCreate POST
 * /v1/volumes/snapshots, SnapshotRestore POST /v1/volumes/snapshots/restore, SnapshotEnumerate GET
 * /v1/volumes/snapshots/{volume_id}, SnapshotEnumerateWithFilters POST /v1/volumes/snapshots/{volume_id}/filters.
 * Snapshot inspect and delete go through the volume routes (a snapshot is a volume with its own id).
 */
import { type Context, Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { VolumeEngine } from '../../node/index.js';
import type { ResourceAccess } from '../auth/access.js';
import { volumeRef } from '../auth/refs.js';
import { addOperations, operationsWith } from '../operation.js';
import {
  createSnapshotSchema,
  resourceRefSchema,
  restoreSnapshotSchema,
  snapshotFiltersSchema,
} from '../schemas/index.js';

/** What the snapshot operations work on. */
interface SnapshotDeps {
  engine: VolumeEngine;
  access: ResourceAccess;
}

async function requireOnVolume(c: Context, deps: SnapshotDeps, ref: string, need: 'Read' | 'Write'): Promise<void> {
  await deps.access.require(c, volumeRef(await deps.engine.inspectVolume(ref)), need);
}

const define = operationsWith<SnapshotDeps>();
const volumeId = { volume_id: resourceRefSchema };

/** The snapshot rpcs. */
export const snapshotOperations = [
  define({
    method: 'post',
    path: '/v1/volumes/snapshots',
    operationId: 'snapshotCreate',
    tag: 'Snapshots',
    summary: 'Takes a snapshot of a volume.',
    rpc: 'OpenStorageVolume.SnapshotCreate',
    body: createSnapshotSchema,
    handler: async (c, { body }, deps) => {
      await requireOnVolume(c, deps, body.volume_id, 'Read');
      const snapshot = await deps.engine.createSnapshot(body.volume_id, {
        name: body.name,
        ...(body.labels !== undefined && { labels: body.labels }),
      });
      return c.json({ snapshot_id: snapshot.id });
    },
  }),
  define({
    method: 'post',
    path: '/v1/volumes/snapshots/restore',
    operationId: 'snapshotRestore',
    tag: 'Snapshots',
    summary: 'Rolls a volume back to one of its snapshots.',
    rpc: 'OpenStorageVolume.SnapshotRestore',
    body: restoreSnapshotSchema,
    handler: async (c, { body }, deps) => {
      await requireOnVolume(c, deps, body.volume_id, 'Write');
      await deps.engine.restoreSnapshot(body.volume_id, body.snapshot_id);
      return c.json({});
    },
  }),
  define({
    method: 'get',
    path: '/v1/volumes/snapshots/{volume_id}',
    operationId: 'snapshotEnumerate',
    tag: 'Snapshots',
    summary: "Ids of a volume's snapshots.",
    rpc: 'OpenStorageVolume.SnapshotEnumerate',
    params: volumeId,
    handler: async (c, { params }, deps) => {
      await requireOnVolume(c, deps, params.volume_id, 'Read');
      const snapshots = await deps.engine.listSnapshots(params.volume_id);
      return c.json({ volume_snapshot_ids: snapshots.map((s) => s.id) });
    },
  }),
  define({
    method: 'post',
    path: '/v1/volumes/snapshots/{volume_id}/filters',
    operationId: 'snapshotEnumerateWithFilters',
    tag: 'Snapshots',
    summary: "Ids of a volume's snapshots matching labels.",
    rpc: 'OpenStorageVolume.SnapshotEnumerateWithFilters',
    params: volumeId,
    body: snapshotFiltersSchema,
    handler: async (c, { params, body }, deps) => {
      const ref = params.volume_id;
      if (body.volume_id !== undefined && body.volume_id !== ref) {
        throw new FerryError('INVALID_ARGUMENT', 'volume_id: does not match the volume in the path', {
          field: 'volume_id',
        });
      }
      await requireOnVolume(c, deps, ref, 'Read');
      const labels = body.labels ?? {};
      const snapshots = await deps.engine.listSnapshots(ref);
      const matching = snapshots.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      return c.json({ volume_snapshot_ids: matching.map((s) => s.id) });
    },
  }),
];

/**
 * Routes of the snapshot rpcs, to mount under `/v1`. A snapshot has its volume's ownership: creating and listing
 * snapshots need Read on the volume (as in OpenStorage), restoring one needs Write.
 */
export function snapshotRoutes(engine: VolumeEngine, access: ResourceAccess): Hono {
  return addOperations(new Hono(), snapshotOperations, { engine, access });
}

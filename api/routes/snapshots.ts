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
import {
  createSnapshotSchema,
  resourceRefSchema,
  restoreSnapshotSchema,
  snapshotFiltersSchema,
} from '../schemas/index.js';
import { readJsonBody, readParam } from '../validate.js';

/**
 * Routes of the snapshot rpcs, to mount under `/v1`. A snapshot has its volume's ownership: creating and listing
 * snapshots need Read on the volume (as in OpenStorage), restoring one needs Write.
 */
export function snapshotRoutes(engine: VolumeEngine, access: ResourceAccess): Hono {
  const routes = new Hono();
  const requireOnVolume = async (c: Context, ref: string, need: 'Read' | 'Write'): Promise<void> =>
    access.require(c, volumeRef(await engine.inspectVolume(ref)), need);

  routes.post('/volumes/snapshots', async (c) => {
    const body = await readJsonBody(c, createSnapshotSchema);
    await requireOnVolume(c, body.volume_id, 'Read');
    const snapshot = await engine.createSnapshot(body.volume_id, {
      name: body.name,
      ...(body.labels !== undefined && { labels: body.labels }),
    });
    return c.json({ snapshot_id: snapshot.id });
  });

  routes.post('/volumes/snapshots/restore', async (c) => {
    const body = await readJsonBody(c, restoreSnapshotSchema);
    await requireOnVolume(c, body.volume_id, 'Write');
    await engine.restoreSnapshot(body.volume_id, body.snapshot_id);
    return c.json({});
  });

  routes.get('/volumes/snapshots/:volume_id', async (c) => {
    const ref = readParam(c, 'volume_id', resourceRefSchema);
    await requireOnVolume(c, ref, 'Read');
    const snapshots = await engine.listSnapshots(ref);
    return c.json({ volume_snapshot_ids: snapshots.map((s) => s.id) });
  });

  routes.post('/volumes/snapshots/:volume_id/filters', async (c) => {
    const ref = readParam(c, 'volume_id', resourceRefSchema);
    const body = await readJsonBody(c, snapshotFiltersSchema);
    if (body.volume_id !== undefined && body.volume_id !== ref) {
      throw new FerryError('INVALID_ARGUMENT', 'volume_id: does not match the volume in the path', {
        field: 'volume_id',
      });
    }
    await requireOnVolume(c, ref, 'Read');
    const labels = body.labels ?? {};
    const snapshots = await engine.listSnapshots(ref);
    const matching = snapshots.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    return c.json({ volume_snapshot_ids: matching.map((s) => s.id) });
  });

  return routes;
}

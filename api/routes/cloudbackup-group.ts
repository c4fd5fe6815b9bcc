/**
 * OpenStorageCloudBackup GroupCreate: POST /v1/cloudbackups/group (SdkCloudBackupGroupCreateRequest -> response
 * `{ group_cloud_backup_id, task_ids }`). The volumes are snapshotted at one point in time, then backed up as one
 * job each; their statuses carry `group_id`.
 */
import { Hono } from 'hono';
import type { CloudBackups } from '../../cloudsnap/jobs/index.js';
import { FerryError } from '../../common/index.js';
import { groupCloudBackupSchema } from '../schemas/index.js';
import { readJsonBody } from '../validate.js';

/** The group route, to mount under `/v1`; without the service it answers UNAVAILABLE. */
export function cloudBackupGroupRoutes(backups: CloudBackups | undefined): Hono {
  const routes = new Hono();
  routes.post('/cloudbackups/group', async (c) => {
    if (backups === undefined) {
      throw new FerryError('UNAVAILABLE', 'this node runs no cloud backups; start it with `ferry node start`');
    }
    const body = await readJsonBody(c, groupCloudBackupSchema);
    const { group_id, jobs } = await backups.jobs.submitGroup(body);
    return c.json({ group_cloud_backup_id: group_id, task_ids: jobs.map((j) => j.task_id) });
  });
  return routes;
}

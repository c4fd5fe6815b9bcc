/**
 * OpenStorageCloudBackup GroupCreate: POST /v1/cloudbackups/group (SdkCloudBackupGroupCreateRequest -> response
 * `{ group_cloud_backup_id, task_ids }`). The volumes are snapshotted at one point in time, then backed up as one
 * job each; their statuses carry `group_id`.
 */
import { Hono } from 'hono';
import type { CloudBackups } from '../../cloudsnap/index.js';
import { FerryError } from '../../common/index.js';
import type { BackupAccess } from '../auth/index.js';
import { groupCloudBackupSchema } from '../schemas/index.js';
import { readJsonBody } from '../validate.js';

/**
 * The group route, to mount under `/v1`; without the service it answers UNAVAILABLE. As for one backup, the caller
 * needs Read on every volume and on the credential, and owns the tasks it starts.
 */
export function cloudBackupGroupRoutes(backups: CloudBackups | undefined, guard: BackupAccess): Hono {
  const routes = new Hono();
  routes.post('/cloudbackups/group', async (c) => {
    if (backups === undefined) {
      throw new FerryError('UNAVAILABLE', 'this node runs no cloud backups; start it with `ferry node start`');
    }
    const body = await readJsonBody(c, groupCloudBackupSchema);
    for (const volume of body.volume_ids) await guard.volume(c, volume, 'Read');
    await guard.credential(c, body.credential_id, 'Read');
    const { group_id, jobs } = await backups.jobs.submitGroup(body);
    for (const job of jobs) await guard.ownTask(c, job);
    return c.json({ group_cloud_backup_id: group_id, task_ids: jobs.map((j) => j.task_id) });
  });
  return routes;
}

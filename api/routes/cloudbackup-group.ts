/**
 * OpenStorageCloudBackup GroupCreate: POST /v1/cloudbackups/group (SdkCloudBackupGroupCreateRequest -> response
 * `{ group_cloud_backup_id, task_ids }`). The volumes are snapshotted at one point in time, then backed up as one
 * job each; their statuses carry `group_id`.
 */
import { Hono } from 'hono';
import type { CloudBackups } from '../../cloudsnap/index.js';
import type { BackupAccess } from '../auth/index.js';
import { addOperations, operationsWith } from '../operation.js';
import { groupCloudBackupSchema } from '../schemas/index.js';
import { noCloudBackups } from './cloudbackups.js';

const define = operationsWith<{ backups: CloudBackups; guard: BackupAccess }>();

/** The group create rpc. */
export const cloudBackupGroupOperations = [
  define({
    method: 'post',
    path: '/v1/cloudbackups/group',
    operationId: 'cloudBackupGroupCreate',
    tag: 'Cloud backups',
    summary: 'Backs several volumes up from snapshots taken at one point in time; one task per volume.',
    rpc: 'OpenStorageCloudBackup.GroupCreate',
    body: groupCloudBackupSchema,
    handler: async (c, { body }, { backups, guard }) => {
      for (const volume of body.volume_ids) await guard.volume(c, volume, 'Read');
      await guard.credential(c, body.credential_id, 'Read');
      const { group_id, jobs } = await backups.jobs.submitGroup(body);
      for (const job of jobs) await guard.ownTask(c, job);
      return c.json({ group_cloud_backup_id: group_id, task_ids: jobs.map((j) => j.task_id) });
    },
  }),
];

/**
 * The group route, to mount under `/v1`; without the service it answers UNAVAILABLE (whatever the body). As for one
 * backup, the caller needs Read on every volume and on the credential, and owns the tasks it starts.
 */
export function cloudBackupGroupRoutes(backups: CloudBackups | undefined, guard: BackupAccess): Hono {
  const routes = new Hono();
  if (backups === undefined) {
    routes.post('/cloudbackups/group', noCloudBackups);
    return routes;
  }
  return addOperations(routes, cloudBackupGroupOperations, { backups, guard });
}

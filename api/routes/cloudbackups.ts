/**
 * OpenStorageCloudBackup rpcs (libopenstorage/openstorage api/api.proto, google.api.http options):
 * Create POST /v1/cloudbackups, Restore POST /v1/cloudbackups/restore, EnumerateWithFilters POST
 * /v1/cloudbackups/enumerate/filters, Status POST /v1/cloudbackups/status, Catalog POST /v1/cloudbackups/catalog,
 * History GET /v1/cloudbackups/history/{src_volume_id}, StateChange POST /v1/cloudbackups/statechange, Delete DELETE
 * /v1/cloudbackups/backup/{backup_id}, DeleteAll POST /v1/cloudbackups/deleteall, Size GET /v1/cloudbackups/size.
 * Ferry additions: POST /v1/cloudbackups/verify and POST /v1/cloudbackups/gc. Create and Restore answer at once
 * with a task id; Status shows the job's progress.
 */
import { Hono } from 'hono';
import type { CloudBackups } from '../../cloudsnap/jobs/index.js';
import { FerryError } from '../../common/index.js';
import { cloudBackupCatalogView, cloudBackupInfoView } from '../cloudbackup-views.js';
import {
  backupIdSchema,
  cloudBackupCatalogSchema,
  cloudBackupGcSchema,
  cloudBackupSizeQuerySchema,
  cloudBackupStateChangeSchema,
  cloudBackupStatusSchema,
  createCloudBackupSchema,
  deleteAllCloudBackupsSchema,
  deleteCloudBackupQuerySchema,
  enumerateCloudBackupsSchema,
  nameSchema,
  restoreCloudBackupSchema,
  verifyCloudBackupsSchema,
} from '../schemas/index.js';
import { readJsonBody, readParam, readQuery } from '../validate.js';

/** Routes of the cloud backup rpcs, to mount under `/v1`; without the service they answer UNAVAILABLE. */
export function cloudBackupRoutes(backups: CloudBackups | undefined): Hono {
  const routes = new Hono();

  if (backups === undefined) {
    const unavailable = (): never => {
      throw new FerryError('UNAVAILABLE', 'this node runs no cloud backups; start it with `ferry node start`');
    };
    routes.all('/cloudbackups', unavailable);
    routes.all('/cloudbackups/*', unavailable);
    return routes;
  }

  routes.post('/cloudbackups', async (c) => {
    const body = await readJsonBody(c, createCloudBackupSchema);
    const job = await backups.jobs.submitBackup(body);
    return c.json({ task_id: job.task_id });
  });

  routes.post('/cloudbackups/restore', async (c) => {
    const body = await readJsonBody(c, restoreCloudBackupSchema);
    const job = await backups.jobs.submitRestore(body);
    // Until the restore has created the volume, its name stands for its id (every route takes either).
    return c.json({ restore_volume_id: job.src_volume_id, task_id: job.task_id });
  });

  routes.post('/cloudbackups/enumerate/filters', async (c) => {
    const body = await readJsonBody(c, enumerateCloudBackupsSchema);
    const page = await backups.enumerate(body, c.req.raw.signal);
    return c.json({
      backups: page.backups.map(cloudBackupInfoView),
      ...(page.continuation_token !== undefined && { continuation_token: page.continuation_token }),
    });
  });

  routes.post('/cloudbackups/status', async (c) => {
    const body = await readJsonBody(c, cloudBackupStatusSchema);
    const filter = body.task_id !== undefined ? { task_id: body.task_id } : { volume_id: body.volume_id };
    return c.json({ statuses: await backups.statuses(filter) });
  });

  routes.post('/cloudbackups/catalog', async (c) => {
    const body = await readJsonBody(c, cloudBackupCatalogSchema);
    return c.json(cloudBackupCatalogView(await backups.catalog(body.credential_id, body.backup_id, c.req.raw.signal)));
  });

  routes.get('/cloudbackups/history/:src_volume_id', async (c) => {
    const ref = readParam(c, 'src_volume_id', nameSchema);
    return c.json({ history_list: await backups.history(ref) });
  });

  routes.post('/cloudbackups/statechange', async (c) => {
    const body = await readJsonBody(c, cloudBackupStateChangeSchema);
    await backups.jobs.stateChange(body.task_id, body.requested_state);
    return c.json({});
  });

  routes.delete('/cloudbackups/backup/:backup_id', async (c) => {
    const id = readParam(c, 'backup_id', backupIdSchema);
    const query = readQuery(c, deleteCloudBackupQuerySchema);
    await backups.delete(query.credential_id, id, c.req.raw.signal);
    return c.json({});
  });

  routes.post('/cloudbackups/deleteall', async (c) => {
    const body = await readJsonBody(c, deleteAllCloudBackupsSchema);
    const deleted = await backups.deleteAll(body.credential_id, body.src_volume_id, c.req.raw.signal);
    return c.json({ deleted });
  });

  routes.get('/cloudbackups/size', async (c) => {
    const query = readQuery(c, cloudBackupSizeQuerySchema);
    const record = await backups.inspect(query.credential_id, query.backup_id, c.req.raw.signal);
    return c.json({ size: record.size, bytes_uploaded: record.stats.bytes_uploaded });
  });

  routes.post('/cloudbackups/verify', async (c) => {
    const body = await readJsonBody(c, verifyCloudBackupsSchema);
    const result = await backups.verify(
      body.credential_id,
      {
        ...(body.backup_id !== undefined && { backupIds: [body.backup_id] }),
        ...(body.data_percent !== undefined && { dataPercent: body.data_percent }),
      },
      c.req.raw.signal,
    );
    return c.json(result);
  });

  routes.post('/cloudbackups/gc', async (c) => {
    const body = await readJsonBody(c, cloudBackupGcSchema);
    const graceMs = body.grace_seconds === undefined ? {} : { graceMs: body.grace_seconds * 1000 };
    return c.json(await backups.gc(body.credential_id, graceMs, c.req.raw.signal));
  });

  return routes;
}

/**
 * OpenStorageCloudBackup rpcs (libopenstorage/openstorage api/api.proto, google.api.http options):
 * Create POST /v1/cloudbackups, Restore POST /v1/cloudbackups/restore, EnumerateWithFilters POST
 * /v1/cloudbackups/enumerate/filters, Status POST /v1/cloudbackups/status, Catalog POST /v1/cloudbackups/catalog,
 * History GET /v1/cloudbackups/history/{src_volume_id}, StateChange POST /v1/cloudbackups/statechange, Delete DELETE
 * /v1/cloudbackups/backup/{backup_id}, DeleteAll POST /v1/cloudbackups/deleteall, Size GET /v1/cloudbackups/size.
 * Ferry additions: POST /v1/cloudbackups/verify, POST /v1/cloudbackups/gc and POST /v1/cloudbackups/repair. Create,
 * Restore and verify answer at once with a task id; Status shows the job's progress (and a verify's report).
 */
import { Hono } from 'hono';
import type { CloudBackups } from '../../cloudsnap/index.js';
import { FerryError } from '../../common/index.js';
import type { BackupAccess } from '../auth/backup-access.js';
import { enumerateAll } from '../cloudbackup-enumerate.js';
import { cloudBackupCatalogView, cloudBackupInfoView, damagedBackupInfoView } from '../cloudbackup-views.js';
import {
  backupIdSchema,
  cloudBackupCatalogSchema,
  cloudBackupGcSchema,
  cloudBackupRepairSchema,
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

/**
 * Routes of the cloud backup rpcs, to mount under `/v1`; without the service they answer UNAVAILABLE. Ownership
 * (`guard`, see api/auth/backup-access.ts): backups are seen through their credential and source volume, jobs by
 * whoever submitted them.
 */
export function cloudBackupRoutes(backups: CloudBackups | undefined, guard: BackupAccess): Hono {
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
    await guard.volume(c, body.volume_id, 'Read');
    await guard.credential(c, body.credential_id, 'Read');
    const job = await backups.jobs.submitBackup(body);
    await guard.ownTask(c, job);
    return c.json({ task_id: job.task_id });
  });

  routes.post('/cloudbackups/restore', async (c) => {
    const body = await readJsonBody(c, restoreCloudBackupSchema);
    const credential = await guard.credential(c, body.credential_id, 'Read');
    // Read the record even when the credential alone decides: that opens the repository through this credential,
    // which is refused (403) when the repository is another owner's, before any job is accepted.
    const record = await backups.inspect(credential.credential_id, body.backup_id, c.req.raw.signal);
    await guard.requireBackup(c, credential, body.backup_id, async () => record);
    const name = body.restore_volume_name ?? `restore-${body.backup_id}`;
    const newVolume = await guard.restoreTarget(c, name);
    const job = await backups.jobs.submitRestore(body);
    await guard.ownTask(c, job);
    if (newVolume) await guard.access.ownPendingVolume(c, name);
    // Until the restore has created the volume, its name stands for its id (every route takes either).
    return c.json({ restore_volume_id: job.src_volume_id, task_id: job.task_id });
  });

  routes.post('/cloudbackups/enumerate/filters', async (c) => {
    const body = await readJsonBody(c, enumerateCloudBackupsSchema);
    if (body.credential_id === undefined) {
      return c.json(await enumerateAll(c, body, backups, guard, c.req.raw.signal));
    }
    const credential = await guard.credential(c, body.credential_id, 'Read');
    const page = await backups.enumerate({ ...body, credential_id: body.credential_id }, c.req.raw.signal);
    const visible = await guard.filterBackups(c, credential, page.backups);
    // A damaged record's volume is unknown: only writers of the credential see it.
    const damaged = await guard.filterBackups(
      c,
      credential,
      page.damaged.map((d) => ({ ...d, volume_id: '' })),
    );
    return c.json({
      backups: [...visible.map(cloudBackupInfoView), ...damaged.map(damagedBackupInfoView)].sort((a, b) =>
        a.id.localeCompare(b.id),
      ),
      ...(page.continuation_token !== undefined && { continuation_token: page.continuation_token }),
    });
  });

  routes.post('/cloudbackups/status', async (c) => {
    const body = await readJsonBody(c, cloudBackupStatusSchema);
    const filter = body.task_id !== undefined ? { task_id: body.task_id } : { volume_id: body.volume_id };
    const statuses = Object.values(await backups.statuses(filter));
    if (body.task_id !== undefined) for (const job of statuses) await guard.requireJob(c, job, 'Read');
    const visible = await guard.filterJobs(c, statuses);
    return c.json({ statuses: Object.fromEntries(visible.map((job) => [job.task_id, job])) });
  });

  routes.post('/cloudbackups/catalog', async (c) => {
    const body = await readJsonBody(c, cloudBackupCatalogSchema);
    const credential = await guard.credential(c, body.credential_id, 'Read');
    await guard.requireBackup(c, credential, body.backup_id, () =>
      backups.inspect(credential.credential_id, body.backup_id, c.req.raw.signal),
    );
    return c.json(cloudBackupCatalogView(await backups.catalog(body.credential_id, body.backup_id, c.req.raw.signal)));
  });

  routes.get('/cloudbackups/history/:src_volume_id', async (c) => {
    const ref = readParam(c, 'src_volume_id', nameSchema);
    await guard.historyVolume(c, ref);
    return c.json({ history_list: await backups.history(ref) });
  });

  routes.post('/cloudbackups/statechange', async (c) => {
    const body = await readJsonBody(c, cloudBackupStateChangeSchema);
    await guard.requireJob(c, await backups.jobs.get(body.task_id), 'Write');
    await backups.jobs.stateChange(body.task_id, body.requested_state);
    return c.json({});
  });

  routes.delete('/cloudbackups/backup/:backup_id', async (c) => {
    const id = readParam(c, 'backup_id', backupIdSchema);
    const query = readQuery(c, deleteCloudBackupQuerySchema);
    await guard.credential(c, query.credential_id, 'Write');
    await backups.delete(query.credential_id, id, c.req.raw.signal);
    return c.json({});
  });

  routes.post('/cloudbackups/deleteall', async (c) => {
    const body = await readJsonBody(c, deleteAllCloudBackupsSchema);
    await guard.credential(c, body.credential_id, 'Write');
    const deleted = await backups.deleteAll(body.credential_id, body.src_volume_id, c.req.raw.signal);
    return c.json({ deleted });
  });

  routes.get('/cloudbackups/size', async (c) => {
    const query = readQuery(c, cloudBackupSizeQuerySchema);
    const credential = await guard.credential(c, query.credential_id, 'Read');
    const record = await backups.inspect(query.credential_id, query.backup_id, c.req.raw.signal);
    await guard.requireBackup(c, credential, query.backup_id, async () => record);
    return c.json({ size: record.size, bytes_uploaded: record.stats.bytes_uploaded });
  });

  routes.post('/cloudbackups/verify', async (c) => {
    const body = await readJsonBody(c, verifyCloudBackupsSchema);
    // One backup: whoever sees it; the whole repository: writers of the credential.
    const credential = await guard.credential(c, body.credential_id, body.backup_id === undefined ? 'Write' : 'Read');
    if (body.backup_id !== undefined) {
      const backupId = body.backup_id;
      await guard.requireBackup(c, credential, backupId, () =>
        backups.inspect(credential.credential_id, backupId, c.req.raw.signal),
      );
    } else {
      // The repository must open through this credential (another owner's repository is refused here, at once,
      // rather than in a job that fails later): listing its backups checks that.
      await backups.enumerate({ credential_id: credential.credential_id }, c.req.raw.signal);
    }
    const { wait, ...request } = body;
    const job = await backups.jobs.submitVerify(request);
    await guard.ownTask(c, job);
    if (wait !== true) return c.json({ task_id: job.task_id });
    return c.json({ task_id: job.task_id, status: await backups.jobs.wait(job.task_id) });
  });

  routes.post('/cloudbackups/gc', async (c) => {
    const body = await readJsonBody(c, cloudBackupGcSchema);
    await guard.credential(c, body.credential_id, 'Write');
    const graceMs = body.grace_seconds === undefined ? {} : { graceMs: body.grace_seconds * 1000 };
    return c.json(await backups.gc(body.credential_id, graceMs, c.req.raw.signal));
  });

  routes.post('/cloudbackups/repair', async (c) => {
    const body = await readJsonBody(c, cloudBackupRepairSchema);
    await guard.credential(c, body.credential_id, 'Write');
    return c.json(await backups.repair(body.credential_id, body.what ?? 'index', c.req.raw.signal));
  });

  return routes;
}

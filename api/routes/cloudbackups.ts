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
import { requireHeldHere } from '../forward.js';
import { addOperations, operationsWith } from '../operation.js';
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
  enumerateCloudBackupsResponseSchema,
  enumerateCloudBackupsSchema,
  nameSchema,
  restoreCloudBackupSchema,
  verifyCloudBackupsSchema,
} from '../schemas/index.js';

/** What the cloud backup operations work on. */
interface CloudBackupDeps {
  backups: CloudBackups;
  guard: BackupAccess;
}

const define = operationsWith<CloudBackupDeps>();
const TAG = 'Cloud backups';

/** The cloud backup rpcs (the group create is in cloudbackup-group.ts, the schedules in cloudbackup-schedules.ts). */
export const cloudBackupOperations = [
  define({
    method: 'post',
    path: '/v1/cloudbackups',
    operationId: 'cloudBackupCreate',
    tag: TAG,
    summary: 'Starts a backup of a volume; answers at once with a task id.',
    rpc: 'OpenStorageCloudBackup.Create',
    body: createCloudBackupSchema,
    handler: async (c, { body }, { backups, guard }) => {
      const volume = await guard.volume(c, body.volume_id, 'Read');
      await guard.credential(c, body.credential_id, 'Read');
      // The job reads the volume's data here: on a node without a replica the request goes to one that has it.
      requireHeldHere(volume, `a backup of volume ${volume.name}`);
      const job = await backups.jobs.submitBackup(body);
      await guard.ownTask(c, job);
      return c.json({ task_id: job.task_id });
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/restore',
    operationId: 'cloudBackupRestore',
    tag: TAG,
    summary: 'Starts a restore of a backup into a new volume; answers at once with a task id.',
    rpc: 'OpenStorageCloudBackup.Restore',
    body: restoreCloudBackupSchema,
    handler: async (c, { body }, { backups, guard }) => {
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
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/enumerate/filters',
    operationId: 'cloudBackupEnumerateWithFilters',
    tag: TAG,
    summary: "Committed backups in a credential's repository, filtered and paged.",
    rpc: 'OpenStorageCloudBackup.EnumerateWithFilters',
    body: enumerateCloudBackupsSchema,
    response: enumerateCloudBackupsResponseSchema,
    handler: async (c, { body }, { backups, guard }) => {
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
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/status',
    operationId: 'cloudBackupStatus',
    tag: TAG,
    summary: 'Status of backup and restore tasks: one task, a volume, or all.',
    rpc: 'OpenStorageCloudBackup.Status',
    body: cloudBackupStatusSchema,
    handler: async (c, { body }, { backups, guard }) => {
      const filter = body.task_id !== undefined ? { task_id: body.task_id } : { volume_id: body.volume_id };
      const statuses = Object.values(await backups.statuses(filter));
      if (body.task_id !== undefined) for (const job of statuses) await guard.requireJob(c, job, 'Read');
      const visible = await guard.filterJobs(c, statuses);
      return c.json({ statuses: Object.fromEntries(visible.map((job) => [job.task_id, job])) });
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/catalog',
    operationId: 'cloudBackupCatalog',
    tag: TAG,
    summary: 'What a backup holds.',
    rpc: 'OpenStorageCloudBackup.Catalog',
    body: cloudBackupCatalogSchema,
    handler: async (c, { body }, { backups, guard }) => {
      const credential = await guard.credential(c, body.credential_id, 'Read');
      await guard.requireBackup(c, credential, body.backup_id, () =>
        backups.inspect(credential.credential_id, body.backup_id, c.req.raw.signal),
      );
      const catalog = await backups.catalog(body.credential_id, body.backup_id, c.req.raw.signal);
      return c.json(cloudBackupCatalogView(catalog));
    },
  }),
  define({
    method: 'get',
    path: '/v1/cloudbackups/history/{src_volume_id}',
    operationId: 'cloudBackupHistory',
    tag: TAG,
    summary: 'The backup tasks this node ran for a volume.',
    rpc: 'OpenStorageCloudBackup.History',
    params: { src_volume_id: nameSchema },
    handler: async (c, { params }, { backups, guard }) => {
      await guard.historyVolume(c, params.src_volume_id);
      return c.json({ history_list: await backups.history(params.src_volume_id) });
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/statechange',
    operationId: 'cloudBackupStateChange',
    tag: TAG,
    summary: 'Pauses, resumes or stops a task.',
    rpc: 'OpenStorageCloudBackup.StateChange',
    body: cloudBackupStateChangeSchema,
    handler: async (c, { body }, { backups, guard }) => {
      await guard.requireJob(c, await backups.jobs.get(body.task_id), 'Write');
      await backups.jobs.stateChange(body.task_id, body.requested_state);
      return c.json({});
    },
  }),
  define({
    method: 'delete',
    path: '/v1/cloudbackups/backup/{backup_id}',
    operationId: 'cloudBackupDelete',
    tag: TAG,
    summary: "Deletes a backup's record (its data goes at garbage collection).",
    rpc: 'OpenStorageCloudBackup.Delete',
    params: { backup_id: backupIdSchema },
    query: deleteCloudBackupQuerySchema,
    handler: async (c, { params, query }, { backups, guard }) => {
      await guard.credential(c, query.credential_id, 'Write');
      await backups.delete(query.credential_id, params.backup_id, c.req.raw.signal);
      return c.json({});
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/deleteall',
    operationId: 'cloudBackupDeleteAll',
    tag: TAG,
    summary: 'Deletes the records of every backup of a volume.',
    rpc: 'OpenStorageCloudBackup.DeleteAll',
    body: deleteAllCloudBackupsSchema,
    handler: async (c, { body }, { backups, guard }) => {
      await guard.credential(c, body.credential_id, 'Write');
      const deleted = await backups.deleteAll(body.credential_id, body.src_volume_id, c.req.raw.signal);
      return c.json({ deleted });
    },
  }),
  define({
    method: 'get',
    path: '/v1/cloudbackups/size',
    operationId: 'cloudBackupSize',
    tag: TAG,
    summary: "A backup's logical size and the bytes it uploaded.",
    rpc: 'OpenStorageCloudBackup.Size',
    query: cloudBackupSizeQuerySchema,
    handler: async (c, { query }, { backups, guard }) => {
      const credential = await guard.credential(c, query.credential_id, 'Read');
      const record = await backups.inspect(query.credential_id, query.backup_id, c.req.raw.signal);
      await guard.requireBackup(c, credential, query.backup_id, async () => record);
      return c.json({ size: record.size, bytes_uploaded: record.stats.bytes_uploaded });
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/verify',
    operationId: 'cloudBackupVerify',
    tag: TAG,
    summary:
      'Starts a verify job (task id; progress and report through the status route): metadata always, a share of the packs read back whole and every chunk in them checked.',
    body: verifyCloudBackupsSchema,
    handler: async (c, { body }, { backups, guard }) => {
      // One backup: whoever sees it; the whole repository: writers of the credential.
      const need = body.backup_id === undefined ? 'Write' : 'Read';
      const credential = await guard.credential(c, body.credential_id, need);
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
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/gc',
    operationId: 'cloudBackupGc',
    tag: TAG,
    summary: 'One run of two-phase garbage collection of unreferenced packs.',
    body: cloudBackupGcSchema,
    handler: async (c, { body }, { backups, guard }) => {
      await guard.credential(c, body.credential_id, 'Write');
      const graceMs = body.grace_seconds === undefined ? {} : { graceMs: body.grace_seconds * 1000 };
      return c.json(await backups.gc(body.credential_id, graceMs, c.req.raw.signal));
    },
  }),
  define({
    method: 'post',
    path: '/v1/cloudbackups/repair',
    operationId: 'cloudBackupRepair',
    tag: TAG,
    summary: "Rebuilds damaged or missing index objects from the packs' own headers.",
    body: cloudBackupRepairSchema,
    handler: async (c, { body }, { backups, guard }) => {
      await guard.credential(c, body.credential_id, 'Write');
      return c.json(await backups.repair(body.credential_id, body.what ?? 'index', c.req.raw.signal));
    },
  }),
];

/**
 * Routes of the cloud backup rpcs, to mount under `/v1`; without the service they answer UNAVAILABLE. Ownership
 * (`guard`, see api/auth/backup-access.ts): backups are seen through their credential and source volume, jobs by
 * whoever submitted them.
 */
export function cloudBackupRoutes(backups: CloudBackups | undefined, guard: BackupAccess): Hono {
  const routes = new Hono();
  if (backups === undefined) {
    routes.all('/cloudbackups', noCloudBackups);
    routes.all('/cloudbackups/*', noCloudBackups);
    return routes;
  }
  return addOperations(routes, cloudBackupOperations, { backups, guard });
}

/** Throws UNAVAILABLE: the app runs without cloud backups. */
export function noCloudBackups(): never {
  throw new FerryError('UNAVAILABLE', 'this node runs no cloud backups; start it with `ferry node start`');
}

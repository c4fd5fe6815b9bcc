/** Typed calls of the cloud backup routes for `ferry cloudsnap`, and waiting for a job to end. */
import type {
  CloudBackupCatalogView,
  CloudBackupInfoView,
  GcResult,
  JobStatus,
  RepairResult,
} from '../../api/index.js';
import { ApiError, type FerryClient } from '../client.js';

/** Statuses after which a job never changes. */
export const ENDED: ReadonlySet<string> = new Set(['Done', 'Failed', 'Aborted', 'Stopped']);

/** POST /v1/cloudbackups/status for one task. */
export async function jobStatus(client: FerryClient, taskId: string): Promise<JobStatus> {
  const { statuses } = await client.request<{ statuses: Record<string, JobStatus> }>(
    'POST',
    '/v1/cloudbackups/status',
    { task_id: taskId },
  );
  const status = statuses[taskId];
  if (status === undefined) throw new Error(`the API answered no status for task ${taskId}`);
  return status;
}

/** POST /v1/cloudbackups/status for every task (or one volume's). */
export async function jobStatuses(client: FerryClient, volume?: string): Promise<JobStatus[]> {
  const { statuses } = await client.request<{ statuses: Record<string, JobStatus> }>(
    'POST',
    '/v1/cloudbackups/status',
    volume === undefined ? {} : { volume_id: volume },
  );
  return Object.values(statuses);
}

/** Polls a task every `intervalMs` until it ends, calling `onUpdate` with each status; resolves with the last. */
export async function waitForJob(
  client: FerryClient,
  taskId: string,
  onUpdate: (status: JobStatus) => void,
  intervalMs = 250,
): Promise<JobStatus> {
  for (;;) {
    const status = await jobStatus(client, taskId);
    onUpdate(status);
    if (ENDED.has(status.status)) return status;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Every backup in a credential's repository (all pages of POST /v1/cloudbackups/enumerate/filters). */
export async function listBackups(
  client: FerryClient,
  credential: string,
  volume?: string,
): Promise<CloudBackupInfoView[]> {
  const out: CloudBackupInfoView[] = [];
  let token: string | undefined;
  do {
    const page = await client.request<{ backups: CloudBackupInfoView[]; continuation_token?: string }>(
      'POST',
      '/v1/cloudbackups/enumerate/filters',
      {
        credential_id: credential,
        ...(volume !== undefined && { src_volume_id: volume }),
        ...(token !== undefined && { continuation_token: token }),
      },
    );
    out.push(...page.backups);
    token = page.continuation_token;
  } while (token !== undefined);
  return out;
}

/** POST /v1/cloudbackups/catalog. */
export function catalog(client: FerryClient, credential: string, backupId: string): Promise<CloudBackupCatalogView> {
  return client.request('POST', '/v1/cloudbackups/catalog', { backup_id: backupId, credential_id: credential });
}

/** POST /v1/cloudbackups/gc. */
export function gc(client: FerryClient, body: { credential_id: string; grace_seconds?: number }): Promise<GcResult> {
  return client.request('POST', '/v1/cloudbackups/gc', body);
}

/** Every credential's id and name (GET /v1/credentials, then each one's inspect). */
export async function credentialList(client: FerryClient): Promise<{ credential_id: string; name: string }[]> {
  const { credential_ids } = await client.request<{ credential_ids: string[] }>('GET', '/v1/credentials');
  return Promise.all(
    credential_ids.map((id) =>
      client.request<{ credential_id: string; name: string }>(
        'GET',
        `/v1/credentials/inspect/${encodeURIComponent(id)}`,
      ),
    ),
  );
}

/**
 * The credential whose repository holds `backupId`: `given` (from --cred) when given, else the one credential whose
 * repository has it (GET /v1/cloudbackups/size asks each). NOT_FOUND when none has it, INVALID_ARGUMENT (asking for
 * --cred) when several do.
 */
export async function credentialOfBackup(client: FerryClient, backupId: string, given?: string): Promise<string> {
  if (given !== undefined) return given;
  const credentials = await credentialList(client);
  const holders: string[] = [];
  const unreadable: string[] = [];
  for (const c of credentials) {
    const query = `backup_id=${encodeURIComponent(backupId)}&credential_id=${encodeURIComponent(c.credential_id)}`;
    try {
      await client.request('GET', `/v1/cloudbackups/size?${query}`);
      holders.push(c.name);
    } catch (err: unknown) {
      if (!(err instanceof ApiError)) throw err;
      if (err.code === 'INVALID_ARGUMENT') throw err;
      if (err.code !== 'NOT_FOUND') unreadable.push(`${c.name} (${err.message})`);
    }
  }
  const [only, ...more] = holders;
  if (only !== undefined && more.length === 0) return only;
  if (only !== undefined) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `backup ${backupId} is in the repositories of credentials ${holders.join(', ')}; say which with --cred`,
      0,
    );
  }
  const why = unreadable.length > 0 ? `; could not look in ${unreadable.join('; ')}` : '';
  throw new ApiError(
    'NOT_FOUND',
    `no backup ${backupId} under any of the ${credentials.length} credentials${why}; list them with \`ferry cloudsnap list\``,
    404,
  );
}

/** POST /v1/cloudbackups/repair. */
export function repair(client: FerryClient, body: { credential_id: string; what: 'index' }): Promise<RepairResult> {
  return client.request('POST', '/v1/cloudbackups/repair', body);
}

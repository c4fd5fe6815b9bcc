/**
 * `POST /v1/cloudbackups/enumerate/filters` without `credential_id`: the backups of every credential the caller may
 * read, merged in backup id order and paged as one list. A credential whose repositories cannot be read (its KEK
 * destroyed, its bucket unreachable) does not hide the others: it is named in `errors` with the reason.
 */
import type { Context } from 'hono';
import type { CloudBackups } from '../cloudsnap/index.js';
import { isFerryError } from '../common/index.js';
import type { BackupAccess } from './auth/backup-access.js';
import { type CloudBackupInfoView, cloudBackupInfoView } from './cloudbackup-views.js';
import type { EnumerateCloudBackupsBody } from './schemas/index.js';

/** A backup listed across credentials: which credential holds it. */
export interface CredentialBackupView extends CloudBackupInfoView {
  /** Ferry: the credential whose repository holds it. */
  credential_id: string;
}

/** A credential whose backups could not be listed. */
export interface EnumerateError {
  credential_id: string;
  credential_name: string;
  /** FerryError code (PERMISSION_DENIED for a destroyed KEK, UNAVAILABLE, NOT_FOUND ...). */
  code: string;
  message: string;
}

export interface EnumerateAllResponse {
  backups: CredentialBackupView[];
  continuation_token?: string;
  /** One entry per credential that could not be read; absent when every one was. */
  errors?: EnumerateError[];
}

/** Lists the backups of every credential the caller may read; see the file comment. */
export async function enumerateAll(
  c: Context,
  body: Omit<EnumerateCloudBackupsBody, 'credential_id'>,
  backups: CloudBackups,
  guard: BackupAccess,
  signal?: AbortSignal,
): Promise<EnumerateAllResponse> {
  const readable = await guard.readableCredentials(c);
  const all: CredentialBackupView[] = [];
  const errors: EnumerateError[] = [];
  for (const credential of readable) {
    try {
      const { max_backups: _limit, ...filters } = body;
      const page = await backups.enumerate({ ...filters, credential_id: credential.credential_id }, signal);
      for (const record of await guard.filterBackups(c, credential, page.backups)) {
        all.push({ ...cloudBackupInfoView(record), credential_id: credential.credential_id });
      }
    } catch (err: unknown) {
      if (!isFerryError(err) || signal?.aborted === true) throw err;
      errors.push({
        credential_id: credential.credential_id,
        credential_name: credential.name,
        code: err.code,
        message: err.message,
      });
    }
  }
  all.sort((a, b) => a.id.localeCompare(b.id) || a.credential_id.localeCompare(b.credential_id));
  const limit = body.max_backups ?? all.length;
  const page = all.slice(0, limit);
  const last = page.at(-1);
  return {
    backups: page,
    ...(all.length > page.length && last !== undefined && { continuation_token: last.id }),
    ...(errors.length > 0 && { errors }),
  };
}

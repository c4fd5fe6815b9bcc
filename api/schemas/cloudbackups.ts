/**
 * Request schemas of the OpenStorageCloudBackup rpcs (SdkCloudBackup*Request, snake_case as in api.proto) and of
 * Ferry's additions (verify, gc). Enum values are the SDK's names with or without their prefix: `Stop` or
 * `SdkCloudBackupRequestedStateStop`, `Done` or `SdkCloudBackupStatusTypeDone`.
 */
import { z } from 'zod';
import { JOB_STATUSES, REQUESTED_STATES } from '../../cloudsnap/index.js';
import { labelsSchema, nameSchema, typeError } from './common.js';
import { credentialRefSchema } from './credentials.js';

const flag = z.boolean(typeError('true or false'));

/** A task id: the caller's idempotency key (1-128 letters, digits, '.', '_', ':', '-'). */
export const taskIdSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:-]*$/,
    'must start with a letter or digit and hold only letters, digits, ".", "_", ":", "-"',
  );

/** A backup id as `POST /v1/cloudbackups/enumerate/filters` lists it. */
export const backupIdSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(128, 'is too long')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a backup id as enumerate lists it')
  .refine((id) => !id.includes('..'), 'must not contain ".."');

/** A volume id or name. */
const volumeRefSchema = nameSchema;

/** A whole number, as a JSON number or a string of digits (protobuf JSON encodes uint64 as a string). */
function wholeNumber(min: number, max: number) {
  return z
    .union([z.number(), z.string().regex(/^[0-9]{1,15}$/, 'must be a whole number')], typeError('a whole number'))
    .transform((value) => (typeof value === 'string' ? Number(value) : value))
    .pipe(
      z.number().int('must be a whole number').min(min, `must be at least ${min}`).max(max, `must be at most ${max}`),
    );
}

/** An SDK enum value, with or without the enum's prefix. */
function sdkEnum<const T extends readonly [string, ...string[]]>(values: T, prefix: string) {
  return z
    .string(typeError('a string'))
    .transform((v) => (v.startsWith(prefix) ? v.slice(prefix.length) : v))
    .pipe(z.enum(values, { error: () => `must be one of ${values.join(', ')}` }));
}

/** SdkCloudBackupCreateRequest: `{ volume_id, credential_id, full?, task_id?, labels? }`. */
export const createCloudBackupSchema = z.strictObject(
  {
    volume_id: volumeRefSchema,
    credential_id: credentialRefSchema,
    full: flag.optional(),
    task_id: taskIdSchema.optional(),
    labels: labelsSchema.optional(),
  },
  typeError('a JSON object'),
);

/** SdkCloudBackupRestoreRequest: `{ backup_id, restore_volume_name?, credential_id, task_id? }`. */
export const restoreCloudBackupSchema = z.strictObject(
  {
    backup_id: backupIdSchema,
    restore_volume_name: nameSchema.optional(),
    credential_id: credentialRefSchema,
    task_id: taskIdSchema.optional(),
  },
  typeError('a JSON object'),
);

/**
 * SdkCloudBackupEnumerateWithFiltersRequest. `cluster_id` and `all` are accepted and change nothing: a repository
 * lists every backup written to it.
 */
export const enumerateCloudBackupsSchema = z.strictObject(
  {
    src_volume_id: volumeRefSchema.optional(),
    cluster_id: z.string(typeError('a string')).optional(),
    /** Absent: every credential the caller may read (Ferry; errors per credential in the response's `errors`). */
    credential_id: credentialRefSchema.optional(),
    all: flag.optional(),
    status_filter: sdkEnum(JOB_STATUSES, 'SdkCloudBackupStatusType').optional(),
    metadata_filter: labelsSchema.optional(),
    max_backups: wholeNumber(1, 1_000_000).optional(),
    continuation_token: backupIdSchema.optional(),
  },
  typeError('a JSON object'),
);

/** SdkCloudBackupStatusRequest: `{ volume_id?, local?, task_id? }` (`task_id` wins over `volume_id`). */
export const cloudBackupStatusSchema = z.strictObject(
  { volume_id: volumeRefSchema.optional(), local: flag.optional(), task_id: taskIdSchema.optional() },
  typeError('a JSON object'),
);

/** SdkCloudBackupCatalogRequest: `{ backup_id, credential_id }`. */
export const cloudBackupCatalogSchema = z.strictObject(
  { backup_id: backupIdSchema, credential_id: credentialRefSchema },
  typeError('a JSON object'),
);

/** SdkCloudBackupDeleteRequest minus `backup_id` (in the path): `?credential_id=...&force=...`. */
export const deleteCloudBackupQuerySchema = z.strictObject({
  credential_id: credentialRefSchema,
  force: z.enum(['true', 'false'], { error: () => 'must be true or false' }).optional(),
});

/** SdkCloudBackupDeleteAllRequest: `{ src_volume_id, credential_id }`. */
export const deleteAllCloudBackupsSchema = z.strictObject(
  { src_volume_id: volumeRefSchema, credential_id: credentialRefSchema },
  typeError('a JSON object'),
);

/** SdkCloudBackupStateChangeRequest: `{ task_id, requested_state }`. */
export const cloudBackupStateChangeSchema = z.strictObject(
  { task_id: taskIdSchema, requested_state: sdkEnum(REQUESTED_STATES, 'SdkCloudBackupRequestedState') },
  typeError('a JSON object'),
);

/** SdkCloudBackupSizeRequest as a query: `?backup_id=...&credential_id=...`. */
export const cloudBackupSizeQuerySchema = z.strictObject({
  backup_id: backupIdSchema,
  credential_id: credentialRefSchema,
});

/**
 * Ferry's `POST /v1/cloudbackups/verify`: `{ credential_id, backup_id?, data_percent?, task_id?, wait? }`. It starts
 * a verify job and answers its task id at once; `wait: true` answers when the job has ended, with its final status.
 */
export const verifyCloudBackupsSchema = z.strictObject(
  {
    credential_id: credentialRefSchema,
    backup_id: backupIdSchema.optional(),
    data_percent: z
      .number(typeError('a number from 0 to 100'))
      .min(0, 'must be at least 0')
      .max(100, 'must be at most 100')
      .optional(),
    task_id: taskIdSchema.optional(),
    wait: flag.optional(),
  },
  typeError('a JSON object'),
);

/** Ferry's `POST /v1/cloudbackups/gc`: `{ credential_id, grace_seconds? }` (default one hour). */
export const cloudBackupGcSchema = z.strictObject(
  { credential_id: credentialRefSchema, grace_seconds: wholeNumber(0, 365 * 86_400).optional() },
  typeError('a JSON object'),
);

/** Ferry's `POST /v1/cloudbackups/repair`: `{ credential_id, what? }`; `what` is `index` (the default). */
export const cloudBackupRepairSchema = z.strictObject(
  {
    credential_id: credentialRefSchema,
    what: z.enum(['index'], { error: () => 'must be "index"' }).optional(),
  },
  typeError('a JSON object'),
);

/** SdkCloudBackupGroupCreateRequest: `{ group_id?, volume_ids, credential_id, full?, labels? }`. */
export const groupCloudBackupSchema = z.strictObject(
  {
    group_id: z
      .string(typeError('a string'))
      .min(1, 'must not be empty')
      .max(64, 'must be at most 64 characters')
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'must start with a letter or digit and hold only letters, digits, "_", "-"')
      .optional(),
    volume_ids: z
      .array(volumeRefSchema, typeError('an array of volume ids or names'))
      .min(1, 'must name at least one volume')
      .max(64, 'must name at most 64 volumes'),
    credential_id: credentialRefSchema,
    full: flag.optional(),
    labels: labelsSchema.optional(),
  },
  typeError('a JSON object'),
);

export type CreateCloudBackupBody = z.output<typeof createCloudBackupSchema>;
export type RestoreCloudBackupBody = z.output<typeof restoreCloudBackupSchema>;
export type EnumerateCloudBackupsBody = z.output<typeof enumerateCloudBackupsSchema>;

const bytes = (description: string) => z.number().int().min(0).describe(description);

/** SdkCloudBackupInfo plus Ferry's fields, as enumerate answers each backup (api/cloudbackup-views.ts builds it). */
export const cloudBackupInfoSchema = z.strictObject({
  id: z.string(),
  src_volume_id: z.string(),
  src_volume_name: z.string(),
  timestamp: z.string().describe('when the backup was committed (RFC 3339)'),
  metadata: z.record(z.string(), z.string()).describe("the backup's labels"),
  status: z.literal('Done'),
  created: z.string().describe("when the backup started: its snapshot's time (RFC 3339)"),
  size: bytes('volume size in bytes (what a restore creates)'),
  full: z.boolean().describe('every allocated block was read (first backup of a volume, or full asked for)'),
  base_backup: z.string().optional().describe('the backup this one was diffed against (restores never need it)'),
  bytes_stored: bytes(
    'bytes of volume data the backup holds (its non-zero chunks, before compression; what a restore writes), ' +
      'in the repository whether this backup or an earlier one uploaded them',
  ),
  bytes_new: bytes('bytes of volume data this backup added that the repository did not hold (before compression)'),
  bytes_uploaded: bytes('bytes this backup added to the repository (compressed and encrypted)'),
});

/** SdkCloudBackupEnumerateWithFiltersResponse. */
export const enumerateCloudBackupsResponseSchema = z.strictObject({
  backups: z.array(cloudBackupInfoSchema),
  continuation_token: z.string().optional().describe('pass it back to get the next page; absent on the last'),
});

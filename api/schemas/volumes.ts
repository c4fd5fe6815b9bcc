/** Request schemas of the OpenStorageVolume volume rpcs (SdkVolume*Request), snake_case as in api.proto. */
import { z } from 'zod';
import {
  haLevelSchema,
  labelsSchema,
  labelUpdatesSchema,
  nameSchema,
  resourceRefSchema,
  sizeSchema,
  typeError,
} from './common.js';

/**
 * SdkVolumeCreateRequest: `{ name, spec: { size, ha_level?, shared?, encrypted? }, labels? }`. `spec.encrypted`
 * (OpenStorage VolumeSpec) encrypts the data at rest under the KEK named by the label `ferry.io/kek`.
 */
export const createVolumeSchema = z.strictObject(
  {
    name: nameSchema,
    spec: z.strictObject(
      {
        size: sizeSchema,
        ha_level: haLevelSchema.optional(),
        shared: z.boolean(typeError('true or false')).optional(),
        encrypted: z.boolean(typeError('true or false')).optional(),
      },
      typeError('an object'),
    ),
    labels: labelsSchema.optional(),
  },
  typeError('a JSON object'),
);

/** VolumeLocator as a filter: `{ name?, volume_labels? }`. */
const locatorSchema = z.strictObject(
  { name: nameSchema.optional(), volume_labels: labelsSchema.optional() },
  typeError('an object'),
);

/** VolumeLocator in an update: only `volume_labels`, where '' removes a label. */
const locatorUpdateSchema = z.strictObject({ volume_labels: labelUpdatesSchema.optional() }, typeError('an object'));

/**
 * SdkVolumeUpdateRequest: `{ volume_id?, labels?, locator? { volume_labels }, spec? { size } }`. `volume_id` comes
 * from the path; if the body repeats it, it must match. A label value of '' removes the label.
 */
export const updateVolumeSchema = z.strictObject(
  {
    volume_id: resourceRefSchema.optional(),
    labels: labelUpdatesSchema.optional(),
    locator: locatorUpdateSchema.optional(),
    spec: z.strictObject({ size: sizeSchema.optional() }, typeError('an object')).optional(),
  },
  typeError('a JSON object'),
);

/** SdkVolumeCloneRequest: `{ name, parent_id, additional_labels? }`; parent is a volume or a snapshot. */
export const cloneVolumeSchema = z.strictObject(
  {
    name: nameSchema,
    parent_id: resourceRefSchema,
    additional_labels: labelsSchema.optional(),
  },
  typeError('a JSON object'),
);

/**
 * SdkVolumeEnumerateWithFiltersRequest `{ locator? }`, and the `{ name?, labels? }` filters that
 * SdkVolumeInspectWithFiltersRequest uses; every given filter must match.
 */
export const volumeFiltersSchema = z.strictObject(
  { locator: locatorSchema.optional(), name: nameSchema.optional(), labels: labelsSchema.optional() },
  typeError('a JSON object'),
);

/** Query of `GET /v1/volumes/{volume_id}/changed_blocks` (a Ferry addition). */
/**
 * Query of `DELETE /v1/volumes/{volume_id}` and `DELETE /v1/credentials/{credential_id}` (Ferry): `with_schedules=true`
 * deletes the cloud backup schedules that use it in the same step (without it, those make the delete
 * FAILED_PRECONDITION).
 */
export const deleteQuerySchema = z.strictObject({
  with_schedules: z.enum(['true', 'false'], { error: () => 'must be true or false' }).optional(),
});

export const changedBlocksQuerySchema = z.strictObject({
  base_snapshot_id: resourceRefSchema.optional(),
  target_snapshot_id: resourceRefSchema.optional(),
  offset: z
    .string()
    .regex(/^[0-9]{1,16}$/, 'must be a whole number of bytes')
    .transform(Number)
    .optional(),
  limit: z
    .string()
    .regex(/^[0-9]{1,6}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(1, 'must be at least 1').max(100_000, 'must be at most 100000'))
    .optional(),
});

export type CreateVolumeBody = z.output<typeof createVolumeSchema>;
export type UpdateVolumeBody = z.output<typeof updateVolumeSchema>;
export type CloneVolumeBody = z.output<typeof cloneVolumeSchema>;
export type VolumeFiltersBody = z.output<typeof volumeFiltersSchema>;
export type ChangedBlocksQuery = z.output<typeof changedBlocksQuerySchema>;

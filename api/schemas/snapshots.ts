/** Request schemas of the OpenStorageVolume snapshot rpcs (SdkVolumeSnapshot*Request). */
import { z } from 'zod';
import { labelsSchema, nameSchema, resourceRefSchema, typeError } from './common.js';

/** SdkVolumeSnapshotCreateRequest: `{ volume_id, name, labels? }`; `volume_id` may also be the volume's name. */
export const createSnapshotSchema = z.strictObject(
  { volume_id: resourceRefSchema, name: nameSchema, labels: labelsSchema.optional() },
  typeError('a JSON object'),
);

/** SdkVolumeSnapshotRestoreRequest: `{ volume_id, snapshot_id }`; the snapshot may be named `VOLUME@SNAPSHOT`. */
export const restoreSnapshotSchema = z.strictObject(
  { volume_id: resourceRefSchema, snapshot_id: resourceRefSchema },
  typeError('a JSON object'),
);

/** SdkVolumeSnapshotEnumerateWithFiltersRequest: `{ volume_id?, labels? }` (`volume_id` comes from the path). */
export const snapshotFiltersSchema = z.strictObject(
  { volume_id: resourceRefSchema.optional(), labels: labelsSchema.optional() },
  typeError('a JSON object'),
);

export type CreateSnapshotBody = z.output<typeof createSnapshotSchema>;
export type RestoreSnapshotBody = z.output<typeof restoreSnapshotSchema>;
export type SnapshotFiltersBody = z.output<typeof snapshotFiltersSchema>;

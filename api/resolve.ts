/** Finding what a path names: OpenStorage treats a snapshot as a volume with its own id, so both are looked up. */
import { FerryError, isFerryError } from '../common/index.js';
import type { SnapshotInfo, VolumeEngine, VolumeInfo } from '../node/index.js';

/** A volume, or a snapshot together with its volume when that still exists. */
export type Resolved = { kind: 'volume'; volume: VolumeInfo } | { kind: 'snapshot'; snapshot: SnapshotInfo };

/**
 * Looks `ref` up as a volume (id or name), then as a snapshot (id or `VOLUME@SNAPSHOT`). NOT_FOUND when neither
 * exists.
 */
export async function resolveVolumeOrSnapshot(engine: VolumeEngine, ref: string): Promise<Resolved> {
  if (!ref.includes('@')) {
    try {
      return { kind: 'volume', volume: await engine.inspectVolume(ref) };
    } catch (err: unknown) {
      if (!isFerryError(err, 'NOT_FOUND')) throw err;
    }
  }
  try {
    return { kind: 'snapshot', snapshot: await engine.inspectSnapshot(ref) };
  } catch (err: unknown) {
    if (isFerryError(err, 'NOT_FOUND')) {
      throw new FerryError('NOT_FOUND', `no volume or snapshot "${ref}"; list them with GET /v1/volumes`, {
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Rewrites an engine INVALID_ARGUMENT so its field names the API path (`size` -> `spec.size`); other errors pass.
 */
export function renameFields(fields: Readonly<Record<string, string>>): (err: unknown) => never {
  return (err: unknown): never => {
    if (!isFerryError(err, 'INVALID_ARGUMENT') || err.field === undefined) throw err;
    const renamed = fields[err.field];
    if (renamed === undefined) throw err;
    const message = err.message.startsWith(`${err.field}:`)
      ? `${renamed}${err.message.slice(err.field.length)}`
      : `${renamed}: ${err.message}`;
    throw new FerryError('INVALID_ARGUMENT', message, { field: renamed, cause: err });
  };
}

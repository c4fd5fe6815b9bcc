import { FerryError } from '../../common/index.js';

/** The errno code of a Node file-system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/** Translates a file-system error of the directory store into a FerryError that says what to do. */
export function translateFsError(err: unknown, path: string): FerryError {
  if (err instanceof FerryError) return err;
  const code = errnoCode(err);
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return new FerryError(
        'PERMISSION_DENIED',
        `permission denied on ${path}: fix the owner or mode of the directory`,
        {
          cause: err,
        },
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new FerryError('RESOURCE_EXHAUSTED', `no space left for ${path}: free space or use a bigger disk`, {
        cause: err,
      });
    case 'EROFS':
      return new FerryError('FAILED_PRECONDITION', `${path} is on a read-only file system: mount it read-write`, {
        cause: err,
      });
    case 'EIO':
      return new FerryError('UNAVAILABLE', `I/O error on ${path}: check the disk and retry`, { cause: err });
    default:
      return new FerryError('INTERNAL', `file-system error on ${path}${code === undefined ? '' : ` (${code})`}`, {
        cause: err,
      });
  }
}

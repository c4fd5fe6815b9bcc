import { FerryError } from '../../common/index.js';
import { native } from '../../common/native/index.js';

const EOPNOTSUPP = 95;

/**
 * Frees the disk blocks of [offset, offset+length) of a file; the range then reads as zeros. Returns false when
 * the file system cannot punch holes (the space then stays allocated; contents are governed by the layer map).
 */
export async function punchHole(fd: number, offset: number, length: number): Promise<boolean> {
  const errno = await native.punchHole(fd, offset, length);
  if (errno === 0) return true;
  if (errno === EOPNOTSUPP) return false;
  throw new FerryError('INTERNAL', `fallocate(PUNCH_HOLE) failed with errno ${errno}`);
}

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../../common/errors.js';

interface NativeModule {
  punchHole(fd: number, offset: number, length: number): Promise<number>;
}

function findAddon(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'build', 'Release', 'ferry_native.node');
    if (existsSync(candidate)) return candidate;
  }
  throw new FerryError(
    'UNAVAILABLE',
    'the native addon build/Release/ferry_native.node is missing: run `npm ci` (it builds it)',
  );
}

const native = createRequire(import.meta.url)(findAddon()) as NativeModule;

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

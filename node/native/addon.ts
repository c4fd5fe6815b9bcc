/** Loads the ferry_native addon (node/native/*.c, built by `npm ci` through node-gyp). */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../../common/errors.js';

export interface NativeAddon {
  punchHole(fd: number, offset: number, length: number): Promise<number>;
  tuneMalloc(mmapThreshold: number, arenaMax: number): boolean;
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

export const native = createRequire(import.meta.url)(findAddon()) as NativeAddon;

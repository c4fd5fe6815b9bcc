/** Loads the ferry_native addon (common/native/*.c, built by `npm ci` through node-gyp). */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../errors.js';

/** glibc's malloc over all arenas (mallinfo2), in bytes. */
export interface MallocStats {
  /** Obtained from the system for the arenas (not counting blocks mapped on their own). */
  heap: number;
  inUse: number;
  /** Held by the arenas, free. */
  free: number;
  /** In blocks mapped on their own. */
  mapped: number;
}

export interface NativeAddon {
  punchHole(fd: number, offset: number, length: number): Promise<number>;
  tuneMalloc(mmapThreshold: number, arenaMax: number): boolean;
  trimMalloc(): boolean;
  mallocStats(): MallocStats | null;
  /** AES-256-GCM of plaintext written as ciphertext | tag into target at `at`; returns its length. */
  gcmSealInto(
    key: Uint8Array,
    counter: number,
    plaintext: Uint8Array,
    aad: Uint8Array,
    target: Uint8Array,
    at: number,
  ): number;
  /**
   * A blob's codec | payload opened with the payload in `out` (raw) or `scratch` (any other codec): length * 256 +
   * codec, -1 when authentication fails, -2 when the payload does not fit.
   */
  gcmOpenChunk(
    key: Uint8Array,
    counter: number,
    sealed: Uint8Array,
    aad: Uint8Array,
    out: Uint8Array,
    scratch: Uint8Array,
  ): number;
  /** Bytes from the start of `view` to the next address that is a multiple of `alignment` (a power of two). */
  alignmentGap(view: Uint8Array, alignment: number): number;
  /** A full collection of the calling thread's V8 heap that also compacts it (heap.cc). */
  reduceHeap(): void;
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

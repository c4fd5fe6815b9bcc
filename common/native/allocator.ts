/**
 * How a node process sets up its memory: glibc's allocator (common/native/malloc.c explains the settings; a node, and
 * the benchmarks that stand in for one, call `tuneAllocator` once at start), the V8 flags it is started with, and
 * malloc's figures and trimming.
 */
import { type MallocStats, native } from './addon.js';

/** Blocks of 1 MiB and more (read ranges, pack and slab buffers) are mapped on their own and unmapped when freed. */
export const MMAP_THRESHOLD = 1024 * 1024;
/** Malloc arenas shared by the node's threads. */
export const ARENA_MAX = 2;

/**
 * Applies the settings; false where the C library is not glibc (they are then left as they are). The arena limit
 * only stops new arenas from here on: the threads Node starts before any JavaScript runs (V8's platform workers,
 * libuv's pool) have each taken one already. NODE_ENV_SETTINGS sets it from the start.
 */
export function tuneAllocator(): boolean {
  return native.tuneMalloc(MMAP_THRESHOLD, ARENA_MAX);
}

/**
 * Environment a node process starts with (`npm start`, the systemd unit and the `ferry` command's shebang set it):
 * glibc reads MALLOC_ARENA_MAX before the first thread starts, so every thread shares the two arenas. Without it a
 * node has one arena per early thread (7 to 9 here), each holding freed memory of its own: 3-4 MiB more at a
 * backup's peak (runs of `bench/cloudsnap-memory.ts backup` with and without it, alternated).
 */
export const NODE_ENV_SETTINGS = { MALLOC_ARENA_MAX: String(ARENA_MAX) } as const;

/** The settings of NODE_ENV_SETTINGS this process was started without, as `NAME=value`. */
export function missingEnvSettings(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.entries(NODE_ENV_SETTINGS)
    .filter(([name, value]) => env[name] !== value)
    .map(([name, value]) => `${name}=${value}`);
}

/**
 * V8 flags a node process starts with (`npm start`, the systemd unit and the `ferry` command's shebang pass them;
 * V8 reads them only at start).
 * - A young generation of 1 MiB semi-spaces instead of V8's 16: a node's garbage is short-lived small objects, so
 *   scavenges stay cheap, and the main thread's heap stays about 30 MiB smaller.
 * - An old-generation limit of at least 128 MiB. V8 sizes the limit from the live heap (about 25 MiB in a node, so
 *   a limit near 33 MiB) and, as its traces suggest, counts the memory of Buffers in flight against it: 16 writes of 1 MiB in flight to a
 *   volume with two replicas kept it over the limit, and the node ran 20 or more full collections a second that
 *   freed almost nothing (V8's marking threads took more CPU than the main thread). With the floor, sequential
 *   writes with two replicas ran 1.2-2.6x faster and the nodes' peak RSS did not move (184-202 MiB with the floor
 *   at 64 or 128 MiB, 202 without; runs of 2 nodes, fio at depth 16 for 2 x 5 s): the old generation holds little
 *   garbage, and a backup's own collections (cloudsnap/workers/reclaim.ts) still run every 256 MiB.
 */
export const NODE_V8_FLAGS = ['--max-semi-space-size=1', '--initial-old-space-size=128'] as const;

/** The flags of NODE_V8_FLAGS this process was started without (on its command line or in NODE_OPTIONS). */
export function missingV8Flags(): string[] {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return NODE_V8_FLAGS.filter((flag) => !given.includes(flag));
}

/**
 * Returns the free memory malloc's arenas hold to the kernel (after a job's setup, and after full collections);
 * false where nothing was released or the C library is not glibc.
 */
export function trimAllocator(): boolean {
  return native.trimMalloc();
}

/**
 * A full collection of the calling thread's V8 heap in V8's memory-reducing mode: unlike the `gc` extension's, it
 * moves the objects of fragmented pages together and returns the emptied pages. A heap that went through hundreds
 * of collections otherwise keeps the partly used pages of each, and a long job's heap ends a few MiB larger than a
 * short one's. Costs about what an ordinary full collection does (16-18 ms in a 16 GiB restore's main thread).
 */
export function compactHeap(): void {
  native.reduceHeap();
}

/** malloc's figures over all arenas, or null where the C library is not glibc 2.33 or later. */
export function allocatorStats(): MallocStats | null {
  return native.mallocStats();
}

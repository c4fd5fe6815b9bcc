/**
 * The allocator settings of a node process (node/native/malloc.c explains them). A node calls this once at start;
 * so do the benchmarks that stand in for a node.
 */
import { native } from './addon.js';

/** Blocks of 1 MiB and more (read ranges, pack and slab buffers) are mapped on their own and unmapped when freed. */
export const MMAP_THRESHOLD = 1024 * 1024;
/** Malloc arenas shared by the node's threads (as `MALLOC_ARENA_MAX=2`). */
export const ARENA_MAX = 2;

/** Applies the settings; false where the C library is not glibc (they are then left as they are). */
export function tuneAllocator(): boolean {
  return native.tuneMalloc(MMAP_THRESHOLD, ARENA_MAX);
}

/**
 * The native addon's face: the compiled ferry_native functions (hole punching, glibc's allocator, AES-GCM sealing
 * into a caller's buffer, alignment, V8 heap compaction) and the memory settings of a node process built on them.
 * Apart from `common/index.ts` on purpose: importing this loads build/Release/ferry_native.node (and fails when it
 * was not built), which only the code that uses the addon should take on.
 */
export { type MallocStats, type NativeAddon, native } from './addon.js';
export {
  ARENA_MAX,
  allocatorStats,
  compactHeap,
  MMAP_THRESHOLD,
  missingEnvSettings,
  missingV8Flags,
  NODE_ENV_SETTINGS,
  NODE_V8_FLAGS,
  trimAllocator,
  tuneAllocator,
} from './allocator.js';

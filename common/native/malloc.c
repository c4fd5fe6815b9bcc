/*
 * glibc allocator settings for a long-running node, set from inside the process so they hold however it is started.
 *
 * M_MMAP_THRESHOLD: blocks at least this large get their own mapping, returned to the kernel when freed. glibc
 * otherwise raises the threshold each time it frees a mapped block (up to 32 MiB), after which multi-MiB buffers come
 * from the heap and leave it fragmented: resident memory then creeps up with the length of a restore. Setting it
 * also turns that adjustment off.
 * M_ARENA_MAX: the number of malloc arenas threads share (default 8 per core), each holding freed memory of its own.
 */
#include <malloc.h>
#include <node_api.h>

#include "ferry_native.h"

/* tuneMalloc(mmapThreshold, arenaMax): true when glibc took both settings. */
napi_value ferry_tune_malloc(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2], result;
  int32_t threshold = 0, arenas = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, args[0], &threshold) != napi_ok || napi_get_value_int32(env, args[1], &arenas) != napi_ok) {
    napi_throw_type_error(env, NULL, "tuneMalloc(mmapThreshold, arenaMax) takes numbers");
    return NULL;
  }
  int ok = 1;
#ifdef __GLIBC__
  ok = mallopt(M_MMAP_THRESHOLD, threshold) == 1 && ok;
  ok = mallopt(M_ARENA_MAX, arenas) == 1 && ok;
#else
  ok = 0;
#endif
  napi_get_boolean(env, ok, &result);
  return result;
}

/*
 * trimMalloc(): returns the free memory all arenas hold to the kernel (malloc_trim(0) also releases whole free pages
 * inside an arena, not only at its top). A job's setup (loading a repository's index, say) frees its temporaries
 * into the arenas, which would otherwise keep them resident for the rest of the job. True when memory was released.
 */
napi_value ferry_trim_malloc(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef __GLIBC__
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
#else
  napi_get_boolean(env, 0, &result);
#endif
  return result;
}

/* mallocStats(): { heap, inUse, free, mapped } in bytes over all arenas (mallinfo2), or null without glibc. */
napi_value ferry_malloc_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  napi_value v;
  napi_create_object(env, &result);
  napi_create_double(env, (double)mi.arena, &v);
  napi_set_named_property(env, result, "heap", v);
  napi_create_double(env, (double)mi.uordblks, &v);
  napi_set_named_property(env, result, "inUse", v);
  napi_create_double(env, (double)mi.fordblks, &v);
  napi_set_named_property(env, result, "free", v);
  napi_create_double(env, (double)mi.hblkhd, &v);
  napi_set_named_property(env, result, "mapped", v);
#else
  napi_get_null(env, &result);
#endif
  return result;
}

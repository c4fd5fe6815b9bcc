/* The functions of the ferry_native addon; addon.c registers them. */
#ifndef FERRY_NATIVE_H
#define FERRY_NATIVE_H
#include <node_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* punchHole(fd, offset, length): Promise<number> (punch.c). */
napi_value ferry_punch_hole(napi_env env, napi_callback_info info);
/* tuneMalloc(mmapThreshold, arenaMax): boolean (malloc.c). */
napi_value ferry_tune_malloc(napi_env env, napi_callback_info info);
/* trimMalloc(): boolean (malloc.c). */
napi_value ferry_trim_malloc(napi_env env, napi_callback_info info);
/* mallocStats(): { heap, inUse, free, mapped } | null (malloc.c). */
napi_value ferry_malloc_stats(napi_env env, napi_callback_info info);
/* gcmSealInto(key, counter, plaintext, aad, target, at): number (gcm.c). */
napi_value ferry_gcm_seal_into(napi_env env, napi_callback_info info);
/* gcmOpenChunk(key, counter, sealed, aad, out, scratch): number (gcm.c). */
napi_value ferry_gcm_open_chunk(napi_env env, napi_callback_info info);
/* alignmentGap(view, alignment): number (align.c). */
napi_value ferry_alignment_gap(napi_env env, napi_callback_info info);
/* reduceHeap(): undefined (heap.cc). */
napi_value ferry_reduce_heap(napi_env env, napi_callback_info info);

#ifdef __cplusplus
}
#endif

#endif

/* Registers the functions of the ferry_native addon. */
#include <node_api.h>

#include "ferry_native.h"

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

static napi_value init(napi_env env, napi_value exports) {
  export_function(env, exports, "punchHole", ferry_punch_hole);
  export_function(env, exports, "tuneMalloc", ferry_tune_malloc);
  export_function(env, exports, "trimMalloc", ferry_trim_malloc);
  export_function(env, exports, "mallocStats", ferry_malloc_stats);
  export_function(env, exports, "gcmSealInto", ferry_gcm_seal_into);
  export_function(env, exports, "gcmOpenChunk", ferry_gcm_open_chunk);
  export_function(env, exports, "alignmentGap", ferry_alignment_gap);
  export_function(env, exports, "reduceHeap", ferry_reduce_heap);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

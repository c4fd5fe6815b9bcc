/*
 * alignmentGap(view, alignment): how many bytes past the start of `view` memory reaches the next multiple of
 * `alignment` (0 when the view already starts on one). Direct I/O (O_DIRECT) needs its buffers aligned in memory,
 * and JavaScript cannot see where a buffer lies.
 */
#include <stdint.h>
#include <node_api.h>

#include "ferry_native.h"

napi_value ferry_alignment_gap(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2], result;
  bool is_typed = false;
  int32_t alignment = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 2 ||
      napi_is_typedarray(env, args[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_value_int32(env, args[1], &alignment) != napi_ok || alignment <= 0 ||
      (alignment & (alignment - 1)) != 0) {
    napi_throw_type_error(env, NULL, "alignmentGap(view, alignment) takes a typed array and a power of two");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = NULL;
  napi_value buffer;
  if (napi_get_typedarray_info(env, args[0], &type, &length, &data, &buffer, &offset) != napi_ok) {
    napi_throw_error(env, NULL, "alignmentGap: cannot read the view");
    return NULL;
  }
  uintptr_t mask = (uintptr_t)alignment - 1;
  uintptr_t gap = ((uintptr_t)alignment - ((uintptr_t)data & mask)) & mask;
  napi_create_uint32(env, (uint32_t)gap, &result);
  return result;
}

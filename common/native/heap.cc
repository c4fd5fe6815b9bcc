/*
 * reduceHeap(): a full garbage collection in V8's memory-reducing mode on the calling thread's isolate. Unlike the
 * `gc` extension's collection it moves objects out of fragmented pages and hands the emptied pages back, so a heap
 * that has been through many collections does not stay larger than one that has been through a few.
 */
#include <node_api.h>
#include <v8.h>

#include "ferry_native.h"

extern "C" napi_value ferry_reduce_heap(napi_env env, napi_callback_info info) {
  (void)info;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  // A critical level collects at once on the isolate's own thread; the level is then put back so that V8's later,
  // ordinary collections are not run as if memory were short.
  isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kCritical);
  isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kNone);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

/*
 * fallocate(PUNCH_HOLE | KEEP_SIZE) for Node: frees the disk blocks of a trimmed range of a layer file so that
 * trim and write-zeroes give space back, as a thin volume must. Node's fs has no fallocate. The call runs on
 * libuv's thread pool (napi async work) so the event loop never waits on the file system.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>

#include "ferry_native.h"

typedef struct {
  int fd;
  int64_t offset;
  int64_t length;
  int error;
  napi_deferred deferred;
  napi_async_work work;
} punch_job;

static void execute(napi_env env, void *data) {
  (void)env;
  punch_job *job = data;
  job->error = fallocate(job->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, job->offset, job->length) == 0 ? 0 : errno;
}

static void complete(napi_env env, napi_status status, void *data) {
  (void)status;
  punch_job *job = data;
  napi_value result;
  napi_create_int32(env, job->error, &result);
  napi_resolve_deferred(env, job->deferred, result);
  napi_delete_async_work(env, job->work);
  free(job);
}

/* punchHole(fd, offset, length): Promise<number> resolving to 0 or an errno. */
napi_value ferry_punch_hole(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3], promise, name;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 3) {
    napi_throw_type_error(env, NULL, "punchHole(fd, offset, length)");
    return NULL;
  }
  punch_job *job = calloc(1, sizeof(punch_job));
  if (job == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (napi_get_value_int32(env, args[0], &job->fd) != napi_ok || napi_get_value_int64(env, args[1], &job->offset) != napi_ok ||
      napi_get_value_int64(env, args[2], &job->length) != napi_ok) {
    free(job);
    napi_throw_type_error(env, NULL, "punchHole(fd, offset, length) takes numbers");
    return NULL;
  }
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "ferry.punchHole", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

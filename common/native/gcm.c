/*
 * AES-256-GCM straight into a caller's buffer, with OpenSSL's EVP API (the OpenSSL that Node itself carries, or the
 * one it links). Node's crypto returns every plaintext and ciphertext in a buffer of its own; CloudSnap seals and
 * opens hundreds of thousands of blobs per backup or restore, and those buffers, freed only when a thread's heap is
 * next collected, were the largest and most variable part of the node's malloc use.
 *
 * Nonces are CloudSnap's (docs/FORMAT.md): 4 zero bytes, then the 64-bit counter big-endian. Tags are 16 bytes.
 */
#include <math.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "ferry_native.h"

#define KEY_SIZE 32
#define NONCE_SIZE 12
#define TAG_SIZE 16

/* The bytes of a Buffer or other Uint8Array (adjusted for its offset); false after throwing a TypeError. */
static int bytes_of(napi_env env, napi_value value, const char *what, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_get_typedarray_info(env, value, &type, length, &ptr, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, what);
    return 0;
  }
  *data = ptr;
  return 1;
}

/* The nonce of `counter`, which must be a whole number below 2^53; false after throwing a RangeError. */
static int nonce_of(napi_env env, napi_value value, uint8_t nonce[NONCE_SIZE]) {
  double counter = -1;
  napi_get_value_double(env, value, &counter);
  if (!(counter >= 0 && counter <= 9007199254740991.0) || floor(counter) != counter) {
    napi_throw_range_error(env, NULL, "the nonce counter must be a whole number from 0 to 2^53 - 1");
    return 0;
  }
  uint64_t c = (uint64_t)counter;
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(c >> (56 - 8 * i));
  return 1;
}

/*
 * The arguments both functions start with, checked in order: six of them (else a TypeError naming `usage`), the key
 * (a Uint8Array of 32 bytes), the counter (into `nonce`), then `count` Uint8Arrays from args[2] on, named by `what`.
 * False after throwing.
 */
static int gcm_args(napi_env env, napi_callback_info info, const char *usage, napi_value args[6], uint8_t **key,
                    uint8_t nonce[NONCE_SIZE], int count, const char *const what[], uint8_t *bufs[], size_t lens[]) {
  size_t argc = 6, key_len = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 6) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  if (!bytes_of(env, args[0], "key must be a Uint8Array", key, &key_len) || !nonce_of(env, args[1], nonce)) return 0;
  for (int i = 0; i < count; i++)
    if (!bytes_of(env, args[2 + i], what[i], &bufs[i], &lens[i])) return 0;
  if (key_len != KEY_SIZE) {
    napi_throw_range_error(env, NULL, "the key must be 32 bytes");
    return 0;
  }
  return 1;
}

static napi_value number(napi_env env, double n) {
  napi_value v;
  napi_create_double(env, n, &v);
  return v;
}

/* Seals `in` into `out` as ciphertext then tag; returns the bytes written, or -1 when OpenSSL fails. */
static long gcm_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                     size_t in_len, uint8_t *out) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL) return -1;
  long result = -1;
  int n = 0, tail = 0, aad_done = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1) goto done;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_SIZE, NULL) != 1) goto done;
  if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1) goto done;
  if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &aad_done, aad, (int)aad_len) != 1) goto done;
  if (in_len > 0 && EVP_EncryptUpdate(ctx, out, &n, in, (int)in_len) != 1) goto done;
  if (EVP_EncryptFinal_ex(ctx, out + n, &tail) != 1) goto done;
  n += tail;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out + n) != 1) goto done;
  result = n + TAG_SIZE;
done:
  EVP_CIPHER_CTX_free(ctx);
  return result;
}

/*
 * gcmSealInto(key, counter, plaintext, aad, target, at): writes ciphertext | tag into target at `at` and returns its
 * length (plaintext + 16). Throws when target is too small.
 */
napi_value ferry_gcm_seal_into(napi_env env, napi_callback_info info) {
  static const char *const what[] = {"plaintext must be a Uint8Array", "aad must be a Uint8Array",
                                     "target must be a Uint8Array"};
  napi_value args[6];
  uint8_t *key, *bufs[3], nonce[NONCE_SIZE];
  size_t lens[3];
  if (!gcm_args(env, info, "gcmSealInto(key, counter, plaintext, aad, target, at)", args, &key, nonce, 3, what, bufs,
                lens))
    return NULL;
  uint8_t *plain = bufs[0], *aad = bufs[1], *target = bufs[2];
  size_t plain_len = lens[0], aad_len = lens[1], target_len = lens[2];
  double at = -1;
  napi_get_value_double(env, args[5], &at);
  if (!(at >= 0) || floor(at) != at || at > (double)target_len || target_len - (size_t)at < plain_len + TAG_SIZE ||
      plain_len > INT32_MAX || aad_len > INT32_MAX) {
    napi_throw_range_error(env, NULL, "target has no room for the sealed plaintext at that offset");
    return NULL;
  }
  long n = gcm_seal(key, nonce, aad, aad_len, plain, plain_len, target + (size_t)at);
  if (n < 0) {
    napi_throw_error(env, NULL, "AES-256-GCM encryption failed");
    return NULL;
  }
  return number(env, (double)n);
}

/*
 * gcmOpenChunk(key, counter, sealed, aad, out, scratch): opens a CloudSnap blob (codec byte | payload) whose payload
 * goes straight into `out` when the codec says raw, else into `scratch` (to be decompressed from there), so a raw
 * chunk is never copied. Returns length * 256 + codec, -1 when authentication fails, or -2 when the payload does not
 * fit where its codec sends it (a corrupt blob; nothing it wrote may be used in either case).
 */
napi_value ferry_gcm_open_chunk(napi_env env, napi_callback_info info) {
  static const char *const what[] = {"sealed must be a Uint8Array", "aad must be a Uint8Array",
                                     "out must be a Uint8Array", "scratch must be a Uint8Array"};
  napi_value args[6];
  uint8_t *key, *bufs[4], nonce[NONCE_SIZE];
  size_t lens[4];
  if (!gcm_args(env, info, "gcmOpenChunk(key, counter, sealed, aad, out, scratch)", args, &key, nonce, 4, what, bufs,
                lens))
    return NULL;
  const uint8_t *sealed = bufs[0], *aad = bufs[1];
  uint8_t *out = bufs[2], *scratch = bufs[3];
  size_t sealed_len = lens[0], aad_len = lens[1], out_len = lens[2], scratch_len = lens[3];
  if (sealed_len < TAG_SIZE + 1 || sealed_len > INT32_MAX || aad_len > INT32_MAX) {
    napi_throw_range_error(env, NULL, "sealed is shorter than a codec byte and a tag");
    return NULL;
  }
  size_t payload = sealed_len - TAG_SIZE - 1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL) return number(env, -1);
  double result = -1;
  int n = 0;
  uint8_t codec = 0;
  uint8_t *dest;
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1) goto done;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_SIZE, NULL) != 1) goto done;
  if (EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1) goto done;
  if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1) goto done;
  if (EVP_DecryptUpdate(ctx, &codec, &n, sealed, 1) != 1 || n != 1) goto done;
  dest = codec == 0 ? out : scratch;
  if ((codec == 0 ? out_len : scratch_len) < payload) {
    result = -2;
    goto done;
  }
  if (payload > 0 && (EVP_DecryptUpdate(ctx, dest, &n, sealed + 1, (int)payload) != 1 || (size_t)n != payload))
    goto done;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, (void *)(sealed + 1 + payload)) != 1) goto done;
  if (EVP_DecryptFinal_ex(ctx, dest + payload, &n) != 1) goto done;
  result = (double)payload * 256 + codec;
done:
  EVP_CIPHER_CTX_free(ctx);
  return number(env, result);
}

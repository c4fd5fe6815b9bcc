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

static napi_value number(napi_env env, double n) {
  napi_value v;
  napi_create_double(env, n, &v);
  return v;
}

/*
 * Runs one GCM pass. encrypt: `in` -> `out`, then the tag after it. decrypt: `in` (ciphertext then tag) -> `out`.
 * Returns the bytes written (with the tag when sealing), or -1 when the tag does not match or OpenSSL fails.
 */
static long gcm(int encrypt, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t in_len, uint8_t *out) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL) return -1;
  long result = -1;
  int n = 0, tail = 0, aad_done = 0;
  size_t text = encrypt ? in_len : in_len - TAG_SIZE;
  if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1) goto done;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_SIZE, NULL) != 1) goto done;
  if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1) goto done;
  if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &aad_done, aad, (int)aad_len) != 1) goto done;
  if (text > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)text) != 1) goto done;
  if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, (void *)(in + text)) != 1) goto done;
  if (EVP_CipherFinal_ex(ctx, out + n, &tail) != 1) goto done;
  n += tail;
  if (encrypt) {
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out + n) != 1) goto done;
    n += TAG_SIZE;
  }
  result = n;
done:
  EVP_CIPHER_CTX_free(ctx);
  return result;
}

/*
 * gcmSealInto(key, counter, plaintext, aad, target, at): writes ciphertext | tag into target at `at` and returns its
 * length (plaintext + 16). Throws when target is too small.
 */
napi_value ferry_gcm_seal_into(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value args[6];
  uint8_t *key, *plain, *aad, *target, nonce[NONCE_SIZE];
  size_t key_len, plain_len, aad_len, target_len;
  double at = -1;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 6) {
    napi_throw_type_error(env, NULL, "gcmSealInto(key, counter, plaintext, aad, target, at)");
    return NULL;
  }
  if (!bytes_of(env, args[0], "key must be a Uint8Array", &key, &key_len) || !nonce_of(env, args[1], nonce) ||
      !bytes_of(env, args[2], "plaintext must be a Uint8Array", &plain, &plain_len) ||
      !bytes_of(env, args[3], "aad must be a Uint8Array", &aad, &aad_len) ||
      !bytes_of(env, args[4], "target must be a Uint8Array", &target, &target_len))
    return NULL;
  napi_get_value_double(env, args[5], &at);
  if (key_len != KEY_SIZE) {
    napi_throw_range_error(env, NULL, "the key must be 32 bytes");
    return NULL;
  }
  if (!(at >= 0) || floor(at) != at || at > (double)target_len || target_len - (size_t)at < plain_len + TAG_SIZE ||
      plain_len > INT32_MAX || aad_len > INT32_MAX) {
    napi_throw_range_error(env, NULL, "target has no room for the sealed plaintext at that offset");
    return NULL;
  }
  long n = gcm(1, key, nonce, aad, aad_len, plain, plain_len, target + (size_t)at);
  if (n < 0) {
    napi_throw_error(env, NULL, "AES-256-GCM encryption failed");
    return NULL;
  }
  return number(env, (double)n);
}

/*
 * gcmOpenInto(key, counter, sealed, aad, out): writes the plaintext of sealed (ciphertext | tag) at the start of out
 * and returns its length, or -1 when authentication fails (out then holds nothing to use). Throws when out is too
 * small or sealed shorter than a tag.
 */
napi_value ferry_gcm_open_into(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  uint8_t *key, *sealed, *aad, *out, nonce[NONCE_SIZE];
  size_t key_len, sealed_len, aad_len, out_len;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 5) {
    napi_throw_type_error(env, NULL, "gcmOpenInto(key, counter, sealed, aad, out)");
    return NULL;
  }
  if (!bytes_of(env, args[0], "key must be a Uint8Array", &key, &key_len) || !nonce_of(env, args[1], nonce) ||
      !bytes_of(env, args[2], "sealed must be a Uint8Array", &sealed, &sealed_len) ||
      !bytes_of(env, args[3], "aad must be a Uint8Array", &aad, &aad_len) ||
      !bytes_of(env, args[4], "out must be a Uint8Array", &out, &out_len))
    return NULL;
  if (key_len != KEY_SIZE) {
    napi_throw_range_error(env, NULL, "the key must be 32 bytes");
    return NULL;
  }
  if (sealed_len < TAG_SIZE || sealed_len > INT32_MAX || aad_len > INT32_MAX) {
    napi_throw_range_error(env, NULL, "sealed is shorter than a tag");
    return NULL;
  }
  if (out_len < sealed_len - TAG_SIZE) {
    napi_throw_range_error(env, NULL, "out has no room for the plaintext");
    return NULL;
  }
  return number(env, (double)gcm(0, key, nonce, aad, aad_len, sealed, sealed_len, out));
}

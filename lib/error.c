/* Versions and error text. */
#include "internal.h"

/* Per-thread buffers: libuv's uv_strerror()/uv_err_name() allocate (and
 * leak) a string for codes they do not know; the _r forms do not. */
static __thread char auv__msg_buf[128];
static __thread char auv__name_buf[64];

/* The public header spells libuv's EOF code out; keep them equal. */
_Static_assert(AUV_EOF == UV_EOF, "AUV_EOF must equal UV_EOF");

unsigned int auv_version(void) {
  return AUV_VERSION_HEX;
}

const char* auv_version_string(void) {
  return AUV_VERSION_STRING;
}

const char* auv_strerror(int err) {
  return uv_strerror_r(err, auv__msg_buf, sizeof(auv__msg_buf));
}

const char* auv_err_name(int err) {
  return uv_err_name_r(err, auv__name_buf, sizeof(auv__name_buf));
}

#include <string.h>

#include <uv.h>

#include "runner.h"


TEST_IMPL(version) {
  ASSERT_EQ(auv_version(), (unsigned) AUV_VERSION_HEX);
  ASSERT_EQ(0, strcmp(auv_version_string(), AUV_VERSION_STRING));
  ASSERT_EQ(AUV_VERSION_HEX >> 16, AUV_VERSION_MAJOR);
}


TEST_IMPL(strerror) {
  ASSERT_EQ(0, strcmp(auv_err_name(UV_ECONNRESET), "ECONNRESET"));
  ASSERT_EQ(0, strcmp(auv_strerror(UV_EINVAL), "invalid argument"));
  /* Unknown codes give text too, without allocating. */
  ASSERT(auv_strerror(-123456) != NULL);
  ASSERT(strlen(auv_err_name(-123456)) > 0);
}

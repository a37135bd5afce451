/* A small test runner in libuv's manner: every test runs in a child
 * process with a timeout; --no-fork runs them in-process (for valgrind). */
#ifndef AUV_TEST_RUNNER_H
#define AUV_TEST_RUNNER_H

#include <stdio.h>
#include <stdlib.h>

#include "asyncuv.h"

#define TEST_IMPL(name) void run_test_##name(void)

#define ASSERT(expr)                                                   \
  do {                                                                 \
    if (!(expr)) {                                                     \
      fprintf(stderr, "Assertion failed in %s on line %d: %s\n",      \
              __FILE__, __LINE__, #expr);                              \
      fflush(stderr);                                                  \
      abort();                                                         \
    }                                                                  \
  } while (0)

#define ASSERT_EQ(a, b) ASSERT((a) == (b))
#define ASSERT_OK(expr) ASSERT_EQ(0, (expr))

/* Close a loop that must be empty by now, so valgrind sees no leak. */
#define CLOSE_LOOP(loop) ASSERT_OK(auv_loop_close(loop))

#endif /* AUV_TEST_RUNNER_H */

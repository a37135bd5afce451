#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"
#include "test-list.h"

#define TEST_TIMEOUT_SECONDS 30
/* Under --enable-sanitizers (make check sets AUV_SANITIZERS) every test
 * may take this many times as long, as the conformance runner allows. */
#define TEST_TIMEOUT_SANITIZER_SCALE 5

#define DECLARE(name) TEST_IMPL(name);
AUV_TEST_LIST(DECLARE)
#undef DECLARE

typedef struct {
  const char* name;
  void (*fn)(void);
} test_entry_t;

#define ENTRY(name) { #name, run_test_##name },
static const test_entry_t tests[] = { AUV_TEST_LIST(ENTRY) };
#undef ENTRY

#define NTESTS (sizeof(tests) / sizeof(tests[0]))


static int run_forked(const test_entry_t* t) {
  pid_t pid;
  int status;

  fflush(stdout);
  pid = fork();
  if (pid == -1) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    alarm(getenv("AUV_SANITIZERS") != NULL
              ? TEST_TIMEOUT_SECONDS * TEST_TIMEOUT_SANITIZER_SCALE
              : TEST_TIMEOUT_SECONDS);
    t->fn();
    fflush(stdout);
    _exit(0);
  }
  while (waitpid(pid, &status, 0) == -1)
    if (errno != EINTR)
      return 1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFSIGNALED(status))
    printf("# %s: killed by signal %d%s\n", t->name, WTERMSIG(status),
           WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
  else
    printf("# %s: exit status %d\n", t->name, WEXITSTATUS(status));
  return 1;
}


int main(int argc, char** argv) {
  const char* only;
  int fork_each;
  unsigned passed;
  unsigned failed;
  size_t i;
  int k;

  fork_each = 1;
  only = NULL;
  for (k = 1; k < argc; k++) {
    if (strcmp(argv[k], "--no-fork") == 0)
      fork_each = 0;
    else
      only = argv[k];
  }

  passed = failed = 0;
  for (i = 0; i < NTESTS; i++) {
    if (only != NULL && strcmp(only, tests[i].name) != 0)
      continue;
    if (fork_each) {
      if (run_forked(&tests[i]) == 0) {
        printf("ok %s\n", tests[i].name);
        passed++;
      } else {
        printf("FAIL %s\n", tests[i].name);
        failed++;
      }
    } else {
      tests[i].fn();
      printf("ok %s\n", tests[i].name);
      passed++;
    }
  }

  printf("%u passed, %u failed\n", passed, failed);
  if (passed + failed == 0)
    return 1;
  return failed == 0 ? 0 : 1;
}

#define _GNU_SOURCE  /* pipe2 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

typedef struct {
  int exits;
  int64_t status;
  int signal;
  int closed;
  int close_in_exit;
} exit_t;


static void on_closed(void* data) {
  ((exit_t*) data)->closed++;
}


static void on_exit_(auv_process_t* proc, int64_t status, int signal) {
  exit_t* e;

  e = auv_process_get_data(proc);
  e->exits++;
  e->status = status;
  e->signal = signal;
  if (e->close_in_exit)
    auv_process_close(proc, on_closed);
}


static auv_process_t* spawn_sh(auv_loop_t* loop, const char* script, exit_t* e) {
  auv_process_options_t opts = AUV_PROCESS_OPTIONS_INIT;
  auv_process_t* proc;
  const char* args[4];

  args[0] = "sh";
  args[1] = "-c";
  args[2] = script;
  args[3] = NULL;
  opts.file = "/bin/sh";
  opts.args = args;
  memset(e, 0, sizeof(*e));
  ASSERT_OK(auv_process_spawn(loop, &opts, on_exit_, &proc));
  ASSERT(proc != NULL);
  auv_process_set_data(proc, e);
  return proc;
}


TEST_IMPL(process_exit_code) {
  auv_loop_t* loop;
  auv_process_t* proc;
  exit_t e;

  ASSERT_OK(auv_loop_new(&loop));
  proc = spawn_sh(loop, "exit 3", &e);
  ASSERT(auv_process_get_pid(proc) > 0);
  ASSERT(auv_process_get_loop(proc) == loop);
  /* A running child keeps the loop alive. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, e.exits);
  ASSERT_EQ(3, e.status);
  ASSERT_EQ(0, e.signal);
  ASSERT_EQ(UV_ESRCH, auv_process_kill(proc, SIGTERM));
  ASSERT(auv_process_get_pid(proc) > 0);
  /* Open, it still keeps the loop from closing. */
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_process_close(proc, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, e.closed);
}


TEST_IMPL(process_killed) {
  auv_loop_t* loop;
  auv_process_t* proc;
  exit_t e;

  ASSERT_OK(auv_loop_new(&loop));
  proc = spawn_sh(loop, "exec sleep 1000", &e);
  e.close_in_exit = 1;
  ASSERT_OK(auv_process_kill(proc, 0));
  ASSERT_OK(auv_process_kill(proc, SIGTERM));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, e.exits);
  ASSERT_EQ(SIGTERM, e.signal);
  ASSERT_EQ(1, e.closed);
  CLOSE_LOOP(loop);
}


TEST_IMPL(process_setsid_env_cwd) {
  auv_process_options_t opts = AUV_PROCESS_OPTIONS_INIT;
  auv_loop_t* loop;
  auv_process_t* proc;
  const char* args[4];
  const char* env[2];
  exit_t e;
  int pid;

  ASSERT_OK(auv_loop_new(&loop));
  args[0] = "sh";
  args[1] = "-c";
  args[2] = "test \"$FOO\" = bar || exit 1; test \"$(pwd)\" = / || exit 2; "
            "test -z \"$HOME\" || exit 4; exec sleep 1000";
  args[3] = NULL;
  env[0] = "FOO=bar";
  env[1] = NULL;
  opts.file = "sh";  /* no slash: found in PATH */
  opts.args = args;
  opts.env = env;
  opts.cwd = "/";
  opts.flags = AUV_PROCESS_SETSID;
  memset(&e, 0, sizeof(e));
  ASSERT_OK(auv_process_spawn(loop, &opts, on_exit_, &proc));
  auv_process_set_data(proc, &e);
  pid = auv_process_get_pid(proc);
  /* setsid() came before exec, which uv_spawn() waited for. */
  ASSERT_EQ(pid, getsid(pid));
  ASSERT(getsid(0) != pid);
  /* The checks passed if the child is still there to be killed: any of
   * them failing ends it with its status. */
  e.close_in_exit = 1;
  ASSERT_OK(auv_process_kill(proc, SIGKILL));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(SIGKILL, e.signal);
  ASSERT_EQ(0, e.status);
  CLOSE_LOOP(loop);
}


/* The two streams of "cat". */
typedef struct {
  auv_stream_t* out;
  char buf[65536];
  size_t received;
  int eof;
  size_t expect;
  int in_closed;
} cat_t;

#define CAT_BYTES (1u << 20)


static void cat_alloc(auv_stream_t* s, size_t suggested, char** base, size_t* len) {
  cat_t* c;

  c = auv_stream_get_data(s);
  *base = c->buf;
  *len = sizeof(c->buf);
}


static void cat_read(auv_stream_t* s, ssize_t nread, char* base) {
  cat_t* c;
  ssize_t i;

  c = auv_stream_get_data(s);
  if (nread == AUV_EOF) {
    c->eof++;
    auv_stream_close(s, NULL);
    return;
  }
  ASSERT(nread >= 0);
  for (i = 0; i < nread; i++)
    ASSERT_EQ((char) ((c->received + i) % 253), base[i]);
  c->received += nread;
}


static void cat_in_drained(auv_stream_t* s, int status) {
  cat_t* c;

  ASSERT_OK(status);
  c = auv_stream_get_data(s);
  /* All written: close the pipe, cat sees the end of its input. */
  ASSERT_OK(close(auv_stream_get_fd(s)));
  auv_stream_close(s, NULL);
  c->in_closed = 1;
}


TEST_IMPL(process_pipes_cat) {
  auv_process_options_t opts = AUV_PROCESS_OPTIONS_INIT;
  auv_loop_t* loop;
  auv_process_t* proc;
  auv_stream_t* in;
  auv_stdio_t stdio[3];
  const char* args[2];
  auv_buf_t b;
  char* data;
  exit_t e;
  cat_t c;
  ssize_t n;
  size_t i;

  ASSERT_OK(auv_loop_new(&loop));
  args[0] = "cat";
  args[1] = NULL;
  stdio[0].type = AUV_STDIO_PIPE;
  stdio[0].fd = -1;
  stdio[1].type = AUV_STDIO_PIPE;
  stdio[1].fd = -1;
  stdio[2].type = AUV_STDIO_INHERIT_FD;
  stdio[2].fd = 2;
  opts.file = "cat";
  opts.args = args;
  opts.stdio = stdio;
  opts.stdio_count = 3;
  memset(&e, 0, sizeof(e));
  e.close_in_exit = 1;
  ASSERT_OK(auv_process_spawn(loop, &opts, on_exit_, &proc));
  auv_process_set_data(proc, &e);
  ASSERT(stdio[0].fd >= 0 && stdio[1].fd >= 0);
  ASSERT_EQ(2, stdio[2].fd);
  for (i = 0; i < 2; i++) {
    ASSERT(fcntl(stdio[i].fd, F_GETFL) & O_NONBLOCK);
    ASSERT(fcntl(stdio[i].fd, F_GETFD) & FD_CLOEXEC);
  }
  ASSERT_EQ(O_WRONLY, fcntl(stdio[0].fd, F_GETFL) & O_ACCMODE);
  ASSERT_EQ(O_RDONLY, fcntl(stdio[1].fd, F_GETFL) & O_ACCMODE);

  memset(&c, 0, sizeof(c));
  ASSERT_OK(auv_stream_new(loop, stdio[0].fd, &in));
  auv_stream_set_data(in, &c);
  auv_stream_set_drain_cb(in, cat_in_drained);
  ASSERT_OK(auv_stream_new(loop, stdio[1].fd, &c.out));
  auv_stream_set_data(c.out, &c);
  ASSERT_OK(auv_stream_read_start(c.out, cat_alloc, cat_read));

  /* More than a pipe holds, both ways: the write queues, cat copies as
   * the reader makes room. */
  data = malloc(CAT_BYTES);
  ASSERT(data != NULL);
  for (i = 0; i < CAT_BYTES; i++)
    data[i] = (char) (i % 253);
  b.base = data;
  b.len = CAT_BYTES;
  n = auv_stream_write(in, &b, 1);
  ASSERT(n >= 0 && (size_t) n < CAT_BYTES);
  free(data);

  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, c.in_closed);
  ASSERT_EQ(CAT_BYTES, c.received);
  ASSERT_EQ(1, c.eof);
  ASSERT_EQ(1, e.exits);
  ASSERT_EQ(0, e.status);
  ASSERT_EQ(0, e.signal);
  ASSERT_EQ(1, e.closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(stdio[1].fd));
}


static int count_fds(void) {
  int n;
  int fd;

  n = 0;
  for (fd = 0; fd < 256; fd++)
    if (fcntl(fd, F_GETFD) != -1)
      n++;
  return n;
}


TEST_IMPL(process_spawn_errors) {
  auv_process_options_t opts = AUV_PROCESS_OPTIONS_INIT;
  auv_process_options_t* big;
  auv_loop_t* loop;
  auv_process_t* proc;
  auv_stdio_t stdio[2];
  int fds;

  ASSERT_OK(auv_loop_new(&loop));
  fds = count_fds();

  /* No such program: nothing is left behind, pipes included. */
  stdio[0].type = AUV_STDIO_PIPE;
  stdio[0].fd = -1;
  stdio[1].type = AUV_STDIO_PIPE;
  stdio[1].fd = -1;
  opts.file = "/nonexistent/program";
  opts.stdio = stdio;
  opts.stdio_count = 2;
  ASSERT_EQ(UV_ENOENT, auv_process_spawn(loop, &opts, on_exit_, &proc));
  ASSERT(proc == NULL);
  ASSERT_EQ(-1, stdio[0].fd);
  ASSERT_EQ(-1, stdio[1].fd);
  ASSERT_EQ(fds, count_fds());
  ASSERT(!auv_loop_alive(loop) || auv_loop_run(loop, AUV_RUN_NOWAIT) == 0);

  /* Bad arguments. */
  opts.file = "/bin/true";
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(NULL, &opts, on_exit_, &proc));
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, NULL, on_exit_, &proc));
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, &opts, on_exit_, NULL));
  opts.file = NULL;
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, &opts, on_exit_, &proc));
  opts.file = "/bin/true";
  stdio[1].type = 7;
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, &opts, on_exit_, &proc));
  stdio[1].type = AUV_STDIO_INHERIT_FD;
  stdio[1].fd = -1;
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, &opts, on_exit_, &proc));
  opts.stdio = NULL;
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, &opts, on_exit_, &proc));
  opts.stdio_count = 0;
  opts.flags = 0x100;
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, &opts, on_exit_, &proc));
  opts.flags = 0;
  opts.size = sizeof(opts) - 1;
  ASSERT_EQ(UV_EINVAL, auv_process_spawn(loop, &opts, on_exit_, &proc));
  ASSERT_EQ(fds, count_fds());

  /* A caller built with a later, bigger struct: zeros where this library
   * knows no field are fine, anything else is refused. */
  big = calloc(1, sizeof(opts) + 16);
  ASSERT(big != NULL);
  memcpy(big, &opts, sizeof(opts));
  big->size = sizeof(opts) + 16;
  ((char*) big)[sizeof(opts) + 3] = 1;
  ASSERT_EQ(UV_ENOTSUP, auv_process_spawn(loop, big, on_exit_, &proc));
  ((char*) big)[sizeof(opts) + 3] = 0;
  ASSERT_OK(auv_process_spawn(loop, big, NULL, &proc));
  free(big);
  /* Without exit_cb: the loop still waits for the child. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(UV_ESRCH, auv_process_kill(proc, SIGTERM));
  auv_process_close(proc, NULL);
  ASSERT_EQ(UV_EINVAL, auv_process_kill(proc, SIGTERM));
  ASSERT_EQ(UV_EINVAL, auv_process_kill(NULL, SIGTERM));
  ASSERT_EQ(0, auv_process_get_pid(NULL));
  ASSERT(auv_process_get_loop(NULL) == NULL);
  ASSERT(auv_process_get_data(NULL) == NULL);
  auv_process_set_data(NULL, NULL);
  auv_process_close(NULL, NULL);
  CLOSE_LOOP(loop);
}


/* --- Child watches ------------------------------------------------------- */

typedef struct {
  int calls;
  int pid;
  int returncode;
  int closed;
} watch_t;


static void on_watch_closed(void* data) {
  ((watch_t*) data)->closed++;
}


static void on_child(auv_child_watch_t* w, int pid, int returncode) {
  watch_t* c;

  c = auv_child_watch_get_data(w);
  ASSERT(!auv_child_watch_is_active(w));
  c->calls++;
  c->pid = pid;
  c->returncode = returncode;
  auv_child_watch_close(w, on_watch_closed);
}


static auv_child_watch_t* watch(auv_loop_t* loop, int pid, watch_t* c) {
  auv_child_watch_t* w;

  memset(c, 0, sizeof(*c));
  ASSERT_OK(auv_child_watch_start(loop, pid, on_child, &w));
  auv_child_watch_set_data(w, c);
  ASSERT_EQ(pid, auv_child_watch_get_pid(w));
  ASSERT(auv_child_watch_is_active(w));
  return w;
}


/* The forked children exec at once: under valgrind a child that merely
 * exits would be checked for leaks too, and valgrind's exit status would
 * replace the one under test. */
static int fork_exec(const char* script) {
  char byte;
  int fds[2];
  int pid;

  /* Returns once the child has exec'd (the close-on-exec pipe reads EOF):
   * a signal sent earlier would reach the copy of this process (under
   * valgrind, valgrind itself) instead of the script. */
  ASSERT_OK(pipe2(fds, O_CLOEXEC));
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", script, (char*) NULL);
    _exit(127);
  }
  close(fds[1]);
  while (read(fds[0], &byte, 1) < 0 && errno == EINTR)
    ;
  close(fds[0]);
  return pid;
}


static int fork_exit(int code) {
  char script[32];

  snprintf(script, sizeof(script), "exit %d", code);
  return fork_exec(script);
}


static int fork_wait_for_signal(void) {
  return fork_exec("exec sleep 1000");
}


TEST_IMPL(child_watch_exit) {
  auv_loop_t* loop;
  watch_t a;
  watch_t b;
  int pid_a;
  int pid_b;
  int other;
  int status;

  ASSERT_OK(auv_loop_new(&loop));
  /* Another child that nobody watches: the watch must not reap it. */
  other = fork_exit(9);
  pid_a = fork_exit(3);
  pid_b = fork_wait_for_signal();
  watch(loop, pid_a, &a);
  watch(loop, pid_b, &b);
  ASSERT_OK(kill(pid_b, SIGTERM));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, a.calls);
  ASSERT_EQ(pid_a, a.pid);
  ASSERT_EQ(3, a.returncode);
  ASSERT_EQ(1, a.closed);
  ASSERT_EQ(1, b.calls);
  ASSERT_EQ(-SIGTERM, b.returncode);
  ASSERT_EQ(1, b.closed);
  /* Reaped: nothing left of them. */
  ASSERT_EQ(-1, waitpid(pid_a, &status, WNOHANG));
  ASSERT_EQ(ECHILD, errno);
  ASSERT_EQ(other, waitpid(other, &status, 0));
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 9);
  CLOSE_LOOP(loop);
}


TEST_IMPL(child_watch_not_a_child) {
  auv_loop_t* loop;
  watch_t c;
  int pid;
  int status;

  ASSERT_OK(auv_loop_new(&loop));
  /* Our parent is not our child, and one reaped already is no more:
   * asyncio's 255 for both, never inside the call. */
  watch(loop, getppid(), &c);
  ASSERT_EQ(0, c.calls);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, c.calls);
  ASSERT_EQ(255, c.returncode);
  ASSERT_EQ(1, c.closed);

  pid = fork_exit(0);
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  watch(loop, pid, &c);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(255, c.returncode);
  CLOSE_LOOP(loop);
}


TEST_IMPL(child_watch_close_early) {
  auv_loop_t* loop;
  auv_child_watch_t* w;
  watch_t c;
  int pid;
  int status;

  /* Closed before the exit: no callback, and the child is left to its
   * parent to reap. */
  ASSERT_OK(auv_loop_new(&loop));
  pid = fork_wait_for_signal();
  w = watch(loop, pid, &c);
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_child_watch_close(w, on_watch_closed);
  auv_child_watch_close(w, on_watch_closed);  /* twice does nothing */
  ASSERT(!auv_child_watch_is_active(w));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, c.closed);
  ASSERT_EQ(0, c.calls);
  ASSERT_OK(kill(pid, SIGKILL));
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT(WIFSIGNALED(status));
  CLOSE_LOOP(loop);
}


TEST_IMPL(child_watch_detach) {
  auv_loop_t* loop;
  auv_child_watch_t* w;
  watch_t c;
  int pid;

  /* Detached before the exit: no callback, and a thread of the library's
   * reaps the child once it exits: its pid goes away. */
  ASSERT_OK(auv_loop_new(&loop));
  pid = fork_wait_for_signal();
  w = watch(loop, pid, &c);
  ASSERT_OK(auv_child_watch_detach(w, on_watch_closed));
  ASSERT_EQ(UV_EINVAL, auv_child_watch_detach(w, on_watch_closed));
  ASSERT_EQ(UV_EINVAL, auv_child_watch_detach(NULL, NULL));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, c.closed);
  ASSERT_EQ(0, c.calls);
  CLOSE_LOOP(loop);
  ASSERT_OK(kill(pid, SIGKILL));
  /* A zombie still answers kill(pid, 0); a reaped child does not.  The
   * runner's timeout bounds the wait. */
  while (kill(pid, 0) == 0)
    uv_sleep(1);
  ASSERT_EQ(ESRCH, errno);
}


TEST_IMPL(child_watch_einval) {
  auv_loop_t* loop;
  auv_child_watch_t* w;

  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_child_watch_start(NULL, 1, on_child, &w));
  ASSERT(w == NULL);
  ASSERT_EQ(UV_EINVAL, auv_child_watch_start(loop, 0, on_child, &w));
  ASSERT_EQ(UV_EINVAL, auv_child_watch_start(loop, -1, on_child, &w));
  ASSERT_EQ(UV_EINVAL, auv_child_watch_start(loop, 1, NULL, &w));
  ASSERT_EQ(UV_EINVAL, auv_child_watch_start(loop, 1, on_child, NULL));
  ASSERT_EQ(0, auv_child_watch_get_pid(NULL));
  ASSERT_EQ(0, auv_child_watch_is_active(NULL));
  ASSERT(auv_child_watch_get_data(NULL) == NULL);
  auv_child_watch_set_data(NULL, NULL);
  auv_child_watch_close(NULL, NULL);
  CLOSE_LOOP(loop);
}

/* Child processes, on libuv's uv_process_t.
 *
 * libuv spawns the child and reaps it (waitpid() on its own pids only, from
 * its SIGCHLD handler); this file translates the options and makes the
 * pipes.  libuv's own pipes are uv_pipe_t streams that own their fds; here
 * a pipe is two plain fds: the child's end goes to uv_spawn() as an
 * inherited fd and is closed in the parent, the parent's end is handed to
 * the caller (non-blocking, close-on-exec), who wraps it in a stream.
 *
 * The options struct is public and caller-allocated, so it carries its own
 * size: a caller built against a later header, with fields this library
 * does not know, is refused unless those fields are zero (the kernel's
 * rule for extensible structs, copy_struct_from_user()).
 */
#define _GNU_SOURCE  /* pipe2 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* More stdio entries than this is a mistake, not a program. */
#define AUV__STDIO_MAX 1024

struct auv_process_s {
  uv_process_t handle;
  auv_loop_t* loop;
  auv_exit_cb exit_cb;
  auv_close_cb close_cb;
  void* data;
  int pid;
  int exited;
};


static void auv__process_exit_cb(uv_process_t* handle,
                                 int64_t exit_status,
                                 int term_signal) {
  auv_process_t* proc;

  proc = handle->data;
  auv__loop_unblock(proc->loop);
  proc->exited = 1;
  if (proc->exit_cb != NULL)
    proc->exit_cb(proc, exit_status, term_signal);
}


static void auv__process_close_cb(uv_handle_t* handle) {
  auv_process_t* proc;
  auv_close_cb close_cb;
  void* data;

  proc = handle->data;
  auv__loop_unblock(proc->loop);
  close_cb = proc->close_cb;
  data = proc->data;
  free(proc);
  if (close_cb != NULL)
    close_cb(data);
}


static void auv__process_free_cb(uv_handle_t* handle) {
  free(handle->data);
}


/* The options this library knows, copied into *opts; fields of a later
 * version must be zero. */
static int auv__process_options(const auv_process_options_t* in,
                                auv_process_options_t* opts) {
  const unsigned char* tail;
  size_t i;

  if (in->size < sizeof(*opts)) {
    /* No earlier version of the struct exists. */
    return UV_EINVAL;
  }
  tail = (const unsigned char*) in;
  for (i = sizeof(*opts); i < in->size; i++)
    if (tail[i] != 0)
      return UV_ENOTSUP;
  memcpy(opts, in, sizeof(*opts));
  return 0;
}


static void auv__close_pipes(int (*pipes)[2], unsigned int n) {
  unsigned int i;

  for (i = 0; i < n; i++) {
    if (pipes[i][0] >= 0)
      close(pipes[i][0]);
    if (pipes[i][1] >= 0)
      close(pipes[i][1]);
  }
}


int auv_process_spawn(auv_loop_t* loop,
                      const auv_process_options_t* options,
                      auv_exit_cb exit_cb,
                      auv_process_t** proc_out) {
  auv_process_options_t opts;
  uv_process_options_t uvopts;
  uv_stdio_container_t* stdio;
  auv_process_t* proc;
  int (*pipes)[2];
  char* default_args[2];
  unsigned int i;
  int child_end;
  int err;

  if (proc_out != NULL)
    *proc_out = NULL;
  if (loop == NULL || options == NULL || proc_out == NULL)
    return UV_EINVAL;
  err = auv__process_options(options, &opts);
  if (err != 0)
    return err;
  if (opts.file == NULL || opts.stdio_count > AUV__STDIO_MAX ||
      (opts.stdio == NULL && opts.stdio_count > 0) ||
      (opts.flags & ~(unsigned int) AUV_PROCESS_SETSID) != 0)
    return UV_EINVAL;
  for (i = 0; i < opts.stdio_count; i++) {
    switch (opts.stdio[i].type) {
      case AUV_STDIO_IGNORE:
      case AUV_STDIO_PIPE:
        break;
      case AUV_STDIO_INHERIT_FD:
        if (opts.stdio[i].fd < 0)
          return UV_EINVAL;
        break;
      default:
        return UV_EINVAL;
    }
  }

  proc = calloc(1, sizeof(*proc));
  stdio = calloc(opts.stdio_count + 1, sizeof(*stdio));
  pipes = calloc(opts.stdio_count + 1, sizeof(*pipes));
  if (proc == NULL || stdio == NULL || pipes == NULL) {
    err = UV_ENOMEM;
    goto fail;
  }
  for (i = 0; i < opts.stdio_count; i++)
    pipes[i][0] = pipes[i][1] = -1;

  for (i = 0; i < opts.stdio_count; i++) {
    switch (opts.stdio[i].type) {
      case AUV_STDIO_IGNORE:
        stdio[i].flags = UV_IGNORE;
        break;
      case AUV_STDIO_INHERIT_FD:
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = opts.stdio[i].fd;
        break;
      default:  /* AUV_STDIO_PIPE */
        /* Close-on-exec both ends, so that no other child spawned
         * meanwhile inherits them; libuv dup2()s the child's end into
         * place, which clears the flag on the copy. */
        if (pipe2(pipes[i], O_CLOEXEC) != 0) {
          err = -errno;
          goto fail_pipes;
        }
        /* The child reads its stdin, writes the others. */
        child_end = i == 0 ? pipes[i][0] : pipes[i][1];
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = child_end;
        break;
    }
  }

  memset(&uvopts, 0, sizeof(uvopts));
  uvopts.exit_cb = auv__process_exit_cb;
  uvopts.file = opts.file;
  if (opts.args != NULL) {
    uvopts.args = (char**) opts.args;
  } else {
    default_args[0] = (char*) opts.file;
    default_args[1] = NULL;
    uvopts.args = default_args;
  }
  uvopts.env = (char**) opts.env;
  uvopts.cwd = opts.cwd;
  if (opts.flags & AUV_PROCESS_SETSID)
    uvopts.flags |= UV_PROCESS_DETACHED;
  uvopts.stdio_count = (int) opts.stdio_count;
  uvopts.stdio = stdio;

  proc->handle.data = proc;
  proc->loop = loop;
  proc->exit_cb = exit_cb;
  err = uv_spawn(&loop->uv, &proc->handle, &uvopts);
  if (err != 0) {
    /* libuv has initialised the handle even so: close it to free it. */
    uv_close((uv_handle_t*) &proc->handle, auv__process_free_cb);
    proc = NULL;
    goto fail_pipes;
  }
  proc->pid = proc->handle.pid;

  /* The child has its ends; the caller gets the others, non-blocking. */
  for (i = 0; i < opts.stdio_count; i++) {
    if (opts.stdio[i].type != AUV_STDIO_PIPE)
      continue;
    if (i == 0) {
      close(pipes[i][0]);
      opts.stdio[i].fd = pipes[i][1];
    } else {
      close(pipes[i][1]);
      opts.stdio[i].fd = pipes[i][0];
    }
    fcntl(opts.stdio[i].fd, F_SETFL,
          fcntl(opts.stdio[i].fd, F_GETFL) | O_NONBLOCK);
  }
  free(stdio);
  free(pipes);
  *proc_out = proc;
  return 0;

fail_pipes:
  auv__close_pipes(pipes, opts.stdio_count);
fail:
  free(pipes);
  free(stdio);
  free(proc);
  return err;
}


int auv_process_kill(auv_process_t* proc, int signum) {
  if (proc == NULL || uv_is_closing((uv_handle_t*) &proc->handle))
    return UV_EINVAL;
  /* Reaped: the pid may already belong to another process. */
  if (proc->exited)
    return UV_ESRCH;
  return uv_process_kill(&proc->handle, signum);
}


int auv_process_get_pid(const auv_process_t* proc) {
  return proc == NULL ? 0 : proc->pid;
}


void auv_process_close(auv_process_t* proc, auv_close_cb close_cb) {
  if (proc == NULL || uv_is_closing((uv_handle_t*) &proc->handle))
    return;
  proc->close_cb = close_cb;
  uv_close((uv_handle_t*) &proc->handle, auv__process_close_cb);
}


auv_loop_t* auv_process_get_loop(const auv_process_t* proc) {
  return proc == NULL ? NULL : proc->loop;
}


void auv_process_set_data(auv_process_t* proc, void* data) {
  if (proc != NULL)
    proc->data = data;
}


void* auv_process_get_data(const auv_process_t* proc) {
  return proc == NULL ? NULL : proc->data;
}

/* Child watches: the exit of a child process someone else spawned (Python's
 * subprocess.Popen), reported with Python's returncode convention.
 *
 * A pidfd (pidfd_open(2), Linux 5.3) becomes readable when its process
 * exits; the loop polls it, and waitid(P_PIDFD) reaps exactly that child,
 * with no race against pid reuse.  Only the pid asked about is ever
 * waited for: no waitpid(-1), no SIGCHLD handler.  Where pidfds are not
 * available (ENOSYS on old kernels and under valgrind, EPERM under some
 * seccomp policies) a thread of our own blocks in waitid(pid, WNOWAIT)
 * instead, a thread per child as asyncio's ThreadedChildWatcher has, and
 * wakes the loop, whose thread reaps the child.  Not libuv's thread pool:
 * a wait may last for ever and would hold one of its few threads; and the
 * thread never reaps, so a watch closed early leaves the child to be
 * reaped by its parent, as a closed pidfd watch does.  A pid that is not a child of this process
 * (never was, or already reaped by someone else) gets returncode 255, as
 * asyncio reports it.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_pidfd_open
# define SYS_pidfd_open 434
#endif
/* glibc declares P_PIDFD as an enumerator, not a macro, and only lately. */
#define AUV__P_PIDFD 3

/* asyncio's returncode when the exit status is lost. */
#define AUV__LOST_STATUS 255

/* The waiting thread only calls waitid() and uv_async_send(). */
#define AUV__WAITER_STACK (64 * 1024)

enum {
  AUV__CHILD_PIDFD = 1,   /* handle is a poll on pidfd */
  AUV__CHILD_DONE = 2     /* the callback has run (or is running) */
};

typedef struct auv__waiter_s auv__waiter_t;

struct auv_child_watch_s {
  union {
    uv_poll_t poll;     /* on the pidfd */
    uv_async_t async;   /* sent by the waiting thread (or at once) */
  } handle;
  auv_loop_t* loop;
  auv_child_cb cb;
  auv_close_cb close_cb;
  void* data;
  auv__waiter_t* waiter;  /* the thread waiting for the child, if any */
  unsigned int flags;
  int pid;
  int pidfd;
};

/* Shared by a watch and its thread, freed by whichever lets go last.  The
 * lock also keeps the watch from closing its async handle while the thread
 * sends it. */
struct auv__waiter_s {
  auv_child_watch_t* watch;   /* NULL once the watch is closed */
  int pid;
  int refs;
};

static pthread_mutex_t auv__waiter_lock = PTHREAD_MUTEX_INITIALIZER;


/* Python's waitstatus_to_exitcode(). */
static int auv__returncode(const siginfo_t* info) {
  if (info->si_code == CLD_EXITED)
    return info->si_status;
  return -info->si_status;  /* CLD_KILLED, CLD_DUMPED */
}


static int auv__waiter_release(auv__waiter_t* waiter) {
  int last;

  pthread_mutex_lock(&auv__waiter_lock);
  last = --waiter->refs == 0;
  pthread_mutex_unlock(&auv__waiter_lock);
  if (last)
    free(waiter);
  return last;
}


/* Reap the child if it has exited and report it: 0, or UV_EAGAIN if it
 * has not exited after all. */
static int auv__child_reap(auv_child_watch_t* w) {
  siginfo_t info;
  int returncode;
  int r;

  memset(&info, 0, sizeof(info));
  r = -1;
  if (w->flags & AUV__CHILD_PIDFD) {
    do
      r = waitid((idtype_t) AUV__P_PIDFD, (id_t) w->pidfd, &info,
                 WEXITED | WNOHANG);
    while (r != 0 && errno == EINTR);
  }
  if (!(w->flags & AUV__CHILD_PIDFD) || (r != 0 && errno == EINVAL)) {
    /* Thread mode, or Linux 5.3 (pidfd_open() but no P_PIDFD). */
    memset(&info, 0, sizeof(info));
    do
      r = waitid(P_PID, (id_t) w->pid, &info, WEXITED | WNOHANG);
    while (r != 0 && errno == EINTR);
  }
  if (r == 0 && info.si_pid == 0)
    return UV_EAGAIN;
  /* ECHILD: not a child, or someone else reaped it. */
  returncode = r == 0 ? auv__returncode(&info) : AUV__LOST_STATUS;

  /* Nothing more to wait for: stop keeping the loop alive. */
  if (w->flags & AUV__CHILD_PIDFD)
    uv_poll_stop(&w->handle.poll);
  else
    uv_unref((uv_handle_t*) &w->handle.async);
  w->flags |= AUV__CHILD_DONE;
  w->cb(w, w->pid, returncode);
  return 0;
}


static void auv__child_poll_cb(uv_poll_t* handle, int status, int events) {
  auv_child_watch_t* w;

  w = handle->data;
  auv__loop_unblock(w->loop);
  auv__child_reap(w);
}


static void auv__child_async_cb(uv_async_t* handle) {
  auv_child_watch_t* w;

  w = handle->data;
  auv__loop_unblock(w->loop);
  if (w->flags & AUV__CHILD_DONE)
    return;
  auv__child_reap(w);
}


static void* auv__waiter_run(void* arg) {
  auv__waiter_t* waiter;
  siginfo_t info;
  int r;

  waiter = arg;
  /* WNOWAIT: the loop thread reaps, if the watch still wants it. */
  do
    r = waitid(P_PID, (id_t) waiter->pid, &info, WEXITED | WNOWAIT);
  while (r != 0 && errno == EINTR);

  pthread_mutex_lock(&auv__waiter_lock);
  if (waiter->watch != NULL)
    uv_async_send(&waiter->watch->handle.async);
  pthread_mutex_unlock(&auv__waiter_lock);
  auv__waiter_release(waiter);
  return NULL;
}


static int auv__waiter_start(auv_child_watch_t* w) {
  auv__waiter_t* waiter;
  pthread_attr_t attr;
  pthread_t thread;
  sigset_t all;
  sigset_t old;
  int err;

  waiter = malloc(sizeof(*waiter));
  if (waiter == NULL)
    return UV_ENOMEM;
  waiter->watch = w;
  waiter->pid = w->pid;
  waiter->refs = 2;

  if (pthread_attr_init(&attr) != 0) {
    free(waiter);
    return UV_ENOMEM;
  }
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, AUV__WAITER_STACK);
  /* Signals are for the application's threads, not this one. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = pthread_create(&thread, &attr, auv__waiter_run, waiter);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    free(waiter);
    return -err;
  }
  w->waiter = waiter;
  return 0;
}


static void auv__child_close_cb(uv_handle_t* handle) {
  auv_child_watch_t* w;
  auv_close_cb close_cb;
  void* data;

  w = handle->data;
  auv__loop_unblock(w->loop);
  close_cb = w->close_cb;
  data = w->data;
  free(w);
  if (close_cb != NULL)
    close_cb(data);
}


static void auv__child_free_cb(uv_handle_t* handle) {
  free(handle->data);
}


int auv_child_watch_start(auv_loop_t* loop,
                          int pid,
                          auv_child_cb cb,
                          auv_child_watch_t** w_out) {
  auv_child_watch_t* w;
  siginfo_t info;
  int is_child;
  int pidfd;
  int err;
  int r;

  if (w_out != NULL)
    *w_out = NULL;
  if (loop == NULL || pid <= 0 || cb == NULL || w_out == NULL)
    return UV_EINVAL;

  /* Is it a child of ours, still to be reaped?  WNOWAIT leaves it so. */
  memset(&info, 0, sizeof(info));
  do
    r = waitid(P_PID, (id_t) pid, &info, WEXITED | WNOHANG | WNOWAIT);
  while (r != 0 && errno == EINTR);
  if (r != 0 && errno != ECHILD)
    return -errno;
  is_child = r == 0;

  w = calloc(1, sizeof(*w));
  if (w == NULL)
    return UV_ENOMEM;
  w->loop = loop;
  w->cb = cb;
  w->pid = pid;
  w->pidfd = -1;

  pidfd = -1;
  if (is_child) {
    pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno != ENOSYS && errno != EPERM && errno != EINVAL &&
        errno != ESRCH) {
      err = -errno;
      free(w);
      return err;
    }
  }

  if (pidfd >= 0) {
    /* pidfds are always close-on-exec. */
    err = uv_poll_init(&loop->uv, &w->handle.poll, pidfd);
    if (err != 0) {
      close(pidfd);
      free(w);
      return err;
    }
    w->handle.poll.data = w;
    w->pidfd = pidfd;
    w->flags |= AUV__CHILD_PIDFD;
    err = uv_poll_start(&w->handle.poll, UV_READABLE, auv__child_poll_cb);
  } else {
    err = uv_async_init(&loop->uv, &w->handle.async, auv__child_async_cb);
    if (err != 0) {
      free(w);
      return err;
    }
    w->handle.async.data = w;
    if (is_child) {
      /* No pidfd (or the child was reaped just now, which the thread
       * finds out): a thread waits. */
      err = auv__waiter_start(w);
    } else {
      /* Not a child: ECHILD is all there is to report, from the loop. */
      err = uv_async_send(&w->handle.async);
    }
  }
  if (err != 0) {
    uv_close((uv_handle_t*) &w->handle, auv__child_free_cb);
    if (w->pidfd >= 0)
      close(w->pidfd);
    return err;
  }
  *w_out = w;
  return 0;
}


void auv_child_watch_close(auv_child_watch_t* w, auv_close_cb close_cb) {
  if (w == NULL || uv_is_closing((uv_handle_t*) &w->handle))
    return;
  w->close_cb = close_cb;
  if (w->waiter != NULL) {
    /* The thread goes on waiting, and wakes nobody. */
    pthread_mutex_lock(&auv__waiter_lock);
    w->waiter->watch = NULL;
    pthread_mutex_unlock(&auv__waiter_lock);
    auv__waiter_release(w->waiter);
    w->waiter = NULL;
  }
  uv_close((uv_handle_t*) &w->handle, auv__child_close_cb);
  /* uv_close() took the pidfd out of epoll. */
  if (w->pidfd >= 0) {
    close(w->pidfd);
    w->pidfd = -1;
  }
}


/* A detached child's reaper: blocks until the child exits and reaps it. */
static void* auv__reaper_run(void* arg) {
  siginfo_t info;
  int r;

  do
    r = waitid(P_PID, (id_t) (intptr_t) arg, &info, WEXITED);
  while (r != 0 && errno == EINTR);
  return NULL;
}


int auv_child_watch_detach(auv_child_watch_t* w, auv_close_cb close_cb) {
  pthread_attr_t attr;
  pthread_t thread;
  sigset_t all;
  sigset_t old;
  int err;

  if (w == NULL || uv_is_closing((uv_handle_t*) &w->handle))
    return UV_EINVAL;
  err = 0;
  if (auv_child_watch_is_active(w)) {
    /* The same kind of thread as auv__waiter_start()'s, but it reaps: the
     * loop that would have is going away. */
    if (pthread_attr_init(&attr) != 0) {
      err = UV_ENOMEM;
    } else {
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      pthread_attr_setstacksize(&attr, AUV__WAITER_STACK);
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old);
      err = -pthread_create(&thread, &attr, auv__reaper_run,
                            (void*) (intptr_t) w->pid);
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      pthread_attr_destroy(&attr);
    }
  }
  auv_child_watch_close(w, close_cb);
  return err;
}


int auv_child_watch_get_pid(const auv_child_watch_t* w) {
  return w == NULL ? 0 : w->pid;
}


int auv_child_watch_is_active(const auv_child_watch_t* w) {
  return w != NULL && !(w->flags & AUV__CHILD_DONE) &&
         !uv_is_closing((const uv_handle_t*) &w->handle);
}


void auv_child_watch_set_data(auv_child_watch_t* w, void* data) {
  if (w != NULL)
    w->data = data;
}


void* auv_child_watch_get_data(const auv_child_watch_t* w) {
  return w == NULL ? NULL : w->data;
}

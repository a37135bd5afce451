/* The watcher set (lib/watch.c). */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

static char order[32];
static int norder;


static void note(char c) {
  ASSERT(norder < (int) sizeof(order));
  order[norder++] = c;
}


/* Reads one byte and notes the watcher's data (a letter). */
static void read_cb(auv_watch_t* w, int events) {
  char buf[16];

  ASSERT_EQ(AUV_READABLE, events);
  ASSERT_EQ(1, read(auv_watch_get_fd(w), buf, 1));
  note((char) (intptr_t) auv_watch_get_data(w));
}


static void read_stop_cb(auv_watch_t* w, int events) {
  read_cb(w, events);
  ASSERT_OK(auv_watch_stop(w, AUV_READABLE));
}


static void write_byte(auv_loop_t* loop, void* arg) {
  ASSERT_EQ(1, write(*(int*) arg, "x", 1));
}


static void note_call(auv_loop_t* loop, void* arg) {
  note((char) (intptr_t) arg);
}


TEST_IMPL(watch_readable) {
  auv_loop_t* loop;
  auv_watch_t* w;
  int fds[2];

  norder = 0;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_watch_new(loop, fds[0], read_stop_cb, &w));
  ASSERT_EQ(fds[0], auv_watch_get_fd(w));
  ASSERT(auv_watch_get_loop(w) == loop);
  ASSERT_EQ(0, auv_watch_get_events(w));
  ASSERT(!auv_loop_alive(loop));  /* a stopped watcher does not count */
  auv_watch_set_data(w, (void*) 'r');
  ASSERT_OK(auv_watch_start(w, AUV_READABLE));
  ASSERT_EQ(AUV_READABLE, auv_watch_get_events(w));
  ASSERT(auv_loop_alive(loop));
  /* The write happens from the loop; the set then wakes it. */
  ASSERT_OK(auv_loop_call_soon(loop, write_byte, &fds[1]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, norder);
  ASSERT_EQ('r', order[0]);
  ASSERT_EQ(0, auv_watch_get_events(w));
  /* The caller's fd keeps its blocking mode. */
  ASSERT_EQ(0, fcntl(fds[0], F_GETFL) & O_NONBLOCK);

  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));  /* not yet freed */
  auv_watch_free(w);
  CLOSE_LOOP(loop);
  close(fds[0]);
  close(fds[1]);
}


static int writable_events;

static void writable_cb(auv_watch_t* w, int events) {
  writable_events = events;
  auv_watch_free(w);  /* its own, from its callback */
}


/* Both directions on one fd, then the reader stopped: the writer alone
 * (one watcher watching one way, the set is not read) still runs. */
TEST_IMPL(watch_writable_and_both) {
  auv_loop_t* loop;
  auv_watch_t* w;
  int fds[2];

  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_EQ(1, write(fds[1], "x", 1));
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_watch_new(loop, fds[0], writable_cb, &w));
  ASSERT_OK(auv_watch_start(w, AUV_READABLE));
  ASSERT_OK(auv_watch_start(w, AUV_WRITABLE));
  ASSERT_EQ(AUV_READABLE | AUV_WRITABLE, auv_watch_get_events(w));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(AUV_READABLE | AUV_WRITABLE, writable_events);

  ASSERT_OK(auv_watch_new(loop, fds[0], writable_cb, &w));
  ASSERT_OK(auv_watch_start(w, AUV_READABLE | AUV_WRITABLE));
  ASSERT_OK(auv_watch_stop(w, AUV_READABLE));
  ASSERT_EQ(AUV_WRITABLE, auv_watch_get_events(w));
  writable_events = 0;
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(AUV_WRITABLE, writable_events);
  CLOSE_LOOP(loop);
  close(fds[0]);
  close(fds[1]);
}


static void timer_note(auv_timer_t* timer) {
  note('t');
}


/* One iteration: the calls queued before the poll, the poll's I/O, the due
 * timers (asyncio's _run_once()).  An fd that one of those calls makes
 * ready waits for the next poll, even when another fd of the set woke
 * this one: the set is read during the poll, not in the I/O step. */
TEST_IMPL(watch_order_and_read_during_poll) {
  auv_loop_t* loop;
  auv_watch_t* a;
  auv_watch_t* b;
  auv_timer_t* timer;
  int fa[2];
  int fb[2];

  norder = 0;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fa));
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fb));
  ASSERT_EQ(1, write(fa[1], "x", 1));  /* a: ready before the iteration */
  ASSERT_OK(auv_loop_new(&loop));
  timer = malloc(auv_timer_size());
  ASSERT_OK(auv_timer_init(loop, timer));
  ASSERT_OK(auv_timer_start(timer, timer_note, 0));
  ASSERT_OK(auv_watch_new(loop, fa[0], read_stop_cb, &a));
  ASSERT_OK(auv_watch_new(loop, fb[0], read_stop_cb, &b));
  auv_watch_set_data(a, (void*) 'a');
  auv_watch_set_data(b, (void*) 'b');
  ASSERT_OK(auv_watch_start(a, AUV_READABLE));
  ASSERT_OK(auv_watch_start(b, AUV_READABLE));
  ASSERT_OK(auv_loop_call_soon(loop, note_call, (void*) '1'));
  ASSERT_OK(auv_loop_call_soon(loop, write_byte, &fb[1]));  /* b: ready now */
  ASSERT_OK(auv_loop_call_soon(loop, note_call, (void*) '2'));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(4, norder);
  ASSERT_OK(memcmp(order, "12at", 4));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(5, norder);
  ASSERT_EQ('b', order[4]);
  auv_watch_free(a);
  auv_watch_free(b);
  free(timer);
  CLOSE_LOOP(loop);
  close(fa[0]);
  close(fa[1]);
  close(fb[0]);
  close(fb[1]);
}


static auv_watch_t* victims[4];

static void stop_victim(auv_loop_t* loop, void* arg) {
  ASSERT_OK(auv_watch_stop(victims[(intptr_t) arg], AUV_READABLE));
  note('s');
}


static void restart_victim(auv_loop_t* loop, void* arg) {
  ASSERT_OK(auv_watch_start(victims[(intptr_t) arg], AUV_READABLE));
  note('r');
}


static void free_victim(auv_loop_t* loop, void* arg) {
  auv_watch_free(victims[(intptr_t) arg]);
  victims[(intptr_t) arg] = NULL;
  note('f');
}


/* Frees the next watcher, whose I/O this poll recorded too. */
static void free_next_cb(auv_watch_t* w, int events) {
  read_cb(w, events);
  auv_watch_free(victims[3]);
  victims[3] = NULL;
}


/* What a poll found does not run for a watcher that a call queued before
 * it (or an earlier I/O callback) stops, restarts or frees: as asyncio's
 * remove_reader()/add_reader() cancel the handle in its ready queue.  A
 * restarted watcher runs at the next poll. */
TEST_IMPL(watch_dropped_before_its_io_runs) {
  auv_loop_t* loop;
  int fds[4][2];
  int i;

  norder = 0;
  ASSERT_OK(auv_loop_new(&loop));
  for (i = 0; i < 4; i++) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]));
    ASSERT_EQ(1, write(fds[i][1], "x", 1));
    ASSERT_OK(auv_watch_new(loop, fds[i][0], i == 2 ? free_next_cb : read_cb,
                            &victims[i]));
    auv_watch_set_data(victims[i], (void*) (intptr_t) ('A' + i));
    ASSERT_OK(auv_watch_start(victims[i], AUV_READABLE));
  }
  ASSERT_OK(auv_loop_call_soon(loop, stop_victim, (void*) 0));
  ASSERT_OK(auv_loop_call_soon(loop, restart_victim, (void*) 1));
  ASSERT_OK(auv_loop_run(loop, AUV_RUN_NOWAIT) == 1 ? 0 : -1);
  /* The set is read in the order it found the fds (for fds ready when
   * added, the order they were added in): D runs only if it came first. */
  ASSERT((norder == 3 && memcmp(order, "srC", 3) == 0) ||
         (norder == 4 && memcmp(order, "srDC", 4) == 0));
  /* Next poll: B (restarted) runs; A is stopped, C has read its byte. */
  norder = 0;
  ASSERT_OK(auv_loop_call_soon(loop, free_victim, (void*) 0));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(2, norder);
  ASSERT_OK(memcmp(order, "fB", 2));
  for (i = 0; i < 4; i++) {
    auv_watch_free(victims[i]);
    close(fds[i][0]);
    close(fds[i][1]);
  }
  CLOSE_LOOP(loop);
}


static int many_calls;

static void many_cb(auv_watch_t* w, int events) {
  char buf[4];

  ASSERT_EQ(1, read(auv_watch_get_fd(w), buf, sizeof(buf)));
  many_calls++;
  auv_watch_free(w);
}


/* More ready fds than one read of the set takes: the rest come with the
 * next polls (level-triggered), and the slots are reused. */
TEST_IMPL(watch_many) {
  enum { N = 300 };
  auv_loop_t* loop;
  auv_watch_t* w;
  int fds[N][2];
  int round;
  int i;

  ASSERT_OK(auv_loop_new(&loop));
  for (i = 0; i < N; i++)
    ASSERT_OK(pipe(fds[i]));
  for (round = 0; round < 2; round++) {
    many_calls = 0;
    for (i = 0; i < N; i++) {
      ASSERT_OK(auv_watch_new(loop, fds[i][0], many_cb, &w));
      ASSERT_OK(auv_watch_start(w, AUV_READABLE));
      ASSERT_EQ(1, write(fds[i][1], "x", 1));
    }
    ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
    ASSERT_EQ(N, many_calls);
  }
  for (i = 0; i < N; i++) {
    close(fds[i][0]);
    close(fds[i][1]);
  }
  CLOSE_LOOP(loop);
}


static void never_cb(auv_watch_t* w, int events) {
  ASSERT(0);
}


/* An fd closed under its watcher while another descriptor keeps the file
 * open stays in the set; once the watcher is freed, what that entry
 * reports reaches nobody, and a watcher of the file's new descriptor of
 * the same number takes the entry over. */
TEST_IMPL(watch_fd_closed_under_it) {
  auv_loop_t* loop;
  auv_watch_t* w;
  int fds[2];
  int keep;
  int fd;

  norder = 0;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  keep = dup(fds[0]);
  ASSERT(keep >= 0);
  fd = fds[0];
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_watch_new(loop, fd, never_cb, &w));
  ASSERT_OK(auv_watch_start(w, AUV_READABLE));
  close(fd);
  auv_watch_free(w);  /* its epoll_ctl(DEL) fails: the entry stays */
  ASSERT_EQ(1, write(fds[1], "x", 1));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(0, norder);

  ASSERT_EQ(fd, dup2(keep, fd));  /* the same file at the same number */
  ASSERT_OK(auv_watch_new(loop, fd, read_stop_cb, &w));
  auv_watch_set_data(w, (void*) 'k');
  ASSERT_OK(auv_watch_start(w, AUV_READABLE));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, norder);
  ASSERT_EQ('k', order[0]);
  auv_watch_free(w);
  CLOSE_LOOP(loop);
  close(fd);
  close(keep);
  close(fds[1]);
}


TEST_IMPL(watch_errors) {
  char path[] = "/tmp/auv-watch-XXXXXX";
  auv_loop_t* loop;
  auv_watch_t* w;
  auv_watch_t* w2;
  int fds[2];
  int file;

  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_EQ(UV_EINVAL, auv_watch_new(NULL, fds[0], read_cb, &w));
  ASSERT(w == NULL);
  ASSERT_EQ(UV_EINVAL, auv_watch_new(loop, -1, read_cb, &w));
  ASSERT_EQ(UV_EINVAL, auv_watch_new(loop, fds[0], NULL, &w));
  ASSERT_EQ(UV_EINVAL, auv_watch_new(loop, fds[0], read_cb, NULL));
  ASSERT_EQ(UV_EINVAL, auv_watch_start(NULL, AUV_READABLE));
  ASSERT_EQ(UV_EINVAL, auv_watch_stop(NULL, AUV_READABLE));
  ASSERT_EQ(-1, auv_watch_get_fd(NULL));
  ASSERT_EQ(0, auv_watch_get_events(NULL));
  ASSERT(auv_watch_get_loop(NULL) == NULL);
  ASSERT(auv_watch_get_data(NULL) == NULL);
  auv_watch_set_data(NULL, NULL);
  auv_watch_free(NULL);

  ASSERT_OK(auv_watch_new(loop, fds[0], read_cb, &w));
  ASSERT_EQ(UV_EINVAL, auv_watch_start(w, AUV_DISCONNECT));
  ASSERT_EQ(UV_EINVAL, auv_watch_stop(w, 64));
  ASSERT_OK(auv_watch_start(w, 0));  /* nothing to do */
  ASSERT_OK(auv_watch_stop(w, AUV_WRITABLE));
  ASSERT_OK(auv_watch_start(w, AUV_READABLE));
  /* One started watcher per fd and loop. */
  ASSERT_OK(auv_watch_new(loop, fds[0], read_cb, &w2));
  ASSERT_EQ(UV_EEXIST, auv_watch_start(w2, AUV_WRITABLE));
  ASSERT_EQ(0, auv_watch_get_events(w2));
  auv_watch_free(w2);
  auv_watch_free(w);

  /* Not open, too large to be open, a regular file: refused at start,
   * nothing sized by the number. */
  ASSERT_OK(auv_watch_new(loop, INT_MAX, read_cb, &w));
  ASSERT_EQ(UV_EBADF, auv_watch_start(w, AUV_READABLE));
  auv_watch_free(w);
  file = mkstemp(path);
  ASSERT(file >= 0);
  unlink(path);
  ASSERT_OK(auv_watch_new(loop, file, read_cb, &w));
  ASSERT_EQ(UV_EPERM, auv_watch_start(w, AUV_READABLE));
  ASSERT_EQ(0, auv_watch_get_events(w));
  ASSERT(!auv_loop_alive(loop));
  auv_watch_free(w);
  close(file);
  CLOSE_LOOP(loop);
  close(fds[0]);
  close(fds[1]);
}


static void interrupt_cb(auv_watch_t* w, int events) {
  read_cb(w, events);
  auv_loop_interrupt(auv_watch_get_loop(w));
}


/* An interrupt from a watcher's callback leaves the rest of the poll's
 * I/O for the next run, still before that run's own poll finds more. */
TEST_IMPL(watch_interrupt) {
  auv_loop_t* loop;
  auv_watch_t* w[2];
  int fds[2][2];
  int i;

  norder = 0;
  ASSERT_OK(auv_loop_new(&loop));
  for (i = 0; i < 2; i++) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]));
    ASSERT_EQ(1, write(fds[i][1], "x", 1));
    ASSERT_OK(auv_watch_new(loop, fds[i][0], interrupt_cb, &w[i]));
    auv_watch_set_data(w[i], (void*) (intptr_t) ('a' + i));
    ASSERT_OK(auv_watch_start(w[i], AUV_READABLE));
  }
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, norder);
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(2, norder);
  ASSERT(order[0] != order[1]);
  for (i = 0; i < 2; i++) {
    auv_watch_free(w[i]);
    close(fds[i][0]);
    close(fds[i][1]);
  }
  CLOSE_LOOP(loop);
}

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

static int readable_calls;
static int closed_calls;

static void on_readable(auv_poll_t* poll, int status, int events) {
  char buf[16];
  int* fds;

  ASSERT_OK(status);
  ASSERT(events & AUV_READABLE);
  fds = auv_poll_get_data(poll);
  ASSERT_EQ(1, read(fds[0], buf, sizeof(buf)));
  ASSERT_EQ('x', buf[0]);
  readable_calls++;
  ASSERT_OK(auv_poll_stop(poll));
}


static void on_close(void* data) {
  closed_calls++;
}


static void write_byte(auv_loop_t* loop, void* arg) {
  ASSERT_EQ(1, write(*(int*) arg, "x", 1));
}


TEST_IMPL(poll_readable) {
  auv_loop_t* loop;
  auv_poll_t* poll;
  int fds[2];

  readable_calls = closed_calls = 0;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_poll_new(loop, fds[0], &poll));
  ASSERT_EQ(fds[0], auv_poll_get_fd(poll));
  ASSERT(auv_poll_get_loop(poll) == loop);
  auv_poll_set_data(poll, fds);
  ASSERT_OK(auv_poll_start(poll, AUV_READABLE, on_readable));
  /* The write happens from the loop; the watcher then wakes it. */
  ASSERT_OK(auv_loop_call_soon(loop, write_byte, &fds[1]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, readable_calls);

  /* An open watcher keeps the loop from closing, even stopped. */
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_poll_close(poll, on_close);
  ASSERT_EQ(0, closed_calls);
  CLOSE_LOOP(loop);  /* finishes the close */
  ASSERT_EQ(1, closed_calls);
  close(fds[0]);
  close(fds[1]);
}


/* The order of one iteration: the calls queued before the poll, then the
 * poll's I/O, then the timers due (asyncio's _run_once()). */
static char order[8];
static int norder;

static void order_io_cb(auv_poll_t* poll, int status, int events) {
  char buf[16];

  ASSERT_OK(status);
  ASSERT_EQ(1, read(*(int*) auv_poll_get_data(poll), buf, sizeof(buf)));
  order[norder++] = 'i';
  ASSERT_OK(auv_poll_stop(poll));
}


static void order_call_cb(auv_loop_t* loop, void* arg) {
  order[norder++] = (char) (intptr_t) arg;
}


static void order_timer_cb(auv_timer_t* timer) {
  order[norder++] = 't';
}


TEST_IMPL(poll_io_after_queued_calls) {
  auv_loop_t* loop;
  auv_poll_t* poll;
  auv_timer_t* timer;
  int fds[2];

  norder = 0;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_EQ(1, write(fds[1], "x", 1));  /* readable before the iteration */
  ASSERT_OK(auv_loop_new(&loop));
  timer = malloc(auv_timer_size());
  ASSERT_OK(auv_timer_init(loop, timer));
  ASSERT_OK(auv_timer_start(timer, order_timer_cb, 0));
  ASSERT_OK(auv_poll_new(loop, fds[0], &poll));
  auv_poll_set_data(poll, &fds[0]);
  ASSERT_OK(auv_poll_start(poll, AUV_READABLE, order_io_cb));
  ASSERT_OK(auv_loop_call_soon(loop, order_call_cb, (void*) 'a'));
  ASSERT_OK(auv_loop_call_soon(loop, order_call_cb, (void*) 'b'));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_ONCE));  /* nothing left */
  ASSERT_EQ(4, norder);
  ASSERT_OK(memcmp(order, "abit", 4));
  auv_poll_close(poll, NULL);
  free(timer);
  CLOSE_LOOP(loop);
  close(fds[0]);
  close(fds[1]);
}


/* A watcher stopped by a call queued before the poll that found it ready
 * does not run: as asyncio's remove_reader() cancelling its handle. */
static void stop_poll_cb(auv_loop_t* loop, void* arg) {
  order[norder++] = 's';
  ASSERT_OK(auv_poll_stop(arg));
}


static void close_poll_cb(auv_loop_t* loop, void* arg) {
  order[norder++] = 'c';
  auv_poll_close(arg, on_close);
}


TEST_IMPL(poll_stopped_before_its_io_runs) {
  auv_loop_t* loop;
  auv_poll_t* a;
  auv_poll_t* b;
  int fds[2];
  int fds2[2];

  norder = 0;
  closed_calls = 0;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds2));
  ASSERT_EQ(1, write(fds[1], "x", 1));
  ASSERT_EQ(1, write(fds2[1], "x", 1));
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_poll_new(loop, fds[0], &a));
  ASSERT_OK(auv_poll_new(loop, fds2[0], &b));
  auv_poll_set_data(a, &fds[0]);
  auv_poll_set_data(b, &fds2[0]);
  ASSERT_OK(auv_poll_start(a, AUV_READABLE, order_io_cb));
  ASSERT_OK(auv_poll_start(b, AUV_READABLE, order_io_cb));
  /* The poll finds a and b ready; the calls queued before it stop one and
   * close the other before the I/O step. */
  ASSERT_OK(auv_loop_call_soon(loop, stop_poll_cb, a));
  ASSERT_OK(auv_loop_call_soon(loop, close_poll_cb, b));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(2, norder);
  ASSERT_OK(memcmp(order, "sc", 2));
  auv_poll_close(a, on_close);
  CLOSE_LOOP(loop);
  ASSERT_EQ(2, closed_calls);
  close(fds[0]);
  close(fds[1]);
  close(fds2[0]);
  close(fds2[1]);
}


static void on_writable(auv_poll_t* poll, int status, int events) {
  ASSERT_OK(status);
  ASSERT(events & AUV_WRITABLE);
  ASSERT(!(events & AUV_READABLE));
  auv_poll_close(poll, on_close);
}


TEST_IMPL(poll_writable_and_close_in_callback) {
  auv_loop_t* loop;
  auv_poll_t* poll;
  int fds[2];

  closed_calls = 0;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(auv_poll_new(loop, fds[0], &poll));
  ASSERT_OK(auv_poll_start(poll, AUV_WRITABLE, on_writable));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, closed_calls);
  CLOSE_LOOP(loop);
  close(fds[0]);
  close(fds[1]);
}


TEST_IMPL(poll_einval) {
  auv_loop_t* loop;
  auv_poll_t* poll;
  int fds[2];

  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_poll_new(NULL, 0, &poll));
  ASSERT_EQ(UV_EINVAL, auv_poll_new(loop, -1, &poll));
  ASSERT_EQ(UV_EINVAL, auv_poll_new(loop, 0, NULL));
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
  ASSERT_OK(auv_poll_new(loop, fds[0], &poll));
  ASSERT_EQ(UV_EINVAL, auv_poll_start(poll, AUV_READABLE, NULL));
  ASSERT_EQ(UV_EINVAL, auv_poll_start(poll, 64, on_readable));
  ASSERT_EQ(UV_EINVAL, auv_poll_stop(NULL));
  ASSERT_EQ(-1, auv_poll_get_fd(NULL));
  auv_poll_close(poll, NULL);
  ASSERT_EQ(UV_EINVAL, auv_poll_start(poll, AUV_READABLE, on_readable));
  ASSERT_EQ(UV_EINVAL, auv_poll_stop(poll));
  auv_poll_close(NULL, NULL);
  CLOSE_LOOP(loop);
  close(fds[0]);
  close(fds[1]);
}


/* An fd that is not open is refused with EBADF by everything that takes
 * one, before anything is sized by it: an index grown to 10**9 entries
 * would cost gigabytes (asyncuv's add_reader() once grew its own). */
TEST_IMPL(poll_ebadf_huge_fds) {
  static const int fds[] = { 1000000000, INT_MAX, INT_MAX - 1, 65535 };
  auv_loop_t* loop;
  auv_poll_t* poll;
  auv_stream_t* stream;
  auv_udp_t* udp;
  auv_listener_t* listener;
  size_t i;

  ASSERT_OK(auv_loop_new(&loop));
  for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
    ASSERT_EQ(UV_EBADF, auv_poll_new(loop, fds[i], &poll));
    ASSERT_EQ(UV_EBADF, auv_stream_new(loop, fds[i], &stream));
    ASSERT_EQ(UV_EBADF, auv_udp_new(loop, fds[i], &udp));
    ASSERT_EQ(UV_EBADF, auv_listener_new(loop, fds[i], &listener));
  }
  CLOSE_LOOP(loop);
}

#include <limits.h>
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

#define _GNU_SOURCE  /* pipe2 */

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

/* Streams over pipes: read(), write() and writev() rather than the socket
 * calls, no half-close, and a reader gone is EPIPE (with SIGPIPE ignored,
 * as Python has it) rather than a reset. */

typedef struct {
  char buf[65536];
  size_t received;
  int eof;
  int drains;
  int drain_status;
  int closed;
} end_t;


static void on_closed(void* data) {
  ((end_t*) data)->closed++;
}


static void on_alloc(auv_stream_t* s, size_t suggested, char** base, size_t* len) {
  end_t* e;

  e = auv_stream_get_data(s);
  *base = e->buf;
  *len = sizeof(e->buf);
}


static void on_read(auv_stream_t* s, ssize_t nread, char* base) {
  end_t* e;

  e = auv_stream_get_data(s);
  if (nread == AUV_EOF) {
    e->eof++;
    return;
  }
  ASSERT(nread >= 0);
  e->received += nread;
}


static void on_drain(auv_stream_t* s, int status) {
  end_t* e;

  e = auv_stream_get_data(s);
  e->drains++;
  e->drain_status = status;
}


static auv_stream_t* end_init(auv_loop_t* loop, end_t* e, int fd) {
  auv_stream_t* s;

  memset(e, 0, sizeof(*e));
  ASSERT_OK(auv_stream_new(loop, fd, &s));
  auv_stream_set_data(s, e);
  auv_stream_set_drain_cb(s, on_drain);
  return s;
}


TEST_IMPL(pipe_read_write_eof) {
  auv_loop_t* loop;
  auv_stream_t* r;
  auv_stream_t* w;
  auv_buf_t bufs[2];
  end_t re;
  end_t we;
  int fds[2];

  ASSERT_OK(pipe2(fds, O_CLOEXEC));
  ASSERT_OK(auv_loop_new(&loop));
  r = end_init(loop, &re, fds[0]);
  w = end_init(loop, &we, fds[1]);
  ASSERT_OK(auv_stream_read_start(r, on_alloc, on_read));
  bufs[0].base = "through ";
  bufs[0].len = 8;
  bufs[1].base = "a pipe";
  bufs[1].len = 6;
  ASSERT_EQ(14, auv_stream_write(w, bufs, 2));
  while (re.received < 14)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_OK(memcmp(re.buf, "through a pipe", 14));
  /* The writing end closed: the reader gets EOF and stops. */
  auv_stream_close(w, on_closed);
  ASSERT_OK(close(fds[1]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, re.eof);
  ASSERT(!auv_stream_is_reading(r));
  auv_stream_close(r, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, re.closed);
  ASSERT_EQ(1, we.closed);
  ASSERT_OK(close(fds[0]));
}


TEST_IMPL(pipe_reader_gone) {
  struct sigaction ign;
  struct sigaction old;
  auv_loop_t* loop;
  auv_stream_t* w;
  auv_buf_t b;
  end_t first;
  end_t we;
  char* data;
  ssize_t n;
  int fds[2];

  memset(&ign, 0, sizeof(ign));
  ign.sa_handler = SIG_IGN;
  ASSERT_OK(sigaction(SIGPIPE, &ign, &old));
  ASSERT_OK(auv_loop_new(&loop));

  /* The reader is gone before the write: it fails at once. */
  ASSERT_OK(pipe2(fds, O_CLOEXEC));
  w = end_init(loop, &first, fds[1]);
  ASSERT_OK(close(fds[0]));
  b.base = "x";
  b.len = 1;
  ASSERT_EQ(UV_EPIPE, auv_stream_write(w, &b, 1));
  ASSERT_EQ(0, auv_stream_write_queue_size(w));
  auv_stream_close(w, on_closed);
  ASSERT_OK(close(fds[1]));

  /* The reader goes while a write is queued: the drain callback gets
   * EPIPE, the queue is dropped, later writes fail. */
  ASSERT_OK(pipe2(fds, O_CLOEXEC));
  w = end_init(loop, &we, fds[1]);
  data = calloc(1, 1 << 20);
  ASSERT(data != NULL);
  b.base = data;
  b.len = 1 << 20;
  n = auv_stream_write(w, &b, 1);
  free(data);
  ASSERT(n > 0 && n < (1 << 20));
  ASSERT(auv_stream_write_queue_size(w) > 0);
  ASSERT_OK(close(fds[0]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, we.drains);
  ASSERT_EQ(UV_EPIPE, we.drain_status);
  ASSERT_EQ(0, auv_stream_write_queue_size(w));
  b.base = "x";
  b.len = 1;
  ASSERT_EQ(UV_EPIPE, auv_stream_write(w, &b, 1));
  auv_stream_close(w, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, first.closed);
  ASSERT_EQ(1, we.closed);
  ASSERT_OK(close(fds[1]));
  ASSERT_OK(sigaction(SIGPIPE, &old, NULL));
}

#define _GNU_SOURCE  /* pipe2 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

#define FILE_SIZE (4u << 20)

/* A connected AF_UNIX stream pair: fds[0] sends, fds[1] is the peer. */
static void open_pair(int fds[2]) {
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
}


static void close_pair(int fds[2]) {
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(fds[1]));
}


static unsigned char pattern(uint64_t i) {
  return (unsigned char) (i % 251 + (i / 65536));
}


/* A temporary file of n bytes of the pattern; the caller closes the fd. */
static int pattern_file(size_t n) {
  char block[65536];
  char path[] = "/tmp/auv-sendfile-XXXXXX";
  size_t off;
  size_t len;
  size_t i;
  int fd;

  fd = mkstemp(path);
  ASSERT(fd >= 0);
  ASSERT_OK(unlink(path));
  for (off = 0; off < n; off += len) {
    len = n - off < sizeof(block) ? n - off : sizeof(block);
    for (i = 0; i < len; i++)
      block[i] = (char) pattern(off + i);
    ASSERT_EQ((ssize_t) len, write(fd, block, len));
  }
  ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
  return fd;
}


/* The receiving end: a stream that checks the bytes against the pattern
 * from a start offset. */
typedef struct {
  auv_stream_t* stream;
  char buf[65536];
  uint64_t start;
  uint64_t received;
  int eof;
  int closed;
} sink_t;

/* The request's outcome. */
typedef struct {
  int calls;
  int status;
  uint64_t sent;
  int in_start;        /* set while auv_sendfile_start() runs */
  int shut_fd;         /* when done, shut down (or close, a pipe) this fd */
} result_t;


static void sink_closed(void* data) {
  ((sink_t*) data)->closed++;
}


static void sink_alloc(auv_stream_t* s, size_t suggested, char** base, size_t* len) {
  sink_t* k;

  k = auv_stream_get_data(s);
  *base = k->buf;
  *len = sizeof(k->buf);
}


static void sink_read(auv_stream_t* s, ssize_t nread, char* base) {
  sink_t* k;
  ssize_t i;

  k = auv_stream_get_data(s);
  if (nread == AUV_EOF) {
    k->eof++;
    auv_stream_close(s, sink_closed);
    return;
  }
  ASSERT(nread >= 0);
  for (i = 0; i < nread; i++)
    ASSERT_EQ(pattern(k->start + k->received + i), (unsigned char) base[i]);
  k->received += nread;
}


static void sink_init(auv_loop_t* loop, sink_t* k, int fd, uint64_t start) {
  memset(k, 0, sizeof(*k));
  k->start = start;
  ASSERT_OK(auv_stream_new(loop, fd, &k->stream));
  auv_stream_set_data(k->stream, k);
  ASSERT_OK(auv_stream_read_start(k->stream, sink_alloc, sink_read));
}


static void on_sent(auv_sendfile_t* req, int status, uint64_t sent) {
  result_t* r;

  r = auv_sendfile_get_data(req);
  ASSERT(!r->in_start);
  r->calls++;
  r->status = status;
  r->sent = sent;
  /* The request is over: the sink gets EOF once the writing end is
   * half-closed (a socket) or closed (a pipe). */
  if (r->shut_fd >= 0) {
    if (shutdown(r->shut_fd, SHUT_WR) != 0) {
      ASSERT_EQ(ENOTSOCK, errno);
      ASSERT_OK(close(r->shut_fd));
    }
  }
}


static void start(auv_loop_t* loop, result_t* r, int out_fd, int in_fd,
                  int64_t offset, uint64_t count) {
  auv_sendfile_t* req;

  r->in_start = 1;
  ASSERT_OK(auv_sendfile_start(loop, out_fd, in_fd, offset, count, on_sent, &req));
  ASSERT(req != NULL);
  auv_sendfile_set_data(req, r);
  ASSERT(auv_sendfile_get_data(req) == r);
  r->in_start = 0;
  ASSERT_EQ(0, r->calls);
}


static void result_init(result_t* r, int shut_fd) {
  memset(r, 0, sizeof(*r));
  r->status = 1;
  r->shut_fd = shut_fd;
}


TEST_IMPL(sendfile_socketpair) {
  auv_loop_t* loop;
  result_t r;
  sink_t k;
  int fds[2];
  int in;

  /* Several times what the socket buffers hold: the request waits for
   * writability again and again while the sink reads in the same loop. */
  in = pattern_file(FILE_SIZE);
  open_pair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  sink_init(loop, &k, fds[1], 0);
  result_init(&r, fds[0]);
  start(loop, &r, fds[0], in, 0, 0);
  ASSERT(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, r.calls);
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(FILE_SIZE, r.sent);
  ASSERT_EQ(FILE_SIZE, k.received);
  ASSERT_EQ(1, k.eof);
  ASSERT_EQ(1, k.closed);
  /* in_fd's file position is untouched. */
  ASSERT_EQ(0, lseek(in, 0, SEEK_CUR));
  CLOSE_LOOP(loop);
  close_pair(fds);
  ASSERT_OK(close(in));
}


TEST_IMPL(sendfile_offset_count) {
  auv_loop_t* loop;
  result_t r;
  sink_t k;
  int fds[2];
  int in;

  in = pattern_file(FILE_SIZE);
  ASSERT_OK(auv_loop_new(&loop));

  /* A slice from the middle. */
  open_pair(fds);
  sink_init(loop, &k, fds[1], 1000);
  result_init(&r, fds[0]);
  start(loop, &r, fds[0], in, 1000, 300000);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(300000, r.sent);
  ASSERT_EQ(300000, k.received);
  close_pair(fds);

  /* More than the file has: the request ends with the file. */
  open_pair(fds);
  sink_init(loop, &k, fds[1], FILE_SIZE - 100);
  result_init(&r, fds[0]);
  start(loop, &r, fds[0], in, FILE_SIZE - 100, 1000);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(100, r.sent);
  ASSERT_EQ(100, k.received);
  close_pair(fds);

  /* Past the end: nothing to send, still a callback. */
  open_pair(fds);
  result_init(&r, -1);
  start(loop, &r, fds[0], in, FILE_SIZE + 5, 0);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, r.calls);
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(0, r.sent);
  close_pair(fds);

  /* offset < 0: from the file position, which advances. */
  ASSERT_EQ(5000, lseek(in, 5000, SEEK_SET));
  open_pair(fds);
  sink_init(loop, &k, fds[1], 5000);
  result_init(&r, fds[0]);
  start(loop, &r, fds[0], in, -1, 70000);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(70000, r.sent);
  ASSERT_EQ(70000, k.received);
  ASSERT_EQ(75000, lseek(in, 0, SEEK_CUR));
  close_pair(fds);

  CLOSE_LOOP(loop);
  ASSERT_OK(close(in));
}


TEST_IMPL(sendfile_to_pipe) {
  auv_loop_t* loop;
  result_t r;
  sink_t k;
  int fds[2];
  int in;

  /* A pipe as out_fd: the kernel splices into it. */
  in = pattern_file(FILE_SIZE);
  ASSERT_OK(pipe2(fds, O_CLOEXEC));
  ASSERT_OK(auv_loop_new(&loop));
  sink_init(loop, &k, fds[0], 0);
  result_init(&r, fds[1]);  /* closed by on_sent: the sink gets EOF */
  start(loop, &r, fds[1], in, 0, 0);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(FILE_SIZE, r.sent);
  ASSERT_EQ(FILE_SIZE, k.received);
  ASSERT_EQ(1, k.eof);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(in));
}


TEST_IMPL(sendfile_fallback) {
  auv_loop_t* loop;
  result_t r;
  sink_t k;
  char block[60000];
  int sfds[2];
  int pfds[2];
  size_t i;

  /* A pipe as in_fd: sendfile(2) refuses it (EINVAL), the request falls
   * back to read() and send(). */
  for (i = 0; i < sizeof(block); i++)
    block[i] = (char) pattern(i);
  ASSERT_OK(pipe2(pfds, O_CLOEXEC));
  ASSERT_EQ(sizeof(block), write(pfds[1], block, sizeof(block)));
  ASSERT_OK(close(pfds[1]));
  open_pair(sfds);
  ASSERT_OK(auv_loop_new(&loop));
  sink_init(loop, &k, sfds[1], 0);
  result_init(&r, sfds[0]);
  start(loop, &r, sfds[0], pfds[0], -1, 0);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(sizeof(block), r.sent);
  ASSERT_EQ(sizeof(block), k.received);
  ASSERT_EQ(1, k.eof);
  ASSERT_OK(close(pfds[0]));
  ASSERT_OK(close(sfds[0]));
  ASSERT_OK(close(sfds[1]));

  /* A socket in append mode: sendfile(2) refuses O_APPEND (EINVAL), the
   * request falls back to pread() from the offset, in several buffers. */
  {
    int in = pattern_file(FILE_SIZE);
    open_pair(sfds);
    ASSERT_OK(fcntl(sfds[0], F_SETFL, fcntl(sfds[0], F_GETFL) | O_APPEND));
    sink_init(loop, &k, sfds[1], 1000);
    result_init(&r, sfds[0]);
    start(loop, &r, sfds[0], in, 1000, 1000000);
    ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
    ASSERT_EQ(0, r.status);
    ASSERT_EQ(1000000, r.sent);
    ASSERT_EQ(1000000, k.received);
    ASSERT_EQ(0, lseek(in, 0, SEEK_CUR));
    ASSERT_OK(close(sfds[0]));
    ASSERT_OK(close(sfds[1]));
    ASSERT_OK(close(in));
  }

  /* With an offset a pipe cannot be read at all. */
  ASSERT_OK(pipe2(pfds, O_CLOEXEC));
  open_pair(sfds);
  result_init(&r, -1);
  start(loop, &r, sfds[0], pfds[0], 0, 0);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(UV_ESPIPE, r.status);
  ASSERT_EQ(0, r.sent);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(pfds[0]));
  ASSERT_OK(close(pfds[1]));
  ASSERT_OK(close(sfds[0]));
  ASSERT_OK(close(sfds[1]));
}


static uint64_t drain_fd(int fd) {
  char buf[65536];
  uint64_t total;
  ssize_t n;

  total = 0;
  while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
    total += n;
  ASSERT(n == -1 && errno == EAGAIN);
  return total;
}


TEST_IMPL(sendfile_cancel) {
  auv_loop_t* loop;
  auv_sendfile_t* req;
  result_t r;
  sink_t k;
  int fds[2];
  int in;

  /* Nobody reads: the first wake-up fills the socket, then the request
   * waits.  Cancelled, it reports what went out, which is exactly what
   * the peer can read. */
  in = pattern_file(FILE_SIZE);
  open_pair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  result_init(&r, -1);
  ASSERT_OK(auv_sendfile_start(loop, fds[0], in, 0, 0, on_sent, &req));
  auv_sendfile_set_data(req, &r);
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(0, r.calls);
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  ASSERT_OK(auv_sendfile_cancel(req));
  /* Never inside the call; a second cancel finds it finished. */
  ASSERT_EQ(0, r.calls);
  ASSERT_EQ(UV_EBUSY, auv_sendfile_cancel(req));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, r.calls);
  ASSERT_EQ(UV_ECANCELED, r.status);
  ASSERT(r.sent > 0 && r.sent < FILE_SIZE);
  ASSERT_EQ(r.sent, drain_fd(fds[1]));

  /* out_fd can be watched again: a stream sends the rest. */
  sink_init(loop, &k, fds[1], r.sent);
  result_init(&r, fds[0]);
  {
    uint64_t done = k.start;
    start(loop, &r, fds[0], in, (int64_t) done, FILE_SIZE - done);
    ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
    ASSERT_EQ(0, r.status);
    ASSERT_EQ(FILE_SIZE - done, r.sent);
    ASSERT_EQ(FILE_SIZE - done, k.received);
  }
  CLOSE_LOOP(loop);
  close_pair(fds);
  ASSERT_OK(close(in));
}


TEST_IMPL(sendfile_peer_gone) {
  struct sigaction ign;
  struct sigaction old;
  auv_loop_t* loop;
  result_t r;
  int fds[2];
  int in;

  /* sendfile(2) to a socket raises SIGPIPE when the peer is gone, as a
   * write to a pipe does: the program ignores it (Python does). */
  memset(&ign, 0, sizeof(ign));
  ign.sa_handler = SIG_IGN;
  ASSERT_OK(sigaction(SIGPIPE, &ign, &old));
  in = pattern_file(FILE_SIZE);
  open_pair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  result_init(&r, -1);
  start(loop, &r, fds[0], in, 0, 0);
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_OK(close(fds[1]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, r.calls);
  ASSERT(r.status == UV_EPIPE || r.status == UV_ECONNRESET);
  ASSERT(r.sent > 0 && r.sent < FILE_SIZE);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(in));
  ASSERT_OK(sigaction(SIGPIPE, &old, NULL));
}


TEST_IMPL(sendfile_einval) {
  auv_loop_t* loop;
  auv_sendfile_t* req;
  auv_stream_t* stream;
  int fds[2];
  int in;

  in = pattern_file(10);
  open_pair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_EQ(UV_EINVAL, auv_sendfile_start(NULL, fds[0], in, 0, 0, on_sent, &req));
  ASSERT(req == NULL);
  ASSERT_EQ(UV_EINVAL, auv_sendfile_start(loop, -1, in, 0, 0, on_sent, &req));
  ASSERT_EQ(UV_EINVAL, auv_sendfile_start(loop, fds[0], -1, 0, 0, on_sent, &req));
  ASSERT_EQ(UV_EINVAL, auv_sendfile_start(loop, fds[0], in, 0, 0, NULL, &req));
  ASSERT_EQ(UV_EINVAL, auv_sendfile_start(loop, fds[0], in, 0, 0, on_sent, NULL));
  ASSERT_EQ(UV_EBADF, auv_sendfile_start(loop, fds[0], 1000, 0, 0, on_sent, &req));
  ASSERT_EQ(UV_EBADF, auv_sendfile_start(loop, 1000, in, 0, 0, on_sent, &req));
  /* epoll cannot wait for a regular file. */
  ASSERT_EQ(UV_EPERM, auv_sendfile_start(loop, in, in, 0, 0, on_sent, &req));
  ASSERT(req == NULL);
  ASSERT_EQ(UV_EINVAL, auv_sendfile_cancel(NULL));
  ASSERT(auv_sendfile_get_data(NULL) == NULL);
  auv_sendfile_set_data(NULL, NULL);
  /* out_fd already watched. */
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));
  ASSERT_OK(auv_stream_read_start(stream, sink_alloc, sink_read));
  ASSERT_EQ(UV_EEXIST, auv_sendfile_start(loop, fds[0], in, 0, 0, on_sent, &req));
  auv_stream_close(stream, NULL);
  CLOSE_LOOP(loop);
  close_pair(fds);
  ASSERT_OK(close(in));
}


/* --- auv_sendfile_start_ex(): flags -------------------------------------- */

static auv_sendfile_t* start_ex(auv_loop_t* loop, result_t* r, int out_fd,
                                int in_fd, int64_t offset, uint64_t count,
                                unsigned int flags) {
  auv_sendfile_t* req;

  r->in_start = 1;
  ASSERT_OK(auv_sendfile_start_ex(loop, out_fd, in_fd, offset, count, flags,
                                  on_sent, &req));
  auv_sendfile_set_data(req, r);
  r->in_start = 0;
  ASSERT_EQ(0, r->calls);
  return req;
}


static int is_nonblocking(int fd) {
  int fl;

  fl = fcntl(fd, F_GETFL);
  ASSERT(fl != -1);
  return (fl & O_NONBLOCK) != 0;
}


TEST_IMPL(sendfile_start_ex) {
  auv_loop_t* loop;
  auv_sendfile_t* req;
  result_t r;
  sink_t k;
  int sfds[2];
  int pfds[2];
  int in;

  in = pattern_file(FILE_SIZE);
  ASSERT_OK(auv_loop_new(&loop));
  open_pair(sfds);
  ASSERT_EQ(UV_EINVAL, auv_sendfile_start_ex(loop, sfds[0], in, 0, 0, 4, on_sent, &req));
  ASSERT(req == NULL);
  ASSERT_EQ(UV_EINVAL, auv_sendfile_start_ex(NULL, sfds[0], in, 0, 0, 0, on_sent, &req));

  /* AUV_SENDFILE_NO_FALLBACK: a pipe as in_fd cannot be spliced, and the
   * request ends with sendfile(2)'s EINVAL, nothing sent or read. */
  ASSERT_OK(pipe2(pfds, O_CLOEXEC));
  ASSERT_EQ(5, write(pfds[1], "bytes", 5));
  result_init(&r, -1);
  start_ex(loop, &r, sfds[0], pfds[0], -1, 0, AUV_SENDFILE_NO_FALLBACK);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, r.calls);
  ASSERT_EQ(UV_EINVAL, r.status);
  ASSERT_EQ(0, r.sent);
  ASSERT_EQ(0, drain_fd(sfds[1]));
  ASSERT_OK(close(pfds[0]));
  ASSERT_OK(close(pfds[1]));
  close_pair(sfds);

  /* AUV_SENDFILE_RESTORE_BLOCKING: a blocking out_fd is non-blocking while
   * the request runs and blocking again by the callback. */
  open_pair(sfds);
  ASSERT(!is_nonblocking(sfds[0]));
  sink_init(loop, &k, sfds[1], 1000);
  result_init(&r, sfds[0]);
  start_ex(loop, &r, sfds[0], in, 1000, 500000, AUV_SENDFILE_RESTORE_BLOCKING);
  ASSERT(is_nonblocking(sfds[0]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(500000, r.sent);
  ASSERT_EQ(500000, k.received);
  ASSERT(!is_nonblocking(sfds[0]));
  close_pair(sfds);

  /* ... cancelled, inside auv_sendfile_cancel(): nobody reads, the
   * request waits with the socket full. */
  open_pair(sfds);
  result_init(&r, -1);
  req = start_ex(loop, &r, sfds[0], in, 0, 0,
                 AUV_SENDFILE_RESTORE_BLOCKING | AUV_SENDFILE_NO_FALLBACK);
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT(is_nonblocking(sfds[0]));
  ASSERT_OK(auv_sendfile_cancel(req));
  ASSERT(!is_nonblocking(sfds[0]));
  ASSERT_EQ(0, r.calls);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, r.calls);
  ASSERT_EQ(UV_ECANCELED, r.status);
  ASSERT(r.sent > 0 && r.sent < FILE_SIZE);
  ASSERT_EQ(r.sent, drain_fd(sfds[1]));
  close_pair(sfds);

  /* ... and a non-blocking out_fd stays so, as with flags 0. */
  open_pair(sfds);
  ASSERT_OK(fcntl(sfds[0], F_SETFL, fcntl(sfds[0], F_GETFL) | O_NONBLOCK));
  result_init(&r, -1);
  start_ex(loop, &r, sfds[0], in, 0, 1000, AUV_SENDFILE_RESTORE_BLOCKING);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, r.status);
  ASSERT_EQ(1000, r.sent);
  ASSERT(is_nonblocking(sfds[0]));
  close_pair(sfds);
  open_pair(sfds);
  result_init(&r, -1);
  start_ex(loop, &r, sfds[0], in, 0, 1000, 0);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1000, r.sent);
  ASSERT(is_nonblocking(sfds[0]));
  close_pair(sfds);

  CLOSE_LOOP(loop);
  ASSERT_OK(close(in));
}


/* --- auv_stream_sendfile(): on a stream's own writability --------------- */

typedef struct {
  result_t r;
  auv_stream_t* stream;
  int close_stream;    /* in the callback: close the stream, shut its fd */
} stream_result_t;


static void on_stream_sent(auv_sendfile_t* req, int status, uint64_t sent) {
  stream_result_t* sr;
  auv_buf_t buf;

  sr = auv_sendfile_get_data(req);
  ASSERT(!sr->r.in_start);
  ASSERT_EQ(sent, auv_sendfile_get_sent(req));
  sr->r.calls++;
  sr->r.status = status;
  sr->r.sent = sent;
  if (sr->close_stream) {
    /* The stream takes writes again: nothing queued, nothing sent. */
    buf.base = (char*) "";
    buf.len = 0;
    ASSERT_EQ(0, auv_stream_write(sr->stream, &buf, 1));
    ASSERT_OK(shutdown(auv_stream_get_fd(sr->stream), SHUT_WR));
    auv_stream_close(sr->stream, NULL);
  }
}


static auv_sendfile_t* stream_start(stream_result_t* sr, auv_stream_t* stream,
                                    int in_fd, int64_t offset, uint64_t count,
                                    unsigned int flags) {
  auv_sendfile_t* req;

  memset(sr, 0, sizeof(*sr));
  sr->r.status = 1;
  sr->stream = stream;
  sr->close_stream = 1;
  sr->r.in_start = 1;
  ASSERT_OK(auv_stream_sendfile(stream, in_fd, offset, count, flags,
                                on_stream_sent, &req));
  auv_sendfile_set_data(req, sr);
  sr->r.in_start = 0;
  ASSERT_EQ(0, sr->r.calls);
  return req;
}


TEST_IMPL(sendfile_stream) {
  stream_result_t sr;
  auv_loop_t* loop;
  auv_stream_t* stream;
  auv_buf_t buf;
  sink_t k;
  int fds[2];
  int in;

  in = pattern_file(FILE_SIZE);
  ASSERT_OK(auv_loop_new(&loop));

  /* Many times what the socket holds, from an offset to the end. */
  open_pair(fds);
  sink_init(loop, &k, fds[1], 12345);
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));
  stream_start(&sr, stream, in, 12345, 0, AUV_SENDFILE_NO_FALLBACK);
  /* No write, no second request, no waiter while it runs. */
  buf.base = (char*) "x";
  buf.len = 1;
  ASSERT_EQ(UV_EBUSY, auv_stream_write(stream, &buf, 1));
  ASSERT_EQ(UV_EBUSY, auv_stream_wait_writable(stream, NULL));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, sr.r.calls);
  ASSERT_EQ(0, sr.r.status);
  ASSERT_EQ(FILE_SIZE - 12345, sr.r.sent);
  ASSERT_EQ(FILE_SIZE - 12345, k.received);
  ASSERT_EQ(1, k.eof);
  ASSERT_EQ(0, lseek(in, 0, SEEK_CUR));  /* the position is untouched */
  close_pair(fds);

  /* A count. */
  open_pair(fds);
  sink_init(loop, &k, fds[1], 7);
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));
  stream_start(&sr, stream, in, 7, 500000, 0);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, sr.r.status);
  ASSERT_EQ(500000, sr.r.sent);
  ASSERT_EQ(500000, k.received);
  close_pair(fds);

  CLOSE_LOOP(loop);
  ASSERT_OK(close(in));
}


/* A pair the kernel cannot splice (from a pipe): with
 * AUV_SENDFILE_NO_FALLBACK the request fails with sendfile(2)'s error and
 * nothing sent (asyncio then falls back through the transport); without
 * it, the request copies. */
TEST_IMPL(sendfile_stream_no_fallback) {
  stream_result_t sr;
  auv_loop_t* loop;
  auv_stream_t* stream;
  sink_t k;
  char block[1000];
  int fds[2];
  int p[2];
  size_t i;

  for (i = 0; i < sizeof(block); i++)
    block[i] = (char) pattern(i);
  ASSERT_OK(auv_loop_new(&loop));
  ASSERT_OK(pipe(p));
  ASSERT_EQ((ssize_t) sizeof(block), write(p[1], block, sizeof(block)));

  open_pair(fds);
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));
  stream_start(&sr, stream, p[0], -1, sizeof(block), AUV_SENDFILE_NO_FALLBACK);
  sr.close_stream = 0;
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, sr.r.calls);
  ASSERT_EQ(UV_EINVAL, sr.r.status);
  ASSERT_EQ(0, sr.r.sent);
  auv_stream_close(stream, NULL);
  close_pair(fds);

  open_pair(fds);
  sink_init(loop, &k, fds[1], 0);
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));
  stream_start(&sr, stream, p[0], -1, sizeof(block), 0);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, sr.r.status);
  ASSERT_EQ(sizeof(block), sr.r.sent);
  ASSERT_EQ(sizeof(block), k.received);
  close_pair(fds);

  CLOSE_LOOP(loop);
  ASSERT_OK(close(p[0]));
  ASSERT_OK(close(p[1]));
}


/* Cancelled, or the stream closed under it: cb reports UV_ECANCELED and
 * what went out, on a later step, never inside the call.  A stream with
 * bytes queued refuses a request. */
TEST_IMPL(sendfile_stream_cancel_close_busy) {
  static char big[1 << 20];
  stream_result_t sr;
  auv_loop_t* loop;
  auv_stream_t* stream;
  auv_sendfile_t* req;
  auv_buf_t buf;
  int fds[2];
  int in;

  in = pattern_file(FILE_SIZE);
  ASSERT_OK(auv_loop_new(&loop));
  open_pair(fds);
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));

  /* Nobody reads: the socket fills, the request waits. */
  req = stream_start(&sr, stream, in, 0, 0, 0);
  sr.close_stream = 0;
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_NOWAIT));
  ASSERT_EQ(0, sr.r.calls);
  ASSERT(auv_sendfile_get_sent(req) > 0);
  ASSERT_OK(auv_sendfile_cancel(req));
  ASSERT_EQ(0, sr.r.calls);
  ASSERT_EQ(UV_EBUSY, auv_sendfile_cancel(req));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, sr.r.calls);
  ASSERT_EQ(UV_ECANCELED, sr.r.status);
  ASSERT(sr.r.sent > 0);

  /* The stream, still full, queues a write: no request then. */
  buf.base = big;
  buf.len = sizeof(big);
  ASSERT(auv_stream_write(stream, &buf, 1) < (ssize_t) sizeof(big));
  ASSERT(auv_stream_write_queue_size(stream) > 0);
  ASSERT_EQ(UV_EBUSY, auv_stream_sendfile(stream, in, 0, 0, 0, on_stream_sent, &req));
  ASSERT(req == NULL);
  auv_stream_close(stream, NULL);
  close_pair(fds);

  /* Closing the stream cancels. */
  open_pair(fds);
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));
  stream_start(&sr, stream, in, 0, 0, 0);
  sr.close_stream = 0;
  auv_stream_close(stream, NULL);
  ASSERT_EQ(0, sr.r.calls);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, sr.r.calls);
  ASSERT_EQ(UV_ECANCELED, sr.r.status);
  ASSERT_EQ(0, sr.r.sent);

  ASSERT_EQ(UV_EINVAL, auv_stream_sendfile(NULL, in, 0, 0, 0, on_stream_sent, &req));
  ASSERT_OK(auv_stream_new(loop, fds[0], &stream));
  ASSERT_EQ(UV_EINVAL, auv_stream_sendfile(stream, in, 0, 0, 8, on_stream_sent, &req));
  ASSERT_EQ(UV_EINVAL, auv_stream_sendfile(stream, in, 0, 0, 0, NULL, &req));
  ASSERT_EQ(UV_EBADF, auv_stream_sendfile(stream, 1000000, 0, 0, 0, on_stream_sent, &req));
  ASSERT_EQ(0, auv_sendfile_get_sent(NULL));
  auv_stream_close(stream, NULL);
  CLOSE_LOOP(loop);
  close_pair(fds);
  ASSERT_OK(close(in));
}

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "copy.h"
#include "runner.h"

#define BIG (8u << 20)

/* One end of a connection under test. */
typedef struct {
  auv_stream_t* stream;
  char buf[65536];
  size_t received;      /* bytes read so far */
  size_t expect;        /* close once this many are read (0: never) */
  int check_pattern;    /* every byte read must be pattern(offset) */
  int echo;             /* write back what is read */
  int allocs;
  int reads;            /* read_cb calls but those with nread 0 */
  int zero_reads;
  int eof;
  int read_err;
  int drains;
  int drain_status;
  int shutdowns;
  int shutdown_status;
  int closed;
  int order;            /* drain before shutdown: drain 1, shutdown 2 */
  int close_in_read;
  int close_in_drain;
  int close_in_alloc;
  int stop_in_read;
  int stop_in_alloc;
  int close_on_zero;
  int zero_alloc;
} peer_t;


static unsigned char pattern(size_t i) {
  /* 251 is prime: no period lines up with chunk or buffer sizes. */
  return (unsigned char) (i % 251 + (i / 65536));
}


static void fill_pattern(char* p, size_t offset, size_t len) {
  size_t i;

  for (i = 0; i < len; i++)
    p[i] = (char) pattern(offset + i);
}


static void on_closed(void* data) {
  ((peer_t*) data)->closed++;
}


static void close_peer(peer_t* p) {
  auv_stream_close(p->stream, on_closed);
}


static void on_alloc(auv_stream_t* stream, size_t suggested,
                     char** base, size_t* len) {
  peer_t* p;

  p = auv_stream_get_data(stream);
  ASSERT_EQ(65536, suggested);
  p->allocs++;
  if (p->close_in_alloc) {
    close_peer(p);
    return;
  }
  if (p->stop_in_alloc)
    ASSERT_OK(auv_stream_read_stop(stream));
  *base = p->buf;
  *len = p->zero_alloc ? 0 : sizeof(p->buf);
}


static void on_read(auv_stream_t* stream, ssize_t nread, char* base) {
  peer_t* p;
  auv_buf_t b;
  ssize_t i;

  p = auv_stream_get_data(stream);
  ASSERT(!p->closed);
  /* Every buffer alloc_cb gave comes back here. */
  ASSERT(base == p->buf);
  if (nread == 0) {
    p->zero_reads++;
    if (p->close_on_zero)
      close_peer(p);
    return;
  }
  p->reads++;
  if (nread < 0) {
    ASSERT(!auv_stream_is_reading(stream));
    if (nread == UV_EOF)
      p->eof++;
    else
      p->read_err = (int) nread;
    return;
  }
  if (p->check_pattern)
    for (i = 0; i < nread; i++)
      ASSERT_EQ(pattern(p->received + i), (unsigned char) base[i]);
  p->received += nread;
  if (p->echo) {
    b.base = base;
    b.len = nread;
    ASSERT(auv_stream_write(stream, &b, 1) >= 0);
  }
  if (p->stop_in_read)
    ASSERT_OK(auv_stream_read_stop(stream));
  if (p->close_in_read || (p->expect != 0 && p->received == p->expect))
    close_peer(p);
}


static void on_drain(auv_stream_t* stream, int status) {
  peer_t* p;

  p = auv_stream_get_data(stream);
  ASSERT(!p->closed);
  p->drains++;
  p->drain_status = status;
  if (p->order == 0)
    p->order = 1;
  if (status == 0)
    ASSERT_EQ(0, auv_stream_write_queue_size(stream));
  if (p->close_in_drain)
    close_peer(p);
}


static void on_shutdown(auv_stream_t* stream, int status) {
  peer_t* p;

  p = auv_stream_get_data(stream);
  ASSERT(!p->closed);
  p->shutdowns++;
  p->shutdown_status = status;
  p->order = p->order == 1 ? 2 : -1;
}


static void peer_init(auv_loop_t* loop, peer_t* p, int fd) {
  memset(p, 0, sizeof(*p));
  ASSERT_OK(auv_stream_new(loop, fd, &p->stream));
  auv_stream_set_data(p->stream, p);
  auv_stream_set_drain_cb(p->stream, on_drain);
}


static void make_socketpair(int fds[2]) {
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
}


static void close_fds(int fds[2]) {
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(fds[1]));
}


/* Writes 8 MiB of the pattern at once, so that most of it is queued. */
static size_t write_big(peer_t* p) {
  auv_buf_t b;
  char* data;
  ssize_t n;

  data = malloc(BIG);
  ASSERT(data != NULL);
  fill_pattern(data, 0, BIG);
  b.base = data;
  b.len = BIG;
  n = auv_stream_write(p->stream, &b, 1);
  ASSERT(n >= 0);
  ASSERT((size_t) n < BIG);
  ASSERT_EQ(BIG - (size_t) n, auv_stream_write_queue_size(p->stream));
  /* The queue holds a copy: the caller's memory is free at once. */
  memset(data, 0, BIG);
  free(data);
  return BIG;
}


TEST_IMPL(stream_echo_socketpair) {
  auv_loop_t* loop;
  peer_t client;
  peer_t server;
  auv_buf_t bufs[3];
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &client, fds[0]);
  peer_init(loop, &server, fds[1]);
  ASSERT_EQ(fds[0], auv_stream_get_fd(client.stream));
  ASSERT(auv_stream_get_loop(client.stream) == loop);
  /* The stream made the fd non-blocking. */
  ASSERT(fcntl(fds[0], F_GETFL) & O_NONBLOCK);

  server.echo = 1;
  ASSERT_OK(auv_stream_read_start(server.stream, on_alloc, on_read));
  ASSERT(auv_stream_is_reading(server.stream));
  client.expect = 11;
  ASSERT_OK(auv_stream_read_start(client.stream, on_alloc, on_read));

  /* Several buffers in one write, one of them empty. */
  bufs[0].base = "hello";
  bufs[0].len = 5;
  bufs[1].base = "";
  bufs[1].len = 0;
  bufs[2].base = " world";
  bufs[2].len = 6;
  ASSERT_EQ(11, auv_stream_write(client.stream, bufs, 3));
  ASSERT_EQ(0, auv_stream_write_queue_size(client.stream));
  ASSERT_EQ(0, auv_stream_write(client.stream, bufs, 0));

  /* The client closes itself after the echo. */
  while (!client.closed)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_EQ(11, client.received);
  ASSERT_OK(memcmp(client.buf, "hello world", 11));
  /* Nothing was queued, so no drain callback. */
  ASSERT_EQ(0, client.drains);
  ASSERT_EQ(0, server.drains);
  ASSERT_EQ(11, server.received);

  /* The client's fd is the test's again: its half-close reaches the
   * server as EOF. */
  ASSERT_OK(shutdown(fds[0], SHUT_WR));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, server.eof);
  ASSERT(!auv_stream_is_reading(server.stream));

  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  close_peer(&server);
  ASSERT_EQ(0, server.closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, server.closed);
  close_fds(fds);
}


TEST_IMPL(stream_pipe) {
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  auv_buf_t b;
  int fds[2];

  ASSERT_OK(pipe(fds));
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &reader, fds[0]);
  peer_init(loop, &writer, fds[1]);
  reader.check_pattern = 1;
  ASSERT_OK(auv_stream_read_start(reader.stream, on_alloc, on_read));

  /* A pipe holds 64 KiB: the rest goes through the queue, with writev(). */
  write_big(&writer);
  ASSERT_OK(auv_stream_shutdown(writer.stream, on_shutdown));
  b.base = "x";
  b.len = 1;
  ASSERT_EQ(UV_EPIPE, auv_stream_write(writer.stream, &b, 1));
  while (writer.shutdowns == 0)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_EQ(1, writer.drains);
  ASSERT_EQ(0, writer.drain_status);
  ASSERT_EQ(0, writer.shutdown_status);
  ASSERT_EQ(2, writer.order);
  /* No half-close on a pipe: the reader sees EOF once the end is closed. */
  close_peer(&writer);
  while (!writer.closed)
    auv_loop_run(loop, AUV_RUN_ONCE);
  ASSERT_OK(close(fds[1]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(BIG, reader.received);
  ASSERT_EQ(1, reader.eof);
  close_peer(&reader);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
}


/* Writes the first BIG / 2 bytes of the pattern, more than the socket
 * takes: what is written next goes into the queue. */
static void fill_socket(peer_t* writer, const char* data) {
  auv_buf_t buf;

  buf.base = data;
  buf.len = BIG / 2;
  ASSERT(auv_stream_write(writer->stream, &buf, 1) < (ssize_t) (BIG / 2));
  ASSERT(auv_stream_write_queue_size(writer->stream) > 0);
}


/* The reader reads all total bytes, each pattern(offset); the writer's
 * queue drains once. */
static void read_pattern(auv_loop_t* loop, peer_t* writer, peer_t* reader,
                         size_t total) {
  reader->check_pattern = 1;
  reader->expect = total;
  ASSERT_OK(auv_stream_read_start(reader->stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(total, reader->received);
  ASSERT_EQ(1, reader->closed);
  ASSERT_EQ(1, writer->drains);
  ASSERT_EQ(0, writer->drain_status);
  ASSERT_EQ(0, auv_stream_write_queue_size(writer->stream));
}


TEST_IMPL(stream_write_queue) {
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  auv_buf_t bufs[3];
  char* data;
  size_t off;
  size_t len;
  int fds[2];
  int i;

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &writer, fds[0]);
  peer_init(loop, &reader, fds[1]);

  /* Half the data at once (most of it queued), then many small writes of
   * three buffers each, which go behind it: the reader must get every
   * byte, in order. */
  data = malloc(BIG);
  ASSERT(data != NULL);
  fill_pattern(data, 0, BIG);
  fill_socket(&writer, data);
  off = BIG / 2;
  for (i = 0; off < BIG; i++) {
    len = 1 + (size_t) i * 7 % 3000;
    if (len > BIG - off)
      len = BIG - off;
    bufs[0].base = data + off;
    bufs[0].len = len / 2;
    bufs[1].base = data + off + len / 2;
    bufs[1].len = 0;
    bufs[2].base = data + off + len / 2;
    bufs[2].len = len - len / 2;
    /* Queued behind the rest: nothing goes out at once. */
    ASSERT_EQ(0, auv_stream_write(writer.stream, bufs, 3));
    off += len;
  }
  ASSERT(auv_stream_write_queue_size(writer.stream) > BIG / 2);
  free(data);

  read_pattern(loop, &writer, &reader, BIG);
  close_peer(&writer);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


/* Queued writes of every source alignment and of sizes around the copy's
 * piece size (2 KiB): the queue copies each one whole and in order. */
TEST_IMPL(stream_write_queue_alignments) {
  static const size_t lens[] = { 2047, 2048, 2049, 4095, 4097, 8191 };
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  auv_buf_t buf;
  char* data;
  size_t off;
  int fds[2];
  int i;

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &writer, fds[0]);
  peer_init(loop, &reader, fds[1]);

  data = aligned_alloc(64, BIG / 2);
  ASSERT(data != NULL);
  fill_pattern(data, 0, BIG / 2);
  fill_socket(&writer, data);
  off = BIG / 2;
  for (i = 0; i < 200; i++) {
    /* From i % 64 bytes past a 64-byte boundary: the queue copies at
     * once, so the same memory serves every write. */
    fill_pattern(data + i % 64, off, lens[i % 6]);
    buf.base = data + i % 64;
    buf.len = lens[i % 6];
    ASSERT_EQ(0, auv_stream_write(writer.stream, &buf, 1));
    off += buf.len;
  }
  free(data);

  read_pattern(loop, &writer, &reader, off);
  close_peer(&writer);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


/* The engine's copy (lib/copy.h) at every distance modulo 4 KiB that
 * matters to it, and on either side of its 2 KiB piece size. */
TEST_IMPL(copy_any_alignment) {
  static const size_t lens[] = { 1, 2048, 2049, 5000, 70001 };
  char* src;
  char* dst;
  size_t i;
  int rel;
  int k;

  src = aligned_alloc(4096, 80 * 1024);
  dst = aligned_alloc(4096, 80 * 1024 + 4096);
  ASSERT(src != NULL && dst != NULL);
  fill_pattern(src, 0, 80 * 1024);
  for (rel = 0; rel <= 64; rel++) {
    for (k = 0; k < 5; k++) {
      memset(dst, 0, lens[k] + rel + 1);
      auv__copy(dst + rel, src, lens[k]);
      ASSERT_EQ(0, memcmp(dst + rel, src, lens[k]));
      for (i = 0; i < (size_t) rel; i++)
        ASSERT_EQ(0, dst[i]);
      ASSERT_EQ(0, dst[rel + lens[k]]);
    }
  }
  free(src);
  free(dst);
}


#define NMANY 5000u

TEST_IMPL(stream_write_many_bufs) {
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  auv_buf_t* bufs;
  char* data;
  ssize_t n;
  size_t i;
  int fds[2];

  /* Several times more buffers than one writev() takes (IOV_MAX), and
   * more bytes than the socket holds: the cut falls in a later batch. */
  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &writer, fds[0]);
  peer_init(loop, &reader, fds[1]);
  data = malloc(NMANY * 100);
  bufs = malloc(NMANY * sizeof(*bufs));
  ASSERT(data != NULL && bufs != NULL);
  fill_pattern(data, 0, NMANY * 100);
  for (i = 0; i < NMANY; i++) {
    bufs[i].base = data + i * 100;
    bufs[i].len = 100;
  }
  /* The first 100 buffers go out whole, in one call. */
  n = auv_stream_write(writer.stream, bufs, 100);
  ASSERT_EQ(100 * 100, n);
  n = auv_stream_write(writer.stream, bufs + 100, NMANY - 100);
  ASSERT(n >= 0);
  ASSERT(auv_stream_write_queue_size(writer.stream) > 0);
  ASSERT_EQ((NMANY - 100) * 100,
            (size_t) n + auv_stream_write_queue_size(writer.stream));
  free(bufs);
  free(data);

  reader.check_pattern = 1;
  reader.expect = NMANY * 100;
  ASSERT_OK(auv_stream_read_start(reader.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, reader.closed);
  ASSERT_EQ(1, writer.drains);
  close_peer(&writer);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_eof) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(3, write(fds[1], "abc", 3));
  ASSERT_OK(shutdown(fds[1], SHUT_WR));
  /* Reading stops after EOF: the loop has nothing left to wait for. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(3, p.received);
  ASSERT_EQ(1, p.eof);
  ASSERT_EQ(2, p.reads);
  ASSERT(!auv_stream_is_reading(p.stream));
  close_peer(&p);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, p.closed);
  close_fds(fds);
}


TEST_IMPL(stream_shutdown_after_queue) {
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  auv_buf_t b;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &writer, fds[0]);
  peer_init(loop, &reader, fds[1]);
  write_big(&writer);
  ASSERT_OK(auv_stream_shutdown(writer.stream, on_shutdown));
  ASSERT_EQ(UV_ENOTCONN, auv_stream_shutdown(writer.stream, on_shutdown));
  /* Never inside the call. */
  ASSERT_EQ(0, writer.shutdowns);
  b.base = "x";
  b.len = 1;
  ASSERT_EQ(UV_EPIPE, auv_stream_write(writer.stream, &b, 1));

  reader.check_pattern = 1;
  ASSERT_OK(auv_stream_read_start(reader.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(BIG, reader.received);
  ASSERT_EQ(1, reader.eof);
  ASSERT_EQ(1, writer.drains);
  ASSERT_EQ(1, writer.shutdowns);
  ASSERT_EQ(0, writer.shutdown_status);
  ASSERT_EQ(2, writer.order);
  close_peer(&writer);
  close_peer(&reader);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_shutdown_empty) {
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &writer, fds[0]);
  peer_init(loop, &reader, fds[1]);
  ASSERT_OK(auv_stream_shutdown(writer.stream, on_shutdown));
  ASSERT_EQ(0, writer.shutdowns);
  /* Nothing was queued: the half-close is done at once, the callback
   * waits for the next iteration. */
  ASSERT_EQ(0, recv(fds[1], reader.buf, 1, MSG_DONTWAIT | MSG_PEEK));
  /* A pending shutdown keeps the loop alive. */
  ASSERT(auv_loop_alive(loop));
  ASSERT_OK(auv_stream_read_start(reader.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, writer.shutdowns);
  ASSERT_EQ(0, writer.shutdown_status);
  ASSERT_EQ(0, writer.drains);
  ASSERT_EQ(1, reader.eof);

  /* A shutdown without callback; closing before it is done drops it. */
  ASSERT_OK(auv_stream_shutdown(reader.stream, NULL));
  close_peer(&reader);
  close_peer(&writer);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, reader.closed);
  ASSERT_EQ(1, writer.closed);
  close_fds(fds);
}


TEST_IMPL(stream_write_peer_closed) {
  auv_loop_t* loop;
  peer_t p;
  auv_buf_t b;
  int fds[2];

  /* No SIGPIPE: the process would die of it here. */
  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  ASSERT_OK(close(fds[1]));
  b.base = "x";
  b.len = 1;
  ASSERT_EQ(UV_EPIPE, auv_stream_write(p.stream, &b, 1));
  ASSERT_EQ(0, auv_stream_write_queue_size(p.stream));
  ASSERT(!auv_loop_alive(loop));
  close_peer(&p);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
}


TEST_IMPL(stream_queue_peer_closed) {
  auv_loop_t* loop;
  peer_t p;
  auv_buf_t b;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  write_big(&p);
  ASSERT_OK(auv_stream_shutdown(p.stream, on_shutdown));
  /* The peer goes away without reading: writing the queue fails, the
   * queue is dropped, and the drain and shutdown callbacks hear of it. */
  ASSERT_OK(close(fds[1]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, p.drains);
  /* The peer dropped unread data: a reset. */
  ASSERT(p.drain_status == UV_ECONNRESET || p.drain_status == UV_EPIPE);
  ASSERT_EQ(1, p.shutdowns);
  ASSERT_EQ(p.drain_status, p.shutdown_status);
  ASSERT_EQ(2, p.order);
  ASSERT_EQ(0, auv_stream_write_queue_size(p.stream));
  b.base = "x";
  b.len = 1;
  ASSERT_EQ(UV_EPIPE, auv_stream_write(p.stream, &b, 1));
  close_peer(&p);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
}


TEST_IMPL(stream_close_in_read_cb) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];
  int i;

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  p.close_in_read = 1;
  /* Two buffers' worth: the read loop would go on without the close. */
  for (i = 0; i < 8; i++) {
    memset(p.buf, 'a' + i, sizeof(p.buf));
    ASSERT_EQ(sizeof(p.buf) / 4, write(fds[1], p.buf, sizeof(p.buf) / 4));
  }
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, p.reads);
  ASSERT_EQ(1, p.closed);

  close_fds(fds);

  /* Once auv_stream_close() has returned, the fd may be closed and its
   * number watched again, before the close callback. */
  make_socketpair(fds);
  peer_init(loop, &p, fds[0]);
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  close_peer(&p);
  close_fds(fds);
  make_socketpair(fds);
  peer_init(loop, &p, fds[0]);
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  close_peer(&p);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_close_in_alloc_cb) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  p.close_in_alloc = 1;
  ASSERT_EQ(1, write(fds[1], "x", 1));
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, p.reads);
  ASSERT_EQ(1, p.closed);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_close_in_drain_cb) {
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &writer, fds[0]);
  peer_init(loop, &reader, fds[1]);
  writer.close_in_drain = 1;
  write_big(&writer);
  /* The shutdown waits for the queue.  The half-close happens before the
   * drain callback, whose close drops only the shutdown's callback. */
  ASSERT_OK(auv_stream_shutdown(writer.stream, on_shutdown));
  reader.check_pattern = 1;
  ASSERT_OK(auv_stream_read_start(reader.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, writer.drains);
  ASSERT_EQ(0, writer.drain_status);
  ASSERT_EQ(1, writer.closed);
  ASSERT_EQ(0, writer.shutdowns);
  ASSERT_EQ(BIG, reader.received);
  ASSERT_EQ(1, reader.eof);
  close_peer(&reader);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_close_with_queue) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  write_big(&p);
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  /* What is queued is dropped; no drain callback. */
  close_peer(&p);
  ASSERT_EQ(UV_EINVAL, auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(UV_EINVAL, auv_stream_read_stop(p.stream));
  ASSERT_EQ(UV_EINVAL, auv_stream_shutdown(p.stream, NULL));
  ASSERT_EQ(UV_EINVAL, auv_stream_write(p.stream, NULL, 0));
  ASSERT_EQ(0, auv_stream_write_queue_size(p.stream));
  auv_stream_close(p.stream, on_closed);  /* closing twice does nothing */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, p.closed);
  ASSERT_EQ(0, p.drains);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_read_stop_in_read_cb) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  p.stop_in_read = 1;
  memset(p.buf, 'x', sizeof(p.buf));
  ASSERT_EQ(sizeof(p.buf), write(fds[1], p.buf, sizeof(p.buf)));
  ASSERT_EQ(10, write(fds[1], p.buf, 10));
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  /* The first read fills the buffer; the callback stops the stream, so
   * the rest waits although the read loop would take it. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, p.reads);
  ASSERT_EQ(sizeof(p.buf), p.received);
  ASSERT(!auv_stream_is_reading(p.stream));
  p.stop_in_read = 0;
  p.expect = sizeof(p.buf) + 10;
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(2, p.reads);
  ASSERT_EQ(1, p.closed);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_read_nothing_after_all) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  /* Exactly one buffer's worth: the full read makes the stream read again,
   * which finds nothing and gives the buffer back with nread 0. */
  memset(p.buf, 'x', sizeof(p.buf));
  ASSERT_EQ(sizeof(p.buf), write(fds[1], p.buf, sizeof(p.buf)));
  p.close_on_zero = 1;
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(sizeof(p.buf), p.received);
  ASSERT_EQ(1, p.reads);
  ASSERT_EQ(1, p.zero_reads);
  ASSERT_EQ(2, p.allocs);
  ASSERT_EQ(1, p.closed);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_stop_in_alloc_cb) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  p.stop_in_alloc = 1;
  ASSERT_EQ(1, write(fds[1], "x", 1));
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  /* Stopped from alloc_cb: nothing is read, the buffer comes back. */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, p.allocs);
  ASSERT_EQ(0, p.reads);
  ASSERT_EQ(1, p.zero_reads);
  ASSERT(!auv_stream_is_reading(p.stream));
  close_peer(&p);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


TEST_IMPL(stream_enobufs) {
  auv_loop_t* loop;
  peer_t p;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &p, fds[0]);
  p.zero_alloc = 1;
  ASSERT_EQ(1, write(fds[1], "x", 1));
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, p.reads);
  ASSERT_EQ(UV_ENOBUFS, p.read_err);
  ASSERT(!auv_stream_is_reading(p.stream));
  close_peer(&p);
  CLOSE_LOOP(loop);
  close_fds(fds);
}


static int writable_calls;
static size_t writable_queue;

static void on_writable(auv_stream_t* stream, int status) {
  ASSERT_EQ(0, status);
  writable_calls++;
  writable_queue = auv_stream_write_queue_size(stream);
}


TEST_IMPL(stream_wait_writable) {
  auv_loop_t* loop;
  peer_t writer;
  peer_t reader;
  int fds[2];

  make_socketpair(fds);
  ASSERT_OK(auv_loop_new(&loop));
  peer_init(loop, &writer, fds[0]);
  peer_init(loop, &reader, fds[1]);
  writable_calls = 0;

  /* Nothing queued, the socket writable: called from the loop, once. */
  ASSERT_OK(auv_stream_wait_writable(writer.stream, on_writable));
  ASSERT_EQ(UV_EBUSY, auv_stream_wait_writable(writer.stream, on_writable));
  ASSERT_EQ(0, writable_calls);
  auv_loop_run(loop, AUV_RUN_NOWAIT);
  ASSERT_EQ(1, writable_calls);
  auv_loop_run(loop, AUV_RUN_NOWAIT);
  ASSERT_EQ(1, writable_calls);

  /* Cancelled: never called. */
  ASSERT_OK(auv_stream_wait_writable(writer.stream, on_writable));
  ASSERT_OK(auv_stream_wait_writable(writer.stream, NULL));
  auv_loop_run(loop, AUV_RUN_NOWAIT);
  ASSERT_EQ(1, writable_calls);

  /* With a queue: only once the queue is written, all of it. */
  write_big(&writer);
  ASSERT_OK(auv_stream_wait_writable(writer.stream, on_writable));
  reader.check_pattern = 1;
  ASSERT_OK(auv_stream_read_start(reader.stream, on_alloc, on_read));
  while (writable_calls < 2)
    ASSERT(auv_loop_run(loop, AUV_RUN_ONCE) != 0 || writable_calls == 2);
  ASSERT_EQ(1, writer.drains);
  ASSERT_EQ(0, writable_queue);

  /* Closing cancels a wait without a call. */
  ASSERT_OK(auv_stream_wait_writable(writer.stream, on_writable));
  close_peer(&writer);
  ASSERT_EQ(UV_EINVAL, auv_stream_wait_writable(writer.stream, on_writable));
  close_peer(&reader);
  CLOSE_LOOP(loop);
  ASSERT_EQ(2, writable_calls);
  ASSERT_EQ(UV_EINVAL, auv_stream_wait_writable(NULL, on_writable));
  close_fds(fds);
}


TEST_IMPL(stream_einval) {
  auv_loop_t* loop;
  auv_stream_t* stream;
  peer_t p;
  FILE* f;
  int fds[2];

  ASSERT_OK(auv_loop_new(&loop));
  make_socketpair(fds);
  ASSERT_EQ(UV_EINVAL, auv_stream_new(NULL, fds[0], &stream));
  ASSERT_EQ(UV_EINVAL, auv_stream_new(loop, -1, &stream));
  ASSERT_EQ(UV_EINVAL, auv_stream_new(loop, fds[0], NULL));
  ASSERT_EQ(UV_EBADF, auv_stream_new(loop, 1000, &stream));
  ASSERT(stream == NULL);
  /* epoll cannot watch a regular file. */
  f = tmpfile();
  ASSERT(f != NULL);
  ASSERT_EQ(UV_EPERM, auv_stream_new(loop, fileno(f), &stream));
  ASSERT_OK(fclose(f));
  peer_init(loop, &p, fds[0]);
  ASSERT_EQ(UV_EINVAL, auv_stream_read_start(NULL, on_alloc, on_read));
  ASSERT_EQ(UV_EINVAL, auv_stream_read_start(p.stream, NULL, on_read));
  ASSERT_EQ(UV_EINVAL, auv_stream_read_start(p.stream, on_alloc, NULL));
  ASSERT_EQ(UV_EINVAL, auv_stream_read_stop(NULL));
  ASSERT_EQ(UV_EINVAL, auv_stream_write(NULL, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_stream_write(p.stream, NULL, 1));
  ASSERT_EQ(UV_EINVAL, auv_stream_shutdown(NULL, NULL));
  ASSERT_EQ(0, auv_stream_is_reading(NULL));
  ASSERT_EQ(0, auv_stream_write_queue_size(NULL));
  ASSERT_EQ(-1, auv_stream_get_fd(NULL));
  ASSERT(auv_stream_get_loop(NULL) == NULL);
  ASSERT(auv_stream_get_data(NULL) == NULL);
  auv_stream_set_data(NULL, NULL);
  auv_stream_set_drain_cb(NULL, NULL);
  auv_stream_close(NULL, NULL);
  /* One started watcher per fd and loop. */
  ASSERT_OK(auv_stream_read_start(p.stream, on_alloc, on_read));
  ASSERT_EQ(UV_EEXIST, auv_stream_new(loop, fds[0], &stream));
  close_peer(&p);
  CLOSE_LOOP(loop);
  close_fds(fds);
}

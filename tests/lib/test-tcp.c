#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

#define ECHO_SIZE (1u << 20)

typedef struct {
  auv_loop_t* loop;
  auv_listener_t* listener;
  auv_stream_t* server;
  auv_stream_t* client;
  char sbuf[65536];
  char cbuf[65536];
  size_t creceived;
  int listen_fd;
  int server_fd;
  int client_fd;
  int accepts;
  int connects;
  int connect_status;
  int in_connect_call;
  int server_eof;
  int closes;
  int drains;
  int drain_status;
  int read_status;
} tcp_ctx_t;


static unsigned char pattern(size_t i) {
  return (unsigned char) (i % 253);
}


static void loopback(struct sockaddr_in* sin, int port) {
  memset(sin, 0, sizeof(*sin));
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}


/* A listening socket on 127.0.0.1, port chosen by the system. */
static int listen_loopback(struct sockaddr_in* bound) {
  struct sockaddr_in sin;
  socklen_t len;
  int fd;

  loopback(&sin, 0);
  ASSERT_OK(auv_tcp_listen((struct sockaddr*) &sin, 16, AUV_TCP_REUSEADDR, &fd));
  ASSERT(fd >= 0);
  len = sizeof(*bound);
  ASSERT_OK(getsockname(fd, (struct sockaddr*) bound, &len));
  ASSERT(bound->sin_port != 0);
  return fd;
}


static void on_ctx_closed(void* data) {
  ((tcp_ctx_t*) data)->closes++;
}


static void on_server_closed(void* data) {
  tcp_ctx_t* ctx;

  ctx = data;
  ctx->closes++;
  ASSERT_OK(close(ctx->server_fd));
}


static void on_client_closed(void* data) {
  tcp_ctx_t* ctx;

  ctx = data;
  ctx->closes++;
  /* The server sees EOF once the client's fd is gone. */
  ASSERT_OK(close(ctx->client_fd));
}


static void on_server_alloc(auv_stream_t* stream, size_t suggested,
                            char** base, size_t* len) {
  tcp_ctx_t* ctx;

  ctx = auv_stream_get_data(stream);
  *base = ctx->sbuf;
  *len = sizeof(ctx->sbuf);
}


static void on_server_read(auv_stream_t* stream, ssize_t nread, char* base) {
  tcp_ctx_t* ctx;
  auv_buf_t b;

  ctx = auv_stream_get_data(stream);
  if (nread == UV_EOF) {
    ctx->server_eof++;
    auv_stream_close(stream, on_server_closed);
    return;
  }
  ASSERT(nread >= 0);
  if (nread == 0)
    return;  /* nothing after all: the buffer comes back */
  b.base = base;
  b.len = nread;
  ASSERT(auv_stream_write(stream, &b, 1) >= 0);
}


static void on_client_alloc(auv_stream_t* stream, size_t suggested,
                            char** base, size_t* len) {
  tcp_ctx_t* ctx;

  ctx = auv_stream_get_data(stream);
  *base = ctx->cbuf;
  *len = sizeof(ctx->cbuf);
}


static void on_client_read(auv_stream_t* stream, ssize_t nread, char* base) {
  tcp_ctx_t* ctx;
  ssize_t i;

  ctx = auv_stream_get_data(stream);
  if (nread < 0) {
    ctx->read_status = (int) nread;
    return;
  }
  if (nread == 0)
    return;
  for (i = 0; i < nread; i++)
    ASSERT_EQ(pattern(ctx->creceived + i), (unsigned char) base[i]);
  ctx->creceived += nread;
  if (ctx->creceived == ECHO_SIZE)
    auv_stream_close(stream, on_client_closed);
}


static void on_connection(auv_listener_t* listener, int status, int fd) {
  tcp_ctx_t* ctx;

  ctx = auv_listener_get_data(listener);
  ASSERT_OK(status);
  ASSERT(fd >= 0);
  ctx->accepts++;
  /* Accepted sockets come non-blocking and close-on-exec. */
  ASSERT(fcntl(fd, F_GETFL) & O_NONBLOCK);
  ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  ctx->server_fd = fd;
  ASSERT_OK(auv_stream_new(ctx->loop, fd, &ctx->server));
  auv_stream_set_data(ctx->server, ctx);
  ASSERT_OK(auv_stream_read_start(ctx->server, on_server_alloc, on_server_read));
  auv_listener_close(listener, on_ctx_closed);
}


static void on_echo_connect(auv_loop_t* loop, int status, int fd, void* data) {
  tcp_ctx_t* ctx;
  auv_buf_t b;
  char* out;
  size_t i;

  ctx = data;
  ASSERT(!ctx->in_connect_call);
  ASSERT(loop == ctx->loop);
  ASSERT_OK(status);
  ASSERT(fd >= 0);
  ctx->connects++;
  ctx->client_fd = fd;
  ASSERT_OK(auv_tcp_nodelay(fd, 1));
  ASSERT_OK(auv_tcp_keepalive(fd, 1, 60));
  ASSERT_OK(auv_tcp_keepalive(fd, 1, 0));
  ASSERT_OK(auv_tcp_keepalive(fd, 0, 0));

  ASSERT_OK(auv_stream_new(loop, fd, &ctx->client));
  auv_stream_set_data(ctx->client, ctx);
  ASSERT_OK(auv_stream_read_start(ctx->client, on_client_alloc, on_client_read));
  out = malloc(ECHO_SIZE);
  ASSERT(out != NULL);
  for (i = 0; i < ECHO_SIZE; i++)
    out[i] = (char) pattern(i);
  b.base = out;
  b.len = ECHO_SIZE;
  ASSERT(auv_stream_write(ctx->client, &b, 1) >= 0);
  free(out);
}


TEST_IMPL(tcp_echo) {
  struct sockaddr_in addr;
  tcp_ctx_t* ctx;
  int flag;
  socklen_t len;

  ctx = calloc(1, sizeof(*ctx));
  ASSERT(ctx != NULL);
  ASSERT_OK(auv_loop_new(&ctx->loop));
  ctx->listen_fd = listen_loopback(&addr);
  len = sizeof(flag);
  ASSERT_OK(getsockopt(ctx->listen_fd, SOL_SOCKET, SO_REUSEADDR, &flag, &len));
  ASSERT(flag != 0);

  ASSERT_OK(auv_listener_new(ctx->loop, ctx->listen_fd, &ctx->listener));
  ASSERT_EQ(ctx->listen_fd, auv_listener_get_fd(ctx->listener));
  auv_listener_set_data(ctx->listener, ctx);
  ASSERT_OK(auv_listener_start(ctx->listener, on_connection));

  ctx->in_connect_call = 1;
  ASSERT_OK(auv_tcp_connect(ctx->loop, (struct sockaddr*) &addr,
                            on_echo_connect, ctx));
  ctx->in_connect_call = 0;

  ASSERT_EQ(0, auv_loop_run(ctx->loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx->accepts);
  ASSERT_EQ(1, ctx->connects);
  ASSERT_EQ(ECHO_SIZE, ctx->creceived);
  ASSERT_EQ(1, ctx->server_eof);
  ASSERT_EQ(3, ctx->closes);  /* listener, client, server */
  CLOSE_LOOP(ctx->loop);
  ASSERT_OK(close(ctx->listen_fd));
  free(ctx);
}


static void on_refused(auv_loop_t* loop, int status, int fd, void* data) {
  tcp_ctx_t* ctx;

  ctx = data;
  ASSERT(!ctx->in_connect_call);
  ctx->connects++;
  ctx->connect_status = status;
  ASSERT_EQ(-1, fd);
}


TEST_IMPL(tcp_connect_refused) {
  struct sockaddr_in addr;
  socklen_t len;
  tcp_ctx_t ctx;
  int fd;

  /* A bound socket that does not listen holds a port nobody listens on. */
  memset(&ctx, 0, sizeof(ctx));
  fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(fd >= 0);
  loopback(&addr, 0);
  ASSERT_OK(bind(fd, (struct sockaddr*) &addr, sizeof(addr)));
  len = sizeof(addr);
  ASSERT_OK(getsockname(fd, (struct sockaddr*) &addr, &len));

  ASSERT_OK(auv_loop_new(&ctx.loop));
  ctx.in_connect_call = 1;
  ASSERT_OK(auv_tcp_connect(ctx.loop, (struct sockaddr*) &addr, on_refused, &ctx));
  ctx.in_connect_call = 0;
  /* A pending connect keeps the loop alive and open. */
  ASSERT(auv_loop_alive(ctx.loop));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(ctx.loop));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx.connects);
  ASSERT_EQ(UV_ECONNREFUSED, ctx.connect_status);
  CLOSE_LOOP(ctx.loop);
  ASSERT_OK(close(fd));
}


static void on_connect_keep(auv_loop_t* loop, int status, int fd, void* data) {
  tcp_ctx_t* ctx;

  ctx = data;
  ASSERT_OK(status);
  ctx->connects++;
  ctx->client_fd = fd;
}


static void on_connection_close(auv_listener_t* listener, int status, int fd) {
  tcp_ctx_t* ctx;

  ctx = auv_listener_get_data(listener);
  ASSERT_OK(status);
  ctx->accepts++;
  ASSERT_OK(close(fd));
  auv_listener_close(listener, on_ctx_closed);
}


TEST_IMPL(tcp_listener_close_in_cb) {
  struct sockaddr_in addr;
  tcp_ctx_t ctx;
  int fds[3];
  int i;

  /* Three connections wait in the backlog; the first accept closes the
   * listener, and no other accept follows. */
  memset(&ctx, 0, sizeof(ctx));
  ASSERT_OK(auv_loop_new(&ctx.loop));
  ctx.listen_fd = listen_loopback(&addr);
  for (i = 0; i < 3; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fds[i] >= 0);
    ASSERT_OK(connect(fds[i], (struct sockaddr*) &addr, sizeof(addr)));
  }
  ASSERT_OK(auv_listener_new(ctx.loop, ctx.listen_fd, &ctx.listener));
  auv_listener_set_data(ctx.listener, &ctx);
  ASSERT_OK(auv_listener_start(ctx.listener, on_connection_close));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(ctx.loop));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx.accepts);
  ASSERT_EQ(1, ctx.closes);
  CLOSE_LOOP(ctx.loop);
  for (i = 0; i < 3; i++)
    ASSERT_OK(close(fds[i]));
  ASSERT_OK(close(ctx.listen_fd));
}


TEST_IMPL(tcp_listener_stop) {
  struct sockaddr_in addr;
  tcp_ctx_t ctx;
  int fd;

  memset(&ctx, 0, sizeof(ctx));
  ASSERT_OK(auv_loop_new(&ctx.loop));
  ctx.listen_fd = listen_loopback(&addr);
  ASSERT_OK(auv_listener_new(ctx.loop, ctx.listen_fd, &ctx.listener));
  auv_listener_set_data(ctx.listener, &ctx);
  ASSERT(auv_listener_get_data(ctx.listener) == &ctx);
  ASSERT_OK(auv_listener_start(ctx.listener, on_connection_close));
  ASSERT_OK(auv_listener_stop(ctx.listener));
  /* Stopped: the connection waits in the backlog, the loop has nothing
   * to wait for. */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(fd >= 0);
  ASSERT_OK(connect(fd, (struct sockaddr*) &addr, sizeof(addr)));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(0, ctx.accepts);
  ASSERT_OK(auv_listener_start(ctx.listener, on_connection_close));
  ASSERT_EQ(0, auv_loop_run(ctx.loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx.accepts);
  ASSERT_EQ(1, ctx.closes);
  CLOSE_LOOP(ctx.loop);
  ASSERT_OK(close(fd));
  ASSERT_OK(close(ctx.listen_fd));
}


static void on_accept_keep(auv_listener_t* listener, int status, int fd) {
  tcp_ctx_t* ctx;

  ctx = auv_listener_get_data(listener);
  ASSERT_OK(status);
  ctx->accepts++;
  ctx->server_fd = fd;
  auv_listener_close(listener, on_ctx_closed);
}


static void on_reset_drain(auv_stream_t* stream, int status) {
  tcp_ctx_t* ctx;

  ctx = auv_stream_get_data(stream);
  ctx->drains++;
  ctx->drain_status = status;
}


/* A connected pair: ctx->client_fd and ctx->server_fd. */
static void connect_pair(tcp_ctx_t* ctx) {
  struct sockaddr_in addr;

  ctx->listen_fd = listen_loopback(&addr);
  ASSERT_OK(auv_listener_new(ctx->loop, ctx->listen_fd, &ctx->listener));
  auv_listener_set_data(ctx->listener, ctx);
  ASSERT_OK(auv_listener_start(ctx->listener, on_accept_keep));
  ASSERT_OK(auv_tcp_connect(ctx->loop, (struct sockaddr*) &addr,
                            on_connect_keep, ctx));
  ASSERT_EQ(0, auv_loop_run(ctx->loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx->accepts);
  ASSERT_EQ(1, ctx->connects);
  ASSERT_OK(close(ctx->listen_fd));
}


static void reset(int fd) {
  struct linger lg;

  lg.l_onoff = 1;
  lg.l_linger = 0;
  ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
  ASSERT_OK(close(fd));
}


TEST_IMPL(tcp_peer_reset_read) {
  tcp_ctx_t* ctx;
  auv_buf_t b;
  ssize_t n;

  ctx = calloc(1, sizeof(*ctx));
  ASSERT(ctx != NULL);
  ASSERT_OK(auv_loop_new(&ctx->loop));
  connect_pair(ctx);
  ASSERT_OK(auv_stream_new(ctx->loop, ctx->client_fd, &ctx->client));
  auv_stream_set_data(ctx->client, ctx);
  ASSERT_OK(auv_stream_read_start(ctx->client, on_client_alloc, on_client_read));
  reset(ctx->server_fd);
  /* The reader hears of the reset, then a write fails at once and queues
   * nothing; no SIGPIPE. */
  ASSERT_EQ(0, auv_loop_run(ctx->loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(UV_ECONNRESET, ctx->read_status);
  b.base = "x";
  b.len = 1;
  n = auv_stream_write(ctx->client, &b, 1);
  ASSERT(n == UV_EPIPE || n == UV_ECONNRESET);
  ASSERT_EQ(0, auv_stream_write_queue_size(ctx->client));
  auv_stream_close(ctx->client, on_client_closed);
  CLOSE_LOOP(ctx->loop);
  ASSERT_EQ(2, ctx->closes);  /* listener, client */
  free(ctx);
}


TEST_IMPL(tcp_peer_reset_queue) {
  tcp_ctx_t* ctx;
  auv_buf_t b;
  char* data;
  ssize_t n;

  ctx = calloc(1, sizeof(*ctx));
  ASSERT(ctx != NULL);
  ASSERT_OK(auv_loop_new(&ctx->loop));
  connect_pair(ctx);
  ASSERT_OK(auv_stream_new(ctx->loop, ctx->client_fd, &ctx->client));
  auv_stream_set_data(ctx->client, ctx);
  auv_stream_set_drain_cb(ctx->client, on_reset_drain);
  /* More than the socket buffers hold: the rest is queued when the peer
   * resets, and writing the queue fails. */
  data = calloc(1, 64u << 20);
  ASSERT(data != NULL);
  b.base = data;
  b.len = 64u << 20;
  n = auv_stream_write(ctx->client, &b, 1);
  free(data);
  ASSERT(n >= 0);
  ASSERT(auv_stream_write_queue_size(ctx->client) > 0);
  reset(ctx->server_fd);
  ASSERT_EQ(0, auv_loop_run(ctx->loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, ctx->drains);
  ASSERT(ctx->drain_status == UV_ECONNRESET || ctx->drain_status == UV_EPIPE);
  ASSERT_EQ(0, auv_stream_write_queue_size(ctx->client));
  b.base = "x";
  b.len = 1;
  ASSERT_EQ(UV_EPIPE, auv_stream_write(ctx->client, &b, 1));
  auv_stream_close(ctx->client, on_client_closed);
  CLOSE_LOOP(ctx->loop);
  ASSERT_EQ(2, ctx->closes);
  free(ctx);
}


TEST_IMPL(tcp_listen_errors) {
  struct sockaddr_in addr;
  struct sockaddr_in6 sin6;
  struct sockaddr sa;
  socklen_t len;
  int fd;
  int fd2;
  int fd3;

  fd = listen_loopback(&addr);
  /* Two listeners on one port need SO_REUSEPORT on both. */
  ASSERT_EQ(UV_EADDRINUSE, auv_tcp_listen((struct sockaddr*) &addr, 16,
                                          AUV_TCP_REUSEADDR, &fd2));
  ASSERT_EQ(-1, fd2);
  ASSERT_OK(close(fd));
  loopback(&addr, 0);
  ASSERT_OK(auv_tcp_listen((struct sockaddr*) &addr, 16, AUV_TCP_REUSEPORT, &fd));
  len = sizeof(addr);
  ASSERT_OK(getsockname(fd, (struct sockaddr*) &addr, &len));
  ASSERT_OK(auv_tcp_listen((struct sockaddr*) &addr, 16,
                           AUV_TCP_REUSEADDR | AUV_TCP_REUSEPORT, &fd2));
  ASSERT(fcntl(fd2, F_GETFL) & O_NONBLOCK);
  ASSERT(fcntl(fd2, F_GETFD) & FD_CLOEXEC);
  ASSERT_OK(close(fd));
  ASSERT_OK(close(fd2));

  loopback(&addr, 0);
  ASSERT_EQ(UV_EINVAL, auv_tcp_listen(NULL, 16, 0, &fd3));
  ASSERT_EQ(UV_EINVAL, auv_tcp_listen((struct sockaddr*) &addr, 16, 0, NULL));
  ASSERT_EQ(UV_EINVAL, auv_tcp_listen((struct sockaddr*) &addr, 16, 4, &fd3));
  memset(&sa, 0, sizeof(sa));
  sa.sa_family = AF_UNIX;
  ASSERT_EQ(UV_EINVAL, auv_tcp_listen(&sa, 16, 0, &fd3));

  /* IPv6 where the system has it. */
  memset(&sin6, 0, sizeof(sin6));
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_loopback;
  fd3 = -1;
  if (auv_tcp_listen((struct sockaddr*) &sin6, 16, 0, &fd3) == 0)
    ASSERT_OK(close(fd3));
}


static void never_connect(auv_loop_t* loop, int status, int fd, void* data) {
  ASSERT(0);
}


static void never_accept(auv_listener_t* listener, int status, int fd) {
  ASSERT(0);
}


TEST_IMPL(tcp_einval) {
  struct sockaddr_in addr;
  auv_listener_t* listener;
  struct sockaddr sa;
  auv_loop_t* loop;
  int fd;

  ASSERT_OK(auv_loop_new(&loop));
  loopback(&addr, 80);
  ASSERT_EQ(UV_EINVAL, auv_listener_new(NULL, 0, &listener));
  ASSERT_EQ(UV_EINVAL, auv_listener_new(loop, -1, &listener));
  ASSERT_EQ(UV_EINVAL, auv_listener_new(loop, 0, NULL));
  ASSERT_EQ(UV_EINVAL, auv_listener_start(NULL, never_accept));
  ASSERT_EQ(UV_EINVAL, auv_listener_stop(NULL));
  ASSERT_EQ(-1, auv_listener_get_fd(NULL));
  ASSERT(auv_listener_get_data(NULL) == NULL);
  auv_listener_set_data(NULL, NULL);
  auv_listener_close(NULL, NULL);

  ASSERT_EQ(UV_EINVAL, auv_tcp_connect(NULL, (struct sockaddr*) &addr,
                                       never_connect, NULL));
  ASSERT_EQ(UV_EINVAL, auv_tcp_connect(loop, NULL, never_connect, NULL));
  ASSERT_EQ(UV_EINVAL, auv_tcp_connect(loop, (struct sockaddr*) &addr,
                                       NULL, NULL));
  memset(&sa, 0, sizeof(sa));
  sa.sa_family = AF_UNIX;
  ASSERT_EQ(UV_EINVAL, auv_tcp_connect(loop, &sa, never_connect, NULL));
  ASSERT_EQ(UV_EINVAL, auv_tcp_nodelay(-1, 1));
  ASSERT_EQ(UV_EINVAL, auv_tcp_keepalive(-1, 1, 0));
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT(fd >= 0);
  /* Not TCP: the system's error comes back. */
  ASSERT(auv_tcp_nodelay(fd, 1) < 0);

  ASSERT_OK(auv_listener_new(loop, fd, &listener));
  ASSERT_EQ(UV_EINVAL, auv_listener_start(listener, NULL));
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_listener_close(listener, NULL);
  ASSERT_EQ(UV_EINVAL, auv_listener_start(listener, never_accept));
  ASSERT_EQ(UV_EINVAL, auv_listener_stop(listener));
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fd));
}

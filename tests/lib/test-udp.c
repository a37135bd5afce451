#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "runner.h"

#define MAXD 512

/* One datagram socket under test. */
typedef struct {
  auv_udp_t* udp;
  int fd;
  char buf[65536];
  int allocs;
  int datagrams;            /* recv_cb calls with nread >= 0 */
  int empty;                /* ... of which with nread 0 */
  int nothing;              /* recv_cb calls with UV_EAGAIN */
  int errors;
  int last_error;
  size_t lens[MAXD];
  unsigned char first[MAXD];  /* first byte of each datagram */
  int had_addr[MAXD];
  struct sockaddr_storage from;
  socklen_t fromlen;
  int echo;                 /* send each datagram back to its sender */
  int close_after;          /* close once this many datagrams came (0: never) */
  int zero_alloc;
  int sends_ok;             /* send_cb(0) */
  int send_errors;          /* send_cb(< 0) */
  int last_send_error;
  int closed;
} dpeer_t;


static void on_closed(void* data) {
  ((dpeer_t*) data)->closed++;
}


static void on_alloc(auv_udp_t* udp, size_t suggested, char** base, size_t* len) {
  dpeer_t* p;

  p = auv_udp_get_data(udp);
  ASSERT(suggested >= 65536);
  p->allocs++;
  *base = p->buf;
  *len = p->zero_alloc ? 0 : sizeof(p->buf);
}


static void on_recv(auv_udp_t* udp, ssize_t nread, char* base,
                    const struct sockaddr* addr, socklen_t addrlen) {
  dpeer_t* p;
  auv_buf_t b;

  p = auv_udp_get_data(udp);
  ASSERT(!p->closed);
  ASSERT(base == p->buf);
  if (nread == UV_EAGAIN) {
    ASSERT(addr == NULL);
    p->nothing++;
    return;
  }
  if (nread < 0) {
    ASSERT(addr == NULL);
    p->errors++;
    p->last_error = (int) nread;
    return;
  }
  ASSERT(p->datagrams < MAXD);
  ASSERT((addr == NULL) == (addrlen == 0));
  p->lens[p->datagrams] = nread;
  p->first[p->datagrams] = nread > 0 ? (unsigned char) base[0] : 0;
  p->had_addr[p->datagrams] = addr != NULL;
  p->datagrams++;
  if (nread == 0)
    p->empty++;
  if (addr != NULL) {
    memcpy(&p->from, addr, addrlen);
    p->fromlen = addrlen;
  }
  if (p->echo) {
    b.base = base;
    b.len = nread;
    ASSERT_EQ(1, auv_udp_send(udp, &b, 1, addr, addrlen));
  }
  if (p->close_after != 0 && p->datagrams == p->close_after)
    auv_udp_close(udp, on_closed);
}


static void on_send(auv_udp_t* udp, int status) {
  dpeer_t* p;

  p = auv_udp_get_data(udp);
  ASSERT(!p->closed);
  if (status == 0) {
    ASSERT_EQ(0, auv_udp_send_queue_size(udp));
    ASSERT_EQ(0, auv_udp_send_queue_count(udp));
    p->sends_ok++;
  } else {
    p->send_errors++;
    p->last_send_error = status;
  }
}


static void dpeer_init(auv_loop_t* loop, dpeer_t* p, int fd) {
  memset(p, 0, sizeof(*p));
  p->fd = fd;
  ASSERT_OK(auv_udp_new(loop, fd, &p->udp));
  auv_udp_set_data(p->udp, p);
  auv_udp_set_send_cb(p->udp, on_send);
}


/* A UDP socket bound to 127.0.0.1 on a free port; its address in *addr. */
static int udp_socket(struct sockaddr_in* addr) {
  socklen_t len;
  int fd;

  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  memset(addr, 0, sizeof(*addr));
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(fd, (struct sockaddr*) addr, sizeof(*addr)));
  len = sizeof(*addr);
  ASSERT_OK(getsockname(fd, (struct sockaddr*) addr, &len));
  return fd;
}


static void run_until(auv_loop_t* loop, const int* flag, int value) {
  while (*flag < value)
    ASSERT(auv_loop_run(loop, AUV_RUN_ONCE) >= 0);
}


TEST_IMPL(udp_echo_inet) {
  auv_loop_t* loop;
  struct sockaddr_in a_addr;
  struct sockaddr_in b_addr;
  struct sockaddr_in* from;
  dpeer_t a;
  dpeer_t b;
  auv_buf_t bufs[3];
  int fa;
  int fb;

  fa = udp_socket(&a_addr);
  fb = udp_socket(&b_addr);
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fa);
  dpeer_init(loop, &b, fb);
  ASSERT_EQ(fa, auv_udp_get_fd(a.udp));
  ASSERT(auv_udp_get_loop(a.udp) == loop);
  ASSERT(fcntl(fa, F_GETFL) & O_NONBLOCK);

  b.echo = 1;
  ASSERT_OK(auv_udp_recv_start(b.udp, on_alloc, on_recv));
  ASSERT(auv_udp_is_receiving(b.udp));
  a.close_after = 3;
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));

  /* One datagram from three buffers, an empty datagram, and a third. */
  bufs[0].base = "hello";
  bufs[0].len = 5;
  bufs[1].base = "";
  bufs[1].len = 0;
  bufs[2].base = " world";
  bufs[2].len = 6;
  ASSERT_EQ(1, auv_udp_send(a.udp, bufs, 3, (struct sockaddr*) &b_addr, sizeof(b_addr)));
  ASSERT_EQ(1, auv_udp_send(a.udp, NULL, 0, (struct sockaddr*) &b_addr, sizeof(b_addr)));
  ASSERT_EQ(1, auv_udp_send(a.udp, bufs + 2, 1, (struct sockaddr*) &b_addr, sizeof(b_addr)));
  ASSERT_EQ(0, auv_udp_send_queue_count(a.udp));

  run_until(loop, &a.closed, 1);
  ASSERT_EQ(3, a.datagrams);
  ASSERT_EQ(11, a.lens[0]);
  ASSERT_EQ(0, a.lens[1]);
  ASSERT_EQ(6, a.lens[2]);
  ASSERT_EQ(1, a.empty);
  ASSERT_EQ(3, b.datagrams);
  ASSERT_EQ(1, b.empty);
  /* Each side saw the other's address; the empty datagram had one too. */
  ASSERT(a.had_addr[1] && b.had_addr[1]);
  ASSERT_EQ(sizeof(struct sockaddr_in), b.fromlen);
  from = (struct sockaddr_in*) &b.from;
  ASSERT_EQ(AF_INET, from->sin_family);
  ASSERT_EQ(a_addr.sin_port, from->sin_port);
  from = (struct sockaddr_in*) &a.from;
  ASSERT_EQ(b_addr.sin_port, from->sin_port);
  /* Nothing was queued, so no send callback. */
  ASSERT_EQ(0, a.sends_ok);
  ASSERT_EQ(0, b.sends_ok);
  ASSERT_EQ(0, a.errors + b.errors);

  /* Receiving keeps the loop alive; closing lets it end. */
  ASSERT_EQ(UV_EBUSY, auv_loop_close(loop));
  auv_udp_close(b.udp, on_closed);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, b.closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fa));
  ASSERT_OK(close(fb));
}


TEST_IMPL(udp_inet6) {
  auv_loop_t* loop;
  struct sockaddr_in6 addr;
  socklen_t len;
  dpeer_t a;
  dpeer_t b;
  auv_buf_t buf;
  int fa;
  int fb;

  fa = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  fb = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT(fa >= 0 && fb >= 0);
  memset(&addr, 0, sizeof(addr));
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  if (bind(fb, (struct sockaddr*) &addr, sizeof(addr)) != 0) {
    /* No IPv6 on this machine: nothing to test. */
    ASSERT_EQ(EADDRNOTAVAIL, errno);
    ASSERT_OK(close(fa));
    ASSERT_OK(close(fb));
    return;
  }
  len = sizeof(addr);
  ASSERT_OK(getsockname(fb, (struct sockaddr*) &addr, &len));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fa);
  dpeer_init(loop, &b, fb);
  b.close_after = 1;
  ASSERT_OK(auv_udp_recv_start(b.udp, on_alloc, on_recv));
  buf.base = "six";
  buf.len = 3;
  ASSERT_EQ(1, auv_udp_send(a.udp, &buf, 1, (struct sockaddr*) &addr, sizeof(addr)));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, b.datagrams);
  ASSERT_EQ(3, b.lens[0]);
  ASSERT_EQ(sizeof(struct sockaddr_in6), b.fromlen);
  ASSERT_EQ(AF_INET6, b.from.ss_family);
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, a.closed);
  ASSERT_OK(close(fa));
  ASSERT_OK(close(fb));
}


/* Unnamed AF_UNIX peers of a message-preserving type: datagrams come
 * without an address, an empty one too. */
static void unix_pair_exchange(int type) {
  auv_loop_t* loop;
  dpeer_t a;
  dpeer_t b;
  auv_buf_t buf;
  int fds[2];

  ASSERT_OK(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fds[0]);
  dpeer_init(loop, &b, fds[1]);
  b.echo = 1;
  a.close_after = 2;
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));
  ASSERT_OK(auv_udp_recv_start(b.udp, on_alloc, on_recv));
  buf.base = "ping";
  buf.len = 4;
  ASSERT_EQ(1, auv_udp_send(a.udp, &buf, 1, NULL, 0));
  ASSERT_EQ(1, auv_udp_send(a.udp, NULL, 0, NULL, 0));
  run_until(loop, &a.closed, 1);
  ASSERT_EQ(2, a.datagrams);
  ASSERT_EQ(4, a.lens[0]);
  ASSERT_EQ(0, a.lens[1]);
  ASSERT_EQ(0, a.had_addr[0]);
  ASSERT_EQ(0, a.had_addr[1]);
  ASSERT_EQ(2, b.datagrams);
  ASSERT_EQ(1, b.empty);

  auv_udp_close(b.udp, on_closed);
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(fds[1]));
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, b.closed);
}


TEST_IMPL(udp_unix_socketpair) {
  unix_pair_exchange(SOCK_DGRAM);
}


/* SOCK_SEQPACKET keeps message boundaries too (asyncio takes it from 3.13). */
TEST_IMPL(udp_unix_seqpacket) {
  unix_pair_exchange(SOCK_SEQPACKET);
}


#define NQUEUE 200

TEST_IMPL(udp_send_queue) {
  auv_loop_t* loop;
  dpeer_t a;
  dpeer_t b;
  auv_buf_t buf;
  char data[1000];
  size_t queued_bytes;
  int sndbuf;
  int queued;
  int r;
  int i;

  /* A small send buffer: the socket soon takes no more, and the rest
   * waits in the queue, in order, until the reader makes room. */
  ASSERT_OK(auv_loop_new(&loop));
  {
    int fds[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
    sndbuf = 4096;
    ASSERT_OK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)));
    dpeer_init(loop, &a, fds[0]);
    dpeer_init(loop, &b, fds[1]);
  }
  queued = 0;
  queued_bytes = 0;
  for (i = 0; i < NQUEUE; i++) {
    memset(data, i, sizeof(data));
    buf.base = data;
    buf.len = 1 + i % sizeof(data);
    r = auv_udp_send(a.udp, &buf, 1, NULL, 0);
    ASSERT(r == 0 || r == 1);
    /* Once one is queued, every later one is queued too. */
    ASSERT(r == 0 || queued == 0);
    if (r == 0) {
      queued++;
      queued_bytes += buf.len;
    }
  }
  ASSERT(queued > 0);
  ASSERT_EQ((size_t) queued, auv_udp_send_queue_count(a.udp));
  ASSERT_EQ(queued_bytes, auv_udp_send_queue_size(a.udp));
  /* The queue holds copies. */
  memset(data, 0xff, sizeof(data));

  b.close_after = NQUEUE;
  ASSERT_OK(auv_udp_recv_start(b.udp, on_alloc, on_recv));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(NQUEUE, b.datagrams);
  for (i = 0; i < NQUEUE; i++) {
    ASSERT_EQ((size_t) (1 + i % sizeof(data)), b.lens[i]);
    ASSERT_EQ((unsigned char) i, b.first[i]);
  }
  ASSERT_EQ(1, a.sends_ok);
  ASSERT_EQ(0, a.send_errors);
  ASSERT_EQ(0, auv_udp_send_queue_count(a.udp));
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(a.fd));
  ASSERT_OK(close(b.fd));
}


TEST_IMPL(udp_queued_datagram_fails) {
  auv_loop_t* loop;
  dpeer_t a;
  auv_buf_t buf;
  char data[1000];
  int fds[2];
  int sndbuf;
  int queued;
  int r;

  ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
  sndbuf = 4096;
  ASSERT_OK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fds[0]);
  memset(data, 'q', sizeof(data));
  buf.base = data;
  buf.len = sizeof(data);
  queued = 0;
  while (queued < 5) {
    r = auv_udp_send(a.udp, &buf, 1, NULL, 0);
    ASSERT(r == 0 || r == 1);
    queued += r == 0;
  }
  /* The peer goes away: each queued datagram fails on its own, the send
   * callback hears of each, and then of the empty queue. */
  ASSERT_OK(close(fds[1]));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(5, a.send_errors);
  ASSERT(a.last_send_error == UV_ECONNREFUSED ||
         a.last_send_error == UV_ENOTCONN ||
         a.last_send_error == UV_ECONNRESET);
  ASSERT_EQ(1, a.sends_ok);
  ASSERT_EQ(0, auv_udp_send_queue_count(a.udp));
  /* A send at once meets the error and queues nothing. */
  r = auv_udp_send(a.udp, &buf, 1, NULL, 0);
  ASSERT(r < 0);
  ASSERT_EQ(0, auv_udp_send_queue_count(a.udp));
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
}


TEST_IMPL(udp_connect_refused) {
  auv_loop_t* loop;
  struct sockaddr_in addr;
  struct sockaddr_in dead;
  dpeer_t a;
  dpeer_t b;
  auv_buf_t buf;
  int fa;
  int fb;
  int fd;

  /* A port nobody listens on: bind it, note it, close it. */
  fd = udp_socket(&dead);
  ASSERT_OK(close(fd));
  fa = udp_socket(&addr);
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fa);
  ASSERT_OK(auv_udp_connect(a.udp, (struct sockaddr*) &dead, sizeof(dead)));
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));
  buf.base = "anyone?";
  buf.len = 7;
  ASSERT_EQ(1, auv_udp_send(a.udp, &buf, 1, NULL, 0));
  /* The ICMP port unreachable comes back as an error to recv_cb, and
   * receiving goes on (asyncio's error_received). */
  run_until(loop, &a.errors, 1);
  ASSERT_EQ(UV_ECONNREFUSED, a.last_error);
  ASSERT(auv_udp_is_receiving(a.udp));
  ASSERT_EQ(0, a.datagrams);
  /* It goes on working: once more. */
  ASSERT_EQ(1, auv_udp_send(a.udp, &buf, 1, NULL, 0));
  run_until(loop, &a.errors, 2);
  ASSERT_EQ(UV_ECONNREFUSED, a.last_error);

  /* Dissolve the association: a datagram without address has nowhere to
   * go, and one with an address goes there. */
  ASSERT_OK(auv_udp_connect(a.udp, NULL, 0));
  ASSERT_EQ(UV_EDESTADDRREQ, auv_udp_send(a.udp, &buf, 1, NULL, 0));
  fb = udp_socket(&addr);
  dpeer_init(loop, &b, fb);
  b.close_after = 1;
  ASSERT_OK(auv_udp_recv_start(b.udp, on_alloc, on_recv));
  ASSERT_EQ(1, auv_udp_send(a.udp, &buf, 1, (struct sockaddr*) &addr, sizeof(addr)));
  run_until(loop, &b.closed, 1);
  ASSERT_EQ(1, b.datagrams);
  ASSERT_EQ(7, b.lens[0]);
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, a.closed);
  ASSERT_OK(close(fa));
  ASSERT_OK(close(fb));
}


TEST_IMPL(udp_unix_peer_gone) {
  auv_loop_t* loop;
  dpeer_t a;
  auv_buf_t buf;
  int fds[2];

  /* A connected AF_UNIX datagram socket whose peer is closed: the send
   * fails at once and nothing is queued. */
  ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fds[0]);
  ASSERT_OK(close(fds[1]));
  buf.base = "x";
  buf.len = 1;
  ASSERT_EQ(UV_ECONNREFUSED, auv_udp_send(a.udp, &buf, 1, NULL, 0));
  ASSERT_EQ(0, auv_udp_send_queue_count(a.udp));
  ASSERT(!auv_loop_alive(loop));
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
}


TEST_IMPL(udp_close_in_recv_cb) {
  auv_loop_t* loop;
  dpeer_t a;
  int fds[2];
  int i;

  ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fds[0]);
  for (i = 0; i < 5; i++)
    ASSERT_EQ(3, send(fds[1], "abc", 3, 0));
  a.close_after = 2;
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(2, a.datagrams);
  ASSERT_EQ(1, a.closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(fds[1]));
}


TEST_IMPL(udp_recv_drained) {
  auv_loop_t* loop;
  dpeer_t a;
  int fds[2];
  int i;

  /* 40 datagrams: 32 in the first wake-up, 8 in the next, whose ninth
   * read finds nothing and gives the buffer back with UV_EAGAIN. */
  ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fds[0]);
  for (i = 0; i < 40; i++)
    ASSERT_EQ(1, send(fds[1], "d", 1, 0));
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(32, a.datagrams);
  ASSERT_EQ(0, a.nothing);
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(40, a.datagrams);
  ASSERT_EQ(1, a.nothing);
  ASSERT_EQ(41, a.allocs);
  ASSERT_OK(auv_udp_recv_stop(a.udp));
  ASSERT(!auv_udp_is_receiving(a.udp));
  ASSERT(!auv_loop_alive(loop));

  /* alloc_cb without memory: UV_ENOBUFS, and receiving stops. */
  ASSERT_EQ(1, send(fds[1], "e", 1, 0));
  a.zero_alloc = 1;
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, a.errors);
  ASSERT_EQ(UV_ENOBUFS, a.last_error);
  ASSERT(!auv_udp_is_receiving(a.udp));
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(fds[1]));
}


TEST_IMPL(udp_recv_one_at_a_time) {
  auv_loop_t* loop;
  dpeer_t a;
  int fds[2];
  int i;

  ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fds[0]);
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));

  /* The first wake-up reads on until EAGAIN and finds one datagram. */
  ASSERT_EQ(1, send(fds[1], "p", 1, 0));
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(1, a.datagrams);
  ASSERT_EQ(1, a.nothing);

  /* One datagram per wake-up: one recvmsg() each, but for every eighth
   * wake-up, which reads on to look for a burst. */
  for (i = 1; i <= 16; i++) {
    ASSERT_EQ(1, send(fds[1], "p", 1, 0));
    ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
    ASSERT_EQ(1 + i, a.datagrams);
    ASSERT_EQ(1 + i / 8, a.nothing);
  }

  /* A burst: one datagram per wake-up until the next probe, which takes
   * 32 at once and turns bursts on; the wake-up after it takes the rest
   * and, finding one, turns them off again.  Nothing is lost. */
  for (i = 0; i < 40; i++)
    ASSERT_EQ(1, send(fds[1], "b", 1, 0));
  for (i = 1; i <= 7; i++) {
    ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
    ASSERT_EQ(17 + i, a.datagrams);
  }
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(17 + 7 + 32, a.datagrams);
  ASSERT_EQ(3, a.nothing);
  ASSERT_EQ(1, auv_loop_run(loop, AUV_RUN_ONCE));
  ASSERT_EQ(17 + 40, a.datagrams);
  ASSERT_EQ(4, a.nothing);
  ASSERT_EQ(a.allocs, a.datagrams + a.nothing);

  ASSERT_OK(auv_udp_recv_stop(a.udp));
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(fds[1]));
}


TEST_IMPL(udp_close_with_queue) {
  auv_loop_t* loop;
  dpeer_t a;
  auv_buf_t buf;
  char data[1000];
  int fds[2];
  int sndbuf;

  ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
  sndbuf = 4096;
  ASSERT_OK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)));
  ASSERT_OK(auv_loop_new(&loop));
  dpeer_init(loop, &a, fds[0]);
  memset(data, 'z', sizeof(data));
  buf.base = data;
  buf.len = sizeof(data);
  while (auv_udp_send_queue_count(a.udp) < 3)
    ASSERT(auv_udp_send(a.udp, &buf, 1, NULL, 0) >= 0);
  /* Queued datagrams keep the loop alive; closing drops them. */
  ASSERT(auv_loop_alive(loop));
  auv_udp_close(a.udp, on_closed);
  ASSERT_EQ(UV_EINVAL, auv_udp_send(a.udp, &buf, 1, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_recv_start(a.udp, on_alloc, on_recv));
  ASSERT_EQ(UV_EINVAL, auv_udp_recv_stop(a.udp));
  ASSERT_EQ(UV_EINVAL, auv_udp_connect(a.udp, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_set_broadcast(a.udp, 1));
  ASSERT_EQ(0, auv_udp_send_queue_count(a.udp));
  auv_udp_close(a.udp, on_closed);  /* closing twice does nothing */
  ASSERT_EQ(0, auv_loop_run(loop, AUV_RUN_DEFAULT));
  ASSERT_EQ(1, a.closed);
  ASSERT_EQ(0, a.sends_ok + a.send_errors);
  CLOSE_LOOP(loop);
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(close(fds[1]));
}


TEST_IMPL(udp_einval) {
  auv_loop_t* loop;
  auv_udp_t* udp;
  struct sockaddr_in addr;
  dpeer_t a;
  auv_buf_t buf;
  socklen_t len;
  int sfds[2];
  int pfds[2];
  int on;
  int fd;

  ASSERT_OK(auv_loop_new(&loop));
  fd = udp_socket(&addr);
  ASSERT_EQ(UV_EINVAL, auv_udp_new(NULL, fd, &udp));
  ASSERT_EQ(UV_EINVAL, auv_udp_new(loop, -1, &udp));
  ASSERT_EQ(UV_EINVAL, auv_udp_new(loop, fd, NULL));
  ASSERT_EQ(UV_EBADF, auv_udp_new(loop, 1000, &udp));
  ASSERT(udp == NULL);
  /* Not a datagram socket. */
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sfds));
  ASSERT_EQ(UV_EINVAL, auv_udp_new(loop, sfds[0], &udp));
  ASSERT_OK(pipe(pfds));
  ASSERT_EQ(UV_ENOTSOCK, auv_udp_new(loop, pfds[0], &udp));

  dpeer_init(loop, &a, fd);
  ASSERT_EQ(UV_EINVAL, auv_udp_recv_start(NULL, on_alloc, on_recv));
  ASSERT_EQ(UV_EINVAL, auv_udp_recv_start(a.udp, NULL, on_recv));
  ASSERT_EQ(UV_EINVAL, auv_udp_recv_start(a.udp, on_alloc, NULL));
  ASSERT_EQ(UV_EINVAL, auv_udp_recv_stop(NULL));
  buf.base = "x";
  buf.len = 1;
  ASSERT_EQ(UV_EINVAL, auv_udp_send(NULL, &buf, 1, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_send(a.udp, NULL, 1, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_send(a.udp, &buf, 1, (struct sockaddr*) &addr, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_send(a.udp, &buf, 1, (struct sockaddr*) &addr, 100000));
  /* Not connected: a datagram needs an address. */
  ASSERT_EQ(UV_EDESTADDRREQ, auv_udp_send(a.udp, &buf, 1, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_connect(NULL, NULL, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_connect(a.udp, (struct sockaddr*) &addr, 0));
  ASSERT_EQ(UV_EINVAL, auv_udp_set_broadcast(NULL, 1));
  ASSERT_EQ(0, auv_udp_is_receiving(NULL));
  ASSERT_EQ(0, auv_udp_send_queue_size(NULL));
  ASSERT_EQ(0, auv_udp_send_queue_count(NULL));
  ASSERT_EQ(-1, auv_udp_get_fd(NULL));
  ASSERT(auv_udp_get_loop(NULL) == NULL);
  ASSERT(auv_udp_get_data(NULL) == NULL);
  auv_udp_set_data(NULL, NULL);
  auv_udp_set_send_cb(NULL, NULL);
  auv_udp_close(NULL, NULL);

  ASSERT_OK(auv_udp_set_broadcast(a.udp, 1));
  len = sizeof(on);
  ASSERT_OK(getsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, &len));
  ASSERT_EQ(1, on);
  ASSERT_OK(auv_udp_set_broadcast(a.udp, 0));
  ASSERT_OK(getsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, &len));
  ASSERT_EQ(0, on);

  /* One started watcher per fd and loop. */
  ASSERT_OK(auv_udp_recv_start(a.udp, on_alloc, on_recv));
  ASSERT_EQ(UV_EEXIST, auv_udp_new(loop, fd, &udp));
  auv_udp_close(a.udp, on_closed);
  CLOSE_LOOP(loop);
  ASSERT_EQ(1, a.closed);
  ASSERT_OK(close(fd));
  ASSERT_OK(close(sfds[0]));
  ASSERT_OK(close(sfds[1]));
  ASSERT_OK(close(pfds[0]));
  ASSERT_OK(close(pfds[1]));
}

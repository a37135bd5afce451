/* Datagram sockets on a caller's fd, on a uv_poll_t.
 *
 * Not libuv's uv_udp_t, which owns its socket and only knows AF_INET and
 * AF_INET6: here the caller (a Python socket object) owns the fd, of any
 * family.  A received datagram goes straight into the caller's memory with
 * recvmsg(), its sender's address on the stack.  A datagram sent while
 * nothing is queued goes out at once with sendmsg(); only one the socket
 * does not take (EAGAIN) is copied, with its address, into a FIFO queue
 * that writability drains.  Errors never stop the handle: asyncio reports
 * them to error_received() and goes on, and so do we.
 *
 * As in stream.c, user callbacks may close the handle: its memory lives
 * until libuv's close callback, so every path checks auv__udp_closing()
 * after calling out.
 */
#define _GNU_SOURCE  /* IOV_MAX */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "internal.h"

#ifndef IOV_MAX
# define IOV_MAX 1024
#endif

/* asyncio's max_size for datagrams: big enough for any UDP datagram and
 * for the usual AF_UNIX ones. */
#define AUV__DGRAM_SIZE (256 * 1024)
#define AUV__RECVS_PER_WAKEUP 32
/* While datagrams come one at a time, one wake-up in this many still reads
 * on until EAGAIN, to see a burst coming. */
#define AUV__RECV_PROBE_EVERY 8

enum {
  AUV__UDP_RECEIVING = 1
};

typedef struct auv__dgram_s auv__dgram_t;

/* A queued datagram: its bytes and where they go (addrlen 0: the peer of
 * the connected socket). */
struct auv__dgram_s {
  auv__dgram_t* next;
  size_t len;
  socklen_t addrlen;
  struct sockaddr_storage addr;
  char data[];
};

struct auv_udp_s {
  auv__io_t handle;           /* records its poll's I/O (internal.h) */
  auv_loop_t* loop;
  auv_udp_alloc_cb alloc_cb;
  auv_udp_recv_cb recv_cb;
  auv_udp_send_cb send_cb;
  auv_close_cb close_cb;
  void* data;
  auv__dgram_t* queue_head;
  auv__dgram_t* queue_tail;
  size_t queue_size;
  size_t queue_count;
  unsigned int flags;
  int events;          /* what the poll watches: UV_READABLE, UV_WRITABLE */
  int fd;
  unsigned char burst;   /* the last probe found datagrams waiting */
  unsigned char probe;   /* wake-ups since the last probe */
};


static void auv__udp_io(uv_poll_t* handle, int status, int events);


static inline int auv__udp_closing(const auv_udp_t* udp) {
  return uv_is_closing((const uv_handle_t*) &udp->handle);
}


/* Watch readability while receiving, writability while something is
 * queued; uv_poll_start() only when that changes. */
static int auv__udp_update(auv_udp_t* udp) {
  int events;

  if (auv__udp_closing(udp))
    return 0;
  events = 0;
  if (udp->flags & AUV__UDP_RECEIVING)
    events |= UV_READABLE;
  if (udp->queue_head != NULL)
    events |= UV_WRITABLE;
  return auv__io_update(&udp->handle, &udp->events, events, auv__udp_io);
}


static void auv__udp_queue_free(auv_udp_t* udp) {
  auv__dgram_t* d;

  while (udp->queue_head != NULL) {
    d = udp->queue_head;
    udp->queue_head = d->next;
    free(d);
  }
  udp->queue_tail = NULL;
  udp->queue_size = 0;
  udp->queue_count = 0;
}


static auv__dgram_t* auv__udp_queue_pop(auv_udp_t* udp) {
  auv__dgram_t* d;

  d = udp->queue_head;
  udp->queue_head = d->next;
  if (udp->queue_head == NULL)
    udp->queue_tail = NULL;
  udp->queue_size -= d->len;
  udp->queue_count--;
  return d;
}


/* One sendmsg(): 0 when sent, UV_EAGAIN when the socket has no room, or
 * another negative errno.  ENOBUFS (a full device queue) is a lack of
 * room too, as libuv treats it. */
static int auv__udp_sendmsg(int fd, const struct iovec* iov, size_t iovcnt,
                            const struct sockaddr* addr, socklen_t addrlen) {
  struct msghdr msg;
  ssize_t n;

  memset(&msg, 0, sizeof(msg));
  msg.msg_name = (void*) addr;
  msg.msg_namelen = addr == NULL ? 0 : addrlen;
  msg.msg_iov = (struct iovec*) iov;
  msg.msg_iovlen = iovcnt;
  do
    n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n >= 0)
    return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
    return UV_EAGAIN;
  return -errno;
}


static void auv__udp_flush(auv_udp_t* udp) {
  struct iovec iov;
  auv__dgram_t* d;
  int err;

  while (udp->queue_head != NULL) {
    d = udp->queue_head;
    iov.iov_base = d->data;
    iov.iov_len = d->len;
    err = auv__udp_sendmsg(udp->fd, &iov, 1,
                           d->addrlen == 0 ? NULL : (struct sockaddr*) &d->addr,
                           d->addrlen);
    if (err == UV_EAGAIN)
      return;
    free(auv__udp_queue_pop(udp));
    if (err != 0) {
      /* That datagram is lost; the others still go (error_received). */
      if (udp->send_cb != NULL)
        udp->send_cb(udp, err);
      if (auv__udp_closing(udp))
        return;
    }
  }
  if (udp->send_cb != NULL)
    udp->send_cb(udp, 0);
}


/* Receive on a readable socket.  Reading until EAGAIN costs one fruitless
 * recvmsg() per wake-up: for traffic that comes one datagram at a time (a
 * request and its answer) that is one system call in three.  So while the
 * probes find no burst, a wake-up reads one datagram (level-triggered
 * polling reports the socket again if more are waiting) and every
 * AUV__RECV_PROBE_EVERY-th reads on; a wake-up that finds two or more
 * waiting, or fills its 32, turns bursts on until one finds at most one. */
static void auv__udp_recv(auv_udp_t* udp) {
  struct sockaddr_storage addr;
  struct msghdr msg;
  struct iovec iov;
  char* base;
  size_t len;
  ssize_t n;
  int max;
  int i;

  max = 1;
  if (udp->burst || ++udp->probe >= AUV__RECV_PROBE_EVERY) {
    udp->probe = 0;
    max = AUV__RECVS_PER_WAKEUP;
  }
  for (i = 0; i < max; i++) {
    if (auv__udp_closing(udp) || !(udp->flags & AUV__UDP_RECEIVING))
      return;

    base = NULL;
    len = 0;
    udp->alloc_cb(udp, AUV__DGRAM_SIZE, &base, &len);
    if (auv__udp_closing(udp))
      return;
    if (base == NULL || len == 0) {
      if (udp->flags & AUV__UDP_RECEIVING) {
        udp->flags &= ~AUV__UDP_RECEIVING;
        udp->recv_cb(udp, UV_ENOBUFS, base, NULL, 0);
      }
      return;
    }
    /* Every buffer handed out comes back through recv_cb. */
    if (!(udp->flags & AUV__UDP_RECEIVING)) {
      udp->recv_cb(udp, UV_EAGAIN, base, NULL, 0);
      return;
    }

    memset(&msg, 0, sizeof(msg));
    msg.msg_name = &addr;
    msg.msg_namelen = sizeof(addr);
    iov.iov_base = base;
    iov.iov_len = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    do
      n = recvmsg(udp->fd, &msg, 0);
    while (n < 0 && errno == EINTR);

    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        udp->burst = i >= 2;
        udp->recv_cb(udp, UV_EAGAIN, base, NULL, 0);
      } else {
        /* Reported, and receiving goes on: wait for the next wake-up. */
        udp->recv_cb(udp, -errno, base, NULL, 0);
      }
      return;
    }
    /* MSG_TRUNC: the datagram was longer than the buffer and its end is
     * lost, as with recvfrom(2); n is what the buffer holds. */
    if (msg.msg_namelen == 0)
      udp->recv_cb(udp, n, base, NULL, 0);
    else
      udp->recv_cb(udp, n, base, (struct sockaddr*) &addr, msg.msg_namelen);
  }
  if (max > 1)
    udp->burst = 1;  /* 32 read, and maybe more waiting */
}


static void auv__udp_io(uv_poll_t* handle, int status, int events) {
  auv_udp_t* udp;

  udp = handle->data;
  auv__loop_unblock(udp->loop);

  if (status < 0) {
    /* POLLERR (an ICMP error on a connected socket): libuv stopped the
     * poll.  recvmsg() or sendmsg() meets the pending error and reports
     * it, then the poll is started again. */
    udp->events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }

  if ((events & UV_READABLE) && (udp->flags & AUV__UDP_RECEIVING)) {
    auv__udp_recv(udp);
    if (auv__udp_closing(udp))
      return;
  }
  if ((events & UV_WRITABLE) && udp->queue_head != NULL) {
    auv__udp_flush(udp);
    if (auv__udp_closing(udp))
      return;
  }
  auv__udp_update(udp);
}


static void auv__udp_close_cb(uv_handle_t* handle) {
  auv_udp_t* udp;
  auv_close_cb close_cb;
  void* data;

  udp = handle->data;
  auv__loop_unblock(udp->loop);
  close_cb = udp->close_cb;
  data = udp->data;
  free(udp);
  if (close_cb != NULL)
    close_cb(data);
}


int auv_udp_new(auv_loop_t* loop, int fd, auv_udp_t** udp_out) {
  auv_udp_t* udp;
  socklen_t optlen;
  int type;
  int err;

  if (loop == NULL || udp_out == NULL || fd < 0)
    return UV_EINVAL;
  *udp_out = NULL;

  optlen = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) != 0)
    return -errno;  /* UV_ENOTSOCK, UV_EBADF */
  /* Message-preserving types: recvmsg() and sendmsg() keep boundaries. */
  if (type != SOCK_DGRAM && type != SOCK_SEQPACKET && type != SOCK_RAW)
    return UV_EINVAL;

  udp = calloc(1, sizeof(*udp));
  if (udp == NULL)
    return UV_ENOMEM;
  /* uv_poll_init() also sets O_NONBLOCK. */
  err = auv__io_init(loop, &udp->handle, fd);
  if (err != 0) {
    free(udp);
    return err;
  }
  udp->handle.poll.data = udp;
  udp->loop = loop;
  udp->fd = fd;
  udp->burst = 1;  /* until a wake-up finds datagrams coming one by one */
  *udp_out = udp;
  return 0;
}


int auv_udp_recv_start(auv_udp_t* udp,
                       auv_udp_alloc_cb alloc_cb,
                       auv_udp_recv_cb recv_cb) {
  int err;

  if (udp == NULL || alloc_cb == NULL || recv_cb == NULL ||
      auv__udp_closing(udp))
    return UV_EINVAL;
  udp->alloc_cb = alloc_cb;
  udp->recv_cb = recv_cb;
  udp->flags |= AUV__UDP_RECEIVING;
  err = auv__udp_update(udp);
  if (err != 0)
    udp->flags &= ~AUV__UDP_RECEIVING;
  return err;
}


int auv_udp_recv_stop(auv_udp_t* udp) {
  if (udp == NULL || auv__udp_closing(udp))
    return UV_EINVAL;
  udp->flags &= ~AUV__UDP_RECEIVING;
  return auv__udp_update(udp);
}


int auv_udp_is_receiving(const auv_udp_t* udp) {
  return udp != NULL && (udp->flags & AUV__UDP_RECEIVING) != 0;
}


int auv_udp_send(auv_udp_t* udp,
                 const auv_buf_t bufs[],
                 unsigned int nbufs,
                 const struct sockaddr* addr,
                 socklen_t addrlen) {
  auv__dgram_t* d;
  size_t total;
  size_t off;
  unsigned int i;
  int err;

  if (udp == NULL || (bufs == NULL && nbufs > 0) || nbufs > IOV_MAX ||
      auv__udp_closing(udp))
    return UV_EINVAL;
  if (addr != NULL &&
      (addrlen == 0 || addrlen > (socklen_t) sizeof(d->addr)))
    return UV_EINVAL;
  total = 0;
  for (i = 0; i < nbufs; i++) {
    if (bufs[i].len > SIZE_MAX - total)
      return UV_EINVAL;
    total += bufs[i].len;
  }

  if (udp->queue_head == NULL) {
    err = auv__udp_sendmsg(udp->fd, (const struct iovec*) bufs, nbufs,
                           addr, addrlen);
    if (err != UV_EAGAIN)
      return err == 0 ? 1 : err;
  }

  /* No room, or datagrams are waiting: this one goes behind them. */
  if (total > SIZE_MAX - sizeof(*d))
    return UV_ENOMEM;
  d = malloc(sizeof(*d) + total);
  if (d == NULL)
    return UV_ENOMEM;
  d->next = NULL;
  d->len = total;
  d->addrlen = addr == NULL ? 0 : addrlen;
  if (addr != NULL)
    memcpy(&d->addr, addr, addrlen);
  off = 0;
  for (i = 0; i < nbufs; i++) {
    if (bufs[i].len > 0)
      auv__copy(d->data + off, bufs[i].base, bufs[i].len);
    off += bufs[i].len;
  }

  if (udp->queue_tail == NULL)
    udp->queue_head = d;
  else
    udp->queue_tail->next = d;
  udp->queue_tail = d;
  udp->queue_size += total;
  udp->queue_count++;
  err = auv__udp_update(udp);
  if (err != 0) {
    /* Another started watcher of fd: nothing would ever send it.  The
     * watch changes only when the queue was empty, so d is alone in it. */
    auv__udp_queue_free(udp);
    return err;
  }
  return 0;
}


size_t auv_udp_send_queue_size(const auv_udp_t* udp) {
  return udp == NULL ? 0 : udp->queue_size;
}


size_t auv_udp_send_queue_count(const auv_udp_t* udp) {
  return udp == NULL ? 0 : udp->queue_count;
}


void auv_udp_set_send_cb(auv_udp_t* udp, auv_udp_send_cb cb) {
  if (udp != NULL)
    udp->send_cb = cb;
}


int auv_udp_connect(auv_udp_t* udp, const struct sockaddr* addr, socklen_t addrlen) {
  struct sockaddr unspec;
  int r;

  if (udp == NULL || auv__udp_closing(udp) || (addr != NULL && addrlen == 0))
    return UV_EINVAL;
  if (addr == NULL) {
    /* Dissolve the association (connect(2) with AF_UNSPEC). */
    memset(&unspec, 0, sizeof(unspec));
    unspec.sa_family = AF_UNSPEC;
    addr = &unspec;
    addrlen = sizeof(unspec);
  }
  do
    r = connect(udp->fd, addr, addrlen);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : -errno;
}


int auv_udp_set_broadcast(auv_udp_t* udp, int on) {
  on = on != 0;
  if (udp == NULL || auv__udp_closing(udp))
    return UV_EINVAL;
  if (setsockopt(udp->fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof(on)) != 0)
    return -errno;
  return 0;
}


void auv_udp_close(auv_udp_t* udp, auv_close_cb close_cb) {
  if (udp == NULL || auv__udp_closing(udp))
    return;
  udp->close_cb = close_cb;
  udp->flags &= ~AUV__UDP_RECEIVING;
  auv__udp_queue_free(udp);
  /* uv_close() takes the fd out of epoll at once: the caller may close it
   * as soon as this returns. */
  auv__io_close(&udp->handle, auv__udp_close_cb);
}


int auv_udp_get_fd(const auv_udp_t* udp) {
  return udp == NULL ? -1 : udp->fd;
}


auv_loop_t* auv_udp_get_loop(const auv_udp_t* udp) {
  return udp == NULL ? NULL : udp->loop;
}


void auv_udp_set_data(auv_udp_t* udp, void* data) {
  if (udp != NULL)
    udp->data = data;
}


void* auv_udp_get_data(const auv_udp_t* udp) {
  return udp == NULL ? NULL : udp->data;
}

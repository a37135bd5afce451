/* Listeners and TCP: accepting on a caller's listening socket, creating
 * listening sockets, connecting, socket options.
 *
 * Like streams, listeners sit on a uv_poll_t rather than libuv's uv_tcp_t,
 * because the caller owns the listening socket and every accepted one.
 */
#define _GNU_SOURCE  /* accept4() */

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Accepts per wake-up: enough to empty a burst's backlog, few enough that
 * one busy listener does not starve the loop's other callbacks. */
#define AUV__ACCEPTS_PER_WAKEUP 128

struct auv_listener_s {
  auv__io_t handle;           /* records its poll's I/O (internal.h) */
  auv_loop_t* loop;
  auv_connection_cb cb;
  auv_close_cb close_cb;
  void* data;
  int fd;
  int started;
};

/* A connect in progress.  The poll waits for the socket's writability; a
 * connect() that finished at once (refused on loopback) is reported from the
 * idle handle instead, so that the callback never runs inside
 * auv_tcp_connect().  Either handle keeps the loop alive until the result
 * is delivered, from its close callback once it is freed. */
typedef struct {
  union {
    uv_handle_t handle;
    uv_poll_t poll;
    uv_idle_t idle;
  } u;
  auv_loop_t* loop;
  auv_connect_cb cb;
  void* data;
  int fd;
  int status;
} auv__connect_t;


static inline int auv__listener_closing(const auv_listener_t* listener) {
  return uv_is_closing((const uv_handle_t*) &listener->handle);
}


static void auv__listener_io(uv_poll_t* handle, int status, int events) {
  auv_listener_t* listener;
  socklen_t optlen;
  int soerr;
  int fd;
  int i;

  listener = handle->data;
  auv__loop_unblock(listener->loop);

  if (status < 0) {
    /* POLLERR: libuv stopped the poll.  Reading SO_ERROR clears it; report
     * it and go on listening. */
    soerr = 0;
    optlen = sizeof(soerr);
    if (getsockopt(listener->fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) == 0 &&
        soerr != 0)
      status = -soerr;
    listener->cb(listener, status, -1);
    if (!auv__listener_closing(listener) && listener->started)
      auv__io_start(&listener->handle, UV_READABLE, auv__listener_io);
    return;
  }

  for (i = 0; i < AUV__ACCEPTS_PER_WAKEUP; i++) {
    /* The callback may have stopped or closed the listener. */
    if (auv__listener_closing(listener) || !listener->started)
      return;
    fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      /* The peer gave up before we accepted: nothing to report. */
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      /* EMFILE and friends: the connection stays in the backlog and the
       * fd stays readable, so the callback hears of it every iteration
       * until it stops the listener. */
      listener->cb(listener, -errno, -1);
      return;
    }
    listener->cb(listener, 0, fd);
  }
}


static void auv__listener_close_cb(uv_handle_t* handle) {
  auv_listener_t* listener;
  auv_close_cb close_cb;
  void* data;

  listener = handle->data;
  auv__loop_unblock(listener->loop);
  close_cb = listener->close_cb;
  data = listener->data;
  free(listener);
  if (close_cb != NULL)
    close_cb(data);
}


int auv_listener_new(auv_loop_t* loop, int fd, auv_listener_t** listener_out) {
  auv_listener_t* listener;
  int err;

  if (loop == NULL || listener_out == NULL || fd < 0)
    return UV_EINVAL;
  *listener_out = NULL;

  listener = calloc(1, sizeof(*listener));
  if (listener == NULL)
    return UV_ENOMEM;
  err = auv__io_init(loop, &listener->handle, fd);
  if (err != 0) {
    free(listener);
    return err;
  }
  listener->handle.poll.data = listener;
  listener->loop = loop;
  listener->fd = fd;
  *listener_out = listener;
  return 0;
}


int auv_listener_start(auv_listener_t* listener, auv_connection_cb cb) {
  int err;

  if (listener == NULL || cb == NULL || auv__listener_closing(listener))
    return UV_EINVAL;
  listener->cb = cb;
  if (listener->started)
    return 0;
  err = auv__io_start(&listener->handle, UV_READABLE, auv__listener_io);
  if (err != 0)
    return err;
  listener->started = 1;
  return 0;
}


int auv_listener_stop(auv_listener_t* listener) {
  if (listener == NULL || auv__listener_closing(listener))
    return UV_EINVAL;
  listener->started = 0;
  return auv__io_stop(&listener->handle);
}


void auv_listener_close(auv_listener_t* listener, auv_close_cb close_cb) {
  if (listener == NULL || auv__listener_closing(listener))
    return;
  listener->close_cb = close_cb;
  listener->started = 0;
  auv__io_close(&listener->handle, auv__listener_close_cb);
}


int auv_listener_get_fd(const auv_listener_t* listener) {
  return listener == NULL ? -1 : listener->fd;
}


void auv_listener_set_data(auv_listener_t* listener, void* data) {
  if (listener != NULL)
    listener->data = data;
}


void* auv_listener_get_data(const auv_listener_t* listener) {
  return listener == NULL ? NULL : listener->data;
}


static socklen_t auv__sockaddr_len(const struct sockaddr* addr) {
  if (addr->sa_family == AF_INET)
    return sizeof(struct sockaddr_in);
  if (addr->sa_family == AF_INET6)
    return sizeof(struct sockaddr_in6);
  return 0;
}


static int auv__setsockopt_int(int fd, int level, int name, int value) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0)
    return -errno;
  return 0;
}


int auv_tcp_listen(const struct sockaddr* addr, int backlog,
                   unsigned int flags, int* fd_out) {
  socklen_t addrlen;
  int err;
  int fd;

  if (addr == NULL || fd_out == NULL ||
      (flags & ~(unsigned int) (AUV_TCP_REUSEADDR | AUV_TCP_REUSEPORT)) != 0)
    return UV_EINVAL;
  *fd_out = -1;
  addrlen = auv__sockaddr_len(addr);
  if (addrlen == 0)
    return UV_EINVAL;
#ifndef SO_REUSEPORT
  if (flags & AUV_TCP_REUSEPORT)
    return UV_ENOTSUP;
#endif

  fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;

  err = 0;
  if (flags & AUV_TCP_REUSEADDR)
    err = auv__setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
#ifdef SO_REUSEPORT
  if (err == 0 && (flags & AUV_TCP_REUSEPORT))
    err = auv__setsockopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#endif
  if (err == 0 && bind(fd, addr, addrlen) != 0)
    err = -errno;
  if (err == 0 && listen(fd, backlog) != 0)
    err = -errno;
  if (err != 0) {
    close(fd);
    return err;
  }
  *fd_out = fd;
  return 0;
}


static void auv__connect_close_cb(uv_handle_t* handle) {
  auv__connect_t* req;
  auv_connect_cb cb;
  auv_loop_t* loop;
  void* data;
  int status;
  int fd;

  req = handle->data;
  loop = req->loop;
  auv__loop_unblock(loop);
  cb = req->cb;
  data = req->data;
  status = req->status;
  fd = req->fd;
  free(req);
  if (status != 0 && fd >= 0) {
    close(fd);
    fd = -1;
  }
  cb(loop, status, fd, data);
}


static void auv__connect_io(uv_poll_t* handle, int status, int events) {
  auv__connect_t* req;
  socklen_t optlen;
  int soerr;

  req = handle->data;
  auv__loop_unblock(req->loop);
  soerr = 0;
  optlen = sizeof(soerr);
  if (getsockopt(req->fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) != 0)
    soerr = errno;
  req->status = soerr != 0 ? -soerr : status;
  /* Closing the poll frees the fd for the caller's own watchers before
   * the callback gets it. */
  uv_close(&req->u.handle, auv__connect_close_cb);
}


static void auv__connect_idle_cb(uv_idle_t* idle) {
  auv__connect_t* req;

  req = idle->data;
  auv__loop_unblock(req->loop);
  uv_close(&req->u.handle, auv__connect_close_cb);
}


int auv_tcp_connect(auv_loop_t* loop, const struct sockaddr* addr,
                    auv_connect_cb cb, void* data) {
  auv__connect_t* req;
  socklen_t addrlen;
  int err;
  int r;

  if (loop == NULL || addr == NULL || cb == NULL)
    return UV_EINVAL;
  addrlen = auv__sockaddr_len(addr);
  if (addrlen == 0)
    return UV_EINVAL;

  req = calloc(1, sizeof(*req));
  if (req == NULL)
    return UV_ENOMEM;
  req->loop = loop;
  req->cb = cb;
  req->data = data;
  req->fd = socket(addr->sa_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (req->fd < 0) {
    err = -errno;
    free(req);
    return err;
  }

  r = connect(req->fd, addr, addrlen);
  /* EINTR: the connect goes on in the background, as with EINPROGRESS. */
  if (r != 0 && (errno == EINPROGRESS || errno == EINTR)) {
    err = uv_poll_init(&loop->uv, &req->u.poll, req->fd);
    if (err != 0) {
      close(req->fd);
      free(req);
      return err;
    }
    req->u.handle.data = req;
    /* Cannot fail on a fresh fd; if it did, the error is the result. */
    err = uv_poll_start(&req->u.poll, UV_WRITABLE, auv__connect_io);
    if (err != 0) {
      req->status = err;
      uv_close(&req->u.handle, auv__connect_close_cb);
    }
    return 0;
  }

  req->status = r == 0 ? 0 : -errno;
  uv_idle_init(&loop->uv, &req->u.idle);
  req->u.handle.data = req;
  uv_idle_start(&req->u.idle, auv__connect_idle_cb);
  return 0;
}


int auv_tcp_nodelay(int fd, int enable) {
  if (fd < 0)
    return UV_EINVAL;
  return auv__setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, enable != 0);
}


int auv_tcp_keepalive(int fd, int enable, unsigned int delay) {
  int err;

  if (fd < 0 || delay > INT_MAX)
    return UV_EINVAL;
  err = auv__setsockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, enable != 0);
  if (err != 0 || !enable || delay == 0)
    return err;
  return auv__setsockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int) delay);
}

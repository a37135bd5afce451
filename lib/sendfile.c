/* Sendfile: a file's bytes to a socket or pipe, zero-copy with
 * sendfile(2), as the descriptor becomes writable.
 *
 * The request is a uv_poll_t on out_fd, watching writability.  Nothing is
 * sent inside auv_sendfile_start(): the first sendfile() comes with the
 * first writability, which also keeps the callback out of the start call.
 * Where the kernel cannot splice in_fd to out_fd (EINVAL, ENOSYS,
 * EOPNOTSUPP on the first call, before any byte went out) the request falls
 * back to read or pread into a buffer and write or send: asyncio's
 * sock_sendfile() falls back the same way.  The request finishes by closing
 * its handle: the callback runs from libuv's close callback, on a later
 * step of the loop, after the fd has left epoll, so the caller may watch
 * out_fd again from the callback on.
 *
 * auv_stream_sendfile() sends to a stream's fd instead, woken by the
 * stream's own writability (lib/stream.c: an fd has one libuv poll), while
 * the stream's write queue is empty and stays so; it reports from the I/O
 * step that finishes it, or, cancelled or closed under it, from a close
 * callback as above.  The Python module's loop.sendfile() uses it
 * (module/transport.c), with AUV_SENDFILE_NO_FALLBACK: asyncio falls back
 * through the transport itself.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Linux moves at most this much per sendfile() call. */
#define AUV__SENDFILE_MAX 0x7ffff000
#define AUV__SENDFILE_CALLS_PER_WAKEUP 16
#define AUV__COPY_SIZE 65536

enum {
  AUV__SF_TO_END = 1,     /* count was 0: until in_fd's end */
  AUV__SF_FALLBACK = 2,   /* copying through buf */
  AUV__SF_SOCKET = 4,     /* out_fd is a socket: send(MSG_NOSIGNAL) */
  AUV__SF_DONE = 8,       /* finishing: the close callback reports it */
  AUV__SF_NO_FALLBACK = 16,  /* AUV_SENDFILE_NO_FALLBACK */
  AUV__SF_STREAM = 32,    /* auv_stream_sendfile(): no handle of its own */
  AUV__SF_RESTORE_BLOCKING = 64  /* out_fd was blocking: set it so again */
};

/* What one step did. */
enum {
  AUV__STEP_MORE = 0,     /* go on */
  AUV__STEP_WAIT = 1,     /* out_fd is full: wait for writability */
  AUV__STEP_DONE = 2      /* every byte asked for is sent, or in_fd ended */
};

struct auv_sendfile_s {
  auv__io_t handle;           /* records its poll's I/O (internal.h) */
  uv_idle_t idle;             /* a stream's request: closed to report later */
  auv_stream_t* stream;       /* a stream's request, until it finishes */
  auv_loop_t* loop;
  auv_sendfile_cb cb;
  void* data;
  char* buf;              /* fallback: buf[start, end) read, not yet written */
  size_t buf_cap;
  size_t buf_start;
  size_t buf_end;
  int64_t offset;         /* in_fd's next byte to read; < 0: its file position */
  uint64_t remaining;     /* bytes still to read from in_fd (not TO_END) */
  uint64_t sent;
  unsigned int flags;
  int status;
  int out_fd;
  int in_fd;
};


static void auv__sendfile_close_cb(uv_handle_t* handle) {
  auv_sendfile_t* req;

  req = handle->data;
  auv__loop_unblock(req->loop);
  req->cb(req, req->status, req->sent);
  free(req->buf);
  free(req);
}


static void auv__sendfile_free_cb(uv_handle_t* handle) {
  free(handle->data);
}


/* uv_poll_init() made out_fd non-blocking; AUV_SENDFILE_RESTORE_BLOCKING
 * sets it back while the fd is surely still the caller's (cb may come
 * after the caller closed it). */
static void auv__sendfile_restore_blocking(auv_sendfile_t* req) {
  int fl;

  if (!(req->flags & AUV__SF_RESTORE_BLOCKING))
    return;
  req->flags &= ~(unsigned int) AUV__SF_RESTORE_BLOCKING;
  fl = fcntl(req->out_fd, F_GETFL);
  if (fl != -1)
    (void) fcntl(req->out_fd, F_SETFL, fl & ~O_NONBLOCK);
}


static void auv__sendfile_finish(auv_sendfile_t* req, int status) {
  req->flags |= AUV__SF_DONE;
  req->status = status;
  auv__sendfile_restore_blocking(req);
  auv__io_close(&req->handle, auv__sendfile_close_cb);
}


static void auv__sendfile_advance(auv_sendfile_t* req, size_t n) {
  if (req->offset >= 0)
    req->offset += n;
  if (!(req->flags & AUV__SF_TO_END))
    req->remaining -= n;
}


static int auv__sendfile_native(auv_sendfile_t* req) {
  off_t off;
  size_t n;
  ssize_t r;

  n = AUV__SENDFILE_MAX;
  if (!(req->flags & AUV__SF_TO_END) && req->remaining < n)
    n = (size_t) req->remaining;
  do {
    if (req->offset >= 0) {
      off = (off_t) req->offset;
      r = sendfile(req->out_fd, req->in_fd, &off, n);
    } else {
      r = sendfile(req->out_fd, req->in_fd, NULL, n);
    }
  } while (r < 0 && errno == EINTR);

  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return AUV__STEP_WAIT;
    if (req->sent == 0 && !(req->flags & AUV__SF_NO_FALLBACK) &&
        (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      /* This pair cannot be spliced: copy instead.  Nothing went out and
       * the offset has not moved. */
      req->flags |= AUV__SF_FALLBACK;
      return AUV__STEP_MORE;
    }
    return -errno;
  }
  if (r == 0)
    return AUV__STEP_DONE;  /* in_fd's end */
  req->sent += r;
  auv__sendfile_advance(req, r);
  if (!(req->flags & AUV__SF_TO_END) && req->remaining == 0)
    return AUV__STEP_DONE;
  return AUV__STEP_MORE;
}


static int auv__sendfile_copy(auv_sendfile_t* req) {
  void* mem;
  size_t want;
  ssize_t r;

  if (req->buf == NULL) {
    req->buf_cap = AUV__COPY_SIZE;
    if (!(req->flags & AUV__SF_TO_END) && req->remaining < req->buf_cap)
      req->buf_cap = (size_t) req->remaining;
    /* Page-aligned: the kernel copies into it much faster than into
     * malloc()'s 16-byte offset (see the module's read buffer). */
    if (posix_memalign(&mem, 4096, req->buf_cap) != 0)
      return UV_ENOMEM;
    req->buf = mem;
  }

  if (req->buf_start == req->buf_end) {
    want = req->buf_cap;
    if (!(req->flags & AUV__SF_TO_END) && req->remaining < want)
      want = (size_t) req->remaining;
    if (want == 0)
      return AUV__STEP_DONE;
    do {
      if (req->offset >= 0)
        r = pread(req->in_fd, req->buf, want, (off_t) req->offset);
      else
        r = read(req->in_fd, req->buf, want);
    } while (r < 0 && errno == EINTR);
    /* Only out_fd is waited for: a non-blocking in_fd with nothing to
     * read fails the request with UV_EAGAIN. */
    if (r < 0)
      return -errno;
    if (r == 0)
      return AUV__STEP_DONE;
    req->buf_start = 0;
    req->buf_end = r;
    auv__sendfile_advance(req, r);
  }

  do {
    if (req->flags & AUV__SF_SOCKET)
      r = send(req->out_fd, req->buf + req->buf_start,
               req->buf_end - req->buf_start, MSG_NOSIGNAL);
    else
      r = write(req->out_fd, req->buf + req->buf_start,
                req->buf_end - req->buf_start);
  } while (r < 0 && errno == EINTR);
  if (r < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? AUV__STEP_WAIT : -errno;
  req->buf_start += r;
  req->sent += r;
  if (req->buf_start == req->buf_end &&
      !(req->flags & AUV__SF_TO_END) && req->remaining == 0)
    return AUV__STEP_DONE;
  return AUV__STEP_MORE;
}


/* Up to AUV__SENDFILE_CALLS_PER_WAKEUP steps: AUV__STEP_WAIT,
 * AUV__STEP_DONE or an error. */
static int auv__sendfile_steps(auv_sendfile_t* req) {
  int r;
  int i;

  for (i = 0; i < AUV__SENDFILE_CALLS_PER_WAKEUP; i++) {
    if (req->flags & AUV__SF_FALLBACK)
      r = auv__sendfile_copy(req);
    else
      r = auv__sendfile_native(req);
    if (r != AUV__STEP_MORE)
      return r;
  }
  return AUV__STEP_WAIT;  /* others' turn: the fd is still writable */
}


static void auv__sendfile_io(uv_poll_t* handle, int status, int events) {
  auv_sendfile_t* req;
  int r;

  req = handle->data;
  auv__loop_unblock(req->loop);

  r = auv__sendfile_steps(req);
  if (r < 0) {
    auv__sendfile_finish(req, r);
    return;
  }
  if (r == AUV__STEP_DONE) {
    auv__sendfile_finish(req, 0);
    return;
  }
  /* POLLERR (the peer gone) stops libuv's poll and says UV_EBADF; the
   * writes above met the real error, unless out_fd took bytes after all.
   * Either way, watch again. */
  if (status < 0) {
    r = auv__io_start(&req->handle, UV_WRITABLE, auv__sendfile_io);
    if (r != 0)
      auv__sendfile_finish(req, r);
  }
}


/* --- On a stream (auv_stream_sendfile()) --------------------------------- */

static void auv__sendfile_idle_close_cb(uv_handle_t* handle) {
  auv_sendfile_t* req;

  req = handle->data;
  auv__loop_unblock(req->loop);
  req->cb(req, req->status, req->sent);
  free(req->buf);
  free(req);
}


/* Finish a stream's request from a call of the caller's: cb runs on a
 * later step of the loop, never inside that call. */
static void auv__sendfile_stream_finish_later(auv_sendfile_t* req, int status) {
  req->flags |= AUV__SF_DONE;
  req->status = status;
  req->stream = NULL;
  uv_idle_init(&req->loop->uv, &req->idle);
  req->idle.data = req;
  uv_close((uv_handle_t*) &req->idle, auv__sendfile_idle_close_cb);
}


/* The stream is closing: its request ends as cancelled. */
void auv__sendfile_stream_closed(auv_sendfile_t* req) {
  auv__stream_sendfile_end(req->stream);
  auv__sendfile_stream_finish_later(req, UV_ECANCELED);
}


static void auv__sendfile_stream_writable(auv_stream_t* stream, int status) {
  auv_sendfile_t* req;
  int r;

  req = auv__stream_sendfile_req(stream);
  r = auv__sendfile_steps(req);
  if (r == AUV__STEP_WAIT) {
    r = auv__stream_sendfile_wait(stream, auv__sendfile_stream_writable);
    if (r == 0)
      return;
  }
  /* Finished in the loop's I/O step: report now (cb may close the
   * stream, which no longer knows the request). */
  auv__stream_sendfile_end(stream);
  req->stream = NULL;
  req->flags |= AUV__SF_DONE;
  req->cb(req, r == AUV__STEP_DONE ? 0 : r, req->sent);
  free(req->buf);
  free(req);
}


/* What both kinds of request take from their caller's arguments. */
static void auv__sendfile_setup(auv_sendfile_t* req,
                                auv_loop_t* loop,
                                int in_fd,
                                int64_t offset,
                                uint64_t count,
                                unsigned int flags,
                                auv_sendfile_cb cb) {
  req->loop = loop;
  req->cb = cb;
  req->in_fd = in_fd;
  req->offset = offset < 0 ? -1 : offset;
  req->remaining = count;
  if (count == 0)
    req->flags |= AUV__SF_TO_END;
  if (flags & AUV_SENDFILE_NO_FALLBACK)
    req->flags |= AUV__SF_NO_FALLBACK;
}


int auv_stream_sendfile(auv_stream_t* stream,
                        int in_fd,
                        int64_t offset,
                        uint64_t count,
                        unsigned int flags,
                        auv_sendfile_cb cb,
                        auv_sendfile_t** req_out) {
  auv_sendfile_t* req;
  int err;

  if (req_out != NULL)
    *req_out = NULL;
  if (stream == NULL || cb == NULL || req_out == NULL || in_fd < 0 ||
      (flags & ~(unsigned int) AUV_SENDFILE_NO_FALLBACK) != 0)
    return UV_EINVAL;
  if (fcntl(in_fd, F_GETFL) == -1)
    return -errno;

  req = calloc(1, sizeof(*req));
  if (req == NULL)
    return UV_ENOMEM;
  auv__sendfile_setup(req, auv_stream_get_loop(stream), in_fd, offset, count,
                      flags, cb);
  req->stream = stream;
  req->out_fd = auv_stream_get_fd(stream);
  req->flags |= AUV__SF_STREAM;
  if (auv__stream_is_socket(stream))
    req->flags |= AUV__SF_SOCKET;
  err = auv__stream_sendfile_begin(stream, req, auv__sendfile_stream_writable);
  if (err != 0) {
    free(req);
    return err;
  }
  *req_out = req;
  return 0;
}


int auv_sendfile_start_ex(auv_loop_t* loop,
                          int out_fd,
                          int in_fd,
                          int64_t offset,
                          uint64_t count,
                          unsigned int flags,
                          auv_sendfile_cb cb,
                          auv_sendfile_t** req_out) {
  auv_sendfile_t* req;
  struct stat st;
  int out_fl;
  int err;

  if (req_out != NULL)
    *req_out = NULL;
  if (loop == NULL || cb == NULL || req_out == NULL || out_fd < 0 || in_fd < 0 ||
      (flags & ~(unsigned int) (AUV_SENDFILE_NO_FALLBACK |
                                AUV_SENDFILE_RESTORE_BLOCKING)) != 0)
    return UV_EINVAL;
  if (fcntl(in_fd, F_GETFL) == -1 || fstat(out_fd, &st) != 0)
    return -errno;
  out_fl = fcntl(out_fd, F_GETFL);
  if (out_fl == -1)
    return -errno;

  req = calloc(1, sizeof(*req));
  if (req == NULL)
    return UV_ENOMEM;
  req->out_fd = out_fd;
  if ((flags & AUV_SENDFILE_RESTORE_BLOCKING) && !(out_fl & O_NONBLOCK))
    req->flags |= AUV__SF_RESTORE_BLOCKING;
  /* uv_poll_init() also sets O_NONBLOCK. */
  err = auv__io_init(loop, &req->handle, out_fd);
  if (err != 0) {
    auv__sendfile_restore_blocking(req);
    free(req);
    return err;
  }
  req->handle.poll.data = req;
  err = auv__io_start(&req->handle, UV_WRITABLE, auv__sendfile_io);
  if (err != 0) {
    /* Nothing to report: free without calling cb. */
    auv__sendfile_restore_blocking(req);
    auv__io_close(&req->handle, auv__sendfile_free_cb);
    return err;
  }
  auv__sendfile_setup(req, loop, in_fd, offset, count, flags, cb);
  if (S_ISSOCK(st.st_mode))
    req->flags |= AUV__SF_SOCKET;
  *req_out = req;
  return 0;
}


int auv_sendfile_start(auv_loop_t* loop,
                       int out_fd,
                       int in_fd,
                       int64_t offset,
                       uint64_t count,
                       auv_sendfile_cb cb,
                       auv_sendfile_t** req_out) {
  return auv_sendfile_start_ex(loop, out_fd, in_fd, offset, count, 0, cb, req_out);
}


int auv_sendfile_cancel(auv_sendfile_t* req) {
  if (req == NULL)
    return UV_EINVAL;
  if (req->flags & AUV__SF_DONE)
    return UV_EBUSY;  /* finished already: cb reports how */
  if (req->flags & AUV__SF_STREAM) {
    auv__stream_sendfile_end(req->stream);
    auv__sendfile_stream_finish_later(req, UV_ECANCELED);
  } else {
    auv__sendfile_finish(req, UV_ECANCELED);
  }
  return 0;
}


uint64_t auv_sendfile_get_sent(const auv_sendfile_t* req) {
  return req == NULL ? 0 : req->sent;
}


void auv_sendfile_set_data(auv_sendfile_t* req, void* data) {
  if (req != NULL)
    req->data = data;
}


void* auv_sendfile_get_data(const auv_sendfile_t* req) {
  return req == NULL ? NULL : req->data;
}

/* Streams: buffered I/O on a caller's connected fd, on a uv_poll_t.
 *
 * Not libuv's uv_tcp_t or uv_pipe_t: those own their fd and close it, while
 * here the caller (a Python socket object) owns it.  Reads go straight into
 * the caller's memory.  A write goes out at once, in one writev(), when
 * nothing is queued; only what the fd does not take is copied, once, into
 * the write queue, a list of chunks that writability drains in writev()s
 * of many chunks.  Sockets are written with send(MSG_NOSIGNAL) so that a
 * peer's reset never raises SIGPIPE; a pipe has no such flag (a process
 * that writes pipes ignores SIGPIPE, as Python does).
 *
 * User callbacks may close the stream: its memory lives until libuv's close
 * callback, which cannot run before ours return, so every path checks
 * auv__stream_closing() after calling out and leaves at once if so.
 */
#define _GNU_SOURCE  /* IOV_MAX */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#ifndef IOV_MAX
# define IOV_MAX 1024
#endif

#define AUV__READ_SIZE 65536
#define AUV__READS_PER_WAKEUP 32
/* Small queued writes share chunks of this size; a bigger remainder gets a
 * chunk of its own size. */
#define AUV__CHUNK_SIZE 16384

/* bufs go to writev() as they are. */
_Static_assert(sizeof(auv_buf_t) == sizeof(struct iovec) &&
               offsetof(auv_buf_t, base) == offsetof(struct iovec, iov_base) &&
               offsetof(auv_buf_t, len) == offsetof(struct iovec, iov_len),
               "auv_buf_t must be laid out as struct iovec");

enum {
  AUV__STREAM_READING = 1,
  AUV__STREAM_SOCKET = 2,        /* send(MSG_NOSIGNAL), shutdown() apply */
  AUV__STREAM_SHUTDOWN = 4,      /* shutdown asked for: no more writes */
  AUV__STREAM_SHUT_PENDING = 8,  /* ... and not yet done and reported */
  AUV__STREAM_BROKEN = 16,       /* writing the queue failed: no more writes */
  AUV__STREAM_IDLE = 32          /* the idle handle is allocated */
};

typedef struct auv__chunk_s auv__chunk_t;

/* A piece of the write queue: data[start, end) is still to be written. */
struct auv__chunk_s {
  auv__chunk_t* next;
  size_t start;
  size_t end;
  size_t cap;
  char data[];
};

struct auv_stream_s {
  auv__io_t handle;           /* records its poll's I/O (internal.h) */
  /* Reports a shutdown on a later iteration when nothing is queued:
   * callbacks never run inside the call that asked for them.  Allocated
   * on first use: most streams never need it, and every idle connection
   * would carry it. */
  uv_idle_t* idle;
  auv_loop_t* loop;
  auv_alloc_cb alloc_cb;
  auv_read_cb read_cb;
  auv_stream_cb drain_cb;
  auv_stream_cb shutdown_cb;
  auv_stream_cb writable_cb;  /* auv_stream_wait_writable(), or sendfile's */
  auv_sendfile_t* sendfile;   /* auv_stream_sendfile() in progress (sendfile.c) */
  auv_close_cb close_cb;
  void* data;
  auv__chunk_t* queue_head;
  auv__chunk_t* queue_tail;
  size_t queue_size;
  unsigned int flags;
  int shutdown_status;  /* reported by the idle handle */
  int events;          /* what the poll watches: UV_READABLE, UV_WRITABLE */
  int close_pending;   /* libuv close callbacks still to come */
  int fd;
};


static void auv__stream_io(uv_poll_t* handle, int status, int events);


static inline int auv__stream_closing(const auv_stream_t* stream) {
  return uv_is_closing((const uv_handle_t*) &stream->handle);
}


/* Watch for what the stream waits for: readability while reading,
 * writability while something is queued.  uv_poll_start() re-registers the
 * fd, so it is called only when that changes. */
static int auv__stream_update(auv_stream_t* stream) {
  int events;

  if (auv__stream_closing(stream))
    return 0;
  events = 0;
  if (stream->flags & AUV__STREAM_READING)
    events |= UV_READABLE;
  if (stream->queue_head != NULL || stream->writable_cb != NULL)
    events |= UV_WRITABLE;
  return auv__io_update(&stream->handle, &stream->events, events,
                        auv__stream_io);
}


static void auv__queue_free(auv_stream_t* stream) {
  auv__chunk_t* chunk;

  while (stream->queue_head != NULL) {
    chunk = stream->queue_head;
    stream->queue_head = chunk->next;
    free(chunk);
  }
  stream->queue_tail = NULL;
  stream->queue_size = 0;
}


/* Copy bufs to the end of the queue, the first offset bytes of bufs[0]
 * excepted.  Either all of it is queued or, on UV_ENOMEM, nothing. */
static int auv__queue_append(auv_stream_t* stream,
                             const auv_buf_t bufs[],
                             unsigned int nbufs,
                             size_t offset) {
  auv__chunk_t* tail;
  auv__chunk_t* chunk;
  auv__chunk_t* dst;
  const char* src;
  size_t total;
  size_t room;
  size_t cap;
  size_t len;
  size_t n;
  unsigned int i;

  total = 0;
  for (i = 0; i < nbufs; i++) {
    if (bufs[i].len > SIZE_MAX - total)
      return UV_ENOMEM;
    total += bufs[i].len;
  }
  total -= offset;

  tail = stream->queue_tail;
  room = tail == NULL ? 0 : tail->cap - tail->end;
  chunk = NULL;
  /* Allocate before copying anything, so that a failure leaves the queue
   * as it was. */
  if (total > room) {
    cap = total - room;
    if (cap < AUV__CHUNK_SIZE)
      cap = AUV__CHUNK_SIZE;
    if (cap > SIZE_MAX - sizeof(*chunk))
      return UV_ENOMEM;
    chunk = malloc(sizeof(*chunk) + cap);
    if (chunk == NULL)
      return UV_ENOMEM;
    chunk->next = NULL;
    chunk->start = 0;
    chunk->end = 0;
    chunk->cap = cap;
  }

  dst = room > 0 ? tail : chunk;
  for (i = 0; i < nbufs; i++) {
    src = bufs[i].base + offset;
    len = bufs[i].len - offset;
    offset = 0;
    while (len > 0) {
      if (dst->end == dst->cap)
        dst = chunk;
      n = dst->cap - dst->end;
      if (n > len)
        n = len;
      auv__copy(dst->data + dst->end, src, n);
      dst->end += n;
      src += n;
      len -= n;
    }
  }

  if (chunk != NULL) {
    if (tail == NULL)
      stream->queue_head = chunk;
    else
      tail->next = chunk;
    stream->queue_tail = chunk;
  }
  stream->queue_size += total;
  return 0;
}


/* Take n written bytes off the front of the queue. */
static void auv__queue_consume(auv_stream_t* stream, size_t n) {
  auv__chunk_t* chunk;
  size_t len;

  stream->queue_size -= n;
  while (n > 0) {
    chunk = stream->queue_head;
    len = chunk->end - chunk->start;
    if (n < len) {
      chunk->start += n;
      return;
    }
    n -= len;
    stream->queue_head = chunk->next;
    free(chunk);
  }
  if (stream->queue_head == NULL)
    stream->queue_tail = NULL;
}


/* One write of iovcnt buffers: bytes written, UV_EAGAIN when the fd takes
 * nothing, or a negative errno. */
static ssize_t auv__stream_send(auv_stream_t* stream,
                                const struct iovec* iov,
                                int iovcnt) {
  struct msghdr msg;
  ssize_t n;

  do {
    if (stream->flags & AUV__STREAM_SOCKET) {
      if (iovcnt == 1) {
        n = send(stream->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
      } else {
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = (struct iovec*) iov;
        msg.msg_iovlen = iovcnt;
        n = sendmsg(stream->fd, &msg, MSG_NOSIGNAL);
      }
    } else if (iovcnt == 1) {
      n = write(stream->fd, iov->iov_base, iov->iov_len);
    } else {
      n = writev(stream->fd, iov, iovcnt);
    }
  } while (n < 0 && errno == EINTR);

  if (n < 0)
    return errno == EWOULDBLOCK ? UV_EAGAIN : -errno;
  return n;
}


/* A pipe or tty has no half-close: the stream only stops taking writes. */
static int auv__stream_shutdown_fd(auv_stream_t* stream) {
  if ((stream->flags & AUV__STREAM_SOCKET) && shutdown(stream->fd, SHUT_WR) != 0)
    return -errno;
  return 0;
}


static void auv__stream_shutdown_done(auv_stream_t* stream, int status) {
  auv_stream_cb cb;

  stream->flags &= ~AUV__STREAM_SHUT_PENDING;
  cb = stream->shutdown_cb;
  stream->shutdown_cb = NULL;
  if (cb != NULL)
    cb(stream, status);
}


/* Writing the queue failed: drop it and tell whoever waits for it.  A
 * shutdown asked for by the drain callback itself comes after the error,
 * from the idle handle, and does not fail with it. */
static void auv__stream_write_failed(auv_stream_t* stream, int err) {
  unsigned int shut_pending;

  shut_pending = stream->flags & AUV__STREAM_SHUT_PENDING;
  auv__queue_free(stream);
  stream->flags |= AUV__STREAM_BROKEN;
  if (stream->drain_cb != NULL)
    stream->drain_cb(stream, err);
  if (auv__stream_closing(stream))
    return;
  if (shut_pending)
    auv__stream_shutdown_done(stream, err);
}


static void auv__stream_flush(auv_stream_t* stream) {
  struct iovec iov[IOV_MAX];
  auv__chunk_t* chunk;
  unsigned int shut_pending;
  size_t total;
  ssize_t n;
  int iovcnt;
  int status;

  for (;;) {
    iovcnt = 0;
    total = 0;
    for (chunk = stream->queue_head;
         chunk != NULL && iovcnt < IOV_MAX;
         chunk = chunk->next) {
      iov[iovcnt].iov_base = chunk->data + chunk->start;
      iov[iovcnt].iov_len = chunk->end - chunk->start;
      total += iov[iovcnt].iov_len;
      iovcnt++;
    }

    n = auv__stream_send(stream, iov, iovcnt);
    if (n == UV_EAGAIN)
      return;
    if (n < 0) {
      auv__stream_write_failed(stream, (int) n);
      return;
    }
    auv__queue_consume(stream, n);
    if ((size_t) n < total)
      return;  /* the fd is full: wait for writability */
    if (stream->queue_head == NULL)
      break;
  }

  /* Half-close before the drain callback, which may close the stream. */
  shut_pending = stream->flags & AUV__STREAM_SHUT_PENDING;
  status = shut_pending ? auv__stream_shutdown_fd(stream) : 0;
  if (stream->drain_cb != NULL)
    stream->drain_cb(stream, 0);
  if (auv__stream_closing(stream))
    return;
  if (shut_pending)
    auv__stream_shutdown_done(stream, status);
}


static void auv__stream_read_end(auv_stream_t* stream, ssize_t status, char* base) {
  stream->flags &= ~AUV__STREAM_READING;
  stream->read_cb(stream, status, base);
}


static void auv__stream_read(auv_stream_t* stream) {
  char* base;
  size_t len;
  ssize_t n;
  int i;

  for (i = 0; i < AUV__READS_PER_WAKEUP; i++) {
    /* read_cb (or alloc_cb) may have stopped or closed the stream. */
    if (auv__stream_closing(stream) || !(stream->flags & AUV__STREAM_READING))
      return;

    base = NULL;
    len = 0;
    stream->alloc_cb(stream, AUV__READ_SIZE, &base, &len);
    if (auv__stream_closing(stream))
      return;
    if (base == NULL || len == 0) {
      if (stream->flags & AUV__STREAM_READING)
        auv__stream_read_end(stream, UV_ENOBUFS, base);
      return;
    }
    /* Every buffer handed out comes back through read_cb, so that the
     * caller may release it there. */
    if (!(stream->flags & AUV__STREAM_READING)) {
      stream->read_cb(stream, 0, base);
      return;
    }

    do
      n = read(stream->fd, base, len);
    while (n < 0 && errno == EINTR);

    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        stream->read_cb(stream, 0, base);  /* nothing after all */
      else
        auv__stream_read_end(stream, -errno, base);
      return;
    }
    if (n == 0) {
      auv__stream_read_end(stream, UV_EOF, base);
      return;
    }
    stream->read_cb(stream, n, base);
    if ((size_t) n < len)
      return;  /* a short read: the fd is drained */
  }
}


static void auv__stream_io(uv_poll_t* handle, int status, int events) {
  auv_stream_t* stream;

  stream = handle->data;
  auv__loop_unblock(stream->loop);

  if (status < 0) {
    /* POLLERR (a reset, a pipe's reader gone): libuv stopped the poll and
     * says UV_EBADF.  The read and the write below meet the real error,
     * and a read still gets the data that came before it. */
    stream->events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }

  if ((events & UV_READABLE) && (stream->flags & AUV__STREAM_READING)) {
    auv__stream_read(stream);
    if (auv__stream_closing(stream))
      return;
  }
  if ((events & UV_WRITABLE) && stream->queue_head != NULL) {
    auv__stream_flush(stream);
    if (auv__stream_closing(stream))
      return;
  }
  if ((events & UV_WRITABLE) && stream->queue_head == NULL &&
      stream->writable_cb != NULL) {
    /* After POLLERR too: the waiter's own write meets the error. */
    auv_stream_cb cb = stream->writable_cb;
    stream->writable_cb = NULL;
    cb(stream, 0);
    if (auv__stream_closing(stream))
      return;
  }
  auv__stream_update(stream);
}


static void auv__stream_idle_cb(uv_idle_t* idle) {
  auv_stream_t* stream;

  stream = idle->data;
  auv__loop_unblock(stream->loop);
  uv_idle_stop(idle);
  if (stream->flags & AUV__STREAM_SHUT_PENDING)
    auv__stream_shutdown_done(stream, stream->shutdown_status);
}


static void auv__stream_close_cb(uv_handle_t* handle) {
  auv_stream_t* stream;
  auv_close_cb close_cb;
  void* data;

  stream = handle->data;
  auv__loop_unblock(stream->loop);
  if (handle != (uv_handle_t*) &stream->handle)
    free(handle);  /* the idle handle */
  if (--stream->close_pending > 0)
    return;
  close_cb = stream->close_cb;
  data = stream->data;
  free(stream);
  if (close_cb != NULL)
    close_cb(data);
}


int auv_stream_new(auv_loop_t* loop, int fd, auv_stream_t** stream_out) {
  auv_stream_t* stream;
  struct stat st;
  int err;

  if (loop == NULL || stream_out == NULL || fd < 0)
    return UV_EINVAL;
  *stream_out = NULL;

  if (fstat(fd, &st) != 0)
    return -errno;

  stream = calloc(1, sizeof(*stream));
  if (stream == NULL)
    return UV_ENOMEM;
  /* uv_poll_init() also sets O_NONBLOCK. */
  err = auv__io_init(loop, &stream->handle, fd);
  if (err != 0) {
    free(stream);
    return err;
  }
  stream->handle.poll.data = stream;
  stream->loop = loop;
  stream->fd = fd;
  if (S_ISSOCK(st.st_mode))
    stream->flags |= AUV__STREAM_SOCKET;
  *stream_out = stream;
  return 0;
}


int auv_stream_read_start(auv_stream_t* stream,
                          auv_alloc_cb alloc_cb,
                          auv_read_cb read_cb) {
  int err;

  if (stream == NULL || alloc_cb == NULL || read_cb == NULL ||
      auv__stream_closing(stream))
    return UV_EINVAL;
  stream->alloc_cb = alloc_cb;
  stream->read_cb = read_cb;
  stream->flags |= AUV__STREAM_READING;
  err = auv__stream_update(stream);
  if (err != 0)
    stream->flags &= ~AUV__STREAM_READING;
  return err;
}


int auv_stream_read_stop(auv_stream_t* stream) {
  if (stream == NULL || auv__stream_closing(stream))
    return UV_EINVAL;
  stream->flags &= ~AUV__STREAM_READING;
  return auv__stream_update(stream);
}


int auv_stream_is_reading(const auv_stream_t* stream) {
  return stream != NULL && (stream->flags & AUV__STREAM_READING) != 0;
}


ssize_t auv_stream_write(auv_stream_t* stream,
                         const auv_buf_t bufs[],
                         unsigned int nbufs) {
  unsigned int i;
  unsigned int end;
  size_t offset;
  size_t written;
  ssize_t n;
  int err;

  if (stream == NULL || (bufs == NULL && nbufs > 0) ||
      auv__stream_closing(stream))
    return UV_EINVAL;
  if (stream->flags & (AUV__STREAM_SHUTDOWN | AUV__STREAM_BROKEN))
    return UV_EPIPE;
  if (stream->sendfile != NULL)
    return UV_EBUSY;  /* its bytes would land in the middle of the file's */

  written = 0;
  offset = 0;
  i = 0;
  /* With something queued the bytes go behind it; otherwise straight to
   * the fd, IOV_MAX buffers at a time. */
  while (stream->queue_head == NULL && i < nbufs) {
    end = nbufs - i > IOV_MAX ? i + IOV_MAX : nbufs;
    n = auv__stream_send(stream, (const struct iovec*) &bufs[i], end - i);
    if (n == UV_EAGAIN)
      break;
    if (n < 0) {
      if (written == 0)
        return n;
      /* Some went out: queue the rest, whose write meets the error again
       * and reports it to the drain callback. */
      break;
    }
    written += n;
    while (i < end && (size_t) n >= bufs[i].len) {
      n -= bufs[i].len;
      i++;
    }
    if (i < end) {
      offset = n;
      break;  /* a short write: the fd is full */
    }
  }
  if (i == nbufs)
    return written;

  err = auv__queue_append(stream, bufs + i, nbufs - i, offset);
  if (err == 0) {
    err = auv__stream_update(stream);
    /* Only another started watcher of fd makes this fail: nothing would
     * ever write the queue. */
    if (err != 0)
      auv__queue_free(stream);
  }
  if (err != 0) {
    /* Part of the data went out and the rest cannot follow: the byte
     * stream is cut, so no later write may pretend otherwise. */
    if (written > 0)
      stream->flags |= AUV__STREAM_BROKEN;
    return err;
  }
  return written;
}


size_t auv_stream_write_queue_size(const auv_stream_t* stream) {
  return stream == NULL ? 0 : stream->queue_size;
}


void auv_stream_set_drain_cb(auv_stream_t* stream, auv_stream_cb cb) {
  if (stream != NULL)
    stream->drain_cb = cb;
}


int auv_stream_shutdown(auv_stream_t* stream, auv_stream_cb cb) {
  if (stream == NULL || auv__stream_closing(stream))
    return UV_EINVAL;
  if (stream->flags & AUV__STREAM_SHUTDOWN)
    return UV_ENOTCONN;  /* as libuv's uv_shutdown() */

  stream->flags |= AUV__STREAM_SHUTDOWN | AUV__STREAM_SHUT_PENDING;
  stream->shutdown_cb = cb;
  if (stream->queue_head != NULL)
    return 0;  /* the flush that empties the queue finishes it */

  /* Nothing queued: half-close now, report on the next iteration. */
  stream->shutdown_status = auv__stream_shutdown_fd(stream);
  if (!(stream->flags & AUV__STREAM_IDLE)) {
    stream->idle = malloc(sizeof(*stream->idle));
    if (stream->idle == NULL) {
      stream->flags &= ~AUV__STREAM_SHUT_PENDING;
      return UV_ENOMEM;
    }
    uv_idle_init(&stream->loop->uv, stream->idle);
    stream->idle->data = stream;
    stream->flags |= AUV__STREAM_IDLE;
  }
  return uv_idle_start(stream->idle, auv__stream_idle_cb);
}


int auv_stream_wait_writable(auv_stream_t* stream, auv_stream_cb cb) {
  if (stream == NULL || auv__stream_closing(stream))
    return UV_EINVAL;
  if ((cb != NULL && stream->writable_cb != NULL) || stream->sendfile != NULL)
    return UV_EBUSY;
  stream->writable_cb = cb;
  return auv__stream_update(stream);
}


/* --- For auv_stream_sendfile() (sendfile.c) --------------------------------
 * The request writes the fd itself while the queue is empty, woken by the
 * stream's own writability: the fd has one libuv poll, the stream's. */

int auv__stream_sendfile_begin(auv_stream_t* stream, auv_sendfile_t* req,
                               auv_stream_cb writable_cb) {
  int err;

  if (auv__stream_closing(stream))
    return UV_EINVAL;
  if (stream->flags & (AUV__STREAM_SHUTDOWN | AUV__STREAM_BROKEN))
    return UV_EPIPE;
  if (stream->sendfile != NULL || stream->writable_cb != NULL ||
      stream->queue_head != NULL)
    return UV_EBUSY;
  stream->sendfile = req;
  stream->writable_cb = writable_cb;
  err = auv__stream_update(stream);
  if (err != 0) {
    stream->sendfile = NULL;
    stream->writable_cb = NULL;
  }
  return err;
}


int auv__stream_sendfile_wait(auv_stream_t* stream, auv_stream_cb writable_cb) {
  stream->writable_cb = writable_cb;
  return auv__stream_update(stream);
}


void auv__stream_sendfile_end(auv_stream_t* stream) {
  stream->sendfile = NULL;
  stream->writable_cb = NULL;
  (void) auv__stream_update(stream);
}


auv_sendfile_t* auv__stream_sendfile_req(const auv_stream_t* stream) {
  return stream->sendfile;
}


int auv__stream_is_socket(const auv_stream_t* stream) {
  return (stream->flags & AUV__STREAM_SOCKET) != 0;
}


void auv_stream_close(auv_stream_t* stream, auv_close_cb close_cb) {
  if (stream == NULL || auv__stream_closing(stream))
    return;
  stream->close_cb = close_cb;
  if (stream->sendfile != NULL)
    auv__sendfile_stream_closed(stream->sendfile);  /* calls ..._end() */
  stream->writable_cb = NULL;
  stream->flags &= ~(AUV__STREAM_READING | AUV__STREAM_SHUT_PENDING);
  auv__queue_free(stream);
  /* uv_close() takes the fd out of epoll at once: the caller may close it
   * as soon as this returns. */
  stream->close_pending = 1;
  auv__io_close(&stream->handle, auv__stream_close_cb);
  if (stream->flags & AUV__STREAM_IDLE) {
    stream->close_pending++;
    uv_close((uv_handle_t*) stream->idle, auv__stream_close_cb);
  }
}


int auv_stream_get_fd(const auv_stream_t* stream) {
  return stream == NULL ? -1 : stream->fd;
}


auv_loop_t* auv_stream_get_loop(const auv_stream_t* stream) {
  return stream == NULL ? NULL : stream->loop;
}


void auv_stream_set_data(auv_stream_t* stream, void* data) {
  if (stream != NULL)
    stream->data = data;
}


void* auv_stream_get_data(const auv_stream_t* stream) {
  return stream == NULL ? NULL : stream->data;
}

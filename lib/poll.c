/* Fd watchers: readiness of a caller's fd, on a uv_poll_t. */
#include <stdlib.h>

#include "internal.h"

struct auv_poll_s {
  auv__io_t handle;           /* records its poll's I/O (internal.h) */
  auv_loop_t* loop;
  auv_poll_cb cb;
  auv_close_cb close_cb;
  void* data;
  int fd;
};


static void auv__poll_cb(uv_poll_t* handle, int status, int events) {
  auv_poll_t* poll;
  int ours;

  poll = (auv_poll_t*) handle;
  auv__loop_unblock(poll->loop);
  ours = 0;
  if (events & UV_READABLE)
    ours |= AUV_READABLE;
  if (events & UV_WRITABLE)
    ours |= AUV_WRITABLE;
  if (events & UV_DISCONNECT)
    ours |= AUV_DISCONNECT;
  poll->cb(poll, status, ours);
}


static void auv__poll_close_cb(uv_handle_t* handle) {
  auv_poll_t* poll;
  auv_close_cb close_cb;
  void* data;

  poll = (auv_poll_t*) handle;
  auv__loop_unblock(poll->loop);
  close_cb = poll->close_cb;
  data = poll->data;
  free(poll);
  if (close_cb != NULL)
    close_cb(data);
}


int auv_poll_new(auv_loop_t* loop, int fd, auv_poll_t** poll_out) {
  auv_poll_t* poll;
  int err;

  if (loop == NULL || poll_out == NULL || fd < 0)
    return UV_EINVAL;
  *poll_out = NULL;

  poll = calloc(1, sizeof(*poll));
  if (poll == NULL)
    return UV_ENOMEM;
  err = auv__io_init(loop, &poll->handle, fd);
  if (err != 0) {
    free(poll);
    return err;
  }
  poll->loop = loop;
  poll->fd = fd;
  *poll_out = poll;
  return 0;
}


int auv_poll_start(auv_poll_t* poll, int events, auv_poll_cb cb) {
  int uv_events;

  if (poll == NULL || cb == NULL ||
      (events & ~(AUV_READABLE | AUV_WRITABLE | AUV_DISCONNECT)) != 0 ||
      uv_is_closing((uv_handle_t*) &poll->handle))
    return UV_EINVAL;
  uv_events = 0;
  if (events & AUV_READABLE)
    uv_events |= UV_READABLE;
  if (events & AUV_WRITABLE)
    uv_events |= UV_WRITABLE;
  if (events & AUV_DISCONNECT)
    uv_events |= UV_DISCONNECT;
  poll->cb = cb;
  return auv__io_start(&poll->handle, uv_events, auv__poll_cb);
}


int auv_poll_stop(auv_poll_t* poll) {
  if (poll == NULL || uv_is_closing((uv_handle_t*) &poll->handle))
    return UV_EINVAL;
  return auv__io_stop(&poll->handle);
}


void auv_poll_close(auv_poll_t* poll, auv_close_cb close_cb) {
  if (poll == NULL || uv_is_closing((uv_handle_t*) &poll->handle))
    return;
  poll->close_cb = close_cb;
  auv__io_close(&poll->handle, auv__poll_close_cb);
}


int auv_poll_get_fd(const auv_poll_t* poll) {
  return poll == NULL ? -1 : poll->fd;
}


auv_loop_t* auv_poll_get_loop(const auv_poll_t* poll) {
  return poll == NULL ? NULL : poll->loop;
}


void auv_poll_set_data(auv_poll_t* poll, void* data) {
  if (poll != NULL)
    poll->data = data;
}


void* auv_poll_get_data(const auv_poll_t* poll) {
  return poll == NULL ? NULL : poll->data;
}

/* Signal watchers, on libuv's uv_signal_t.
 *
 * libuv's handler only writes the signal to a pipe that the loop reads, so
 * the callback runs on the loop thread, in the poll step, like any I/O
 * callback; several watchers of one signal each get it.  The Python
 * module does not use these (module/run.c: signal.set_wakeup_fd(), so that
 * Python's own handlers run; asyncuv(7), "Data path").
 */
#include <stdlib.h>

#include "internal.h"

struct auv_signal_s {
  uv_signal_t handle;
  auv_loop_t* loop;
  auv_signal_cb cb;
  auv_close_cb close_cb;
  void* data;
};


static void auv__signal_cb(uv_signal_t* handle, int signum) {
  auv_signal_t* sig;

  sig = handle->data;
  auv__loop_unblock(sig->loop);
  sig->cb(sig, signum);
}


static void auv__signal_close_cb(uv_handle_t* handle) {
  auv_signal_t* sig;
  auv_close_cb close_cb;
  void* data;

  sig = handle->data;
  auv__loop_unblock(sig->loop);
  close_cb = sig->close_cb;
  data = sig->data;
  free(sig);
  if (close_cb != NULL)
    close_cb(data);
}


static inline int auv__signal_closing(const auv_signal_t* sig) {
  return uv_is_closing((const uv_handle_t*) &sig->handle);
}


int auv_signal_new(auv_loop_t* loop, auv_signal_t** sig_out) {
  auv_signal_t* sig;
  int err;

  if (sig_out != NULL)
    *sig_out = NULL;
  if (loop == NULL || sig_out == NULL)
    return UV_EINVAL;
  sig = calloc(1, sizeof(*sig));
  if (sig == NULL)
    return UV_ENOMEM;
  err = uv_signal_init(&loop->uv, &sig->handle);
  if (err != 0) {
    free(sig);
    return err;
  }
  sig->handle.data = sig;
  sig->loop = loop;
  *sig_out = sig;
  return 0;
}


int auv_signal_start(auv_signal_t* sig, int signum, auv_signal_cb cb) {
  if (sig == NULL || cb == NULL || signum <= 0 || auv__signal_closing(sig))
    return UV_EINVAL;
  sig->cb = cb;
  return uv_signal_start(&sig->handle, auv__signal_cb, signum);
}


int auv_signal_stop(auv_signal_t* sig) {
  if (sig == NULL || auv__signal_closing(sig))
    return UV_EINVAL;
  return uv_signal_stop(&sig->handle);
}


int auv_signal_is_active(const auv_signal_t* sig) {
  return sig != NULL && uv_is_active((const uv_handle_t*) &sig->handle);
}


void auv_signal_close(auv_signal_t* sig, auv_close_cb close_cb) {
  if (sig == NULL || auv__signal_closing(sig))
    return;
  sig->close_cb = close_cb;
  uv_close((uv_handle_t*) &sig->handle, auv__signal_close_cb);
}


int auv_signal_get_signum(const auv_signal_t* sig) {
  return sig == NULL || !uv_is_active((const uv_handle_t*) &sig->handle)
             ? 0 : sig->handle.signum;
}


auv_loop_t* auv_signal_get_loop(const auv_signal_t* sig) {
  return sig == NULL ? NULL : sig->loop;
}


void auv_signal_set_data(auv_signal_t* sig, void* data) {
  if (sig != NULL)
    sig->data = data;
}


void* auv_signal_get_data(const auv_signal_t* sig) {
  return sig == NULL ? NULL : sig->data;
}

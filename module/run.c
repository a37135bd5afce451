/* Running and closing a loop: run_forever(), run_until_complete(), close(),
 * debug mode, the async generator hooks and the signal wake-up fd.  These run
 * once per run, not per callback, but they carry asyncio's semantics that
 * applications rely on: what a running loop installs and restores. */
#include "asyncuv_module.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

/* asyncio.constants.DEBUG_STACK_DEPTH: coroutine origin frames kept in
 * debug mode. */
#define AUV_DEBUG_STACK_DEPTH 10


static int loop_origin_tracking(LoopObject* self, int enabled) {
  auvpy_state* st;
  PyObject* r;
  int depth;

  if ((enabled != 0) == (self->origin_tracking != 0))
    return 0;
  st = self->state;
  if (enabled) {
    r = PyObject_CallNoArgs(st->get_origin_depth);
    if (r == NULL)
      return -1;
    depth = (int) PyLong_AsLong(r);
    Py_DECREF(r);
    if (depth == -1 && PyErr_Occurred())
      return -1;
    self->origin_saved_depth = depth;
  } else {
    depth = self->origin_saved_depth;
  }
  r = PyObject_CallFunction(st->set_origin_depth, "i",
                            enabled ? AUV_DEBUG_STACK_DEPTH : depth);
  if (r == NULL)
    return -1;
  Py_DECREF(r);
  self->origin_tracking = (char) (enabled != 0);
  return 0;
}


PyObject* auvpy_loop_set_origin_tracking(LoopObject* self, PyObject* enabled) {
  int truth;

  truth = PyObject_IsTrue(enabled);
  if (truth < 0 || loop_origin_tracking(self, truth) < 0)
    return NULL;
  Py_RETURN_NONE;
}


PyObject* auvpy_loop_set_debug(LoopObject* self, PyObject* enabled) {
  PyObject* tracking;
  PyObject* r;
  int truth;

  truth = PyObject_IsTrue(enabled);
  if (truth < 0)
    return NULL;
  self->debug = (char) truth;
  if (self->thread_id == 0)
    Py_RETURN_NONE;
  /* Running: switch coroutine origin tracking from the loop's thread. */
  tracking = PyObject_GetAttr((PyObject*) self, self->state->str_set_origin_tracking);
  if (tracking == NULL)
    return NULL;
  r = PyObject_CallMethodObjArgs((PyObject*) self,
                                 self->state->str_call_soon_threadsafe,
                                 tracking, enabled, NULL);
  Py_DECREF(tracking);
  if (r == NULL)
    return NULL;
  Py_DECREF(r);
  Py_RETURN_NONE;
}


/* --- Async generators ------------------------------------------------------ */

PyObject* auvpy_loop_asyncgen_firstiter(LoopObject* self, PyObject* agen) {
  if (self->asyncgens == NULL)  /* cleared by the collector */
    Py_RETURN_NONE;
  if (self->asyncgens_shutdown_called &&
      PyErr_ResourceWarning((PyObject*) self, 1,
                            "asynchronous generator %R was scheduled after "
                            "loop.shutdown_asyncgens() call", agen) < 0)
    return NULL;
  return PyObject_CallMethodOneArg(self->asyncgens, self->state->str_add, agen);
}


PyObject* auvpy_loop_asyncgen_finalizer(LoopObject* self, PyObject* agen) {
  PyObject* r;
  PyObject* aclose;
  PyObject* create_task;

  if (self->asyncgens == NULL)  /* cleared by the collector */
    Py_RETURN_NONE;
  r = PyObject_CallMethodOneArg(self->asyncgens, self->state->str_discard, agen);
  if (r == NULL)
    return NULL;
  Py_DECREF(r);
  if (self->closed)
    Py_RETURN_NONE;
  /* Any thread may finalize a generator: close it on the loop. */
  aclose = PyObject_CallMethodNoArgs(agen, self->state->str_aclose);
  if (aclose == NULL)
    return NULL;
  create_task = PyObject_GetAttr((PyObject*) self, self->state->str_create_task);
  if (create_task == NULL) {
    Py_DECREF(aclose);
    return NULL;
  }
  r = PyObject_CallMethodObjArgs((PyObject*) self,
                                 self->state->str_call_soon_threadsafe,
                                 create_task, aclose, NULL);
  Py_DECREF(create_task);
  Py_DECREF(aclose);
  return r;
}


static int loop_install_asyncgen_hooks(LoopObject* self) {
  PyObject* kwargs;
  PyObject* hook;
  PyObject* r;

  kwargs = PyDict_New();
  if (kwargs == NULL)
    return -1;
  hook = PyObject_GetAttr((PyObject*) self, self->state->str_firstiter_hook);
  if (hook == NULL || PyDict_SetItem(kwargs, self->state->str_firstiter, hook) < 0)
    goto error;
  Py_DECREF(hook);
  hook = PyObject_GetAttr((PyObject*) self, self->state->str_finalizer_hook);
  if (hook == NULL || PyDict_SetItem(kwargs, self->state->str_finalizer, hook) < 0)
    goto error;
  Py_DECREF(hook);
  r = PyObject_Call(self->state->set_asyncgen_hooks, self->state->empty_tuple, kwargs);
  Py_DECREF(kwargs);
  if (r == NULL)
    return -1;
  Py_DECREF(r);
  return 0;

error:
  Py_XDECREF(hook);
  Py_DECREF(kwargs);
  return -1;
}


/* --- Signal wake-up -------------------------------------------------------- */

/* libuv retries its poll on EINTR, so Python's signal handlers (the
 * KeyboardInterrupt of Ctrl-C) would wait for the next event.  While a loop
 * runs in the main thread, or while it has handlers of add_signal_handler(),
 * signal.set_wakeup_fd() points at a socket pair that the engine watches
 * while it runs.  Its callback schedules the handlers of the signals whose
 * numbers it reads (bytes written while the loop was not running wait in
 * the socket), then runs Python's own pending handlers.  Why not the
 * engine's auv_signal_* (lib/signal.c): asyncuv(7), "Data path". */
/* The table (loop._signal_handlers) is a dict that code may write to, as
 * asyncio's: a value that is not one of our handles goes asyncio's way
 * (_handle_signal()): None is ignored, else its _cancelled is read and its
 * _run() called soon; an error goes to the exception handler. */
static void loop_dispatch_other(LoopObject* self, PyObject* key, PyObject* h) {
  PyObject* cancelled;
  PyObject* run;
  PyObject* r;
  int truth;

  if (h == Py_None)
    return;
  cancelled = PyObject_GetAttrString(h, "_cancelled");
  truth = cancelled == NULL ? -1 : PyObject_IsTrue(cancelled);
  Py_XDECREF(cancelled);
  if (truth > 0) {
    r = PyObject_CallMethod((PyObject*) self, "remove_signal_handler", "O", key);
  } else if (truth == 0) {
    run = PyObject_GetAttrString(h, "_run");
    r = run == NULL || auvpy_loop_call_soon(self, run, NULL, 0) < 0 ? NULL : Py_NewRef(Py_None);
    Py_XDECREF(run);
  } else {
    r = NULL;
  }
  if (r == NULL) {
    PyObject* exc;
    PyObject* ctx;
    if (auvpy_is_exit_exception()) {
      auvpy_loop_set_pending(self);
      return;
    }
    exc = auvpy_take_exception();
    ctx = Py_BuildValue("{sNsOsO}", "message", PyUnicode_FromFormat(
                            "Exception in callback for signal %S", key),
                        "exception", exc != NULL ? exc : Py_None, "handle", h);
    Py_XDECREF(exc);
    r = ctx == NULL ? NULL : auvpy_loop_call_exception_handler(self, ctx);
    Py_XDECREF(ctx);
    if (r == NULL)
      auvpy_loop_set_pending(self);
  }
  Py_XDECREF(r);
}


static void loop_dispatch_signal(LoopObject* self, int signum) {
  HandleObject* h;
  PyObject* key;
  PyObject* r;

  key = PyLong_FromLong(signum);
  if (key == NULL) {
    PyErr_WriteUnraisable((PyObject*) self);
    return;
  }
  h = (HandleObject*) PyDict_GetItemWithError(self->signal_handlers, key);
  if (h == NULL) {
    if (PyErr_Occurred())
      PyErr_WriteUnraisable((PyObject*) self);
  } else if (!Py_IS_TYPE(h, self->state->HandleType)) {
    Py_INCREF(h);
    loop_dispatch_other(self, key, (PyObject*) h);
    Py_DECREF(h);
  } else if (h->cancelled) {
    r = PyObject_CallMethod((PyObject*) self, "remove_signal_handler", "O", key);
    if (r == NULL)
      PyErr_WriteUnraisable((PyObject*) self);
    Py_XDECREF(r);
  } else {
    Py_INCREF(h);
    if (auv_loop_call_soon(self->loop, auvpy_handle_call_cb, h) != 0) {
      Py_DECREF(h);
      PyErr_NoMemory();
      PyErr_WriteUnraisable((PyObject*) self);
    }
  }
  Py_DECREF(key);
}


static void loop_signal_wakeup_cb(auv_poll_t* poll, int status, int events) {
  LoopObject* self;
  unsigned char buf[256];
  ssize_t n;
  ssize_t i;

  self = auv_poll_get_data(poll);
  for (;;) {
    n = read(auv_poll_get_fd(poll), buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (self->signal_handlers != NULL && PyDict_GET_SIZE(self->signal_handlers) > 0)
      for (i = 0; i < n && self->loop != NULL; i++)
        loop_dispatch_signal(self, buf[i]);
    if (n < (ssize_t) sizeof(buf))
      break;
  }
  if (PyErr_CheckSignals() < 0)
    auvpy_loop_set_pending(self);
}


void auvpy_loop_stop_signal_wakeup(LoopObject* self) {
  if (self->signal_poll != NULL) {
    auv_poll_close(self->signal_poll, NULL);
    self->signal_poll = NULL;
  }
}


static int loop_make_signal_fds(LoopObject* self) {
  if (self->signal_fds[0] < 0 &&
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 self->signal_fds) < 0) {
    self->signal_fds[0] = self->signal_fds[1] = -1;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  return 0;
}


/* The fd for signal.set_wakeup_fd() (add_signal_handler() sets it). */
PyObject* auvpy_loop_signal_wakeup_fd(LoopObject* self, PyObject* unused) {
  if (auvpy_loop_check_closed(self) < 0 || loop_make_signal_fds(self) < 0)
    return NULL;
  return PyLong_FromLong(self->signal_fds[1]);
}


/* loop._make_signal_handle(callback, args): a Handle for the signal
 * handler table, not scheduled (the wake-up callback schedules it). */
PyObject* auvpy_loop_make_signal_handle(LoopObject* self, PyObject* const* args,
                                       Py_ssize_t nargs) {
  HandleObject* h;

  if (nargs != 2 || !PyTuple_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "_make_signal_handle(callback, args)");
    return NULL;
  }
  h = auvpy_handle_new(self->state, self, args[0], &PyTuple_GET_ITEM(args[1], 0),
                      PyTuple_GET_SIZE(args[1]), NULL);
  if (h == NULL)
    return NULL;
  /* Held by the table, not the ready queue: the collector must see it. */
  if (!PyObject_GC_IsTracked((PyObject*) h))
    PyObject_GC_Track(h);
  return (PyObject*) h;
}


/* On success *old_fd is the previous wake-up fd to restore, or NULL when
 * this thread may not set one (not the main thread). */
static int loop_start_signal_wakeup(LoopObject* self, PyObject** old_fd) {
  auvpy_state* st;
  PyObject* args;
  PyObject* kwargs;
  PyObject* old;
  PyObject* r;
  int err;

  *old_fd = NULL;
  st = self->state;
  if (loop_make_signal_fds(self) < 0)
    return -1;

  args = Py_BuildValue("(i)", self->signal_fds[1]);
  kwargs = Py_BuildValue("{OO}", st->str_warn_on_full_buffer, Py_False);
  old = NULL;
  if (args != NULL && kwargs != NULL)
    old = PyObject_Call(st->set_wakeup_fd, args, kwargs);
  Py_XDECREF(args);
  Py_XDECREF(kwargs);
  if (old == NULL) {
    if (PyErr_ExceptionMatches(PyExc_ValueError)) {
      PyErr_Clear();  /* not the main thread: signals go elsewhere */
      return 0;
    }
    return -1;
  }

  err = auv_poll_new(self->loop, self->signal_fds[0], &self->signal_poll);
  if (err == 0) {
    auv_poll_set_data(self->signal_poll, self);
    err = auv_poll_start(self->signal_poll, AUV_READABLE, loop_signal_wakeup_cb);
    if (err != 0)
      auvpy_loop_stop_signal_wakeup(self);
  }
  if (err != 0) {
    r = PyObject_CallOneArg(st->set_wakeup_fd, old);
    Py_XDECREF(r);
    Py_DECREF(old);
    auvpy_oserror(err);
    return -1;
  }
  *old_fd = old;
  return 0;
}


/* --- run_forever() ----------------------------------------------------------- */

static int loop_check_running(LoopObject* self) {
  PyObject* running;

  if (self->thread_id != 0) {
    PyErr_SetString(PyExc_RuntimeError, "This event loop is already running");
    return -1;
  }
  running = PyObject_CallNoArgs(self->state->get_running_loop);
  if (running == NULL)
    return -1;
  Py_DECREF(running);
  if (running != Py_None) {
    PyErr_SetString(PyExc_RuntimeError,
                    "Cannot run the event loop while another loop is running");
    return -1;
  }
  return 0;
}


/* The engine run itself; the GIL is released only while it polls. */
static PyObject* loop_run_engine(LoopObject* self) {
  auv_loop_t* loop;

  loop = self->loop;
  self->thread_id = PyThread_get_thread_ident();
  auv_loop_ref(loop);
  auv_loop_run(loop, AUV_RUN_DEFAULT);
  auv_loop_unref(loop);
  self->thread_id = 0;

  if (auvpy_loop_raise_pending(self))
    return NULL;
  Py_RETURN_NONE;
}


/* After the run: undo what it set up, whatever happened, keeping the first
 * error (the run's own, if any) and reporting later ones as unraisable. */
static void keep_first_error(LoopObject* self, PyObject** first, PyObject* r) {
  if (r != NULL) {
    Py_DECREF(r);
    return;
  }
  if (*first == NULL)
    *first = PyErr_GetRaisedException();
  else
    PyErr_WriteUnraisable((PyObject*) self);
}


PyObject* auvpy_loop_run_forever(LoopObject* self, PyObject* unused) {
  auvpy_state* st;
  PyObject* err = NULL;
  PyObject* old_hooks;
  PyObject* old_fd;
  PyObject* result;
  PyObject* r;

  st = self->state;
  if (auvpy_loop_check_closed(self) < 0 || loop_check_running(self) < 0)
    return NULL;
  if (loop_origin_tracking(self, self->debug) < 0)
    return NULL;

  result = NULL;
  old_fd = NULL;
  old_hooks = PyObject_CallNoArgs(st->get_asyncgen_hooks);
  if (old_hooks != NULL && loop_install_asyncgen_hooks(self) == 0 &&
      loop_start_signal_wakeup(self, &old_fd) == 0) {
    r = PyObject_CallOneArg(st->set_running_loop, (PyObject*) self);
    if (r != NULL) {
      Py_DECREF(r);
      result = loop_run_engine(self);
    }
  }

  if (result == NULL)
    err = PyErr_GetRaisedException();
  keep_first_error(self, &err, PyObject_CallOneArg(st->set_running_loop, Py_None));
  if (old_fd != NULL) {
    auvpy_loop_stop_signal_wakeup(self);
    /* With signal handlers, the wake-up fd stays ours: a signal that comes
     * before the next run is handled then. */
    if (self->signal_handlers == NULL || PyDict_GET_SIZE(self->signal_handlers) == 0) {
      long old = PyLong_AsLong(old_fd);
      if (old == -1 && PyErr_Occurred())
        PyErr_Clear();
      if (old >= 0 && old == self->signal_fds[1]) {
        /* Handlers set it before the run and were all removed since. */
        Py_DECREF(old_fd);
        old_fd = PyLong_FromLong(-1);
      }
      if (old_fd != NULL)
        keep_first_error(self, &err, PyObject_CallOneArg(st->set_wakeup_fd, old_fd));
      else
        keep_first_error(self, &err, NULL);
    }
    Py_XDECREF(old_fd);
  }
  if (loop_origin_tracking(self, 0) < 0)
    keep_first_error(self, &err, NULL);
  if (old_hooks != NULL) {
    keep_first_error(self, &err, PyObject_Call(st->set_asyncgen_hooks, old_hooks, NULL));
    Py_DECREF(old_hooks);
  }

  if (err != NULL) {
    Py_XDECREF(result);
    PyErr_SetRaisedException(err);
    return NULL;
  }
  return result;
}


/* --- run_until_complete() ---------------------------------------------------- */

/* Done callback of run_until_complete()'s future: stop its loop, unless the
 * future failed with SystemExit/KeyboardInterrupt, which already ended the
 * run on their way out. */
PyObject* auvpy_stop_when_done(PyObject* module, PyObject* fut) {
  auvpy_state* st;
  PyObject* r;
  PyObject* loop;
  int cancelled;

  st = PyModule_GetState(module);
  r = PyObject_CallMethodNoArgs(fut, st->str_cancelled);
  if (r == NULL)
    return NULL;
  cancelled = PyObject_IsTrue(r);
  Py_DECREF(r);
  if (cancelled < 0)
    return NULL;
  if (!cancelled) {
    r = PyObject_CallMethodNoArgs(fut, st->str_exception);
    if (r == NULL)
      return NULL;
    if (PyObject_TypeCheck(r, (PyTypeObject*) PyExc_SystemExit) ||
        PyObject_TypeCheck(r, (PyTypeObject*) PyExc_KeyboardInterrupt)) {
      Py_DECREF(r);
      Py_RETURN_NONE;
    }
    Py_DECREF(r);
  }
  loop = PyObject_CallMethodNoArgs(fut, st->str_get_loop);
  if (loop == NULL)
    return NULL;
  r = PyObject_CallMethodNoArgs(loop, st->str_stop);
  Py_DECREF(loop);
  return r;
}


static int call_truth(PyObject* obj, PyObject* method) {
  PyObject* r;
  int truth;

  r = PyObject_CallMethodNoArgs(obj, method);
  if (r == NULL)
    return -1;
  truth = PyObject_IsTrue(r);
  Py_DECREF(r);
  return truth;
}


PyObject* auvpy_loop_run_until_complete(LoopObject* self, PyObject* future) {
  auvpy_state* st;
  PyObject* err = NULL;
  PyObject* stack[2];
  PyObject* fut;
  PyObject* r;
  int new_task;
  int done;

  st = self->state;
  if (auvpy_loop_check_closed(self) < 0 || loop_check_running(self) < 0)
    return NULL;

  r = PyObject_CallOneArg(st->isfuture, future);
  if (r == NULL)
    return NULL;
  new_task = !PyObject_IsTrue(r);
  Py_DECREF(r);

  stack[0] = future;
  stack[1] = (PyObject*) self;
  fut = PyObject_Vectorcall(st->ensure_future, stack, 1, st->kw_loop);
  if (fut == NULL)
    return NULL;
  /* A task made here raises through us if it fails: asyncio does not log
   * it as destroyed while pending. */
  if (new_task && PyObject_SetAttr(fut, st->str_log_destroy_pending, Py_False) < 0)
    goto error;
  r = PyObject_CallMethodOneArg(fut, st->str_add_done_callback, st->stop_when_done);
  if (r == NULL)
    goto error;
  Py_DECREF(r);

  r = PyObject_CallMethodNoArgs((PyObject*) self, st->str_run_forever);
  if (r == NULL) {
    err = PyErr_GetRaisedException();
    /* The coroutine raised a BaseException: consume it so that it is not
     * logged, the caller never saw the task. */
    if (new_task && call_truth(fut, st->str_done) > 0 &&
        call_truth(fut, st->str_cancelled) == 0) {
      PyObject* exc = PyObject_CallMethodNoArgs(fut, st->str_exception);
      Py_XDECREF(exc);
    }
    PyErr_Clear();
  } else {
    Py_DECREF(r);
  }
  keep_first_error(self, &err,
                   PyObject_CallMethodOneArg(fut, st->str_remove_done_callback,
                                             st->stop_when_done));
  if (err != NULL) {
    PyErr_SetRaisedException(err);
    goto error;
  }

  done = call_truth(fut, st->str_done);
  if (done < 0)
    goto error;
  if (!done) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop stopped before Future completed.");
    goto error;
  }
  r = PyObject_CallMethodNoArgs(fut, st->str_result);
  Py_DECREF(fut);
  return r;

error:
  Py_DECREF(fut);
  return NULL;
}


/* --- close() ----------------------------------------------------------------- */

/* Free the engine unless a C extension holds it (asyncuv-python.h: the
 * last loop_release() frees it then); RuntimeError if it is busy. */
static int loop_close_engine(LoopObject* self) {
  int err;

  if (self->engine_holders > 0)
    return 0;
  err = auvpy_loop_free_engine(self);
  if (err != 0) {
    /* Handles or work still hold the engine: leave it (to a later
     * close(), or to the process) rather than free it under them. */
    PyErr_Format(PyExc_RuntimeError, "cannot close the engine loop: %s",
                 auv_strerror(err));
    return -1;
  }
  return 0;
}


PyObject* auvpy_loop_close(LoopObject* self, PyObject* unused) {
  PyObject* executor;
  PyObject* r;
  int engine_failed;

  if (self->thread_id != 0) {
    PyErr_SetString(PyExc_RuntimeError, "Cannot close a running event loop");
    return NULL;
  }
  if (self->closed) {
    /* Closed before with the engine busy: try again. */
    if (self->loop != NULL && loop_close_engine(self) < 0)
      return NULL;
    Py_RETURN_NONE;
  }
  if (self->debug) {
    r = PyObject_CallMethod(self->state->logger, "debug", "sO", "Close %r", self);
    if (r == NULL)
      return NULL;
    Py_DECREF(r);
  }

  self->closed = 1;
  auvpy_loop_stop_signal_wakeup(self);
  auvpy_loop_close_listeners(self);
  auvpy_loop_clear_watchers(self);
  auvpy_loop_close_transports(self);
  auvpy_loop_cancel_sock_sendfiles(self);
  auvpy_loop_drop_callbacks(self);
  /* A busy engine fails the close, but only after everything else is
   * closed: the wake-up fds, the default executor. */
  engine_failed = loop_close_engine(self) < 0;
  if (self->signal_fds[0] >= 0) {
    close(self->signal_fds[0]);
    close(self->signal_fds[1]);
    self->signal_fds[0] = self->signal_fds[1] = -1;
  }

  self->executor_shutdown_called = 1;
  executor = self->default_executor;
  if (executor != NULL) {
    PyObject* exc = PyErr_GetRaisedException();  /* the engine's error, if any */
    self->default_executor = NULL;
    PyObject* kwargs = Py_BuildValue("{OO}", self->state->str_wait, Py_False);
    PyObject* shutdown = PyObject_GetAttr(executor, self->state->str_shutdown);
    r = NULL;
    if (kwargs != NULL && shutdown != NULL)
      r = PyObject_Call(shutdown, self->state->empty_tuple, kwargs);
    Py_XDECREF(kwargs);
    Py_XDECREF(shutdown);
    Py_DECREF(executor);
    if (r == NULL) {
      if (exc != NULL)
        PyErr_WriteUnraisable((PyObject*) self);  /* the engine's wins */
      else
        return NULL;
    }
    Py_XDECREF(r);
    PyErr_SetRaisedException(exc);
  }
  if (engine_failed)
    return NULL;
  Py_RETURN_NONE;
}

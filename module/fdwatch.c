/* add_reader(), add_writer() and their removal: Python handles over the
 * engine's watcher set (auv_watch_*, lib/watch.c), one watcher per fd.  The
 * engine reads the set during its poll and calls watcher_cb() in its I/O
 * step, after the calls queued before the poll and before the due timers,
 * which is where asyncio's selector loop runs the handles of a poll.
 *
 * The fds that transports own are in transport_common.c, the listeners of
 * servers in listener.c. */
#include "asyncuv_module.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

struct FdWatcherObject {
  PyObject_HEAD
  LoopObject* loop;
  auv_watch_t* watch;          /* NULL once out of the loop */
  HandleObject* reader;
  HandleObject* writer;
  int fd;
};


/* asyncio's rules for turning a file object into a descriptor
 * (selectors._fileobj_to_fd): an int, or int(fileobj.fileno()).  A new
 * reference, or NULL with ValueError for what is no file object. */
static PyObject* fileobj_number(auvpy_state* st, PyObject* fileobj) {
  PyObject* fileno;
  PyObject* num;

  if (PyLong_Check(fileobj))
    return Py_NewRef(fileobj);
  fileno = PyObject_CallMethodNoArgs(fileobj, st->str_fileno);
  num = fileno != NULL ? PyNumber_Long(fileno) : NULL;
  Py_XDECREF(fileno);
  if (num == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError) &&
        !PyErr_ExceptionMatches(PyExc_TypeError) &&
        !PyErr_ExceptionMatches(PyExc_ValueError))
      return NULL;
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "Invalid file object: %R", fileobj);
  }
  return num;
}


enum { FD_OK, FD_NEGATIVE, FD_TOO_LARGE };

/* FD_OK with *fd set, or why num is no C int descriptor (no exception:
 * asyncio checks at registration, after the loop's closed check). */
static int number_to_fd(PyObject* num, int* fd) {
  long value;
  int overflow;

  value = PyLong_AsLongAndOverflow(num, &overflow);
  if (overflow < 0 || (overflow == 0 && value < 0))
    return FD_NEGATIVE;
  if (overflow > 0 || value > INT_MAX)
    return FD_TOO_LARGE;
  *fd = (int) value;
  return FD_OK;
}


/* The error asyncio's selector raises for such a number. */
static void raise_bad_fd(PyObject* num, int why) {
  if (why == FD_NEGATIVE)
    PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %S", num);
  else
    PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
}


int auvpy_fileobj_to_fd(auvpy_state* st, PyObject* fileobj) {
  PyObject* num;
  int fd;
  int r;

  num = fileobj_number(st, fileobj);
  if (num == NULL)
    return -1;
  r = number_to_fd(num, &fd);
  if (r != FD_OK)
    raise_bad_fd(num, r);
  Py_DECREF(num);
  return r == FD_OK ? fd : -1;
}


/* Run the handles of the directions found ready.  After a
 * KeyboardInterrupt or SystemExit from the reader, the writer waits in the
 * ready queue for the next run (the engine keeps the other watchers' I/O
 * for it). */
static void watcher_cb(auv_watch_t* watch, int events) {
  HandleObject* taken[2];
  FdWatcherObject* w;
  LoopObject* self;
  HandleObject* h;
  int n;
  int i;

  w = auv_watch_get_data(watch);
  self = w->loop;
  n = 0;
  if ((events & AUV_READABLE) && (h = w->reader) != NULL && !h->cancelled)
    taken[n++] = (HandleObject*) Py_NewRef(h);
  if ((events & AUV_WRITABLE) && (h = w->writer) != NULL && !h->cancelled)
    taken[n++] = (HandleObject*) Py_NewRef(h);
  Py_INCREF(self);
  for (i = 0; i < n; i++) {
    if (self->pending_exc != NULL) {
      if (auv_loop_call_soon(self->loop, auvpy_handle_call_cb, taken[i]) != 0)
        auvpy_handle_release(taken[i]);
      continue;
    }
    auvpy_handle_call_cb(self->loop, taken[i]);  /* releases it */
  }
  Py_DECREF(self);
}


/* Watch the directions that have a handle (the engine changes its set only
 * when that changes).  restart: the direction whose handle is new, whose
 * readiness found by the last poll is no longer for it (asyncio cancels
 * the old handle, and the new one waits for the next poll). */
static int watcher_update(FdWatcherObject* w, int restart) {
  int want;
  int err;

  want = (w->reader != NULL ? AUV_READABLE : 0) |
         (w->writer != NULL ? AUV_WRITABLE : 0);
  err = auv_watch_stop(w->watch, auv_watch_get_events(w->watch) & ~want);
  if (err == 0)
    err = auv_watch_start(w->watch, want & (restart | ~auv_watch_get_events(w->watch)));
  if (err != 0) {
    auvpy_oserror(err);
    return -1;
  }
  return 0;
}


/* The index grows to the fd, which the engine has just taken into its set
 * (so it is open: add_reader(2**31 - 1) once grew the index for ever, and
 * an fd near 10**9 cost gigabytes); an open fd is below the process's
 * descriptor limit, so the index is too. */
static int loop_index_watcher(LoopObject* self, FdWatcherObject* w) {
  FdWatcherObject** grown;
  size_t size;

  if (w->fd >= self->nwatchers) {
    size = self->nwatchers > 0 ? (size_t) self->nwatchers : 64;
    while (size <= (size_t) w->fd)
      size *= 2;
    if (size > INT_MAX)
      size = INT_MAX;
    if ((size_t) w->fd >= size || size > PY_SSIZE_T_MAX / sizeof(*grown)) {
      PyErr_NoMemory();
      return -1;
    }
    grown = PyMem_Realloc(self->watchers, size * sizeof(*grown));
    if (grown == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    memset(grown + self->nwatchers, 0, (size - (size_t) self->nwatchers) * sizeof(*grown));
    self->watchers = grown;
    self->nwatchers = (int) size;
  }
  /* The index holds a reference (the loop shows it to the collector);
   * fd_owners is for transports. */
  self->watchers[w->fd] = (FdWatcherObject*) Py_NewRef(w);
  return 0;
}


static FdWatcherObject* watcher_get(LoopObject* self, int fd) {
  if (fd < self->nwatchers && self->watchers[fd] != NULL)
    return (FdWatcherObject*) Py_NewRef(self->watchers[fd]);
  return NULL;
}


/* A watcher of fd, not yet started nor in the index. */
static FdWatcherObject* watcher_new(LoopObject* self, int fd) {
  FdWatcherObject* w;
  int err;

  w = PyObject_GC_New(FdWatcherObject, self->state->FdWatcherType);
  if (w == NULL)
    return NULL;
  w->loop = (LoopObject*) Py_NewRef(self);
  w->reader = NULL;
  w->writer = NULL;
  w->fd = fd;
  w->watch = NULL;
  PyObject_GC_Track(w);
  err = auv_watch_new(self->loop, fd, watcher_cb, &w->watch);
  if (err != 0) {
    Py_DECREF(w);
    return (FdWatcherObject*) auvpy_oserror(err);
  }
  /* The engine's pointer is borrowed: the index, or the caller, holds the
   * watcher while its engine watcher exists. */
  auv_watch_set_data(w->watch, w);
  return w;
}


/* Out of the engine's set and the loop's index. */
static void watcher_unregister(FdWatcherObject* w) {
  LoopObject* self;

  self = w->loop;
  if (self == NULL)
    return;
  if (w->watch != NULL) {
    auv_watch_free(w->watch);  /* what the last poll found will not run */
    w->watch = NULL;
  }
  if (w->fd < self->nwatchers && self->watchers[w->fd] == w) {
    self->watchers[w->fd] = NULL;
    Py_DECREF(w);  /* the index's; the caller still holds one */
  }
}


/* Out of the loop altogether; an exception already set stays set. */
static void watcher_forget(FdWatcherObject* w) {
  PyObject* exc;

  exc = PyErr_GetRaisedException();
  watcher_unregister(w);
  PyErr_SetRaisedException(exc);
}


static void cancel_handle(HandleObject* h) {
  PyObject* r;

  r = PyObject_CallMethodNoArgs((PyObject*) h, h->loop->state->str_cancel);
  if (r == NULL)
    PyErr_WriteUnraisable((PyObject*) h);
  Py_XDECREF(r);
}


/* Returns the new handle (asyncio's _add_reader()/_add_writer() do). */
static PyObject* loop_add_watch(LoopObject* self, PyObject* const* args,
                                Py_ssize_t nargs, int writer,
                                const char* method) {
  FdWatcherObject* w;
  HandleObject* h;
  HandleObject* old;
  PyObject* num;
  int fresh;
  int fd;
  int r;

  if (nargs < 2) {
    PyErr_Format(PyExc_TypeError, "%s() takes at least 2 arguments (%zd given)",
                 method, nargs);
    return NULL;
  }
  /* asyncio's order: a file object, its transport, the closed loop, then
   * what the selector says of the number. */
  num = fileobj_number(self->state, args[0]);
  if (num == NULL)
    return NULL;
  r = number_to_fd(num, &fd);
  if ((r == FD_OK && auvpy_loop_check_fd_unowned(self, args[0], fd) < 0) ||
      auvpy_loop_check_closed(self) < 0) {
    Py_DECREF(num);
    return NULL;
  }
  if (r != FD_OK)
    raise_bad_fd(num, r);
  Py_DECREF(num);
  if (r != FD_OK)
    return NULL;

  h = auvpy_handle_new(self->state, self, args[1], args + 2, nargs - 2, NULL);
  if (h == NULL)
    return NULL;
  /* Held by the watcher, not only by the ready queue: the collector must
   * see it (a loop whose reader never fired is otherwise never freed). */
  if (!PyObject_GC_IsTracked((PyObject*) h))
    PyObject_GC_Track(h);
  w = watcher_get(self, fd);
  fresh = w == NULL;
  if (fresh && (w = watcher_new(self, fd)) == NULL) {
    Py_DECREF(h);
    return NULL;
  }
  if (writer) {
    old = w->writer;
    w->writer = h;
  } else {
    old = w->reader;
    w->reader = h;
  }
  /* Started before it is indexed: the engine refuses an fd that is not
   * open (EBADF, as asyncio's selector) before the index grows to it. */
  if (watcher_update(w, writer ? AUV_WRITABLE : AUV_READABLE) < 0 ||
      (fresh && loop_index_watcher(self, w) < 0)) {
    if (writer)
      w->writer = old;
    else
      w->reader = old;
    Py_DECREF(h);
    if (w->reader == NULL && w->writer == NULL)
      watcher_forget(w);
    Py_DECREF(w);
    return NULL;
  }
  if (old != NULL) {
    cancel_handle(old);
    Py_DECREF(old);
  }
  Py_DECREF(w);
  return Py_NewRef(h);
}


static PyObject* loop_remove_watch(LoopObject* self, PyObject* fileobj, int writer) {
  FdWatcherObject* w;
  HandleObject* old;
  PyObject* num;
  int fd;
  int r;

  num = fileobj_number(self->state, fileobj);
  if (num == NULL)
    return NULL;
  r = number_to_fd(num, &fd);
  if ((r == FD_OK && auvpy_loop_check_fd_unowned(self, fileobj, fd) < 0) ||
      (r == FD_NEGATIVE && !self->closed)) {
    if (!PyErr_Occurred())
      raise_bad_fd(num, r);
    Py_DECREF(num);
    return NULL;
  }
  Py_DECREF(num);
  if (r != FD_OK || self->closed)  /* too large to be watched */
    Py_RETURN_FALSE;
  w = watcher_get(self, fd);
  if (w == NULL)
    Py_RETURN_FALSE;
  if (writer) {
    old = w->writer;
    w->writer = NULL;
  } else {
    old = w->reader;
    w->reader = NULL;
  }
  if (w->reader == NULL && w->writer == NULL)
    watcher_forget(w);
  else if (watcher_update(w, 0) < 0)
    PyErr_Clear();  /* a stop cannot fail */
  Py_DECREF(w);
  if (old == NULL)
    Py_RETURN_FALSE;
  cancel_handle(old);
  Py_DECREF(old);
  Py_RETURN_TRUE;
}


static PyObject* none_instead(PyObject* r) {
  if (r == NULL)
    return NULL;
  Py_DECREF(r);
  Py_RETURN_NONE;
}


PyObject* auvpy_loop_add_reader(LoopObject* self, PyObject* const* args,
                               Py_ssize_t nargs) {
  return none_instead(loop_add_watch(self, args, nargs, 0, "add_reader"));
}


PyObject* auvpy_loop_add_writer(LoopObject* self, PyObject* const* args,
                               Py_ssize_t nargs) {
  return none_instead(loop_add_watch(self, args, nargs, 1, "add_writer"));
}


PyObject* auvpy_loop_add_reader_handle(LoopObject* self, PyObject* const* args,
                                      Py_ssize_t nargs) {
  return loop_add_watch(self, args, nargs, 0, "_add_reader");
}


PyObject* auvpy_loop_add_writer_handle(LoopObject* self, PyObject* const* args,
                                      Py_ssize_t nargs) {
  return loop_add_watch(self, args, nargs, 1, "_add_writer");
}


PyObject* auvpy_loop_remove_reader(LoopObject* self, PyObject* fd) {
  return loop_remove_watch(self, fd, 0);
}


PyObject* auvpy_loop_remove_writer(LoopObject* self, PyObject* fd) {
  return loop_remove_watch(self, fd, 1);
}


/* Cancel and drop every watcher (at close, and when the collector clears
 * the loop). */
void auvpy_loop_clear_watchers(LoopObject* self) {
  FdWatcherObject* w;
  int fd;

  for (fd = 0; fd < self->nwatchers; fd++) {
    w = self->watchers[fd];
    if (w == NULL)
      continue;
    Py_INCREF(w);
    if (w->reader != NULL)
      cancel_handle(w->reader);
    if (w->writer != NULL)
      cancel_handle(w->writer);
    Py_CLEAR(w->reader);
    Py_CLEAR(w->writer);
    watcher_unregister(w);
    Py_DECREF(w);
  }
}


/* The index itself, when the loop is freed (after auvpy_loop_clear_watchers()). */
void auvpy_loop_free_watchers(LoopObject* self) {
  PyMem_Free(self->watchers);
  self->watchers = NULL;
  self->nwatchers = 0;
}


int auvpy_loop_visit_watchers(LoopObject* self, visitproc visit, void* arg) {
  int fd;

  for (fd = 0; fd < self->nwatchers; fd++)
    Py_VISIT(self->watchers[fd]);
  return 0;
}


static int watcher_traverse(FdWatcherObject* w, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(w));
  Py_VISIT(w->loop);
  Py_VISIT(w->reader);
  Py_VISIT(w->writer);
  return 0;
}


static int watcher_clear(FdWatcherObject* w) {
  watcher_unregister(w);
  Py_CLEAR(w->reader);
  Py_CLEAR(w->writer);
  Py_CLEAR(w->loop);
  return 0;
}


static void watcher_dealloc(FdWatcherObject* w) {
  PyTypeObject* tp;

  tp = Py_TYPE(w);
  PyObject_GC_UnTrack(w);
  watcher_clear(w);
  tp->tp_free(w);
  Py_DECREF(tp);
}


static PyType_Slot watcher_slots[] = {
  {Py_tp_dealloc, watcher_dealloc},
  {Py_tp_traverse, watcher_traverse},
  {Py_tp_clear, watcher_clear},
  {0, NULL}
};

PyType_Spec auvpy_fd_watcher_spec = {
  .name = "asyncuv._asyncuv._FdWatcher",
  .basicsize = sizeof(FdWatcherObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
           Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = watcher_slots,
};

/* Child exit watches, for the loop's subprocesses and for the policy's
 * child watcher: the engine's auv_child_watch, which polls a pidfd on the
 * loop itself (or has a thread wait where pidfds are missing) and reaps
 * only its own pid.  The callback gets the returncode from the ready
 * queue, as a reader callback would.
 *
 * loop._watch_child_exit(pid, callback) returns a _ChildWatch; its
 * cancel() stops it and says whether it was still waiting (the loop hands
 * such children to a thread when it closes). */
#include "asyncuv_module.h"

#include <errno.h>
#include <limits.h>

typedef struct {
  PyObject_HEAD
  LoopObject* loop;
  auv_child_watch_t* watch;    /* NULL once closed */
  PyObject* callback;          /* NULL once called or cancelled */
  int pid;
} ChildWatchObject;


static void child_close_cb(void* data) {
  Py_DECREF((PyObject*) data);  /* the engine's reference */
}


static void child_watch_close(ChildWatchObject* self) {
  if (self->watch != NULL) {
    auv_child_watch_close(self->watch, child_close_cb);
    self->watch = NULL;
  }
}


static void child_exit_cb(auv_child_watch_t* w, int pid, int returncode) {
  ChildWatchObject* self;
  PyObject* callback;
  PyObject* rc;

  self = auv_child_watch_get_data(w);
  Py_INCREF(self);
  child_watch_close(self);
  callback = self->callback;
  self->callback = NULL;
  if (callback != NULL && self->loop != NULL) {
    rc = PyLong_FromLong(returncode);
    if (rc == NULL || auvpy_loop_call_soon(self->loop, callback, &rc, 1) < 0)
      PyErr_WriteUnraisable((PyObject*) self);
    Py_XDECREF(rc);
  }
  Py_XDECREF(callback);
  Py_DECREF(self);
}


PyObject* auvpy_loop_watch_child_exit(LoopObject* loop, PyObject* const* args,
                                     Py_ssize_t nargs) {
  ChildWatchObject* self;
  long pid;
  int err;

  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_watch_child_exit(pid, callback)");
    return NULL;
  }
  pid = PyLong_AsLong(args[0]);
  if (pid == -1 && PyErr_Occurred())
    return NULL;
  if (pid <= 0 || pid > INT_MAX) {
    PyErr_Format(PyExc_ValueError, "invalid pid %ld", pid);
    return NULL;
  }
  if (!PyCallable_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "callback must be callable");
    return NULL;
  }
  if (auvpy_loop_check_closed(loop) < 0 || auvpy_loop_check_thread(loop) < 0)
    return NULL;

  self = PyObject_GC_New(ChildWatchObject, loop->state->ChildWatchType);
  if (self == NULL)
    return NULL;
  self->loop = (LoopObject*) Py_NewRef(loop);
  self->callback = Py_NewRef(args[1]);
  self->watch = NULL;
  self->pid = (int) pid;
  PyObject_GC_Track(self);
  err = auv_child_watch_start(loop->loop, (int) pid, child_exit_cb, &self->watch);
  if (err != 0) {
    self->watch = NULL;
    Py_DECREF(self);
    return auvpy_oserror(err);
  }
  auv_child_watch_set_data(self->watch, self);
  Py_INCREF(self);  /* the engine's, until the close callback */
  return (PyObject*) self;
}


static PyObject* child_watch_cancel(ChildWatchObject* self, PyObject* unused) {
  int waiting;

  if (self->watch != NULL && auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  waiting = self->watch != NULL && auv_child_watch_is_active(self->watch);
  child_watch_close(self);
  Py_CLEAR(self->callback);
  return PyBool_FromLong(waiting);
}


/* loop.close() with the child still running: the engine reaps it when it
 * exits, on a thread of its own (auv_child_watch_detach()). */
static PyObject* child_watch_detach(ChildWatchObject* self, PyObject* unused) {
  int waiting;
  int err;

  if (self->watch != NULL && auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  waiting = self->watch != NULL && auv_child_watch_is_active(self->watch);
  err = 0;
  if (self->watch != NULL) {
    err = auv_child_watch_detach(self->watch, child_close_cb);
    self->watch = NULL;
  }
  Py_CLEAR(self->callback);
  if (err != 0)
    return auvpy_oserror(err);
  return PyBool_FromLong(waiting);
}


static PyObject* child_watch_get_pid(ChildWatchObject* self, void* closure) {
  return PyLong_FromLong(self->pid);
}


static PyObject* child_watch_repr(ChildWatchObject* self) {
  return PyUnicode_FromFormat("<_ChildWatch pid=%d %s>", self->pid,
                              self->watch != NULL ? "waiting" : "done");
}


static int child_watch_traverse(ChildWatchObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->loop);
  Py_VISIT(self->callback);
  return 0;
}


static int child_watch_clear(ChildWatchObject* self) {
  Py_CLEAR(self->callback);
  Py_CLEAR(self->loop);
  return 0;
}


static void child_watch_dealloc(ChildWatchObject* self) {
  PyTypeObject* tp;

  tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  child_watch_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}


static PyMethodDef child_watch_methods[] = {
  {"cancel", (PyCFunction) child_watch_cancel, METH_NOARGS,
   PyDoc_STR("Stop watching; return True if the child had not exited yet.")},
  {"detach", (PyCFunction) child_watch_detach, METH_NOARGS,
   PyDoc_STR("Stop watching; a child that has not exited yet is reaped when "
             "it does.  Return True if it had not exited yet.")},
  {NULL}
};

static PyGetSetDef child_watch_getset[] = {
  {"pid", (getter) child_watch_get_pid, NULL, NULL, NULL},
  {NULL}
};

static PyType_Slot child_watch_slots[] = {
  {Py_tp_dealloc, child_watch_dealloc},
  {Py_tp_traverse, child_watch_traverse},
  {Py_tp_clear, child_watch_clear},
  {Py_tp_repr, child_watch_repr},
  {Py_tp_methods, child_watch_methods},
  {Py_tp_getset, child_watch_getset},
  {0, NULL}
};

PyType_Spec auvpy_child_watch_spec = {
  .name = "asyncuv._asyncuv._ChildWatch",
  .basicsize = sizeof(ChildWatchObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
           Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = child_watch_slots,
};

/* Listeners: accepting connections for servers (create_server(),
 * start_server()) on the engine's auv_listener_t (lib/tcp.c), one per
 * listening fd; each accepted socket goes to the callback of
 * module/asyncuv/_network.py's server. */
#include "asyncuv_module.h"

#include <unistd.h>

struct ListenerObject {
  PyObject_HEAD
  LoopObject* loop;
  auv_listener_t* listener;    /* NULL once closed */
  PyObject* callback;          /* callback(conn_socket, None) / (None, OSError) */
  int fd;
};

typedef struct ListenerObject ListenerObject;


/* The engine holds a reference to each listener with an open handle, and
 * the engine is the loop's: the collector must see those references too,
 * or a loop left unclosed with an open server (which holds the loop) is
 * never freed and never warns. */
int auvpy_loop_visit_listeners(LoopObject* self, visitproc visit, void* arg) {
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos;

  pos = 0;
  while (self->listeners != NULL && PyDict_Next(self->listeners, &pos, &key, &value)) {
    if (((ListenerObject*) value)->listener != NULL)
      Py_VISIT(value);
  }
  return 0;
}


static void listener_connection_cb(auv_listener_t* l, int status, int fd) {
  ListenerObject* self;
  PyObject* conn;
  PyObject* error;
  PyObject* r;
  PyObject* kwargs;

  self = auv_listener_get_data(l);
  Py_INCREF(self);
  conn = Py_NewRef(Py_None);
  error = Py_NewRef(Py_None);
  if (status < 0) {
    Py_SETREF(error, PyObject_CallFunction(PyExc_OSError, "is", -status,
                                           auv_strerror(status)));
  } else {
    /* socket.socket(fileno=fd) learns family, type and protocol itself. */
    kwargs = Py_BuildValue("{Oi}", self->loop->state->str_fileno, fd);
    Py_SETREF(conn, kwargs == NULL ? NULL :
              PyObject_Call(self->loop->state->socket_type,
                            self->loop->state->empty_tuple, kwargs));
    Py_XDECREF(kwargs);
    if (conn == NULL)
      close(fd);
  }
  if (conn != NULL && error != NULL) {
    r = PyObject_CallFunctionObjArgs(self->callback, conn, error, NULL);
  } else {
    r = NULL;
  }
  if (r == NULL) {
    if (auvpy_is_exit_exception()) {
      auvpy_loop_set_pending(self->loop);
    } else {
      PyObject* ctx;
      PyObject* exc = auvpy_take_exception();
      ctx = Py_BuildValue("{sssO}", "message", "Error accepting a connection",
                          "exception", exc ? exc : Py_None);
      Py_XDECREF(exc);
      if (ctx != NULL) {
        r = auvpy_loop_call_exception_handler(self->loop, ctx);
        Py_DECREF(ctx);
      }
      if (r == NULL)
        auvpy_loop_set_pending(self->loop);
    }
  }
  Py_XDECREF(r);
  Py_XDECREF(conn);
  Py_XDECREF(error);
  Py_DECREF(self);
}


static void listener_close_cb(void* data) {
  Py_DECREF((PyObject*) data);
}


static void listener_close(ListenerObject* self) {
  if (self->listener != NULL) {
    auv_listener_close(self->listener, listener_close_cb);
    self->listener = NULL;
  }
}


PyObject* auvpy_loop_listen(LoopObject* self, PyObject* const* args, Py_ssize_t nargs) {
  ListenerObject* l;
  PyObject* key;
  int fd;
  int err;

  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_listen(sock, callback)");
    return NULL;
  }
  if (auvpy_loop_check_closed(self) < 0 || auvpy_loop_check_thread(self) < 0)
    return NULL;
  fd = auvpy_fileobj_to_fd(self->state, args[0]);
  if (fd < 0)
    return NULL;
  key = PyLong_FromLong(fd);
  if (key == NULL)
    return NULL;
  if (PyDict_GetItemWithError(self->listeners, key) != NULL || PyErr_Occurred()) {
    Py_DECREF(key);
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_RuntimeError, "fd %d is already accepting", fd);
    return NULL;
  }

  l = PyObject_GC_New(ListenerObject, self->state->ListenerType);
  if (l == NULL) {
    Py_DECREF(key);
    return NULL;
  }
  l->loop = (LoopObject*) Py_NewRef(self);
  l->callback = Py_NewRef(args[1]);
  l->fd = fd;
  l->listener = NULL;
  PyObject_GC_Track(l);

  err = auv_listener_new(self->loop, fd, &l->listener);
  if (err == 0) {
    auv_listener_set_data(l->listener, l);
    Py_INCREF(l);  /* the engine's, until the close callback */
    err = auv_listener_start(l->listener, listener_connection_cb);
  }
  if (err != 0 || PyDict_SetItem(self->listeners, key, (PyObject*) l) < 0) {
    listener_close(l);
    Py_DECREF(key);
    Py_DECREF(l);
    if (err != 0) {
      return auvpy_oserror(err);
    }
    return NULL;
  }
  Py_DECREF(key);
  Py_DECREF(l);
  Py_RETURN_NONE;
}


PyObject* auvpy_loop_unlisten(LoopObject* self, PyObject* sock) {
  ListenerObject* l;
  PyObject* key;
  int fd;

  if (auvpy_loop_check_thread(self) < 0)
    return NULL;
  fd = auvpy_fileobj_to_fd(self->state, sock);
  if (fd < 0)
    return NULL;
  if (self->listeners == NULL)  /* cleared by the collector */
    Py_RETURN_FALSE;
  key = PyLong_FromLong(fd);
  if (key == NULL)
    return NULL;
  l = (ListenerObject*) PyDict_GetItemWithError(self->listeners, key);
  if (l == NULL) {
    Py_DECREF(key);
    if (PyErr_Occurred())
      return NULL;
    Py_RETURN_FALSE;
  }
  listener_close(l);
  if (PyDict_DelItem(self->listeners, key) < 0) {
    Py_DECREF(key);
    return NULL;
  }
  Py_DECREF(key);
  Py_RETURN_TRUE;
}


void auvpy_loop_close_listeners(LoopObject* self) {
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos;

  if (self->listeners == NULL)
    return;
  pos = 0;
  while (PyDict_Next(self->listeners, &pos, &key, &value))
    listener_close((ListenerObject*) value);
  PyDict_Clear(self->listeners);
}


static int listener_traverse(ListenerObject* l, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(l));
  Py_VISIT(l->loop);
  Py_VISIT(l->callback);
  return 0;
}


static int listener_clear(ListenerObject* l) {
  Py_CLEAR(l->callback);
  Py_CLEAR(l->loop);
  return 0;
}


static void listener_dealloc(ListenerObject* l) {
  PyTypeObject* tp;

  tp = Py_TYPE(l);
  PyObject_GC_UnTrack(l);
  listener_clear(l);
  tp->tp_free(l);
  Py_DECREF(tp);
}


static PyType_Slot listener_slots[] = {
  {Py_tp_dealloc, listener_dealloc},
  {Py_tp_traverse, listener_traverse},
  {Py_tp_clear, listener_clear},
  {0, NULL}
};

PyType_Spec auvpy_listener_spec = {
  .name = "asyncuv._asyncuv._Listener",
  .basicsize = sizeof(ListenerObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
           Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = listener_slots,
};

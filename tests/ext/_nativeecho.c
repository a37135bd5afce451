/* _nativeecho: a test extension of asyncuv's C API (asyncuv-python.h).
 *
 * serve(loop, sock) takes the engine behind an asyncuv loop through the
 * capsule and runs a TCP echo server on it with libasyncuv's listeners and
 * streams: no Python runs per connection or per message.  It returns a
 * Server; Server.close() closes the listener and every connection and
 * gives the loop back.
 *
 * hold(loop) only acquires the loop (a Holder, released by release() or
 * when deallocated); _load_capi(version, size) runs the header's
 * compatibility check with other values. */
#define PY_SSIZE_T_CLEAN
#include <asyncuv-python.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ECHO_BUF_SIZE 65536
/* Stop reading while this much is queued for a slow reader. */
#define ECHO_HIGH_WATER (1024 * 1024)

typedef struct conn_s conn_t;

/* Servers and holders reference the loop but are not GC types: the loop
 * does not reference them (the engine holds only C pointers).  Storing one
 * on the loop (in its __dict__) would make a cycle the collector cannot
 * see; the tests do not. */
typedef struct {
  PyObject_HEAD
  PyObject* loop;              /* acquired; NULL once closed */
  auv_loop_t* engine;
  auv_listener_t* listener;
  int fd;                      /* our dup of the listening socket */
  conn_t* conns;               /* open connections */
  Py_ssize_t accepted;
} ServerObject;

struct conn_s {
  ServerObject* server;        /* NULL once the server closed */
  auv_stream_t* stream;
  conn_t* next;
  conn_t* prev;
  int fd;
  char buf[ECHO_BUF_SIZE];
};

typedef struct {
  PyObject_HEAD
  PyObject* loop;              /* acquired; NULL once released */
  auv_loop_t* engine;
} HolderObject;


/* --- Connections ------------------------------------------------------------ */

static void conn_freed(void* data) {
  free(data);
}


static void conn_close(conn_t* c) {
  ServerObject* s = c->server;

  if (s != NULL) {
    if (c->prev != NULL)
      c->prev->next = c->next;
    else
      s->conns = c->next;
    if (c->next != NULL)
      c->next->prev = c->prev;
    c->server = NULL;
  }
  auv_stream_close(c->stream, conn_freed);
  close(c->fd);
}


static void conn_alloc(auv_stream_t* stream, size_t suggested, char** base,
                       size_t* len) {
  conn_t* c = auv_stream_get_data(stream);
  *base = c->buf;
  *len = sizeof(c->buf);
}


static void conn_drained(auv_stream_t* stream, int status);
static void conn_read(auv_stream_t* stream, ssize_t nread, char* base);


static void conn_shut(auv_stream_t* stream, int status) {
  conn_close(auv_stream_get_data(stream));
}


static void conn_drained(auv_stream_t* stream, int status) {
  if (status < 0) {
    conn_close(auv_stream_get_data(stream));
    return;
  }
  if (!auv_stream_is_reading(stream))
    auv_stream_read_start(stream, conn_alloc, conn_read);
}


static void conn_read(auv_stream_t* stream, ssize_t nread, char* base) {
  auv_buf_t buf;
  ssize_t n;

  if (nread == 0)
    return;
  if (nread < 0) {
    /* EOF: echo what is queued, then half-close; an error: close. */
    if (nread != AUV_EOF || auv_stream_shutdown(stream, conn_shut) != 0)
      conn_close(auv_stream_get_data(stream));
    return;
  }
  buf.base = base;
  buf.len = (size_t) nread;
  n = auv_stream_write(stream, &buf, 1);
  if (n < 0) {
    conn_close(auv_stream_get_data(stream));
    return;
  }
  if (auv_stream_write_queue_size(stream) > ECHO_HIGH_WATER)
    auv_stream_read_stop(stream);  /* conn_drained() starts it again */
}


static void server_connection(auv_listener_t* listener, int status, int fd) {
  ServerObject* s = auv_listener_get_data(listener);
  conn_t* c;

  if (status < 0)
    return;
  c = calloc(1, sizeof(*c));
  if (c == NULL || auv_stream_new(s->engine, fd, &c->stream) != 0) {
    free(c);
    close(fd);
    return;
  }
  c->fd = fd;
  c->server = s;
  c->next = s->conns;
  if (s->conns != NULL)
    s->conns->prev = c;
  s->conns = c;
  s->accepted++;
  auv_stream_set_data(c->stream, c);
  auv_stream_set_drain_cb(c->stream, conn_drained);
  if (auv_stream_read_start(c->stream, conn_alloc, conn_read) != 0)
    conn_close(c);
}


/* --- Server ------------------------------------------------------------------ */

/* The listener is released: its socket may go. */
static void listener_freed(void* data) {
  close((int) (intptr_t) data);
}


static void server_close_now(ServerObject* s) {
  if (s->loop == NULL)
    return;
  while (s->conns != NULL)
    conn_close(s->conns);
  if (s->listener != NULL) {
    auv_listener_set_data(s->listener, (void*) (intptr_t) s->fd);
    auv_listener_close(s->listener, listener_freed);
    s->listener = NULL;
  } else if (s->fd >= 0) {
    close(s->fd);
  }
  s->fd = -1;
  s->engine = NULL;
  /* The handles are closed: the loop may go (and free the engine). */
  asyncuv_capi->loop_release(s->loop);
  s->loop = NULL;
}


static PyObject* server_close(ServerObject* s, PyObject* unused) {
  server_close_now(s);
  Py_RETURN_NONE;
}


static PyObject* server_get_accepted(ServerObject* s, void* closure) {
  return PyLong_FromSsize_t(s->accepted);
}


static void server_dealloc(ServerObject* s) {
  PyTypeObject* tp = Py_TYPE(s);

  server_close_now(s);
  tp->tp_free(s);
  Py_DECREF(tp);
}


static PyMethodDef server_methods[] = {
  {"close", (PyCFunction) server_close, METH_NOARGS,
   PyDoc_STR("Close the listener and every connection; release the loop.")},
  {NULL}
};

static PyGetSetDef server_getset[] = {
  {"accepted", (getter) server_get_accepted, NULL,
   PyDoc_STR("Connections accepted so far."), NULL},
  {NULL}
};

static PyType_Slot server_slots[] = {
  {Py_tp_dealloc, server_dealloc},
  {Py_tp_methods, server_methods},
  {Py_tp_getset, server_getset},
  {0, NULL}
};

static PyType_Spec server_spec = {
  .name = "_nativeecho.Server",
  .basicsize = sizeof(ServerObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = server_slots,
};


/* --- Holder ------------------------------------------------------------------ */

/* Calls that Holder.call_soon() queued and the engine ran (no Python
 * object: only the GIL guards it). */
static long calls_run;


static void counted_call(auv_loop_t* loop, void* arg) {
  (*(long*) arg)++;
}


static PyObject* holder_call_soon(HolderObject* h, PyObject* unused) {
  if (h->loop == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "released");
    return NULL;
  }
  /* The engine is valid while held, even once the loop is closed. */
  if (auv_loop_call_soon(h->engine, counted_call, &calls_run) != 0)
    return PyErr_NoMemory();
  Py_RETURN_NONE;
}

static PyObject* holder_release(HolderObject* h, PyObject* unused) {
  if (h->loop != NULL) {
    PyObject* loop = h->loop;
    h->loop = NULL;
    asyncuv_capi->loop_release(loop);
  }
  Py_RETURN_NONE;
}


static void holder_dealloc(HolderObject* h) {
  PyTypeObject* tp = Py_TYPE(h);
  PyObject* r = holder_release(h, NULL);

  Py_XDECREF(r);
  tp->tp_free(h);
  Py_DECREF(tp);
}


static PyMethodDef holder_methods[] = {
  {"release", (PyCFunction) holder_release, METH_NOARGS,
   PyDoc_STR("Give the loop back (once).")},
  {"call_soon", (PyCFunction) holder_call_soon, METH_NOARGS,
   PyDoc_STR("Queue a C call on the engine (auv_loop_call_soon) that counts "
             "in calls_run().")},
  {NULL}
};

static PyType_Slot holder_slots[] = {
  {Py_tp_dealloc, holder_dealloc},
  {Py_tp_methods, holder_methods},
  {0, NULL}
};

static PyType_Spec holder_spec = {
  .name = "_nativeecho.Holder",
  .basicsize = sizeof(HolderObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = holder_slots,
};


/* --- Module ------------------------------------------------------------------ */

typedef struct {
  PyTypeObject* ServerType;
  PyTypeObject* HolderType;
} echo_state;


static PyObject* echo_serve(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  echo_state* st = PyModule_GetState(module);
  ServerObject* s;
  auv_loop_t* engine;
  int fd;
  int err;

  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "serve() takes 2 arguments (%zd given)", nargs);
    return NULL;
  }
  fd = PyObject_AsFileDescriptor(args[1]);
  if (fd < 0)
    return NULL;
  engine = asyncuv_capi->loop_acquire(args[0]);
  if (engine == NULL)
    return NULL;
  s = PyObject_New(ServerObject, st->ServerType);
  if (s == NULL) {
    asyncuv_capi->loop_release(args[0]);
    return NULL;
  }
  s->loop = args[0];
  s->engine = engine;
  s->listener = NULL;
  s->conns = NULL;
  s->accepted = 0;
  s->fd = dup(fd);
  if (s->fd < 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    Py_DECREF(s);
    return NULL;
  }
  err = auv_listener_new(engine, s->fd, &s->listener);
  if (err == 0) {
    auv_listener_set_data(s->listener, s);
    err = auv_listener_start(s->listener, server_connection);
  }
  if (err != 0) {
    errno = -err;
    PyErr_SetFromErrno(PyExc_OSError);
    Py_DECREF(s);
    return NULL;
  }
  return (PyObject*) s;
}


static PyObject* echo_hold(PyObject* module, PyObject* loop) {
  echo_state* st = PyModule_GetState(module);
  HolderObject* h;
  auv_loop_t* engine;

  engine = asyncuv_capi->loop_acquire(loop);
  if (engine == NULL)
    return NULL;
  h = PyObject_New(HolderObject, st->HolderType);
  if (h == NULL) {
    asyncuv_capi->loop_release(loop);
    return NULL;
  }
  h->loop = loop;
  h->engine = engine;
  return (PyObject*) h;
}


static PyObject* echo_is_loop(PyObject* module, PyObject* obj) {
  return PyBool_FromLong(asyncuv_capi->loop_check(obj));
}


static PyObject* echo_calls_run(PyObject* module, PyObject* unused) {
  return PyLong_FromLong(calls_run);
}


static PyObject* echo_load_capi(PyObject* module, PyObject* args) {
  unsigned int version;
  Py_ssize_t size;

  if (!PyArg_ParseTuple(args, "In", &version, &size))
    return NULL;
  if (asyncuv_capi_load(version, (size_t) size) == NULL)
    return NULL;
  Py_RETURN_NONE;
}


static PyMethodDef echo_methods[] = {
  {"serve", (PyCFunction) (void (*)(void)) echo_serve, METH_FASTCALL,
   PyDoc_STR("serve(loop, sock)\n--\n\nEcho on the listening socket sock, "
             "in C on the asyncuv loop's engine; return a Server.")},
  {"hold", (PyCFunction) echo_hold, METH_O,
   PyDoc_STR("hold(loop)\n--\n\nAcquire the loop's engine; return a Holder.")},
  {"is_loop", (PyCFunction) echo_is_loop, METH_O,
   PyDoc_STR("is_loop(obj)\n--\n\nThe C API's loop_check(obj).")},
  {"calls_run", (PyCFunction) echo_calls_run, METH_NOARGS,
   PyDoc_STR("calls_run()\n--\n\nHow many Holder.call_soon() calls ran.")},
  {"_load_capi", (PyCFunction) echo_load_capi, METH_VARARGS,
   PyDoc_STR("_load_capi(version, size)\n--\n\nThe header's import check, "
             "as if built for another version or struct size.")},
  {NULL}
};


static int echo_exec(PyObject* module) {
  echo_state* st = PyModule_GetState(module);

  if (asyncuv_capi_import() < 0)
    return -1;
  st->ServerType = (PyTypeObject*) PyType_FromModuleAndSpec(module, &server_spec, NULL);
  if (st->ServerType == NULL || PyModule_AddType(module, st->ServerType) < 0)
    return -1;
  st->HolderType = (PyTypeObject*) PyType_FromModuleAndSpec(module, &holder_spec, NULL);
  if (st->HolderType == NULL || PyModule_AddType(module, st->HolderType) < 0)
    return -1;
  if (PyModule_AddIntConstant(module, "CAPI_VERSION", ASYNCUV_CAPI_VERSION) < 0 ||
      PyModule_AddIntConstant(module, "CAPI_STRUCT_SIZE", sizeof(asyncuv_capi_t)) < 0)
    return -1;
  return 0;
}


static int echo_traverse(PyObject* module, visitproc visit, void* arg) {
  echo_state* st = PyModule_GetState(module);
  Py_VISIT(st->ServerType);
  Py_VISIT(st->HolderType);
  return 0;
}


static int echo_clear(PyObject* module) {
  echo_state* st = PyModule_GetState(module);
  Py_CLEAR(st->ServerType);
  Py_CLEAR(st->HolderType);
  return 0;
}


static void echo_free(void* module) {
  echo_clear(module);
}


static PyModuleDef_Slot echo_slots[] = {
  {Py_mod_exec, echo_exec},
  {0, NULL}
};

static struct PyModuleDef echo_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "_nativeecho",
  .m_doc = PyDoc_STR("A TCP echo server in C on an asyncuv loop (a test of asyncuv's C API)."),
  .m_size = sizeof(echo_state),
  .m_methods = echo_methods,
  .m_slots = echo_slots,
  .m_traverse = echo_traverse,
  .m_clear = echo_clear,
  .m_free = echo_free,
};

PyMODINIT_FUNC PyInit__nativeecho(void) {
  return PyModuleDef_Init(&echo_def);
}

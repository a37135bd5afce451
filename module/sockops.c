/* The hot sock_* methods (recv, recv_into, sendall) in C, and the engine
 * side of sock_sendfile().
 *
 * Each call tries the system call at once and, when that is enough, returns
 * its result (or raises its error) with no future at all.  Only when it
 * would block does it make a future and wait, with one _SockOp object as
 * both the fd watcher's callback and the future's done callback.  No
 * exception is raised for EAGAIN.  asyncio.Loop's async def wrappers
 * (sock_* must stay coroutine functions) await the future when they get
 * one.
 *
 * sock_sendfile() makes no system call here: the engine's sendfile request
 * (lib/sendfile.c) sends the file as the socket becomes writable, and a
 * _SockSendfile object turns its end into the future's.  Its asyncio rules
 * (arguments, the fallback, the file's position) are in
 * module/asyncuv/_sendfile.py. */
#include "asyncuv_module.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

enum { OP_RECV, OP_RECV_INTO, OP_SENDALL };

typedef struct {
  PyObject_HEAD
  LoopObject* loop;
  PyObject* fut;
  PyObject* sock;
  PyObject* obj;               /* recv_into's buffer, sendall's data */
  HandleObject* handle;        /* our watcher's handle, once waiting */
  Py_buffer view;
  Py_ssize_t size;             /* recv: bytes wanted; sendall: bytes sent */
  int have_view;
  int fd;
  int kind;
} SockOpObject;


/* One attempt: 1 done (*value is the result), 0 would block, -1 error
 * raised (the system call's OSError included). */
static int sockop_attempt(SockOpObject* op, PyObject** value) {
  char* buf;
  ssize_t n;

  *value = NULL;
  switch (op->kind) {
    case OP_RECV:
      if (op->size <= 0) {
        *value = PyBytes_FromStringAndSize(NULL, 0);
        break;
      }
      /* Into the loop's read buffer, then one bytes object of the size
       * received (recv(65536) that gets 1 KiB makes a 1 KiB object). */
      buf = op->size <= AUV_READ_BUF_SIZE ? auvpy_loop_read_buf(op->loop)
                                          : PyMem_Malloc((size_t) op->size);
      if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
      }
      do
        n = recv(op->fd, buf, (size_t) op->size, 0);
      while (n < 0 && errno == EINTR);
      if (n >= 0)
        *value = auvpy_bytes_copy(buf, n);
      if (op->size > AUV_READ_BUF_SIZE)
        PyMem_Free(buf);
      if (n < 0)
        goto failed;
      break;
    case OP_RECV_INTO:
      do
        n = recv(op->fd, op->view.buf, (size_t) op->view.len, 0);
      while (n < 0 && errno == EINTR);
      if (n < 0)
        goto failed;
      *value = PyLong_FromSsize_t(n);
      break;
    default: /* OP_SENDALL */
      while (op->size < op->view.len) {
        n = send(op->fd, (char*) op->view.buf + op->size,
                 (size_t) (op->view.len - op->size), MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          goto failed;
        }
        op->size += n;
      }
      *value = Py_NewRef(Py_None);
      break;
  }
  return *value != NULL ? 1 : -1;

failed:
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return 0;
  PyErr_SetFromErrno(PyExc_OSError);
  return -1;
}


static PyObject* sockop_done(SockOpObject* op, PyObject* fut);


/* Called with no argument, by the watcher: the fd is ready, try again.
 * Called with the future, as its done callback: clean up (one object for
 * both, so that waiting makes no bound method). */
static PyObject* sockop_call(SockOpObject* op, PyObject* args, PyObject* kwargs) {
  auvpy_state* st;
  PyObject* value;
  PyObject* method;
  PyObject* r;
  int truth;
  int done;

  if (PyTuple_GET_SIZE(args) == 1 && kwargs == NULL)
    return sockop_done(op, PyTuple_GET_ITEM(args, 0));
  if (op->fut == NULL)
    Py_RETURN_NONE;
  st = op->loop->state;
  r = PyObject_CallMethodNoArgs(op->fut, st->str_done);
  if (r == NULL)
    return NULL;
  truth = PyObject_IsTrue(r);
  Py_DECREF(r);
  if (truth != 0)
    return truth < 0 ? NULL : Py_NewRef(Py_None);
  done = sockop_attempt(op, &value);
  if (done == 0)
    Py_RETURN_NONE;
  method = st->str_set_result;
  if (done < 0) {
    /* As asyncio: everything but SystemExit and KeyboardInterrupt goes to
     * the awaiting caller. */
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
      return NULL;
    value = auvpy_take_exception();
    method = st->str_set_exception;
  }
  r = PyObject_CallMethodOneArg(op->fut, method, value);
  Py_DECREF(value);
  return r;
}


static void sockop_release(SockOpObject* op) {
  if (op->have_view) {
    op->have_view = 0;
    PyBuffer_Release(&op->view);
  }
  Py_CLEAR(op->fut);
  Py_CLEAR(op->obj);
  Py_CLEAR(op->sock);
  Py_CLEAR(op->handle);
}


/* The future's done callback: stop watching (unless someone replaced our
 * reader or writer meanwhile) and let go of everything. */
static PyObject* sockop_done(SockOpObject* op, PyObject* fut) {
  PyObject* fd;
  PyObject* r;

  if (op->handle != NULL && !op->handle->cancelled) {
    fd = PyLong_FromLong(op->fd);
    if (fd == NULL)
      return NULL;
    r = op->kind == OP_SENDALL ? auvpy_loop_remove_writer(op->loop, fd)
                               : auvpy_loop_remove_reader(op->loop, fd);
    Py_DECREF(fd);
    if (r == NULL)
      return NULL;
    Py_DECREF(r);
  }
  sockop_release(op);
  Py_RETURN_NONE;
}


static PyObject* sock_start(LoopObject* self, PyObject* sock, PyObject* arg, int kind) {
  auvpy_state* st;
  SockOpObject* op;
  PyObject* stack[2];
  PyObject* fd_obj;
  PyObject* h;
  PyObject* r;
  PyObject* fut;
  PyObject* value;
  long fd;
  int done;

  st = self->state;
  if (st->SSLSocket != NULL && PyObject_TypeCheck(sock, (PyTypeObject*) st->SSLSocket)) {
    PyErr_SetString(PyExc_TypeError, "Socket cannot be of type SSLSocket");
    return NULL;
  }
  /* asyncio calls the object's own recv()/recv_into()/send(): anything
   * but a socket takes that path (in Python), with asyncio's errors. */
  if (!PyObject_TypeCheck(sock, (PyTypeObject*) st->socket_type))
    Py_RETURN_NOTIMPLEMENTED;
  if (self->debug) {
    PyObject* timeout = PyObject_CallMethodNoArgs(sock, st->str_gettimeout);
    int blocking;
    if (timeout == NULL)
      return NULL;
    blocking = PyObject_RichCompareBool(timeout, st->zero, Py_NE);
    Py_DECREF(timeout);
    if (blocking < 0)
      return NULL;
    if (blocking) {
      PyErr_SetString(PyExc_ValueError, "the socket must be non-blocking");
      return NULL;
    }
  }

  op = PyObject_GC_New(SockOpObject, st->SockOpType);
  if (op == NULL)
    return NULL;
  op->loop = (LoopObject*) Py_NewRef(self);
  op->fut = NULL;
  op->sock = Py_NewRef(sock);
  op->obj = NULL;
  op->handle = NULL;
  op->have_view = 0;
  op->size = 0;
  op->kind = kind;
  op->fd = -1;
  PyObject_GC_Track(op);

  /* A closed socket's fileno() is -1: the system call's EBADF, as the
   * socket's own methods raise. */
  fd_obj = PyObject_CallMethodNoArgs(sock, st->str_fileno);
  if (fd_obj == NULL)
    goto error;
  fd = PyLong_AsLong(fd_obj);
  Py_DECREF(fd_obj);
  if (fd == -1 && PyErr_Occurred())
    goto error;
  if (fd < 0 || fd > INT_MAX) {
    errno = EBADF;
    PyErr_SetFromErrno(PyExc_OSError);
    goto error;
  }
  op->fd = (int) fd;
  /* The arguments as the socket's methods take them, with their errors. */
  if (kind == OP_RECV) {
    PyObject* n = PyNumber_Index(arg);
    if (n == NULL)
      goto error;
    op->size = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    if (op->size == -1 && PyErr_Occurred())
      goto error;
    if (op->size < 0) {
      PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
      goto error;
    }
  } else {
    if (PyObject_GetBuffer(arg, &op->view,
                           kind == OP_RECV_INTO ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
      if (kind == OP_RECV_INTO) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "recv_into() argument 1 must be read-write "
                     "bytes-like object, not %.50s",
                     arg == Py_None ? "None" : Py_TYPE(arg)->tp_name);
      }
      goto error;
    }
    op->have_view = 1;
    op->obj = Py_NewRef(arg);
  }

  /* Done at once: the value itself (or the error), with no future. */
  done = sockop_attempt(op, &value);
  if (done != 0) {
    sockop_release(op);
    Py_DECREF(op);
    return done > 0 ? value : NULL;
  }

  stack[0] = (PyObject*) self;
  op->fut = PyObject_Vectorcall(st->Future, stack, 0, st->kw_loop);
  if (op->fut == NULL)
    goto error;
  fut = Py_NewRef(op->fut);

  /* Would block: wait for the fd. */
  fd_obj = PyLong_FromLong(op->fd);
  if (fd_obj == NULL)
    goto error_fut;
  stack[0] = fd_obj;
  stack[1] = (PyObject*) op;
  h = kind == OP_SENDALL ? auvpy_loop_add_writer_handle(self, stack, 2)
                         : auvpy_loop_add_reader_handle(self, stack, 2);
  Py_DECREF(fd_obj);
  if (h == NULL)
    goto error_fut;
  op->handle = (HandleObject*) h;
  r = PyObject_CallMethodOneArg(fut, st->str_add_done_callback, (PyObject*) op);
  if (r == NULL) {
    /* Take the watch back: nothing would ever remove it. */
    PyObject* exc = PyErr_GetRaisedException();
    r = sockop_done(op, fut);
    Py_XDECREF(r);
    PyErr_Clear();
    PyErr_SetRaisedException(exc);
    goto error_fut;
  }
  Py_DECREF(r);
  Py_DECREF(op);
  return fut;

error_fut:
  Py_DECREF(fut);
error:
  sockop_release(op);
  Py_DECREF(op);
  return NULL;
}


PyObject* auvpy_loop_sock_recv(LoopObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_sock_recv(sock, n)");
    return NULL;
  }
  return sock_start(self, args[0], args[1], OP_RECV);
}


PyObject* auvpy_loop_sock_recv_into(LoopObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_sock_recv_into(sock, buf)");
    return NULL;
  }
  return sock_start(self, args[0], args[1], OP_RECV_INTO);
}


PyObject* auvpy_loop_sock_sendall(LoopObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_sock_sendall(sock, data)");
    return NULL;
  }
  return sock_start(self, args[0], args[1], OP_SENDALL);
}


/* --- sock_sendfile ----------------------------------------------------------- */

typedef struct SockSendfileObject SockSendfileObject;

struct SockSendfileObject {
  PyObject_HEAD
  LoopObject* loop;
  PyObject* fut;
  auv_sendfile_t* req;         /* NULL once finished or cancelled */
  struct SockSendfileObject* next;  /* the loop's running requests */
  struct SockSendfileObject* prev;
  uint64_t sent;               /* once req is NULL */
};


/* The request is no longer ours to report: it finished, or was cancelled. */
static void sock_sendfile_detach(SockSendfileObject* op) {
  op->sent = auv_sendfile_get_sent(op->req);
  op->req = NULL;
  if (op->prev != NULL)
    op->prev->next = op->next;
  else
    op->loop->sock_sendfiles = op->next;
  if (op->next != NULL)
    op->next->prev = op->prev;
  op->next = op->prev = NULL;
}


/* Stop sending, leaving the future as it is: the engine's callback, on a
 * later step (or in the engine's close), only lets go of op. */
static void sock_sendfile_cancel(SockSendfileObject* op) {
  auv_sendfile_t* req;

  req = op->req;
  if (req == NULL)
    return;
  sock_sendfile_detach(op);
  (void) auv_sendfile_cancel(req);
}


/* The engine's request is over: the future learns how, unless it was
 * cancelled (then the request was too, and op->req is NULL). */
static void sock_sendfile_cb(auv_sendfile_t* req, int status, uint64_t sent) {
  SockSendfileObject* op;
  auvpy_state* st;
  PyObject* done;
  PyObject* method;
  PyObject* value;
  PyObject* r;

  op = auv_sendfile_get_data(req);  /* the request's reference */
  if (op->req != req) {
    Py_DECREF(op);
    return;
  }
  sock_sendfile_detach(op);
  op->sent = sent;
  if (op->fut == NULL) {  /* cleared by the garbage collector */
    Py_DECREF(op);
    return;
  }
  st = op->loop->state;
  done = PyObject_CallMethodNoArgs(op->fut, st->str_done);
  r = NULL;
  if (done != NULL && !PyObject_IsTrue(done)) {
    if (status == 0) {
      method = st->str_set_result;
      value = PyLong_FromUnsignedLongLong(sent);
    } else {
      method = st->str_set_exception;
      auvpy_sendfile_error(status, sent);
      value = auvpy_take_exception();
    }
    if (value != NULL)
      r = PyObject_CallMethodOneArg(op->fut, method, value);
    Py_XDECREF(value);
  } else if (done != NULL) {
    r = Py_NewRef(Py_None);
  }
  Py_XDECREF(done);
  if (r == NULL)
    PyErr_WriteUnraisable(op->fut);
  Py_XDECREF(r);
  Py_DECREF(op);
}


/* The future's done callback: a cancelled future cancels the request. */
static PyObject* sock_sendfile_call(SockSendfileObject* op, PyObject* args,
                                    PyObject* kwargs) {
  sock_sendfile_cancel(op);
  Py_RETURN_NONE;
}


/* An fd argument as an int (-1, a closed socket's, included). */
static int as_fd(PyObject* obj, int* fd) {
  long v;

  v = PyLong_AsLong(obj);
  if (v == -1 && PyErr_Occurred())
    return -1;
  if (v < INT_MIN || v > INT_MAX) {
    PyErr_SetString(PyExc_OverflowError, "fd is out of range");
    return -1;
  }
  *fd = (int) v;
  return 0;
}


/* loop._sock_sendfile(fd, in_fd, offset, count) -> a _SockSendfile whose
 * future gets the bytes sent (count 0: to the end of the file), or the
 * error as asyncio raises it (auvpy_sendfile_error()); `sent` says how
 * many went out, also after a failure.  asyncio's sock_sendfile() leaves
 * the fallback to sock_sendall() and the socket's blocking mode to the
 * caller: so does the request. */
PyObject* auvpy_loop_sock_sendfile(LoopObject* self, PyObject* const* args, Py_ssize_t nargs) {
  SockSendfileObject* op;
  auvpy_state* st;
  PyObject* stack[1];
  PyObject* r;
  long long offset;
  long long count;
  int fd;
  int in_fd;
  int err;

  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "_sock_sendfile(fd, in_fd, offset, count)");
    return NULL;
  }
  if (as_fd(args[0], &fd) < 0 || as_fd(args[1], &in_fd) < 0)
    return NULL;
  /* Past what the system call takes: OverflowError, as os.sendfile raises. */
  offset = PyLong_AsLongLong(args[2]);
  if (offset == -1 && PyErr_Occurred())
    return NULL;
  count = PyLong_AsLongLong(args[3]);
  if (count == -1 && PyErr_Occurred())
    return NULL;
  if (offset < 0 || count < 0) {
    PyErr_SetString(PyExc_ValueError, "offset and count must not be negative");
    return NULL;
  }
  if (auvpy_loop_check_thread(self) < 0)
    return NULL;
  if (self->loop == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return NULL;
  }

  st = self->state;
  op = PyObject_GC_New(SockSendfileObject, st->SockSendfileType);
  if (op == NULL)
    return NULL;
  op->loop = (LoopObject*) Py_NewRef(self);
  op->fut = NULL;
  op->req = NULL;
  op->next = op->prev = NULL;
  op->sent = 0;
  PyObject_GC_Track(op);

  stack[0] = (PyObject*) self;
  op->fut = PyObject_Vectorcall(st->Future, stack, 0, st->kw_loop);
  if (op->fut == NULL)
    goto error;
  r = PyObject_CallMethodOneArg(op->fut, st->str_add_done_callback, (PyObject*) op);
  if (r == NULL)
    goto error;
  Py_DECREF(r);
  err = auv_sendfile_start_ex(self->loop, fd, in_fd, offset, (uint64_t) count,
                              AUV_SENDFILE_NO_FALLBACK | AUV_SENDFILE_RESTORE_BLOCKING,
                              sock_sendfile_cb, &op->req);
  if (err != 0) {
    /* As a first sendfile system call that fails (a closed socket's fd, -1):
     * the caller may fall back. */
    if (err == -ENOMEM)
      PyErr_NoMemory();
    else
      auvpy_sendfile_error(err, 0);
    goto error;
  }
  auv_sendfile_set_data(op->req, Py_NewRef(op));  /* until the callback */
  op->next = self->sock_sendfiles;
  if (op->next != NULL)
    op->next->prev = op;
  self->sock_sendfiles = op;
  return (PyObject*) op;

error:
  Py_DECREF(op);
  return NULL;
}


/* The loop's traversal: a running request's reference to op belongs to
 * the engine, which is the loop's; unseen, a loop left unclosed with a
 * transfer running (op holds the loop) is never freed and never warns. */
int auvpy_loop_visit_sock_sendfiles(LoopObject* self, visitproc visit, void* arg) {
  SockSendfileObject* op;

  for (op = self->sock_sendfiles; op != NULL; op = op->next)
    Py_VISIT(op);
  return 0;
}


/* loop.close(): running requests stop, their futures stay pending, as
 * asyncio's selector forgets its writers. */
void auvpy_loop_cancel_sock_sendfiles(LoopObject* self) {
  while (self->sock_sendfiles != NULL)
    sock_sendfile_cancel(self->sock_sendfiles);
}


static PyObject* sock_sendfile_get_future(SockSendfileObject* op, void* closure) {
  if (op->fut == NULL)
    Py_RETURN_NONE;
  return Py_NewRef(op->fut);
}


static PyObject* sock_sendfile_get_sent(SockSendfileObject* op, void* closure) {
  return PyLong_FromUnsignedLongLong(op->req != NULL ? auv_sendfile_get_sent(op->req)
                                                     : op->sent);
}


static int sock_sendfile_traverse(SockSendfileObject* op, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(op->loop);
  Py_VISIT(op->fut);
  return 0;
}


static int sock_sendfile_clear(SockSendfileObject* op) {
  Py_CLEAR(op->fut);
  return 0;
}


static void sock_sendfile_dealloc(SockSendfileObject* op) {
  PyTypeObject* tp;

  /* A running request holds a reference: op->req is NULL here. */
  tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  sock_sendfile_clear(op);
  Py_CLEAR(op->loop);
  tp->tp_free(op);
  Py_DECREF(tp);
}


static PyGetSetDef sock_sendfile_getset[] = {
  {"future", (getter) sock_sendfile_get_future, NULL, NULL, NULL},
  {"sent", (getter) sock_sendfile_get_sent, NULL, NULL, NULL},
  {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot sock_sendfile_slots[] = {
  {Py_tp_dealloc, sock_sendfile_dealloc},
  {Py_tp_traverse, sock_sendfile_traverse},
  {Py_tp_clear, sock_sendfile_clear},
  {Py_tp_call, sock_sendfile_call},
  {Py_tp_getset, sock_sendfile_getset},
  {0, NULL}
};

PyType_Spec auvpy_sock_sendfile_spec = {
  .name = "asyncuv._asyncuv._SockSendfile",
  .basicsize = sizeof(SockSendfileObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
           Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = sock_sendfile_slots,
};


/* --- The _SockOp type -------------------------------------------------------- */

static int sockop_traverse(SockOpObject* op, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(op->loop);
  Py_VISIT(op->fut);
  Py_VISIT(op->sock);
  Py_VISIT(op->obj);
  Py_VISIT(op->handle);
  return 0;
}


static int sockop_clear(SockOpObject* op) {
  sockop_release(op);
  Py_CLEAR(op->loop);
  return 0;
}


static void sockop_dealloc(SockOpObject* op) {
  PyTypeObject* tp;

  tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  sockop_clear(op);
  tp->tp_free(op);
  Py_DECREF(tp);
}


static PyType_Slot sockop_slots[] = {
  {Py_tp_dealloc, sockop_dealloc},
  {Py_tp_traverse, sockop_traverse},
  {Py_tp_clear, sockop_clear},
  {Py_tp_call, sockop_call},
  {0, NULL}
};

PyType_Spec auvpy_sockop_spec = {
  .name = "asyncuv._asyncuv._SockOp",
  .basicsize = sizeof(SockOpObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
           Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = sockop_slots,
};

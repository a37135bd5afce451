/* The hot sock_* methods (recv, recv_into, sendall) in C.
 *
 * Each call tries the system call at once and, when that is enough, returns
 * its result (or raises its error) with no future at all.  Only when it
 * would block does it make a future and wait, with one _SockOp object as
 * both the fd watcher's callback and the future's done callback.  No
 * exception is raised for EAGAIN.  asyncio.Loop's async def wrappers
 * (sock_* must stay coroutine functions) await the future when they get
 * one. */
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

/* What the stream transports (transport.c) and the datagram transports
 * (datagram.c) share: write flow control at the water marks (asyncio's
 * _FlowControlMixin), the report of a failed protocol callback, writes
 * after the connection is lost, the common part of
 * _call_connection_lost(), the loop's record of the fds they own, and
 * their finalization when left unclosed.  Each transport keeps what is its own (the
 * engine handle it closes, the references it drops). */
#include "asyncuv_module.h"

#include <stdint.h>


/* --- Flow control ------------------------------------------------------------ */

void auvpy_flow_init(auvpy_flow_t* flow) {
  flow->high = AUVPY_HIGH_WATER;
  flow->low = AUVPY_HIGH_WATER / 4;
  flow->limits = NULL;
  flow->paused = 0;
}


/* A limit as a size: a number of bytes compares with it as with its
 * floor (limits are >= 0 here); what no size can reach is SIZE_MAX. */
static int limit_to_size(PyObject* value, size_t* size) {
  PyObject* n;

  n = PyNumber_Long(value);
  if (n == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))  /* inf */
      return -1;
    PyErr_Clear();
    *size = SIZE_MAX;
    return 0;
  }
  *size = PyLong_AsSize_t(n);
  Py_DECREF(n);
  if (*size == (size_t) -1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))
      return -1;
    PyErr_Clear();
    *size = SIZE_MAX;
  }
  return 0;
}


/* set_write_buffer_limits(high, low) as asyncio's _FlowControlMixin does
 * it, in Python arithmetic: high defaults to default_high (or 4 * low),
 * low to high // 4, and high >= low >= 0 or ValueError.  Any numbers
 * asyncio takes are taken (floats, ints past 64 bits); *limits gets the
 * (low, high) that get_write_buffer_limits() returns.  Also the TLS
 * transport's (sslproto.c), whose defaults differ. */
int auvpy_parse_write_limits(PyObject* high_obj, PyObject* low_obj, size_t default_high,
                             size_t* high_out, size_t* low_out, PyObject** limits) {
  PyObject* four;
  PyObject* zero;
  PyObject* high;
  PyObject* low;
  size_t high_size;
  size_t low_size;
  int ok;

  four = PyLong_FromLong(4);
  if (four == NULL)
    return -1;
  if (high_obj != Py_None)
    high = Py_NewRef(high_obj);
  else if (low_obj == Py_None)
    high = PyLong_FromSize_t(default_high);
  else
    high = PyNumber_Multiply(four, low_obj);
  low = high == NULL ? NULL :
        low_obj != Py_None ? Py_NewRef(low_obj) : PyNumber_FloorDivide(high, four);
  Py_DECREF(four);
  if (low == NULL) {
    Py_XDECREF(high);
    return -1;
  }
  ok = PyObject_RichCompareBool(high, low, Py_GE);
  if (ok > 0) {
    zero = PyLong_FromLong(0);
    ok = zero == NULL ? -1 : PyObject_RichCompareBool(low, zero, Py_GE);
    Py_XDECREF(zero);
  }
  if (ok == 0)
    PyErr_Format(PyExc_ValueError, "high (%R) must be >= low (%R) must be >= 0",
                 high, low);
  if (ok > 0 && limit_to_size(high, &high_size) == 0 &&
      limit_to_size(low, &low_size) == 0)
    *limits = PyTuple_Pack(2, low, high);
  else
    *limits = NULL;
  Py_DECREF(high);
  Py_DECREF(low);
  if (*limits == NULL)
    return -1;
  *high_out = high_size;
  *low_out = low_size;
  return 0;
}


int auvpy_flow_set_limits(auvpy_flow_t* flow, PyObject* high, PyObject* low) {
  PyObject* limits;

  if (auvpy_parse_write_limits(high, low, AUVPY_HIGH_WATER, &flow->high, &flow->low,
                               &limits) < 0)
    return -1;
  Py_XSETREF(flow->limits, limits);
  return 0;
}


PyObject* auvpy_flow_get_limits(const auvpy_flow_t* flow) {
  if (flow->limits != NULL)
    return Py_NewRef(flow->limits);
  return Py_BuildValue("(nn)", (Py_ssize_t) flow->low, (Py_ssize_t) flow->high);
}


/* protocol.pause_writing() or resume_writing(); a failure goes to the
 * exception handler as asyncio's _maybe_pause_protocol() sends it. */
void auvpy_flow_call(LoopObject* loop, PyObject* transport, PyObject* protocol,
                     PyObject* method, const char* message) {
  PyObject* r;

  if (protocol == NULL)  /* connection_lost() released it */
    return;
  Py_INCREF(protocol);  /* the call may swap the transport's protocol */
  r = PyObject_CallMethodNoArgs(protocol, method);
  Py_DECREF(protocol);
  if (r == NULL)
    auvpy_callback_failed(loop, transport, protocol, message);
  Py_XDECREF(r);
}


/* --- Errors ------------------------------------------------------------------ */

/* The current exception, raised by a protocol callback: SystemExit and
 * KeyboardInterrupt end the run, others go to the exception handler. */
void auvpy_callback_failed(LoopObject* loop, PyObject* transport, PyObject* protocol,
                           const char* message) {
  PyObject* exc;

  if (auvpy_is_exit_exception()) {
    if (loop != NULL)
      auvpy_loop_set_pending(loop);
    else
      PyErr_WriteUnraisable(transport);
    return;
  }
  exc = auvpy_take_exception();
  auvpy_report_transport_error(loop, transport, protocol, message, exc);
  Py_XDECREF(exc);
}


/* A write after the connection is lost: dropped, counted in *conn_lost,
 * and from the AUVPY_CONNLOST_WRITES_LOG'th on logged as asyncio does. */
void auvpy_write_after_lost(LoopObject* loop, int* conn_lost) {
  PyObject* r;

  if (*conn_lost >= AUVPY_CONNLOST_WRITES_LOG && loop != NULL) {
    r = PyObject_CallMethod(loop->state->logger, "warning", "s",
                            "socket.send() raised exception.");
    if (r == NULL)
      PyErr_Clear();
    Py_XDECREF(r);
  }
  (*conn_lost)++;
}


/* --- _call_connection_lost() ------------------------------------------------- */

/* protocol.connection_lost(exc) (None if there is no protocol), the
 * protocol held for the length of the call; what it raised is taken into
 * *error, to be raised again by auvpy_connection_lost_return(). */
PyObject* auvpy_connection_lost_call(auvpy_state* st, PyObject* protocol, PyObject* exc,
                                     PyObject** error) {
  PyObject* r;

  if (protocol != NULL) {
    Py_INCREF(protocol);
    r = PyObject_CallMethodOneArg(protocol, st->str_connection_lost, exc);
    Py_DECREF(protocol);
  } else {
    r = Py_NewRef(Py_None);
  }
  *error = PyErr_GetRaisedException();
  return r;
}


/* After connection_lost(), whatever it did: the loop forgets the fd, the
 * socket object is closed and released. */
void auvpy_connection_lost_release(auvpy_state* st, LoopObject* loop, PyObject* transport,
                                   int fd, PyObject** sock) {
  PyObject* c;

  auvpy_loop_disown_fd(loop, fd, transport);
  if (*sock != NULL) {
    c = PyObject_CallMethodNoArgs(*sock, st->str_close);
    if (c == NULL)
      PyErr_WriteUnraisable(transport);
    Py_XDECREF(c);
    Py_CLEAR(*sock);
  }
}


/* What _call_connection_lost() returns: connection_lost()'s result, or
 * its exception raised again. */
PyObject* auvpy_connection_lost_return(PyObject* r, PyObject* error) {
  if (error != NULL) {
    Py_XDECREF(r);
    PyErr_SetRaisedException(error);
    return NULL;
  }
  return r;
}


/* --- The fds that transports own ---------------------------------------------- */

/* fd_owners[fd] = owner (a stream or datagram transport); 0 or -1 with an
 * exception set. */
int auvpy_loop_own_fd(LoopObject* self, int fd, PyObject* owner) {
  PyObject* key;
  int r;

  key = PyLong_FromLong(fd);
  if (key == NULL)
    return -1;
  r = PyDict_SetItem(self->fd_owners, key, owner);
  Py_DECREF(key);
  return r;
}


/* Drop fd_owners[fd] if owner still has it; never raises. */
void auvpy_loop_disown_fd(LoopObject* self, int fd, PyObject* owner) {
  PyObject* exc;
  PyObject* key;

  if (self == NULL || self->fd_owners == NULL)
    return;
  exc = PyErr_GetRaisedException();
  key = PyLong_FromLong(fd);
  if (key != NULL && PyDict_GetItemWithError(self->fd_owners, key) == owner)
    (void) PyDict_DelItem(self->fd_owners, key);
  Py_XDECREF(key);
  PyErr_Clear();
  PyErr_SetRaisedException(exc);
}


/* A transport that is not closing owns its fd: readers and writers may not
 * be added or removed behind its back. */
int auvpy_loop_check_fd_unowned(LoopObject* self, PyObject* fileobj, int fd) {
  PyObject* key;
  PyObject* owner;
  PyObject* closing;
  int truth;

  if (self->fd_owners == NULL)  /* cleared by the collector */
    return 0;
  key = PyLong_FromLong(fd);
  if (key == NULL)
    return -1;
  owner = PyDict_GetItemWithError(self->fd_owners, key);
  Py_DECREF(key);
  if (owner == NULL)
    return PyErr_Occurred() ? -1 : 0;
  if (!Py_IS_TYPE(owner, self->state->TransportType) &&
      !Py_IS_TYPE(owner, self->state->DatagramType))
    return 0;
  Py_INCREF(owner);
  closing = PyObject_CallMethodNoArgs(owner, self->state->str_is_closing);
  truth = closing != NULL ? PyObject_IsTrue(closing) : -1;
  Py_XDECREF(closing);
  if (truth == 0)
    PyErr_Format(PyExc_RuntimeError,
                 "File descriptor %R is used by transport %R", fileobj, owner);
  Py_DECREF(owner);
  return truth == 0 ? -1 : (truth < 0 ? -1 : 0);
}


/* The engine holds a reference to each transport with an open handle, and
 * the engine is the loop's: the collector must see those references too,
 * or a loop left unclosed with an open transport (which holds the loop) is
 * never freed and never warns. */
int auvpy_loop_visit_transports(LoopObject* self, visitproc visit, void* arg) {
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos;
  int r;

  pos = 0;
  while (self->fd_owners != NULL && PyDict_Next(self->fd_owners, &pos, &key, &value)) {
    if (Py_IS_TYPE(value, self->state->DatagramType))
      r = auvpy_datagram_visit_engine_ref(value, visit, arg);
    else if (Py_IS_TYPE(value, self->state->TransportType))
      r = auvpy_transport_visit_engine_ref(value, visit, arg);
    else
      r = 0;
    if (r != 0)
      return r;
  }
  return 0;
}


/* At close: every transport's engine handle is closed. */
void auvpy_loop_close_transports(LoopObject* self) {
  PyObject* owners;
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos;

  if (self->fd_owners == NULL)
    return;
  owners = PyDict_Copy(self->fd_owners);
  if (owners == NULL) {
    PyErr_WriteUnraisable((PyObject*) self);
    return;
  }
  pos = 0;
  while (PyDict_Next(owners, &pos, &key, &value)) {
    if (Py_IS_TYPE(value, self->state->DatagramType)) {
      /* A transport: its engine handle must not outlive the engine. */
      auvpy_datagram_close_engine(value);
    } else {
      auvpy_transport_close_stream(value);
    }
  }
  /* The loop no longer holds what it watched: an unclosed transport can
   * now be collected (and warn). */
  PyDict_Clear(self->fd_owners);
  Py_DECREF(owners);
}


/* --- Errors and finalization ------------------------------------------------- */

/* What asyncio's transports do in __del__ when left unclosed: a
 * ResourceWarning, then the socket closed.  release(transport), if not
 * NULL, lets go of the engine handle in between.  The current exception
 * is kept. */
void auvpy_finalize_unclosed(PyObject* transport, PyObject** sock,
                            void (*release)(PyObject* transport)) {
  PyObject* exc;
  PyObject* r;

  if (*sock == NULL)
    return;
  exc = PyErr_GetRaisedException();
  if (PyErr_ResourceWarning(transport, 1, "unclosed transport %R", transport) < 0)
    PyErr_WriteUnraisable(transport);
  if (release != NULL)
    release(transport);
  r = PyObject_CallMethod(*sock, "close", NULL);
  if (r == NULL)
    PyErr_WriteUnraisable(transport);
  Py_XDECREF(r);
  Py_CLEAR(*sock);
  PyErr_SetRaisedException(exc);
}


/* A transport's loop.call_exception_handler({message, exception,
 * transport, protocol}), as asyncio's transports report protocol errors;
 * a failing handler ends the run. */
void auvpy_report_transport_error(LoopObject* loop, PyObject* transport,
                                 PyObject* protocol, const char* message,
                                 PyObject* exc) {
  PyObject* context;
  PyObject* r;

  if (loop == NULL)
    return;
  context = Py_BuildValue("{sssOsOsO}", "message", message,
                          "exception", exc ? exc : Py_None,
                          "transport", transport,
                          "protocol", protocol ? protocol : Py_None);
  if (context == NULL) {
    PyErr_WriteUnraisable(transport);
    return;
  }
  r = auvpy_loop_call_exception_handler(loop, context);
  Py_DECREF(context);
  if (r == NULL)
    auvpy_loop_set_pending(loop);
  Py_XDECREF(r);
}

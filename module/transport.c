/* Stream transports (TCP and Unix sockets) on the engine's auv_stream_t.
 *
 * The hot paths: data comes from the engine's read callback straight into a
 * bytes object for data_received() (or into a BufferedProtocol's buffer),
 * and write() hands the bytes to the engine, which writes at once and copies
 * only what the socket did not take.  Protocol methods are looked up when
 * the protocol is set, not per call.  The rest follows asyncio's socket
 * transport: the order of connection_made / reading / the waiter, flow
 * control at the water marks, half-close, connection_lost exactly once. */
#include "asyncuv_module.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* asyncio.Transport's __slots__ (BaseTransport's "_extra") come first. */
#define AUV_TRANSPORT_PAD 2

struct TransportObject {
  PyObject_HEAD
  PyObject* asyncio_slots[AUV_TRANSPORT_PAD];
  LoopObject* loop;
  auv_stream_t* stream;        /* NULL once closed */
  PyObject* sock;              /* NULL after connection_lost */
  PyObject* protocol;
  PyObject* data_received;     /* bound methods, looked up by set_protocol() */
  PyObject* get_buffer;
  PyObject* buffer_updated;
  PyObject* extra;             /* the caller's extra info (a dict), or NULL */
  PyObject* sockname;          /* taken at creation, as asyncio does */
  PyObject* peername;
  PyObject* tsock;             /* TransportSocket for 'socket', made on demand */
  PyObject* server;
  PyObject* read_error;        /* get_buffer()'s failure, for the read cb */
  PyObject* rbytes;            /* a bytes object to read into, in bulk */
  PyObject* weakreflist;
  PyObject* empty_waiter;      /* loop.sendfile waits for the queue */
  struct transport_sendfile_s* sf;  /* a sendfile in progress, or NULL */
  Py_buffer rbuf;              /* a BufferedProtocol's buffer, during a read */
  PyObject* context;           /* protocol callbacks run in it (made with us) */
  PyObject* write_context;     /* the write() that found the queue empty */
  auvpy_flow_t flow;           /* write flow control (transport_common.c) */
  int fd;
  int conn_lost;
  char closing;
  char paused;
  char eof;
  char buffered;
  char have_rbuf;
  char bulk;                   /* the last read was big: read into rbytes */
  char pipe;                   /* a write pipe (connect_write_pipe()) */
  char tls;                    /* the protocol is asyncuv's SSLProtocol: it is
                                  fed from C (sslproto.c) */
};

typedef struct TransportObject TransportObject;

/* A loop.sendfile call in progress: the engine's auv_stream_sendfile() on
 * the transport's stream (lib/sendfile.c). */
typedef struct transport_sendfile_s {
  PyObject* fut;
  auv_sendfile_t* req;         /* NULL once finished or cancelled */
  uint64_t sent;
} transport_sendfile_t;


/* Every connection accepted by one listener has the same 'sockname', and
 * often its peers share a host: idle connections each carrying their own
 * copies cost about 240 bytes apiece.  An equal name already held by the
 * last transport made on this loop is used instead (names are immutable). */

/* A new reference: *last if it equals obj (same exact type), else obj,
 * which *last then remembers. */
static PyObject* share_equal(PyObject** last, PyObject* obj) {
  int eq;

  eq = *last != NULL && Py_IS_TYPE(*last, Py_TYPE(obj))
       ? PyObject_RichCompareBool(*last, obj, Py_EQ) : 0;
  if (eq < 0) {
    PyErr_Clear();
    return Py_NewRef(obj);
  }
  if (eq)
    return Py_NewRef(*last);
  Py_XSETREF(*last, Py_NewRef(obj));
  return Py_NewRef(obj);
}


static void share_sockname(LoopObject* loop, PyObject** name) {
  if (PyTuple_CheckExact(*name) || PyUnicode_CheckExact(*name) ||
      PyBytes_CheckExact(*name))
    Py_SETREF(*name, share_equal(&loop->last_sockname, *name));
}


/* The host of a fresh (host, port, ...) tuple that nobody else holds. */
static void share_peer_host(LoopObject* loop, PyObject* name) {
  PyObject* host;
  PyObject* shared;

  if (!PyTuple_CheckExact(name) || PyTuple_GET_SIZE(name) < 2 ||
      Py_REFCNT(name) != 1)
    return;
  host = PyTuple_GET_ITEM(name, 0);
  if (!PyUnicode_CheckExact(host))
    return;
  shared = share_equal(&loop->last_peer_host, host);
  if (shared != host)
    PyTuple_SetItem(name, 0, shared);  /* refcount 1: allowed; steals */
  else
    Py_DECREF(shared);
}


/* The module state: the loop's copy, or the type's once the loop is gone
 * (released at connection_lost(), or cleared by the collector). */
static inline auvpy_state* transport_state(TransportObject* self) {
  return self->loop != NULL ? self->loop->state : auvpy_object_state(self);
}


static int transport_call_soon_method(TransportObject* self, PyObject* name,
                                      PyObject* arg) {
  return auvpy_loop_call_soon_method(self->loop, (PyObject*) self, name, arg);
}


static void stream_close_cb(void* data) {
  Py_DECREF((PyObject*) data);  /* the engine's reference */
}


static void transport_close_stream(TransportObject* self) {
  if (self->stream != NULL) {
    auv_stream_close(self->stream, stream_close_cb);
    self->stream = NULL;
  }
  Py_CLEAR(self->rbytes);  /* no more reads */
}


static size_t transport_buffer_size(TransportObject* self) {
  return self->stream != NULL ? auv_stream_write_queue_size(self->stream) : 0;
}


static void report_protocol_error(TransportObject* self, const char* message,
                                  PyObject* exc) {
  auvpy_report_transport_error(self->loop, (PyObject*) self, self->protocol, message, exc);
}


/* asyncio's _force_close(): drop what is queued, stop reading, and call
 * connection_lost(exc) soon, once. */
static void transport_force_close(TransportObject* self, PyObject* exc) {
  if (self->conn_lost)
    return;
  transport_close_stream(self);
  self->closing = 1;
  self->conn_lost++;
  if (transport_call_soon_method(self, transport_state(self)->str_call_connection_lost,
                                 exc != NULL ? exc : Py_None) < 0)
    PyErr_WriteUnraisable((PyObject*) self);
}


/* asyncio's _fatal_error(): OS errors only close the transport (logged in
 * debug mode); other errors go to the exception handler first.  The error
 * is the current exception; SystemExit/KeyboardInterrupt end the run. */
static void transport_fatal_error(TransportObject* self, const char* message) {
  PyObject* exc;

  if (auvpy_is_exit_exception()) {
    auvpy_callback_failed(self->loop, (PyObject*) self, self->protocol, message);
    return;
  }
  exc = auvpy_take_exception();
  if (self->loop != NULL && PyObject_TypeCheck(exc, (PyTypeObject*) PyExc_OSError)) {
    if (self->loop->debug) {
      /* asyncio: logger.debug("%r: %s", self, message, exc_info=True). */
      PyObject* args = Py_BuildValue("(sOs)", "%r: %s", self, message);
      if (args == NULL) {
        PyErr_WriteUnraisable((PyObject*) self);
      } else {
        PyErr_SetObject((PyObject*) Py_TYPE(exc), exc);
        auvpy_log_with_exc_info(transport_state(self), transport_state(self)->str_debug, args);
        Py_DECREF(args);
      }
    }
  } else {
    report_protocol_error(self, message, exc);
  }
  transport_force_close(self, exc);
  Py_XDECREF(exc);
}


/* Call a protocol callback (a bound method the transport caches) with one
 * argument.  The callback may swap the protocol (set_protocol()), which
 * drops the transport's reference to it: a reference is held for the
 * length of the call, or a method of a protocol written in C would run on
 * a freed object. */
static PyObject* call_cached(PyObject* cb, PyObject* arg) {
  PyObject* r;

  if (cb == NULL) {  /* connection_lost() released the protocol */
    PyErr_SetString(PyExc_RuntimeError, "the transport has no protocol");
    return NULL;
  }
  Py_INCREF(cb);
  r = PyObject_CallOneArg(cb, arg);
  Py_DECREF(cb);
  return r;
}


/* protocol.<name>(arg) (no argument if arg is NULL), the protocol held for
 * the length of the call as above. */
static PyObject* call_protocol(TransportObject* self, PyObject* name, PyObject* arg) {
  PyObject* protocol;
  PyObject* r;

  if (self->protocol == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "the transport has no protocol");
    return NULL;
  }
  protocol = Py_NewRef(self->protocol);
  r = arg != NULL ? PyObject_CallMethodOneArg(protocol, name, arg)
                  : PyObject_CallMethodNoArgs(protocol, name);
  Py_DECREF(protocol);
  return r;
}


static void transport_maybe_pause_protocol(TransportObject* self) {
  if (auvpy_flow_pause_due(&self->flow, transport_buffer_size(self)))
    auvpy_flow_call(self->loop, (PyObject*) self, self->protocol,
                    transport_state(self)->str_pause_writing,
                    "protocol.pause_writing() failed");
}


static void transport_maybe_resume_protocol(TransportObject* self) {
  if (auvpy_flow_resume_due(&self->flow, transport_buffer_size(self)))
    auvpy_flow_call(self->loop, (PyObject*) self, self->protocol,
                    transport_state(self)->str_resume_writing,
                    "protocol.resume_writing() failed");
}


/* --- Reading ---------------------------------------------------------------- */

static void transport_alloc_buffered(TransportObject* self, size_t suggested,
                                     char** base, size_t* len);

static void transport_alloc_cb(auv_stream_t* stream, size_t suggested,
                               char** base, size_t* len) {
  TransportObject* self;
  PyObject* ctx;

  self = auv_stream_get_data(stream);
  if (self->tls) {
    /* TLS: the ciphertext goes from the loop's buffer into the SSL
     * protocol's incoming BIO (auvpy_sslproto_feed()). */
    *base = auvpy_loop_read_buf(self->loop);
    *len = *base != NULL ? AUV_READ_BUF_SIZE : 0;
    return;
  }
  if (!self->buffered) {
    /* A bulk transfer: read straight into the bytes object that
     * data_received() will get, rather than copy each chunk out of the
     * loop's buffer.  Small reads use the buffer and an exact-size copy. */
    if (self->bulk) {
      if (self->rbytes == NULL)
        self->rbytes = PyBytes_FromStringAndSize(NULL, AUV_READ_BUF_SIZE);
      if (self->rbytes != NULL) {
        *base = PyBytes_AS_STRING(self->rbytes);
        *len = AUV_READ_BUF_SIZE;
        return;
      }
      PyErr_Clear();  /* the loop's buffer will do */
    }
    *base = auvpy_loop_read_buf(self->loop);
    *len = *base != NULL ? AUV_READ_BUF_SIZE : 0;
    return;
  }
  Py_INCREF(self);
  ctx = auvpy_context_enter(self->context);  /* get_buffer() runs in it */
  transport_alloc_buffered(self, suggested, base, len);
  auvpy_context_exit(ctx);
  Py_DECREF(self);
}


static void transport_alloc_buffered(TransportObject* self, size_t suggested,
                                     char** base, size_t* len) {
  PyObject* buf;
  PyObject* hint;

  /* BufferedProtocol: read straight into the protocol's buffer. */
  *len = 0;
  hint = PyLong_FromLong(-1);
  buf = hint != NULL ? call_cached(self->get_buffer, hint) : NULL;
  Py_XDECREF(hint);
  if (buf != NULL) {
    if (PyObject_GetBuffer(buf, &self->rbuf, PyBUF_WRITABLE) == 0) {
      if (self->rbuf.len == 0) {
        PyBuffer_Release(&self->rbuf);
        PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
      } else if (self->stream == NULL) {
        /* get_buffer() closed the transport: nothing is read into the
         * buffer, and the engine hands nothing back to release it. */
        PyBuffer_Release(&self->rbuf);
      } else {
        self->have_rbuf = 1;
        *base = self->rbuf.buf;
        *len = (size_t) self->rbuf.len;
      }
    }
    Py_DECREF(buf);
  }
  /* Reported by the read callback, which the engine calls next. */
  if (PyErr_Occurred())
    Py_XSETREF(self->read_error, auvpy_take_exception());
}


static void transport_eof_received(TransportObject* self) {
  PyObject* r;
  int keep_open;

  if (self->loop->debug) {
    r = PyObject_CallMethod(transport_state(self)->logger, "debug", "sO",
                            "%r received EOF", self);
    if (r == NULL)
      PyErr_Clear();
    Py_XDECREF(r);
  }
  r = call_protocol(self, transport_state(self)->str_eof_received, NULL);
  if (r == NULL) {
    transport_fatal_error(self, "Fatal error: protocol.eof_received() call failed.");
    return;
  }
  keep_open = PyObject_IsTrue(r);
  Py_DECREF(r);
  if (keep_open < 0) {
    transport_fatal_error(self, "Fatal error: protocol.eof_received() call failed.");
    return;
  }
  /* Kept open: the engine already stopped reading; writing goes on. */
  if (!keep_open) {
    r = PyObject_CallMethodNoArgs((PyObject*) self, transport_state(self)->str_close);
    if (r == NULL)
      PyErr_WriteUnraisable((PyObject*) self);
    Py_XDECREF(r);
  }
}


/* data_received(bytes) of the current protocol, or, if it became a
 * BufferedProtocol since the read began, the data copied into the buffers
 * it gives (asyncio's protocols._feed_data_to_buffered_proto()). */
static PyObject* deliver_copy(TransportObject* self, const char* base, ssize_t nread) {
  Py_buffer view;
  PyObject* buf;
  PyObject* n;
  PyObject* r;
  Py_ssize_t len;

  if (!self->buffered) {
    PyObject* data = auvpy_bytes_copy(base, nread);
    if (data == NULL)
      return NULL;
    r = call_cached(self->data_received, data);
    Py_DECREF(data);
    return r;
  }
  r = Py_NewRef(Py_None);
  while (nread > 0 && self->buffered) {
    n = PyLong_FromSsize_t(nread);
    buf = n != NULL ? call_cached(self->get_buffer, n) : NULL;
    Py_XDECREF(n);
    if (buf == NULL || PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
      Py_XDECREF(buf);
      Py_DECREF(r);
      return NULL;
    }
    Py_DECREF(buf);
    len = view.len < nread ? view.len : nread;
    if (len == 0) {
      PyBuffer_Release(&view);
      PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
      Py_DECREF(r);
      return NULL;
    }
    memcpy(view.buf, base, (size_t) len);
    PyBuffer_Release(&view);
    n = PyLong_FromSsize_t(len);
    Py_SETREF(r, n != NULL ? call_cached(self->buffer_updated, n) : NULL);
    Py_XDECREF(n);
    if (r == NULL)
      return NULL;
    base += len;
    nread -= len;
  }
  return r;
}


static void transport_read_cb(auv_stream_t* stream, ssize_t nread, char* base) {
  TransportObject* self;
  PyObject* data;
  PyObject* r;
  PyObject* ctx;
  Py_buffer view;
  int in_rbuf;

  self = auv_stream_get_data(stream);
  Py_INCREF(self);  /* a protocol callback may close and drop us */
  ctx = auvpy_context_enter(self->context);

  /* The read went into a BufferedProtocol's buffer: released at the end,
   * after whatever the protocol does with it (get_buffer() may even have
   * swapped the protocol for one that takes bytes). */
  in_rbuf = self->have_rbuf;
  if (in_rbuf) {
    view = self->rbuf;
    self->have_rbuf = 0;
  }

  if (self->pipe) {
    /* A write pipe watches its fd only to learn that the reader went
     * away (the fd then is in error; a socket's reading counts too, as in
     * asyncio): what is still queued can no longer be delivered. */
    if (nread != 0 && !self->conn_lost) {
      PyObject* exc = NULL;
      if (transport_buffer_size(self) > 0)
        exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
      if (exc == NULL && PyErr_Occurred())
        PyErr_WriteUnraisable((PyObject*) self);
      transport_force_close(self, exc);
      Py_XDECREF(exc);
    }
    goto done;
  }

  if (self->read_error != NULL) {  /* get_buffer() failed */
    PyObject* exc = self->read_error;
    self->read_error = NULL;
    PyErr_SetObject((PyObject*) Py_TYPE(exc), exc);
    Py_DECREF(exc);
    transport_fatal_error(self, "Fatal error: protocol.get_buffer() call failed.");
    goto done;
  }

  if (nread == 0 && self->rbytes != NULL) {
    /* Nothing to read after all: an idle connection keeps no 256 KiB. */
    Py_CLEAR(self->rbytes);
  }
  if (nread > 0) {
    if (self->conn_lost)
      goto done;
    if (self->tls && !in_rbuf) {
      r = auvpy_sslproto_feed(self->protocol, base, (size_t) nread) < 0 ? NULL
          : Py_NewRef(Py_None);
      if (r == NULL)
        transport_fatal_error(self, "Fatal error: protocol.buffer_updated() call failed.");
    } else if (in_rbuf && self->buffered) {
      PyObject* n = PyLong_FromSsize_t(nread);
      r = n != NULL ? call_cached(self->buffer_updated, n) : NULL;
      Py_XDECREF(n);
      if (r == NULL)
        transport_fatal_error(self, "Fatal error: protocol.buffer_updated() call failed.");
    } else if (in_rbuf || self->buffered) {
      /* The protocol changed kind during get_buffer() (or a collection
       * during the read): the data goes to it as it takes data. */
      r = deliver_copy(self, base, nread);
      if (r == NULL)
        transport_fatal_error(self, self->buffered
                              ? "Fatal error: protocol.buffer_updated() call failed."
                              : "Fatal error: protocol.data_received() call failed.");
    } else {
      if (self->rbytes != NULL && base == PyBytes_AS_STRING(self->rbytes) &&
          nread == PyBytes_GET_SIZE(self->rbytes)) {
        /* The read filled it: it is the data as it is. */
        data = self->rbytes;
        self->rbytes = NULL;
      } else {
        /* From the loop's buffer, or a short read into rbytes: one exact
         * copy.  rbytes stays for the next read: a bytes object cannot be
         * shrunk with the public API, and shrinking it (then allocating a
         * new one) cost an mremap and fresh pages per read. */
        data = auvpy_bytes_copy(base, nread);
      }
      self->bulk = nread >= AUV_READ_BUF_SIZE / 2;
      if (!self->bulk)
        Py_CLEAR(self->rbytes);  /* the bulk transfer is over */
      r = data == NULL ? NULL : call_cached(self->data_received, data);
      Py_XDECREF(data);
      if (r == NULL)
        transport_fatal_error(self, "Fatal error: protocol.data_received() call failed.");
    }
    Py_XDECREF(r);
  } else if (nread == AUV_EOF) {
    transport_eof_received(self);
  } else if (nread == -ENOBUFS && !self->buffered) {
    PyErr_NoMemory();
    transport_fatal_error(self, "Fatal read error on socket transport");
  } else if (nread < 0) {
    auvpy_oserror((int) nread);
    transport_fatal_error(self, "Fatal read error on socket transport");
  }

done:
  if (in_rbuf)
    PyBuffer_Release(&view);
  auvpy_context_exit(ctx);
  Py_DECREF(self);
}


static void transport_start_reading(TransportObject* self) {
  int err;

  if (self->closing || self->paused || self->stream == NULL)
    return;
  err = auv_stream_read_start(self->stream, transport_alloc_cb, transport_read_cb);
  if (err != 0) {
    auvpy_oserror(err);
    transport_fatal_error(self, "Fatal read error on socket transport");
  }
}


/* Reads run in (a copy of) the current context from now on: asyncio
 * makes its reader anew at each resume_reading(), in the caller's context
 * (start_tls() resumes the transport it takes over). */
static int transport_take_context(TransportObject* self) {
  PyObject* ctx = PyContext_CopyCurrent();

  if (ctx == NULL)
    return -1;
  Py_XSETREF(self->context, ctx);
  return 0;
}


/* The first reading starts after connection_made(): queued after it. */
static PyObject* transport_start_reading_method(TransportObject* self, PyObject* unused) {
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (transport_take_context(self) < 0)
    return NULL;
  transport_start_reading(self);
  Py_RETURN_NONE;
}


/* --- Writing ---------------------------------------------------------------- */

/* --- loop.sendfile ------------------------------------------------------------ */

/* fut.set_result(value) / fut.set_exception(value), unless fut is done. */
static void future_set(auvpy_state* st, PyObject* fut, PyObject* method, PyObject* value) {
  PyObject* done;
  PyObject* r;
  int is_done;

  done = PyObject_CallMethodNoArgs(fut, st->str_done);
  is_done = done == NULL ? -1 : PyObject_IsTrue(done);
  Py_XDECREF(done);
  if (is_done == 0) {
    r = PyObject_CallMethodOneArg(fut, method, value);
    if (r == NULL)
      is_done = -1;
    Py_XDECREF(r);
  }
  if (is_done < 0)
    PyErr_WriteUnraisable(fut);
}


static PyObject* connection_closed_error(void) {
  return PyObject_CallFunction(PyExc_ConnectionError, "s", "Connection is closed by peer");
}


/* The engine's request is over: the future learns how, unless it is done
 * (cancelled, or failed by connection_lost()). */
static void transport_sendfile_cb(auv_sendfile_t* req, int status, uint64_t sent) {
  TransportObject* self;
  transport_sendfile_t* sf;
  PyObject* value;
  auvpy_state* st;

  self = auv_sendfile_get_data(req);  /* the request's reference */
  sf = self->sf;
  if (sf == NULL || sf->req != req) {  /* cancelled by _sendfile_finish() */
    Py_DECREF(self);
    return;
  }
  st = transport_state(self);
  sf->req = NULL;
  sf->sent = sent;
  if (status == 0) {
    value = PyLong_FromUnsignedLongLong(sent);
    if (value != NULL) {
      future_set(st, sf->fut, st->str_set_result, value);
      Py_DECREF(value);
    }
  } else {
    auvpy_sendfile_error(status, sent);
  }
  if (PyErr_Occurred()) {
    value = auvpy_take_exception();
    if (value != NULL)
      future_set(st, sf->fut, st->str_set_exception, value);
    Py_XDECREF(value);
  }
  Py_DECREF(self);
}


/* transport._sendfile(in_fd, offset, count): a future of the bytes sent
 * (count 0: to the end of the file).  The caller has paused reading and
 * waited for the queue to empty (_make_empty_waiter()), and calls
 * _sendfile_finish() when the future is done or cancelled. */
static PyObject* transport_sendfile(TransportObject* self, PyObject* args) {
  transport_sendfile_t* sf;
  long long offset;
  unsigned long long count;
  PyObject* stack[1];
  int in_fd;
  int err;

  if (!PyArg_ParseTuple(args, "iLK:_sendfile", &in_fd, &offset, &count))
    return NULL;
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->loop == NULL || self->stream == NULL) {
    PyErr_SetString(PyExc_ConnectionError, "Connection is closed by peer");
    return NULL;
  }
  if (self->sf != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "sendfile is in progress");
    return NULL;
  }
  if (offset < 0) {
    PyErr_SetString(PyExc_ValueError, "offset must be a non-negative integer");
    return NULL;
  }
  sf = PyMem_Calloc(1, sizeof(*sf));
  if (sf == NULL)
    return PyErr_NoMemory();
  stack[0] = (PyObject*) self->loop;
  sf->fut = PyObject_Vectorcall(transport_state(self)->Future, stack, 0,
                                transport_state(self)->kw_loop);
  if (sf->fut == NULL) {
    PyMem_Free(sf);
    return NULL;
  }
  /* asyncio's own fallback (through the transport) replaces the engine's. */
  err = auv_stream_sendfile(self->stream, in_fd, offset, count,
                            AUV_SENDFILE_NO_FALLBACK, transport_sendfile_cb, &sf->req);
  if (err != 0) {
    Py_DECREF(sf->fut);
    PyMem_Free(sf);
    return auvpy_oserror(err);
  }
  auv_sendfile_set_data(sf->req, Py_NewRef(self));  /* until the callback */
  self->sf = sf;
  return Py_NewRef(sf->fut);
}


static void transport_sendfile_clear(TransportObject* self) {
  transport_sendfile_t* sf;

  sf = self->sf;
  if (sf == NULL)
    return;
  self->sf = NULL;
  if (sf->req != NULL)
    (void) auv_sendfile_cancel(sf->req);  /* its callback only lets go */
  Py_DECREF(sf->fut);
  PyMem_Free(sf);
}


/* Ends the sendfile: returns the bytes sent, for the file's position. */
static PyObject* transport_sendfile_finish(TransportObject* self, PyObject* unused) {
  uint64_t sent;

  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  sent = 0;
  if (self->sf != NULL)
    sent = self->sf->req != NULL ? auv_sendfile_get_sent(self->sf->req) : self->sf->sent;
  transport_sendfile_clear(self);
  return PyLong_FromUnsignedLongLong(sent);
}


static PyObject* transport_make_empty_waiter(TransportObject* self, PyObject* unused) {
  PyObject* stack[1];

  if (self->empty_waiter != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
    return NULL;
  }
  if (self->loop == NULL) {
    PyErr_SetString(PyExc_ConnectionError, "Connection is closed by peer");
    return NULL;
  }
  stack[0] = (PyObject*) self->loop;
  self->empty_waiter = PyObject_Vectorcall(transport_state(self)->Future, stack, 0,
                                           transport_state(self)->kw_loop);
  if (self->empty_waiter == NULL)
    return NULL;
  if (transport_buffer_size(self) == 0)
    future_set(transport_state(self), self->empty_waiter,
               transport_state(self)->str_set_result, Py_None);
  return Py_NewRef(self->empty_waiter);
}


static PyObject* transport_reset_empty_waiter(TransportObject* self, PyObject* unused) {
  Py_CLEAR(self->empty_waiter);
  Py_RETURN_NONE;
}


static PyObject* transport_get_sendfile_compatible(TransportObject* self, void* closure) {
  PyObject* constants;
  PyObject* mode;
  PyObject* value;

  constants = PyImport_ImportModule("asyncio.constants");
  if (constants == NULL)
    return NULL;
  mode = PyObject_GetAttrString(constants, "_SendfileMode");
  Py_DECREF(constants);
  if (mode == NULL)
    return NULL;
  /* A write pipe: asyncio's pipe transports have no sendfile. */
  value = PyObject_GetAttrString(mode, self->pipe ? "UNSUPPORTED" : "TRY_NATIVE");
  Py_DECREF(mode);
  return value;
}


static void transport_drain_cb(auv_stream_t* stream, int status) {
  TransportObject* self;
  PyObject* ctx;

  self = auv_stream_get_data(stream);
  Py_INCREF(self);
  /* asyncio's writer callback: made by the write() that found the queue
   * empty, in that call's context. */
  ctx = auvpy_context_enter(self->write_context != NULL ? self->write_context
                                                       : self->context);
  if (status < 0) {
    auvpy_oserror(status);
    transport_fatal_error(self, "Fatal write error on socket transport");
  } else {
    transport_maybe_resume_protocol(self);
    if (self->empty_waiter != NULL)
      future_set(transport_state(self), self->empty_waiter,
                 transport_state(self)->str_set_result, Py_None);
    /* close() waited for the queue to empty. */
    if (self->closing && !self->conn_lost && transport_buffer_size(self) == 0) {
      self->conn_lost++;
      transport_close_stream(self);
      if (transport_call_soon_method(self, transport_state(self)->str_call_connection_lost,
                                     Py_None) < 0)
        PyErr_WriteUnraisable((PyObject*) self);
    }
  }
  auvpy_context_exit(ctx);
  Py_DECREF(self);
}


/* type(obj).__name__, as asyncio's messages show it (tp_name without its
 * module, for the types of C). */
const char* auvpy_type_name(PyObject* obj) {
  const char* name = Py_TYPE(obj)->tp_name;
  const char* dot = strrchr(name, '.');
  return dot != NULL ? dot + 1 : name;
}


/* The bytes of what asyncio's write() and sendto() take (bytes, bytearray,
 * memoryview) in *view.  A memoryview that is not C-contiguous (a slice
 * with a step) is copied into *copy first: asyncio takes it too.  -1 with
 * an exception set; else the caller releases view and copy. */
int auvpy_get_data_buffer(PyObject* data, Py_buffer* view, PyObject** copy) {
  *copy = NULL;
  if (PyObject_GetBuffer(data, view, PyBUF_SIMPLE) == 0)
    return 0;
  if (!PyMemoryView_Check(data) || !PyErr_ExceptionMatches(PyExc_BufferError))
    return -1;
  PyErr_Clear();
  *copy = PyBytes_FromObject(data);
  if (*copy == NULL)
    return -1;
  if (PyObject_GetBuffer(*copy, view, PyBUF_SIMPLE) < 0) {
    Py_CLEAR(*copy);
    return -1;
  }
  return 0;
}


/* Does the interpreter run with -O (asserts are gone)?  sys.flags.optimize;
 * an error counts as no. */
static int optimized(void) {
  PyObject* flags;
  PyObject* level;
  int r;

  flags = PySys_GetObject("flags");  /* borrowed */
  level = flags != NULL ? PyObject_GetAttrString(flags, "optimize") : NULL;
  r = level != NULL ? PyObject_IsTrue(level) : 0;
  Py_XDECREF(level);
  if (r < 0 || PyErr_Occurred()) {
    PyErr_Clear();
    r = 0;
  }
  return r;
}


static PyObject* transport_write(TransportObject* self, PyObject* data) {
  Py_buffer view;
  PyObject* copy;
  auv_buf_t buf;
  ssize_t n;
  int was_empty;

  if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
    if (self->pipe && !optimized())
      /* asyncio's write pipe: assert isinstance(...), repr(data). */
      PyErr_Format(PyExc_AssertionError, "%R", data);
    else
      PyErr_Format(PyExc_TypeError, AUV_WRITE_DATA_TYPE_ERROR, auvpy_type_name(data));
    return NULL;
  }
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->eof) {
    PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
    return NULL;
  }
  if (self->empty_waiter != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
    return NULL;
  }
  copy = NULL;
  if (PyBytes_Check(data)) {
    buf.base = PyBytes_AS_STRING(data);
    buf.len = (size_t) PyBytes_GET_SIZE(data);
    view.obj = NULL;
  } else {
    if (auvpy_get_data_buffer(data, &view, &copy) < 0)
      return NULL;
    buf.base = view.buf;
    buf.len = (size_t) view.len;
  }
  if (buf.len == 0)
    goto out;
  if (self->conn_lost || self->stream == NULL) {
    auvpy_write_after_lost(self->loop, &self->conn_lost);
    goto out;
  }

  was_empty = transport_buffer_size(self) == 0;
  n = auv_stream_write(self->stream, &buf, 1);
  if (n < 0) {
    auvpy_oserror((int) n);
    transport_fatal_error(self, "Fatal write error on socket transport");
  } else {
    if (was_empty && transport_buffer_size(self) > 0) {
      /* The queue's callbacks (resume_writing()) run in this context. */
      PyObject* ctx = PyContext_CopyCurrent();
      if (ctx == NULL)
        goto error;
      Py_XSETREF(self->write_context, ctx);
    }
    transport_maybe_pause_protocol(self);
  }

out:
  if (view.obj != NULL)
    PyBuffer_Release(&view);
  Py_XDECREF(copy);
  /* A KeyboardInterrupt in a protocol callback: raise it here. */
  if (auvpy_loop_raise_pending(self->loop))
    return NULL;
  Py_RETURN_NONE;
error:
  if (view.obj != NULL)
    PyBuffer_Release(&view);
  Py_XDECREF(copy);
  return NULL;
}


static PyObject* transport_writelines(TransportObject* self, PyObject* lines) {
  PyObject* iter;
  PyObject* item;
  PyObject* r;

  if (self->pipe) {
    /* asyncio's write pipe: WriteTransport.writelines(), b''.join(). */
    PyObject* empty = PyBytes_FromStringAndSize(NULL, 0);
    PyObject* data = empty != NULL ? PyObject_CallMethod(empty, "join", "O", lines) : NULL;
    Py_XDECREF(empty);
    if (data == NULL)
      return NULL;
    r = transport_write(self, data);
    Py_DECREF(data);
    return r;
  }
  /* One write per piece: the engine coalesces nothing, but each piece that
   * the socket takes at once costs no copy. */
  iter = PyObject_GetIter(lines);
  if (iter == NULL)
    return NULL;
  while ((item = PyIter_Next(iter)) != NULL) {
    r = transport_write(self, item);
    Py_DECREF(item);
    if (r == NULL) {
      Py_DECREF(iter);
      return NULL;
    }
    Py_DECREF(r);
  }
  Py_DECREF(iter);
  if (PyErr_Occurred())
    return NULL;
  Py_RETURN_NONE;
}


static void transport_shutdown_cb(auv_stream_t* stream, int status) {
  TransportObject* self;

  self = auv_stream_get_data(stream);
  /* The socket may already be gone; asyncio ignores shutdown errors too. */
  (void) self;
  (void) status;
}


static PyObject* transport_write_eof(TransportObject* self, PyObject* unused) {
  int err;

  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->closing || self->eof)
    Py_RETURN_NONE;
  if (self->pipe)  /* no half-close: the end of the pipe */
    return PyObject_CallMethod((PyObject*) self, "close", NULL);
  self->eof = 1;
  if (self->stream != NULL) {
    err = auv_stream_shutdown(self->stream, transport_shutdown_cb);
    if (err != 0 && err != -ENOTCONN)
      return auvpy_oserror(err);
  }
  Py_RETURN_NONE;
}


static PyObject* transport_can_write_eof(TransportObject* self, PyObject* unused) {
  Py_RETURN_TRUE;
}


/* --- Closing ------------------------------------------------------------------- */

static PyObject* transport_close(TransportObject* self, PyObject* unused) {
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->closing)
    Py_RETURN_NONE;
  self->closing = 1;
  if (self->stream != NULL)
    auv_stream_read_stop(self->stream);
  if (transport_buffer_size(self) == 0) {
    self->conn_lost++;
    transport_close_stream(self);
    if (transport_call_soon_method(self, transport_state(self)->str_call_connection_lost,
                                   Py_None) < 0)
      return NULL;
  }
  Py_RETURN_NONE;
}


static PyObject* transport_abort(TransportObject* self, PyObject* unused) {
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  transport_force_close(self, NULL);
  Py_RETURN_NONE;
}


/* asyncio's SSLProtocol calls its transport's _force_close(exc). */
static PyObject* transport_force_close_method(TransportObject* self, PyObject* exc) {
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  transport_force_close(self, exc == Py_None ? NULL : exc);
  Py_RETURN_NONE;
}


/* loop.start_tls() takes socket transports; asyncio's pipe transports
 * lack the attribute. */
static PyObject* transport_get_start_tls_compatible(TransportObject* self, void* closure) {
  return PyBool_FromLong(!self->pipe);
}


/* A write pipe is asyncio's _UnixWritePipeTransport: a Transport whose
 * reading methods are ReadTransport's, which raise NotImplementedError. */
static int transport_check_reads(TransportObject* self) {
  if (self->pipe) {
    PyErr_SetNone(PyExc_NotImplementedError);
    return -1;
  }
  return 0;
}


static void transport_forget_fd(TransportObject* self) {
  auvpy_loop_disown_fd(self->loop, self->fd, (PyObject*) self);
}


static PyObject* transport_call_connection_lost(TransportObject* self, PyObject* exc) {
  PyObject* r;
  PyObject* error;
  PyObject* server;

  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->loop == NULL)  /* done before: everything is released */
    Py_RETURN_NONE;
  r = auvpy_connection_lost_call(transport_state(self), self->protocol, exc, &error);

  /* A sendfile waiting for the queue or the socket learns of the end. */
  if (self->empty_waiter != NULL || self->sf != NULL) {
    PyObject* lost = connection_closed_error();
    if (lost == NULL) {
      PyErr_WriteUnraisable((PyObject*) self);
    } else {
      if (self->empty_waiter != NULL)
        future_set(transport_state(self), self->empty_waiter,
                   transport_state(self)->str_set_exception, lost);
      if (self->sf != NULL)
        future_set(transport_state(self), self->sf->fut,
                   transport_state(self)->str_set_exception, lost);
      Py_DECREF(lost);
    }
  }

  /* Whatever connection_lost() did: release the socket and the server. */
  transport_close_stream(self);
  auvpy_connection_lost_release(transport_state(self), self->loop, (PyObject*) self,
                                self->fd, &self->sock);
  Py_CLEAR(self->protocol);
  Py_CLEAR(self->data_received);
  Py_CLEAR(self->get_buffer);
  Py_CLEAR(self->buffer_updated);
  server = self->server;
  self->server = NULL;
  if (server != NULL) {
    PyObject* d = PyObject_CallMethodOneArg(server, transport_state(self)->str_detach,
                                            (PyObject*) self);
    if (d == NULL)
      PyErr_WriteUnraisable((PyObject*) self);
    Py_XDECREF(d);
    Py_DECREF(server);
  }
  /* Called directly (a private method): later calls find it closed. */
  self->closing = 1;
  if (self->conn_lost == 0)
    self->conn_lost = 1;
  Py_CLEAR(self->loop);
  return auvpy_connection_lost_return(r, error);
}


/* --- Protocol, flow control, introspection ------------------------------------ */

static int transport_set_protocol_impl(TransportObject* self, PyObject* protocol) {
  PyObject* buffered_type;
  PyObject* data_received;
  PyObject* get_buffer;
  PyObject* buffer_updated;
  int buffered;

  if (self->pipe) {  /* a write pipe's protocol only needs the flow methods */
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    return 0;
  }
  buffered_type = transport_state(self)->BufferedProtocol;
  buffered = PyObject_IsInstance(protocol, buffered_type);
  if (buffered < 0)
    return -1;
  /* Look the new methods up first: a protocol that lacks one leaves the
   * transport with its old protocol, never with no methods at all. */
  data_received = get_buffer = buffer_updated = NULL;
  if (buffered) {
    get_buffer = PyObject_GetAttr(protocol, transport_state(self)->str_get_buffer);
    buffer_updated = get_buffer == NULL ? NULL :
                     PyObject_GetAttr(protocol, transport_state(self)->str_buffer_updated);
    if (buffer_updated == NULL) {
      Py_XDECREF(get_buffer);
      return -1;
    }
  } else {
    data_received = PyObject_GetAttr(protocol, transport_state(self)->str_data_received);
    if (data_received == NULL)
      return -1;
  }
  self->buffered = (char) buffered;
  self->tls = (char) auvpy_is_sslproto(transport_state(self), protocol);
  Py_XSETREF(self->data_received, data_received);
  Py_XSETREF(self->get_buffer, get_buffer);
  Py_XSETREF(self->buffer_updated, buffer_updated);
  Py_XSETREF(self->protocol, Py_NewRef(protocol));
  return 0;
}


static PyObject* transport_set_protocol(TransportObject* self, PyObject* protocol) {
  if (self->loop == NULL) {
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
  }
  if (transport_set_protocol_impl(self, protocol) < 0)
    return NULL;
  Py_RETURN_NONE;
}


static PyObject* transport_get_protocol(TransportObject* self, PyObject* unused) {
  return Py_NewRef(self->protocol ? self->protocol : Py_None);
}


static PyObject* transport_is_closing(TransportObject* self, PyObject* unused) {
  return PyBool_FromLong(self->closing);
}


static PyObject* transport_is_reading(TransportObject* self, PyObject* unused) {
  if (transport_check_reads(self) < 0)
    return NULL;
  return PyBool_FromLong(!self->paused && !self->closing);
}


/* asyncio's logger.debug("%r pauses reading", self) in debug mode. */
static int transport_log_debug(TransportObject* self, const char* fmt) {
  PyObject* r;

  if (self->loop == NULL || !self->loop->debug)
    return 0;
  r = PyObject_CallMethod(transport_state(self)->logger, "debug", "sO", fmt, self);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}


static PyObject* transport_pause_reading(TransportObject* self, PyObject* unused) {
  if (transport_check_reads(self) < 0)
    return NULL;
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->closing || self->paused)
    Py_RETURN_NONE;
  self->paused = 1;
  if (self->stream != NULL)
    auv_stream_read_stop(self->stream);
  if (transport_log_debug(self, "%r pauses reading") < 0)
    return NULL;
  Py_RETURN_NONE;
}


static PyObject* transport_resume_reading(TransportObject* self, PyObject* unused) {
  if (transport_check_reads(self) < 0)
    return NULL;
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->closing || !self->paused)
    Py_RETURN_NONE;
  self->paused = 0;
  if (transport_take_context(self) < 0)
    return NULL;
  transport_start_reading(self);
  if (transport_log_debug(self, "%r resumes reading") < 0)
    return NULL;
  Py_RETURN_NONE;
}


static PyObject* transport_get_write_buffer_size(TransportObject* self, PyObject* unused) {
  return PyLong_FromSize_t(transport_buffer_size(self));
}


static PyObject* transport_get_write_buffer_limits(TransportObject* self, PyObject* unused) {
  return auvpy_flow_get_limits(&self->flow);
}


static int transport_set_limits(TransportObject* self, PyObject* high_obj, PyObject* low_obj) {
  return auvpy_flow_set_limits(&self->flow, high_obj, low_obj);
}


static PyObject* transport_set_write_buffer_limits(TransportObject* self, PyObject* args,
                                                   PyObject* kwargs) {
  static char* kwlist[] = { "high", "low", NULL };
  PyObject* high = Py_None;
  PyObject* low = Py_None;

  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:set_write_buffer_limits",
                                   kwlist, &high, &low))
    return NULL;
  if (transport_set_limits(self, high, low) < 0)
    return NULL;
  transport_maybe_pause_protocol(self);
  Py_RETURN_NONE;
}


/* get_extra_info(name, default=None). */
int auvpy_parse_extra_info_args(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                               PyObject** name, PyObject** dflt) {
  Py_ssize_t i;

  *name = nargs > 0 ? args[0] : NULL;
  *dflt = nargs > 1 ? args[1] : Py_None;
  for (i = 0; kwnames != NULL && i < PyTuple_GET_SIZE(kwnames); i++) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(key, "name") == 0) {
      *name = args[nargs + i];
    } else if (PyUnicode_CompareWithASCIIString(key, "default") == 0) {
      *dflt = args[nargs + i];
    } else {
      PyErr_Format(PyExc_TypeError,
                   "get_extra_info() got an unexpected keyword argument '%S'", key);
      return -1;
    }
  }
  if (*name == NULL || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "get_extra_info() takes a name and an optional default");
    return -1;
  }
  return 0;
}


static PyObject* transport_get_extra_info(TransportObject* self, PyObject* const* args,
                                          Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* name;
  PyObject* dflt;
  PyObject* value;

  if (auvpy_parse_extra_info_args(args, nargs, kwnames, &name, &dflt) < 0)
    return NULL;
  /* The common keys live in fields: no dict per connection. */
  if (PyUnicode_Check(name)) {
    if (PyUnicode_CompareWithASCIIString(name, "peername") == 0 && self->peername != NULL)
      return Py_NewRef(self->peername);
    if (PyUnicode_CompareWithASCIIString(name, "sockname") == 0 && self->sockname != NULL)
      return Py_NewRef(self->sockname);
    if (PyUnicode_CompareWithASCIIString(name, "socket") == 0 && self->sock != NULL &&
        !self->pipe) {
      if (self->tsock == NULL && self->loop != NULL) {
        self->tsock = PyObject_CallOneArg(transport_state(self)->TransportSocket, self->sock);
        if (self->tsock == NULL)
          return NULL;
      }
      if (self->tsock != NULL)
        return Py_NewRef(self->tsock);
    }
  }
  /* asyncio looks the name up in a dict: an unhashable one raises. */
  if (self->extra == NULL && PyObject_Hash(name) == -1)
    return NULL;
  value = self->extra == NULL ? NULL : PyDict_GetItemWithError(self->extra, name);
  if (value == NULL) {
    if (PyErr_Occurred())
      return NULL;
    return Py_NewRef(dflt);
  }
  return Py_NewRef(value);
}


static PyObject* transport_repr(TransportObject* self) {
  PyObject* name;
  PyObject* res;
  const char* state;

  name = PyType_GetName(Py_TYPE(self));
  if (name == NULL)
    return NULL;
  if (self->sock == NULL)
    state = " closed";
  else if (self->closing)
    state = " closing";
  else
    state = "";
  if (self->pipe && self->sock == NULL)  /* asyncio's _UnixWritePipeTransport */
    res = PyUnicode_FromFormat("<WritePipeTransport closed fd=%d closed>", self->fd);
  else if (self->pipe && (self->loop == NULL || self->loop->closed))
    /* asyncio's loop has no selector to ask any more. */
    res = PyUnicode_FromFormat("<WritePipeTransport%s fd=%d open>", state, self->fd);
  else if (self->pipe)
    res = PyUnicode_FromFormat("<WritePipeTransport%s fd=%d %s bufsize=%zu>",
                               state, self->fd,
                               transport_buffer_size(self) ? "polling" : "idle",
                               transport_buffer_size(self));
  else if (self->sock == NULL)
    res = PyUnicode_FromFormat("<%U%s>", name, state);
  else
    res = PyUnicode_FromFormat("<%U fd=%d%s read=%s write=<%s, bufsize=%zu>>",
                               name, self->fd, state,
                               self->paused || self->closing ? "idle" : "polling",
                               transport_buffer_size(self) ? "polling" : "idle",
                               transport_buffer_size(self));
  Py_DECREF(name);
  return res;
}


/* --- Creation ------------------------------------------------------------------ */

/* loop._make_socket_transport(sock, protocol, waiter=None, extra=None,
 * server=None), as asyncio's selector loop names it. */
static PyObject* transport_create(LoopObject* loop, PyObject* sock, PyObject* protocol,
                                  PyObject* waiter, PyObject* extra, PyObject* server,
                                  int pipe, int watch_peer);

PyObject* auvpy_loop_make_socket_transport(LoopObject* loop, PyObject* args,
                                          PyObject* kwargs) {
  static char* kwlist[] = { "sock", "protocol", "waiter", "extra", "server", NULL };
  PyObject* sock;
  PyObject* protocol;
  PyObject* waiter = Py_None;
  PyObject* extra = Py_None;
  PyObject* server = Py_None;

  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOO:_make_socket_transport",
                                   kwlist, &sock, &protocol, &waiter, &extra, &server))
    return NULL;
  return transport_create(loop, sock, protocol, waiter, extra, server, 0, 1);
}


/* loop._make_write_pipe_transport(pipe, protocol, waiter, extra, watch_peer):
 * the caller checked the file type.  watch_peer (a pipe, FIFO or socket)
 * makes the transport learn at once that the reader went away. */
PyObject* auvpy_loop_make_write_pipe_transport(LoopObject* loop, PyObject* args) {
  PyObject* pipe;
  PyObject* protocol;
  PyObject* waiter;
  PyObject* extra;
  int watch_peer;

  if (!PyArg_ParseTuple(args, "OOOOp:_make_write_pipe_transport",
                        &pipe, &protocol, &waiter, &extra, &watch_peer))
    return NULL;
  return transport_create(loop, pipe, protocol, waiter, extra, Py_None, 1, watch_peer);
}


static PyObject* transport_create(LoopObject* loop, PyObject* sock, PyObject* protocol,
                                  PyObject* waiter, PyObject* extra, PyObject* server,
                                  int pipe, int watch_peer) {
  TransportObject* self;
  int fd;
  int err;

  if (auvpy_loop_check_closed(loop) < 0 || auvpy_loop_check_thread(loop) < 0)
    return NULL;
  fd = auvpy_fileobj_to_fd(loop->state, sock);
  if (fd < 0)
    return NULL;

  self = PyObject_GC_New(TransportObject, loop->state->TransportType);
  if (self == NULL)
    return NULL;
  memset(self->asyncio_slots, 0, sizeof(self->asyncio_slots));
  self->loop = (LoopObject*) Py_NewRef(loop);
  self->stream = NULL;
  self->sock = Py_NewRef(sock);
  self->protocol = NULL;
  self->data_received = self->get_buffer = self->buffer_updated = NULL;
  self->extra = NULL;
  self->sockname = self->peername = self->tsock = NULL;
  self->server = NULL;
  self->read_error = NULL;
  self->rbytes = NULL;
  self->weakreflist = NULL;
  self->empty_waiter = NULL;
  self->sf = NULL;
  self->context = self->write_context = NULL;
  auvpy_flow_init(&self->flow);
  self->fd = fd;
  self->conn_lost = 0;
  self->closing = self->paused = self->eof = 0;
  self->buffered = self->have_rbuf = self->bulk = self->tls = 0;
  self->pipe = (char) pipe;
  PyObject_GC_Track(self);
  /* asyncio's reader is made where the transport is: its callbacks run in
   * (a copy of) the context current now. */
  self->context = PyContext_CopyCurrent();
  if (self->context == NULL)
    goto error;

  if (extra != Py_None) {
    self->extra = PyDict_Copy(extra);
    if (self->extra == NULL)
      goto error;
  }
  if (transport_set_protocol_impl(self, protocol) < 0)
    goto error;

  if (pipe) {
    if (self->extra == NULL && (self->extra = PyDict_New()) == NULL)
      goto error;
    if (PyDict_SetItemString(self->extra, "pipe", sock) < 0)
      goto error;
    goto names_done;
  }
  /* asyncio's extra info: the socket's name and its peer's, as they are
   * now (a caller's 'peername' wins); 'socket' is made when asked for. */
  self->sockname = PyObject_CallMethodNoArgs(sock, loop->state->str_getsockname);
  if (self->sockname == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_OSError))
      goto error;
    PyErr_Clear();
    self->sockname = Py_NewRef(Py_None);
  }
  share_sockname(loop, &self->sockname);
  self->peername = NULL;
  if (self->extra != NULL &&
      PyDict_GetItemStringRef(self->extra, "peername", &self->peername) < 0)
    goto error;
  if (self->peername == NULL) {
    self->peername = PyObject_CallMethodNoArgs(sock, loop->state->str_getpeername);
    if (self->peername == NULL) {
      if (!PyErr_ExceptionMatches(PyExc_OSError))
        goto error;
      PyErr_Clear();
      self->peername = Py_NewRef(Py_None);
    }
    share_peer_host(loop, self->peername);
  }

names_done:
  err = auv_stream_new(loop->loop, fd, &self->stream);
  if (err != 0) {
    self->stream = NULL;
    auvpy_oserror(err);
    goto error;
  }
  auv_stream_set_data(self->stream, self);
  auv_stream_set_drain_cb(self->stream, transport_drain_cb);
  Py_INCREF(self);  /* the engine's, until the stream's close callback */
  if (!pipe)
    auv_tcp_nodelay(fd, 1);  /* asyncio disables Nagle; fails harmlessly on non-TCP */

  if (auvpy_loop_own_fd(loop, fd, (PyObject*) self) < 0)
    goto error;

  if (server != Py_None) {
    PyObject* r = PyObject_CallMethodOneArg(server, loop->state->str_attach,
                                            (PyObject*) self);
    if (r == NULL)
      goto error;
    Py_DECREF(r);
    self->server = Py_NewRef(server);
  }

  /* connection_made(), then reading, then the waiter: asyncio's order. */
  if (auvpy_loop_call_soon_method(loop, protocol, loop->state->str_connection_made,
                                 (PyObject*) self) < 0 ||
      (watch_peer && transport_call_soon_method(self, loop->state->str_start_reading, NULL) < 0) ||
      (waiter != Py_None && auvpy_loop_wake_waiter_soon(loop, waiter) < 0))
    goto error;
  return (PyObject*) self;

error:
  {
    PyObject* exc = PyErr_GetRaisedException();  /* the clean-up must not eat it */
    transport_close_stream(self);
    transport_forget_fd(self);
    if (pipe)
      Py_CLEAR(self->sock);  /* still the caller's, as with asyncio */
    Py_DECREF(self);
    PyErr_SetRaisedException(exc);
  }
  return NULL;
}


/* --- Type ---------------------------------------------------------------------- */

static int transport_traverse(TransportObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->loop);
  Py_VISIT(self->sock);
  Py_VISIT(self->protocol);
  Py_VISIT(self->data_received);
  Py_VISIT(self->get_buffer);
  Py_VISIT(self->buffer_updated);
  Py_VISIT(self->extra);
  Py_VISIT(self->sockname);
  Py_VISIT(self->peername);
  Py_VISIT(self->tsock);
  Py_VISIT(self->server);
  Py_VISIT(self->read_error);
  Py_VISIT(self->empty_waiter);
  Py_VISIT(self->flow.limits);
  Py_VISIT(self->context);
  Py_VISIT(self->write_context);
  if (self->sf != NULL)
    Py_VISIT(self->sf->fut);
  return 0;
}


static int transport_clear(TransportObject* self) {
  Py_CLEAR(self->protocol);
  Py_CLEAR(self->data_received);
  Py_CLEAR(self->get_buffer);
  Py_CLEAR(self->buffer_updated);
  Py_CLEAR(self->extra);
  Py_CLEAR(self->sockname);
  Py_CLEAR(self->peername);
  Py_CLEAR(self->tsock);
  Py_CLEAR(self->server);
  Py_CLEAR(self->read_error);
  Py_CLEAR(self->rbytes);
  Py_CLEAR(self->empty_waiter);
  Py_CLEAR(self->context);
  Py_CLEAR(self->write_context);
  Py_CLEAR(self->flow.limits);
  transport_sendfile_clear(self);
  Py_CLEAR(self->loop);
  return 0;
}


/* A transport left unclosed to the collector (with its loop, which is
 * closed next) lets go of its engine stream too. */
static void transport_release_unclosed(PyObject* self) {
  transport_close_stream((TransportObject*) self);
  transport_forget_fd((TransportObject*) self);
}


/* For the loop's traversal: the engine's reference, while the stream is
 * open (the loop's close callback drops it). */
int auvpy_transport_visit_engine_ref(PyObject* transport, visitproc visit, void* arg) {
  if (((TransportObject*) transport)->stream != NULL)
    Py_VISIT(transport);
  return 0;
}


/* An unclosed transport warns when collected and closes its socket. */
static void transport_finalize(TransportObject* self) {
  auvpy_finalize_unclosed((PyObject*) self, &self->sock, transport_release_unclosed);
}


static void transport_dealloc(TransportObject* self) {
  PyTypeObject* tp;

  tp = Py_TYPE(self);
  if (PyObject_CallFinalizerFromDealloc((PyObject*) self) < 0)
    return;
  PyObject_GC_UnTrack(self);
  if (self->weakreflist != NULL)
    PyObject_ClearWeakRefs((PyObject*) self);
  if (self->have_rbuf)
    PyBuffer_Release(&self->rbuf);
  transport_clear(self);
  Py_CLEAR(self->sock);
  tp->tp_free(self);
  Py_DECREF(tp);
}


/* Called by the loop at close(): the engine stream must not outlive it. */
void auvpy_transport_close_stream(PyObject* transport) {
  transport_close_stream((TransportObject*) transport);
}


static PyMethodDef transport_methods[] = {
  {"write", (PyCFunction) transport_write, METH_O,
   PyDoc_STR("Write bytes; what the socket does not take at once is buffered.")},
  {"writelines", (PyCFunction) transport_writelines, METH_O,
   PyDoc_STR("Write an iterable of bytes-like objects.")},
  {"write_eof", (PyCFunction) transport_write_eof, METH_NOARGS,
   PyDoc_STR("Close the write end once the buffer is written.")},
  {"can_write_eof", (PyCFunction) transport_can_write_eof, METH_NOARGS,
   PyDoc_STR("Return True: sockets can be half-closed.")},
  {"close", (PyCFunction) transport_close, METH_NOARGS,
   PyDoc_STR("Close after writing what is buffered; connection_lost(None) follows.")},
  {"abort", (PyCFunction) transport_abort, METH_NOARGS,
   PyDoc_STR("Close at once, dropping what is buffered.")},
  {"is_closing", (PyCFunction) transport_is_closing, METH_NOARGS, NULL},
  {"is_reading", (PyCFunction) transport_is_reading, METH_NOARGS, NULL},
  {"pause_reading", (PyCFunction) transport_pause_reading, METH_NOARGS, NULL},
  {"resume_reading", (PyCFunction) transport_resume_reading, METH_NOARGS, NULL},
  {"set_protocol", (PyCFunction) transport_set_protocol, METH_O, NULL},
  {"get_protocol", (PyCFunction) transport_get_protocol, METH_NOARGS, NULL},
  {"get_write_buffer_size", (PyCFunction) transport_get_write_buffer_size, METH_NOARGS, NULL},
  {"get_write_buffer_limits", (PyCFunction) transport_get_write_buffer_limits, METH_NOARGS, NULL},
  {"set_write_buffer_limits", (PyCFunction) (void (*)(void)) transport_set_write_buffer_limits,
   METH_VARARGS | METH_KEYWORDS, NULL},
  {"get_extra_info", (PyCFunction) (void (*)(void)) transport_get_extra_info,
   METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("get_extra_info(name, default=None)\n--\n\n"
             "Return 'socket', 'sockname', 'peername' or other transport details.")},
  {"_start_reading", (PyCFunction) transport_start_reading_method, METH_NOARGS, NULL},
  {"_sendfile", (PyCFunction) transport_sendfile, METH_VARARGS, NULL},
  {"_sendfile_finish", (PyCFunction) transport_sendfile_finish, METH_NOARGS, NULL},
  {"_make_empty_waiter", (PyCFunction) transport_make_empty_waiter, METH_NOARGS, NULL},
  {"_reset_empty_waiter", (PyCFunction) transport_reset_empty_waiter, METH_NOARGS, NULL},
  {"_call_connection_lost", (PyCFunction) transport_call_connection_lost, METH_O, NULL},
  {"_force_close", (PyCFunction) transport_force_close_method, METH_O, NULL},
  {NULL}
};

static PyMemberDef transport_members[] = {
  {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(TransportObject, weakreflist), Py_READONLY, NULL},
  {"_closing", Py_T_BOOL, offsetof(TransportObject, closing), Py_READONLY, NULL},
  {"_sock_fd", Py_T_INT, offsetof(TransportObject, fd), Py_READONLY, NULL},
  {"_protocol_paused", Py_T_BOOL, offsetof(TransportObject, flow.paused), Py_READONLY, NULL},
  {NULL}
};

/* asyncio's pipe transports keep the file object in _pipe; code that
 * clears it (to skip the unclosed-transport warning) finds it here. */
static PyObject* transport_get_pipe(TransportObject* self, void* closure) {
  return Py_NewRef(self->pipe && self->sock != NULL ? self->sock : Py_None);
}


static int transport_set_pipe(TransportObject* self, PyObject* value, void* closure) {
  if (auvpy_loop_check_thread(self->loop) < 0)
    return -1;
  if (!self->pipe || value != Py_None) {
    PyErr_SetString(PyExc_AttributeError, "_pipe can only be set to None on a pipe transport");
    return -1;
  }
  transport_close_stream(self);
  Py_CLEAR(self->sock);
  return 0;
}


static PyGetSetDef transport_getset[] = {
  {"_pipe", (getter) transport_get_pipe, (setter) transport_set_pipe, NULL, NULL},
  /* loop.start_tls() accepts transports that say so. */
  {"_start_tls_compatible", (getter) transport_get_start_tls_compatible, NULL, NULL, NULL},
  /* loop.sendfile: the engine's sendfile first. */
  {"_sendfile_compatible", (getter) transport_get_sendfile_compatible, NULL, NULL, NULL},
  {NULL}
};

static PyType_Slot transport_slots[] = {
  {Py_tp_getset, transport_getset},
  {Py_tp_doc, (void*) PyDoc_STR("A stream transport on a socket (asyncio.Transport).")},
  {Py_tp_dealloc, transport_dealloc},
  {Py_tp_traverse, transport_traverse},
  {Py_tp_clear, transport_clear},
  {Py_tp_finalize, transport_finalize},
  {Py_tp_repr, transport_repr},
  {Py_tp_methods, transport_methods},
  {Py_tp_members, transport_members},
  {0, NULL}
};

PyType_Spec auvpy_transport_spec = {
  .name = "asyncuv._asyncuv.SocketTransport",
  .basicsize = sizeof(TransportObject),
  .flags = AUV_TPFLAGS_ASYNCIO_SUBTYPE,
  .slots = transport_slots,
};

size_t auvpy_transport_pad_end = offsetof(TransportObject, loop);

/* Datagram transports (UDP, Unix datagrams) on the engine's auv_udp_t.
 *
 * asyncio's semantics (selector_events._SelectorDatagramTransport): errors
 * of sending and receiving go to protocol.error_received() and the
 * transport goes on; what the socket cannot take at once is queued (by the
 * engine, copied) with flow control at the water marks; close() lets the
 * queue drain, abort() drops it; connection_lost() exactly once.  The hot
 * path: a datagram is read into the loop's buffer, handed over as bytes
 * with its address converted in C; sendto() parses a numeric address in C
 * (and remembers the last one), sending without a Python-level call. */
#include "asyncuv_module.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define AUV_UDP_PAD 2  /* asyncio.BaseTransport's __slots__ come first */

typedef struct {
  PyObject_HEAD
  PyObject* asyncio_slots[AUV_UDP_PAD];
  LoopObject* loop;
  auv_udp_t* udp;              /* NULL once closed */
  PyObject* sock;              /* NULL after connection_lost */
  PyObject* protocol;
  PyObject* datagram_received; /* bound methods, looked up by set_protocol() */
  PyObject* error_received;
  PyObject* extra;             /* dict: socket, sockname, peername */
  PyObject* address;           /* remote_addr of the endpoint, or NULL */
  PyObject* last_addr;         /* the address last parsed by sendto() */
  PyObject* weakreflist;
  PyObject* context;           /* protocol callbacks run in it (made with us) */
  struct sockaddr_storage last_sa;
  socklen_t last_salen;
  auvpy_flow_t flow;           /* write flow control (transport_common.c) */
  int fd;
  int family;
  int conn_lost;
  char closing;
  char connected;              /* a peer: send() without an address */
} DatagramObject;


/* The module state: the loop's copy, or the type's once the loop is gone
 * (released at connection_lost(), or cleared by the collector). */
static inline auvpy_state* datagram_state(DatagramObject* self) {
  return self->loop != NULL ? self->loop->state : auvpy_object_state(self);
}


static void udp_close_cb(void* data) {
  Py_DECREF((PyObject*) data);  /* the engine's reference */
}


static void datagram_close_udp(DatagramObject* self) {
  if (self->udp != NULL) {
    auv_udp_close(self->udp, udp_close_cb);
    self->udp = NULL;
  }
}


static size_t datagram_buffer_size(DatagramObject* self) {
  return self->udp != NULL ? auv_udp_send_queue_size(self->udp) : 0;
}


static int datagram_call_soon_method(DatagramObject* self, PyObject* name, PyObject* arg) {
  return auvpy_loop_call_soon_method(self->loop, (PyObject*) self, name, arg);
}


static void datagram_report(DatagramObject* self, const char* message, PyObject* exc) {
  auvpy_report_transport_error(self->loop, (PyObject*) self, self->protocol, message, exc);
}


/* The current exception, raised by a protocol callback: SystemExit and
 * KeyboardInterrupt end the run, others go to the exception handler (the
 * transport goes on, as when asyncio's reader callback raises). */
static void datagram_callback_failed(DatagramObject* self, const char* message) {
  auvpy_callback_failed(self->loop, (PyObject*) self, self->protocol, message);
}


/* asyncio's _force_close(): drop the queue, stop, connection_lost(exc) soon.
 * -1 with an exception when that cannot be scheduled (the loop is closed). */
static int datagram_force_close(DatagramObject* self, PyObject* exc) {
  if (self->conn_lost)
    return 0;
  self->closing = 1;
  self->conn_lost++;
  datagram_close_udp(self);
  return datagram_call_soon_method(self, datagram_state(self)->str_call_connection_lost,
                                   exc ? exc : Py_None);
}


/* The same where no caller can take the error. */
static void datagram_force_close_quietly(DatagramObject* self, PyObject* exc) {
  if (datagram_force_close(self, exc) < 0)
    PyErr_WriteUnraisable((PyObject*) self);
}


/* Protocol callbacks may swap the protocol (set_protocol()), dropping the
 * transport's references: each call holds its callable (or the protocol)
 * for its length, or a method of a protocol written in C would run on a
 * freed object. */
static PyObject* call_held(PyObject* cb, PyObject* const* args, size_t nargs) {
  PyObject* r;

  if (cb == NULL) {  /* connection_lost() released the protocol */
    PyErr_SetString(PyExc_RuntimeError, "the transport has no protocol");
    return NULL;
  }
  Py_INCREF(cb);
  r = PyObject_Vectorcall(cb, args, nargs, NULL);
  Py_DECREF(cb);
  return r;
}


/* protocol.error_received(OSError(err)). */
static void datagram_error_received(DatagramObject* self, int err) {
  PyObject* exc;
  PyObject* r;

  if (self->error_received == NULL)
    return;
  auvpy_oserror(err);
  exc = auvpy_take_exception();
  if (exc == NULL)
    return;
  r = call_held(self->error_received, &exc, 1);
  Py_DECREF(exc);
  if (r == NULL)
    datagram_callback_failed(self, "protocol.error_received() call failed");
  Py_XDECREF(r);
}


static void datagram_maybe_pause(DatagramObject* self) {
  if (auvpy_flow_pause_due(&self->flow, datagram_buffer_size(self)))
    auvpy_flow_call(self->loop, (PyObject*) self, self->protocol,
                    datagram_state(self)->str_pause_writing,
                    "protocol.pause_writing() failed");
}


static void datagram_maybe_resume(DatagramObject* self) {
  if (auvpy_flow_resume_due(&self->flow, datagram_buffer_size(self)))
    auvpy_flow_call(self->loop, (PyObject*) self, self->protocol,
                    datagram_state(self)->str_resume_writing,
                    "protocol.resume_writing() failed");
}


/* --- Addresses ---------------------------------------------------------------- */

/* A sender's address as Python's socket module gives it. */
static PyObject* address_from_sockaddr(const struct sockaddr* sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];

  if (sa == NULL || len == 0)
    Py_RETURN_NONE;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in* in = (const struct sockaddr_in*) sa;
    if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)) != NULL)
      return Py_BuildValue("(si)", host, (int) ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6* in6 = (const struct sockaddr_in6*) sa;
    /* getnameinfo() adds "%scope" to a link-local address, as Python. */
    if (getnameinfo(sa, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) == 0)
      return Py_BuildValue("(siII)", host, (int) ntohs(in6->sin6_port),
                           (unsigned int) ntohl(in6->sin6_flowinfo),
                           (unsigned int) in6->sin6_scope_id);
  } else if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un* un = (const struct sockaddr_un*) sa;
    size_t n;
    if (len <= offsetof(struct sockaddr_un, sun_path))
      Py_RETURN_NONE;  /* an unbound sender */
    n = len - offsetof(struct sockaddr_un, sun_path);
    if (un->sun_path[0] == '\0')  /* Linux's abstract namespace */
      return PyBytes_FromStringAndSize(un->sun_path, (Py_ssize_t) n);
    return PyUnicode_DecodeFSDefaultAndSize(un->sun_path,
                                            (Py_ssize_t) strnlen(un->sun_path, n));
  }
  PyErr_Format(PyExc_OSError, "cannot convert an address of family %d",
               (int) sa->sa_family);
  return NULL;
}


/* Parse addr for this socket into self->last_sa: 1 done, 0 not a numeric
 * address this code knows (the caller lets the socket module do it), -1
 * error. */
static int address_parse(DatagramObject* self, PyObject* addr) {
  struct sockaddr_storage* ss = &self->last_sa;
  PyObject* host;
  const char* h;
  long port;

  memset(ss, 0, sizeof(*ss));
  if (self->family == AF_INET || self->family == AF_INET6) {
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) != 2)
      return 0;  /* IPv6's 4-tuples and the rest: the socket module */
    host = PyTuple_GET_ITEM(addr, 0);
    if (!PyUnicode_Check(host) || !PyLong_Check(PyTuple_GET_ITEM(addr, 1)))
      return 0;
    port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return 0;
    }
    if (port < 0 || port > 65535)
      return 0;
    h = PyUnicode_AsUTF8(host);
    if (h == NULL) {
      PyErr_Clear();
      return 0;
    }
    if (self->family == AF_INET) {
      struct sockaddr_in* in = (struct sockaddr_in*) ss;
      if (inet_pton(AF_INET, h, &in->sin_addr) != 1)
        return 0;
      in->sin_family = AF_INET;
      in->sin_port = htons((uint16_t) port);
      self->last_salen = sizeof(*in);
    } else {
      struct sockaddr_in6* in6 = (struct sockaddr_in6*) ss;
      if (inet_pton(AF_INET6, h, &in6->sin6_addr) != 1)
        return 0;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t) port);
      self->last_salen = sizeof(*in6);
    }
    return 1;
  }
  if (self->family == AF_UNIX) {
    struct sockaddr_un* un = (struct sockaddr_un*) ss;
    PyObject* bytes;
    Py_ssize_t n;
    if (PyUnicode_Check(addr)) {
      bytes = PyUnicode_EncodeFSDefault(addr);
      if (bytes == NULL)
        return -1;
    } else if (PyBytes_Check(addr)) {
      bytes = Py_NewRef(addr);
    } else {
      return 0;
    }
    n = PyBytes_GET_SIZE(bytes);
    if ((size_t) n >= sizeof(un->sun_path)) {
      Py_DECREF(bytes);
      return 0;  /* the socket module says what is wrong */
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, PyBytes_AS_STRING(bytes), (size_t) n);
    Py_DECREF(bytes);
    self->last_salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n +
                                    (n > 0 && un->sun_path[0] != '\0' ? 1 : 0));
    return 1;
  }
  return 0;
}


/* --- Receiving ------------------------------------------------------------------ */

static void datagram_alloc_cb(auv_udp_t* udp, size_t suggested, char** base, size_t* len) {
  DatagramObject* self;

  self = auv_udp_get_data(udp);
  *base = auvpy_loop_read_buf(self->loop);
  *len = *base != NULL ? AUV_READ_BUF_SIZE : 0;
}


static void datagram_recv_cb(auv_udp_t* udp, ssize_t nread, char* base,
                             const struct sockaddr* addr, socklen_t addrlen) {
  DatagramObject* self;
  PyObject* data;
  PyObject* pyaddr;
  PyObject* r;
  PyObject* ctx;

  self = auv_udp_get_data(udp);
  if (self->conn_lost || nread == -EAGAIN)
    return;
  Py_INCREF(self);  /* a protocol callback may close and drop us */
  ctx = auvpy_context_enter(self->context);
  if (nread >= 0) {
    data = auvpy_bytes_copy(base, nread);
    pyaddr = data != NULL ? address_from_sockaddr(addr, addrlen) : NULL;
    r = NULL;
    if (pyaddr != NULL) {
      PyObject* args[2] = { data, pyaddr };
      r = call_held(self->datagram_received, args, 2);
    }
    Py_XDECREF(data);
    Py_XDECREF(pyaddr);
    if (r == NULL)
      datagram_callback_failed(self, "protocol.datagram_received() call failed");
    Py_XDECREF(r);
  } else if (nread == -ENOBUFS) {
    PyErr_NoMemory();
    datagram_callback_failed(self, "Fatal read error on datagram transport");
  } else {
    datagram_error_received(self, (int) nread);
  }
  auvpy_context_exit(ctx);
  Py_DECREF(self);
}


static void datagram_send_cb(auv_udp_t* udp, int status) {
  DatagramObject* self;
  PyObject* ctx;

  self = auv_udp_get_data(udp);
  Py_INCREF(self);
  ctx = auvpy_context_enter(self->context);
  if (status < 0) {
    datagram_error_received(self, status);
  } else {
    datagram_maybe_resume(self);
    /* close() waited for the queue to empty. */
    if (self->closing && !self->conn_lost && datagram_buffer_size(self) == 0)
      datagram_force_close_quietly(self, NULL);
  }
  auvpy_context_exit(ctx);
  Py_DECREF(self);
}


static PyObject* datagram_start_reading(DatagramObject* self, PyObject* unused) {
  int err;

  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (!self->closing && self->udp != NULL) {
    err = auv_udp_recv_start(self->udp, datagram_alloc_cb, datagram_recv_cb);
    if (err != 0) {
      return auvpy_oserror(err);
    }
  }
  Py_RETURN_NONE;
}


/* --- Sending ---------------------------------------------------------------------- */

static PyObject* datagram_sendto(DatagramObject* self, PyObject* const* args,
                                 Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const kwlist[] = { "data", "addr", NULL };
  PyObject* data;
  PyObject* addr;
  PyObject* copy;
  Py_buffer view;
  auv_buf_t buf;
  const struct sockaddr* sa;
  socklen_t salen;
  int r;

  data = nargs > 0 ? args[0] : NULL;
  addr = nargs > 1 ? args[1] : Py_None;
  if (nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "sendto() takes data and an optional addr");
    return NULL;
  }
  if (kwnames != NULL) {
    Py_ssize_t i;
    for (i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, i);
      if (PyUnicode_CompareWithASCIIString(key, kwlist[0]) == 0)
        data = args[nargs + i];
      else if (PyUnicode_CompareWithASCIIString(key, kwlist[1]) == 0)
        addr = args[nargs + i];
      else {
        PyErr_Format(PyExc_TypeError, "sendto() got an unexpected keyword argument '%S'", key);
        return NULL;
      }
    }
  }
  if (data == NULL) {
    PyErr_SetString(PyExc_TypeError, "sendto() missing required argument 'data'");
    return NULL;
  }
  if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
    PyErr_Format(PyExc_TypeError,
                 "data argument must be a bytes-like object, not '%.100s'",
                 auvpy_type_name(data));
    return NULL;
  }
  if (auvpy_get_data_buffer(data, &view, &copy) < 0)
    return NULL;
  if (copy != NULL)
    data = copy;  /* the socket module's fallback sends it too */
  if (auvpy_loop_check_thread(self->loop) < 0) {
    PyBuffer_Release(&view);
    Py_XDECREF(copy);
    return NULL;
  }
#if PY_VERSION_HEX < 0x030D0000
  if (view.len == 0)
    goto done;  /* asyncio sends zero-length datagrams from 3.13 on */
#endif

  if (self->address != NULL) {
    if (addr != Py_None && addr != self->address) {
      int eq = PyObject_RichCompareBool(addr, self->address, Py_EQ);
      if (eq < 0)
        goto error;
      if (!eq) {
        PyErr_Format(PyExc_ValueError, "Invalid address: must be None or %R",
                     self->address);
        goto error;
      }
    }
    addr = self->address;
  }
  if (self->conn_lost || self->udp == NULL) {
    if (self->address != NULL || self->conn_lost) {
      auvpy_write_after_lost(self->loop, &self->conn_lost);
      goto done;
    }
  }
  if (self->udp == NULL)
    goto done;

  sa = NULL;
  salen = 0;
  if (!self->connected) {
    if (addr == Py_None) {
      /* No address on an unconnected socket: the socket module's error. */
      PyObject* res = PyObject_CallMethodObjArgs(self->sock, datagram_state(self)->str_sendto,
                                                 data, addr, NULL);
      if (res == NULL)
        goto send_failed;
      Py_DECREF(res);
      goto done;
    }
    if (addr != self->last_addr) {
      int known = 0;
      if (self->last_addr != NULL) {
        known = PyObject_RichCompareBool(addr, self->last_addr, Py_EQ);
        if (known < 0)
          PyErr_Clear();
      }
      if (known <= 0) {
        r = address_parse(self, addr);
        if (r < 0)
          goto error;
        Py_CLEAR(self->last_addr);
        if (r == 0) {
          /* A name or a form to resolve: the socket module sends it. */
          PyObject* res;
          if (datagram_buffer_size(self) > 0) {
            PyErr_SetString(PyExc_RuntimeError, "cannot queue a datagram to an "
                            "address that is not numeric");
            goto error;
          }
          res = PyObject_CallMethodObjArgs(self->sock, datagram_state(self)->str_sendto,
                                           data, addr, NULL);
          if (res == NULL)
            goto send_failed;
          Py_DECREF(res);
          goto done;
        }
      }
      Py_XSETREF(self->last_addr, Py_NewRef(addr));
    }
    sa = (const struct sockaddr*) &self->last_sa;
    salen = self->last_salen;
  }

  buf.base = view.buf;
  buf.len = (size_t) view.len;
  r = auv_udp_send(self->udp, &buf, 1, sa, salen);
  if (r < 0) {
    auvpy_oserror(r);
    goto send_failed;
  }
  if (r == 0)
    datagram_maybe_pause(self);
  goto done;

send_failed:
  /* OSError: protocol.error_received(), as asyncio; anything else raises. */
  if (PyErr_ExceptionMatches(PyExc_OSError)) {
    PyObject* exc = auvpy_take_exception();
    if (exc != NULL && self->error_received != NULL) {
      PyObject* res = call_held(self->error_received, &exc, 1);
      if (res == NULL) {
        Py_DECREF(exc);
        goto error;
      }
      Py_DECREF(res);
    }
    Py_XDECREF(exc);
    goto done;
  }
  /* Anything else is fatal, as asyncio's _fatal_error(): the exception
   * handler hears of it and the transport closes with it. */
  if (!auvpy_is_exit_exception()) {
    PyObject* exc = auvpy_take_exception();
    datagram_report(self, "Fatal write error on datagram transport", exc);
    datagram_force_close_quietly(self, exc);
    Py_XDECREF(exc);
    goto done;
  }
error:
  PyBuffer_Release(&view);
  Py_XDECREF(copy);
  return NULL;
done:
  PyBuffer_Release(&view);
  Py_XDECREF(copy);
  Py_RETURN_NONE;
}


/* --- Closing ------------------------------------------------------------------------- */

static PyObject* datagram_close(DatagramObject* self, PyObject* unused) {
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->closing)
    Py_RETURN_NONE;
  self->closing = 1;
  if (self->udp != NULL)
    auv_udp_recv_stop(self->udp);
  if (datagram_buffer_size(self) == 0 && datagram_force_close(self, NULL) < 0)
    return NULL;
  Py_RETURN_NONE;
}


static PyObject* datagram_abort(DatagramObject* self, PyObject* unused) {
  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (datagram_force_close(self, NULL) < 0)
    return NULL;
  Py_RETURN_NONE;
}


static PyObject* datagram_call_connection_lost(DatagramObject* self, PyObject* exc) {
  PyObject* r;
  PyObject* error;

  if (auvpy_loop_check_thread(self->loop) < 0)
    return NULL;
  if (self->loop == NULL)  /* done before: everything is released */
    Py_RETURN_NONE;
  r = auvpy_connection_lost_call(datagram_state(self), self->protocol, exc, &error);
  datagram_close_udp(self);
  auvpy_connection_lost_release(datagram_state(self), self->loop, (PyObject*) self,
                                self->fd, &self->sock);
  Py_CLEAR(self->protocol);
  Py_CLEAR(self->datagram_received);
  Py_CLEAR(self->error_received);
  /* Called directly (a private method): later calls find it closed. */
  self->closing = 1;
  if (self->conn_lost == 0)
    self->conn_lost = 1;
  Py_CLEAR(self->loop);
  return auvpy_connection_lost_return(r, error);
}


/* --- Protocol, flow control, introspection ------------------------------------------- */

static int datagram_set_protocol_impl(DatagramObject* self, PyObject* protocol) {
  PyObject* dr;
  PyObject* er;

  dr = PyObject_GetAttr(protocol, datagram_state(self)->str_datagram_received);
  if (dr == NULL)
    return -1;
  er = PyObject_GetAttr(protocol, datagram_state(self)->str_error_received);
  if (er == NULL) {
    Py_DECREF(dr);
    return -1;
  }
  Py_XSETREF(self->datagram_received, dr);
  Py_XSETREF(self->error_received, er);
  Py_XSETREF(self->protocol, Py_NewRef(protocol));
  return 0;
}


static PyObject* datagram_set_protocol(DatagramObject* self, PyObject* protocol) {
  if (self->loop == NULL) {
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
  }
  if (datagram_set_protocol_impl(self, protocol) < 0)
    return NULL;
  Py_RETURN_NONE;
}


static PyObject* datagram_get_protocol(DatagramObject* self, PyObject* unused) {
  return Py_NewRef(self->protocol ? self->protocol : Py_None);
}


static PyObject* datagram_is_closing(DatagramObject* self, PyObject* unused) {
  return PyBool_FromLong(self->closing);
}


static PyObject* datagram_get_write_buffer_size(DatagramObject* self, PyObject* unused) {
  return PyLong_FromSize_t(datagram_buffer_size(self));
}


static PyObject* datagram_get_write_buffer_limits(DatagramObject* self, PyObject* unused) {
  return auvpy_flow_get_limits(&self->flow);
}


static PyObject* datagram_set_write_buffer_limits(DatagramObject* self, PyObject* args,
                                                  PyObject* kwargs) {
  static char* kwlist[] = { "high", "low", NULL };
  PyObject* high = Py_None;
  PyObject* low = Py_None;

  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:set_write_buffer_limits",
                                   kwlist, &high, &low))
    return NULL;
  if (auvpy_flow_set_limits(&self->flow, high, low) < 0)
    return NULL;
  datagram_maybe_pause(self);
  Py_RETURN_NONE;
}


static PyObject* datagram_get_extra_info(DatagramObject* self, PyObject* const* args,
                                         Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* name;
  PyObject* dflt;
  PyObject* value;

  if (auvpy_parse_extra_info_args(args, nargs, kwnames, &name, &dflt) < 0)
    return NULL;
  value = self->extra == NULL ? NULL : PyDict_GetItemWithError(self->extra, name);
  if (value == NULL) {
    if (PyErr_Occurred())
      return NULL;
    return Py_NewRef(dflt);
  }
  return Py_NewRef(value);
}


static PyObject* datagram_repr(DatagramObject* self) {
  PyObject* name;
  PyObject* res;

  name = PyType_GetName(Py_TYPE(self));
  if (name == NULL)
    return NULL;
  if (self->sock == NULL)
    res = PyUnicode_FromFormat("<%U closed>", name);
  else
    res = PyUnicode_FromFormat("<%U fd=%d%s bufsize=%zu>", name, self->fd,
                               self->closing ? " closing" : "",
                               datagram_buffer_size(self));
  Py_DECREF(name);
  return res;
}


/* --- Creation --------------------------------------------------------------------------- */

/* loop._make_datagram_transport(sock, protocol, address=None, waiter=None,
 * extra=None), as asyncio's selector loop names it. */
PyObject* auvpy_loop_make_datagram_transport(LoopObject* loop, PyObject* args,
                                            PyObject* kwargs) {
  static char* kwlist[] = { "sock", "protocol", "address", "waiter", "extra", NULL };
  DatagramObject* self;
  PyObject* sock;
  PyObject* protocol;
  PyObject* address = Py_None;
  PyObject* waiter = Py_None;
  PyObject* extra = Py_None;
  PyObject* value;
  struct sockaddr_storage ss;
  socklen_t sslen;
  int fd;
  int err;

  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOO:_make_datagram_transport",
                                   kwlist, &sock, &protocol, &address, &waiter, &extra))
    return NULL;
  if (auvpy_loop_check_closed(loop) < 0 || auvpy_loop_check_thread(loop) < 0)
    return NULL;
  fd = auvpy_fileobj_to_fd(loop->state, sock);
  if (fd < 0)
    return NULL;

  self = PyObject_GC_New(DatagramObject, loop->state->DatagramType);
  if (self == NULL)
    return NULL;
  memset(self->asyncio_slots, 0, sizeof(self->asyncio_slots));
  self->loop = (LoopObject*) Py_NewRef(loop);
  self->udp = NULL;
  self->sock = Py_NewRef(sock);
  self->protocol = self->datagram_received = self->error_received = NULL;
  self->extra = NULL;
  self->address = address != Py_None ? Py_NewRef(address) : NULL;
  self->last_addr = NULL;
  self->weakreflist = NULL;
  self->last_salen = 0;
  self->context = NULL;
  auvpy_flow_init(&self->flow);
  self->fd = fd;
  self->conn_lost = 0;
  self->closing = self->connected = 0;
  sslen = sizeof(ss);
  self->family = getsockname(fd, (struct sockaddr*) &ss, &sslen) == 0 ? ss.ss_family : AF_UNSPEC;
  PyObject_GC_Track(self);
  self->context = PyContext_CopyCurrent();  /* as in the stream transports */
  if (self->context == NULL)
    goto error;

  self->extra = extra != Py_None ? PyDict_Copy(extra) : PyDict_New();
  if (self->extra == NULL || datagram_set_protocol_impl(self, protocol) < 0)
    goto error;
  value = PyObject_CallOneArg(loop->state->TransportSocket, sock);
  if (value == NULL || PyDict_SetItemString(self->extra, "socket", value) < 0) {
    Py_XDECREF(value);
    goto error;
  }
  Py_DECREF(value);
  value = PyObject_CallMethodNoArgs(sock, loop->state->str_getsockname);
  if (value == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_OSError))
      goto error;
    PyErr_Clear();
    value = Py_NewRef(Py_None);
  }
  err = PyDict_SetItemString(self->extra, "sockname", value);
  Py_DECREF(value);
  if (err < 0)
    goto error;
  if (PyDict_GetItemStringRef(self->extra, "peername", &value) < 0)
    goto error;
  if (value == NULL) {
    value = PyObject_CallMethodNoArgs(sock, loop->state->str_getpeername);
    if (value == NULL) {
      if (!PyErr_ExceptionMatches(PyExc_OSError))
        goto error;
      PyErr_Clear();
      value = Py_NewRef(Py_None);
    }
    if (PyDict_SetItemString(self->extra, "peername", value) < 0) {
      Py_DECREF(value);
      goto error;
    }
  }
  self->connected = (char) (PyObject_IsTrue(value) > 0);
  Py_DECREF(value);

  err = auv_udp_new(loop->loop, fd, &self->udp);
  if (err != 0) {
    self->udp = NULL;
    auvpy_oserror(err);
    goto error;
  }
  auv_udp_set_data(self->udp, self);
  auv_udp_set_send_cb(self->udp, datagram_send_cb);
  Py_INCREF(self);  /* the engine's, until the handle's close callback */
  /* Seen by add_reader() and the like, and closed with the loop. */
  if (auvpy_loop_own_fd(loop, fd, (PyObject*) self) < 0)
    goto error;

  /* connection_made(), then reading, then the waiter: asyncio's order. */
  if (auvpy_loop_call_soon_method(loop, protocol, loop->state->str_connection_made,
                                 (PyObject*) self) < 0 ||
      datagram_call_soon_method(self, loop->state->str_start_reading, NULL) < 0 ||
      (waiter != Py_None && auvpy_loop_wake_waiter_soon(loop, waiter) < 0))
    goto error;
  return (PyObject*) self;

error:
  datagram_close_udp(self);
  auvpy_loop_disown_fd(loop, fd, (PyObject*) self);
  Py_DECREF(self);
  return NULL;
}


/* For the loop's traversal: the engine's reference, while the handle is
 * open (its close callback drops it). */
int auvpy_datagram_visit_engine_ref(PyObject* datagram, visitproc visit, void* arg) {
  if (((DatagramObject*) datagram)->udp != NULL)
    Py_VISIT(datagram);
  return 0;
}


/* At loop close: the engine handle must not outlive the engine. */
void auvpy_datagram_close_engine(PyObject* datagram) {
  datagram_close_udp((DatagramObject*) datagram);
}


/* --- Type ------------------------------------------------------------------------------- */

static int datagram_traverse(DatagramObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->loop);
  Py_VISIT(self->sock);
  Py_VISIT(self->protocol);
  Py_VISIT(self->datagram_received);
  Py_VISIT(self->error_received);
  Py_VISIT(self->extra);
  Py_VISIT(self->address);
  Py_VISIT(self->last_addr);
  Py_VISIT(self->context);
  Py_VISIT(self->flow.limits);
  return 0;
}


static int datagram_clear(DatagramObject* self) {
  Py_CLEAR(self->protocol);
  Py_CLEAR(self->datagram_received);
  Py_CLEAR(self->error_received);
  Py_CLEAR(self->extra);
  Py_CLEAR(self->address);
  Py_CLEAR(self->last_addr);
  Py_CLEAR(self->context);
  Py_CLEAR(self->flow.limits);
  Py_CLEAR(self->loop);
  return 0;
}


/* An unclosed transport warns, as asyncio's, and closes its socket. */
static void datagram_finalize(DatagramObject* self) {
  auvpy_finalize_unclosed((PyObject*) self, &self->sock, auvpy_datagram_close_engine);
}


static void datagram_dealloc(DatagramObject* self) {
  PyTypeObject* tp;

  tp = Py_TYPE(self);
  if (PyObject_CallFinalizerFromDealloc((PyObject*) self) < 0)
    return;
  PyObject_GC_UnTrack(self);
  if (self->weakreflist != NULL)
    PyObject_ClearWeakRefs((PyObject*) self);
  datagram_clear(self);
  Py_CLEAR(self->sock);
  tp->tp_free(self);
  Py_DECREF(tp);
}


static PyMethodDef datagram_methods[] = {
  {"sendto", (PyCFunction) (void (*)(void)) datagram_sendto, METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("sendto(data, addr=None)\n--\n\nSend one datagram (to addr, or the peer).")},
  {"close", (PyCFunction) datagram_close, METH_NOARGS,
   PyDoc_STR("Close once the queued datagrams are sent.")},
  {"abort", (PyCFunction) datagram_abort, METH_NOARGS,
   PyDoc_STR("Close at once, dropping the queued datagrams.")},
  {"is_closing", (PyCFunction) datagram_is_closing, METH_NOARGS, NULL},
  {"get_protocol", (PyCFunction) datagram_get_protocol, METH_NOARGS, NULL},
  {"set_protocol", (PyCFunction) datagram_set_protocol, METH_O, NULL},
  {"get_write_buffer_size", (PyCFunction) datagram_get_write_buffer_size, METH_NOARGS, NULL},
  {"get_write_buffer_limits", (PyCFunction) datagram_get_write_buffer_limits, METH_NOARGS, NULL},
  {"set_write_buffer_limits", (PyCFunction) (void (*)(void)) datagram_set_write_buffer_limits,
   METH_VARARGS | METH_KEYWORDS, NULL},
  {"get_extra_info", (PyCFunction) (void (*)(void)) datagram_get_extra_info,
   METH_FASTCALL | METH_KEYWORDS, NULL},
  {"_start_reading", (PyCFunction) datagram_start_reading, METH_NOARGS, NULL},
  {"_call_connection_lost", (PyCFunction) datagram_call_connection_lost, METH_O, NULL},
  {NULL}
};

static PyMemberDef datagram_members[] = {
  {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(DatagramObject, weakreflist), Py_READONLY, NULL},
  {"_closing", Py_T_BOOL, offsetof(DatagramObject, closing), Py_READONLY, NULL},
  {"_sock_fd", Py_T_INT, offsetof(DatagramObject, fd), Py_READONLY, NULL},
  {"_protocol_paused", Py_T_BOOL, offsetof(DatagramObject, flow.paused), Py_READONLY, NULL},
  {NULL}
};

static PyType_Slot datagram_slots[] = {
  {Py_tp_doc, (void*) PyDoc_STR("A datagram transport of asyncuv (an asyncio.DatagramTransport).")},
  {Py_tp_dealloc, datagram_dealloc},
  {Py_tp_traverse, datagram_traverse},
  {Py_tp_clear, datagram_clear},
  {Py_tp_finalize, datagram_finalize},
  {Py_tp_methods, datagram_methods},
  {Py_tp_members, datagram_members},
  {Py_tp_repr, datagram_repr},
  {0, NULL}
};

PyType_Spec auvpy_datagram_spec = {
  .name = "asyncuv._asyncuv.DatagramTransport",
  .basicsize = sizeof(DatagramObject),
  .flags = AUV_TPFLAGS_ASYNCIO_SUBTYPE,
  .slots = datagram_slots,
};

size_t auvpy_datagram_pad_end = offsetof(DatagramObject, loop);

/* TLS on the loop's stream transports: asyncio's SSL protocol, in C.
 *
 * asyncio runs TLS as a protocol between a socket transport and the
 * application's protocol (asyncio/sslproto.py: SSLProtocol, itself
 * uvloop's), which hands the application a transport of its own
 * (_SSLProtocolTransport).  This file is that pair, with asyncio's state
 * machine, callbacks, flow control, errors and messages, for every
 * version asyncuv supports (the differences are named where they are):
 *
 *   SSLProtocol   the protocol of the raw transport.  It drives the
 *                 caller's ssl.SSLContext through the ssl module's public
 *                 objects: SSLContext.wrap_bio() with two ssl.MemoryBIO,
 *                 and the SSLObject it returns.
 *   SSLTransport  the application's transport (an asyncio.Transport).
 *
 * What differs from asyncio is only how the work is done:
 *
 *  - Every call into the ssl module is a vectorcall of an interned method
 *    name, with no Python-level code per record: when wrap_bio() gives a
 *    plain ssl.SSLObject, whose methods only forward to the C object it
 *    wraps (its _sslobj, an _ssl._SSLSocket), that C object is called
 *    directly; a subclass (SSLContext.sslobject_class) is called as is.
 *  - The raw transport, when it is asyncuv's own (transport.c), hands the
 *    ciphertext it read into the loop's read buffer straight to
 *    auvpy_sslproto_feed(), which writes it into the incoming BIO: no
 *    get_buffer()/buffer_updated() calls, no 256 KiB buffer per
 *    connection.  Other raw transports (TLS inside TLS) use the
 *    BufferedProtocol methods, as with asyncio.
 *  - Plaintext is read with SSLObject.read(n, buffer) into one buffer for
 *    data_received() (the loop's read buffer, then one exact-size bytes
 *    object; big reads straight into the bytes object), or into the
 *    BufferedProtocol's own buffer; reading stops when the incoming BIO is
 *    empty instead of when ssl raises SSLWantReadError (whose creation
 *    costs more than a small record).
 *  - Writes made by the application while one of its callbacks runs
 *    (data_received(), buffer_updated(), connection_made()) are gathered
 *    while they are small, then encrypted with one SSLObject.write() and
 *    sent with one socket write when the callback returns: a response
 *    written in pieces becomes one TLS record and one send().  Anything
 *    else -- a write made elsewhere, a big write, close(), abort() --
 *    flushes first, so the order and the flow control are asyncio's.
 */
#include <math.h>
#include <string.h>

#include "asyncuv_module.h"

/* asyncio.sslproto.SSLProtocol.max_size: a read's size. */
#define TLS_MAX_SIZE (256 * 1024)
/* asyncio.constants.FLOW_CONTROL_HIGH_WATER_SSL_READ / _WRITE, in KiB */
#define TLS_HIGH_WATER_READ 256
#define TLS_HIGH_WATER_WRITE 512
/* Writes gathered during a callback, at most: bigger ones go at once. */
#define TLS_GATHER_MAX (64 * 1024)
/* A TLS record's plaintext, at most, with room to spare. */
#define TLS_RECORD_MAX (17 * 1024)

/* asyncio's SSLProtocolState and AppProtocolState. */
enum { S_UNWRAPPED, S_DO_HANDSHAKE, S_WRAPPED, S_FLUSHING, S_SHUTDOWN };
enum { A_INIT, A_CON_MADE, A_EOF, A_CON_LOST };

static const char* const state_names[] = {
  "SSLProtocolState.UNWRAPPED", "SSLProtocolState.DO_HANDSHAKE",
  "SSLProtocolState.WRAPPED", "SSLProtocolState.FLUSHING",
  "SSLProtocolState.SHUTDOWN",
};

/* What the module keeps for TLS (module state's tls): NULL without ssl. */
struct auvpy_tls_state {
  PyTypeObject* ViewType;
  PyObject* SSLObject;           /* ssl.SSLObject */
  PyObject* SSLSocketType;       /* _ssl._SSLSocket, what it wraps */
  PyObject* MemoryBIO;
  PyObject* SSLError;
  PyObject* SSLWantReadError;
  PyObject* SSLSyscallError;
  PyObject* CertificateError;
  PyObject* CancelledError;      /* asyncio.exceptions.CancelledError */
  PyObject* sendfile_fallback;   /* asyncio.constants._SendfileMode.FALLBACK */
  PyObject* kw_wrap_bio;         /* ("server_side", "server_hostname") */
  /* The C methods called per record, looked up once: _ssl._SSLSocket's
   * read and write, MemoryBIO's read, write and pending (each NULL if it
   * is not the kind of descriptor expected: then looked up per call). */
  PyObject* d_ssl_read;
  PyObject* d_ssl_write;
  PyObject* d_bio_read;
  PyObject* d_bio_write;
  PyObject* d_bio_pending;
  PyObject* str_read;
  PyObject* str_write;
  PyObject* str_do_handshake;
  PyObject* str_getpeercert;
  PyObject* str_cipher;
  PyObject* str_compression;
  PyObject* str_pending;
  PyObject* str_shutdown;
  PyObject* str_unwrap;
  PyObject* str_sslobj;
  PyObject* str_wrap_bio;
  PyObject* str_call_later;
  PyObject* str_time;
  PyObject* str_abort;
  PyObject* str_force_close;
  PyObject* str_pause_reading;
  PyObject* str_resume_reading;
  PyObject* str_get_extra_info;
  PyObject* str_check_handshake_timeout;
  PyObject* str_check_shutdown_timeout;
  PyObject* str_resume_cb;
  PyObject* str_do_read_cb;
  PyObject* str_sslcontext;
  PyObject* str_peercert;
  PyObject* str_cipher_key;
  PyObject* str_compression_key;
  PyObject* str_ssl_object;
};


/* --- A reusable buffer over C memory ------------------------------------------
 *
 * ssl's methods take any object with the buffer protocol: a view whose
 * pointer is set before each call saves a memoryview (or a bytes object)
 * per call.  It is only ever given to C methods of the ssl module
 * (MemoryBIO.write(), _SSLSocket.read()), which release the buffer before
 * they return, and it shows nothing once the call is over (view_done()):
 * no Python code sees it, and nothing can read the memory through it
 * after the call. */

typedef struct {
  PyObject_HEAD
  char* buf;
  Py_ssize_t len;
  int readonly;
  int exports;
} ViewObject;


static int view_getbuffer(ViewObject* self, Py_buffer* view, int flags) {
  if (self->buf == NULL) {
    PyErr_SetString(PyExc_BufferError, "no buffer");
    view->obj = NULL;
    return -1;
  }
  if (PyBuffer_FillInfo(view, (PyObject*) self, self->buf, self->len, self->readonly,
                        flags) < 0)
    return -1;
  self->exports++;
  return 0;
}


static void view_releasebuffer(ViewObject* self, Py_buffer* view) {
  self->exports--;
}


static void view_dealloc(ViewObject* self) {
  PyTypeObject* tp = Py_TYPE(self);

  tp->tp_free(self);
  Py_DECREF(tp);
}


static PyType_Slot view_slots[] = {
  {Py_bf_getbuffer, view_getbuffer},
  {Py_bf_releasebuffer, view_releasebuffer},
  {Py_tp_dealloc, view_dealloc},
  {0, NULL}
};

static PyType_Spec view_spec = {
  .name = "asyncuv._asyncuv._BufferView",
  .basicsize = sizeof(ViewObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
           Py_TPFLAGS_DISALLOW_INSTANTIATION,
  .slots = view_slots,
};


/* --- Objects ------------------------------------------------------------------ */

/* asyncio.Transport's __slots__ (BaseTransport's "_extra") come first. */
#define TLS_TRANSPORT_PAD 2

typedef struct SSLProtocolObject SSLProtocolObject;

typedef struct {
  PyObject_HEAD
  PyObject* asyncio_slots[TLS_TRANSPORT_PAD];
  SSLProtocolObject* proto;    /* NULL after a second close(), as asyncio */
  LoopObject* loop;
  PyObject* weakreflist;
  char closed;
} SSLTransportObject;

struct SSLProtocolObject {
  PyObject_HEAD
  LoopObject* loop;
  PyObject* app_protocol;        /* NULL after connection_lost() */
  PyObject* app_data_received;   /* its methods, looked up when it is set */
  PyObject* app_get_buffer;
  PyObject* app_buffer_updated;
  PyObject* sslcontext;
  PyObject* sslobject;           /* what wrap_bio() gave ('ssl_object') */
  PyObject* sslobj;              /* what is called: its _sslobj, or itself */
  PyObject* incoming;
  PyObject* outgoing;
  PyObject* waiter;
  SSLTransportObject* app_transport;
  PyObject* transport;           /* the raw transport, once connected */
  PyObject* peercert;            /* extra info, once the handshake is done */
  PyObject* cipher;
  PyObject* compression;
  PyObject* backlog;             /* plaintext not yet written: a list */
  PyObject* handshake_timeout;   /* seconds, as given */
  PyObject* shutdown_timeout;
  PyObject* handshake_timeout_handle;
  PyObject* shutdown_timeout_handle;
  PyObject* out_limits;          /* (low, high), as asyncio computed them */
  PyObject* in_limits;
  PyObject* rbuffer;             /* get_buffer()'s bytearray, made on demand */
  PyObject* rview;               /* a memoryview of it */
  ViewObject* view;
  PyObject* weakreflist;
  double handshake_start;
  size_t write_buffer_size;      /* bytes in the backlog */
  size_t out_high;               /* size >= out_high pauses the app */
  size_t out_low;
  size_t in_high;
  size_t in_low;
  int conn_lost;
  int gathering;                 /* app callbacks running: writes wait */
  unsigned char state;
  unsigned char app_state;
  char server_side;
  char direct;                   /* sslobj is the _ssl object itself */
  char app_is_buffer;
  char app_transport_created;
  char eof_received;
  char ssl_writing_paused;
  char app_reading_paused;
  char ssl_reading_paused;
  char app_writing_paused;
  char read_partial;             /* the last read stopped inside a record */
};


/* The module state: the loop's copy while there is a loop (cheaper than
 * asking the type, on every record); the type's once it is gone. */
static inline auvpy_state* proto_state(SSLProtocolObject* self) {
  return self->loop != NULL ? self->loop->state : auvpy_object_state(self);
}


static inline struct auvpy_tls_state* tls_state(SSLProtocolObject* self) {
  return proto_state(self)->tls;
}


/* --- Small helpers -------------------------------------------------------------- */

/* The protocol's objects are there (the collector may have cleared them
 * while something of its cycle still calls it). */
static int check_alive(SSLProtocolObject* self) {
  if (self->loop == NULL || self->incoming == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "the SSL protocol was cleared");
    return -1;
  }
  return 0;
}


static PyObject* call0(PyObject* obj, PyObject* name) {
  return PyObject_VectorcallMethod(name, &obj, 1, NULL);
}


static PyObject* call1(PyObject* obj, PyObject* name, PyObject* arg) {
  PyObject* args[2] = { obj, arg };
  return PyObject_VectorcallMethod(name, args, 2, NULL);
}


static PyObject* call2(PyObject* obj, PyObject* name, PyObject* a, PyObject* b) {
  PyObject* args[3] = { obj, a, b };
  return PyObject_VectorcallMethod(name, args, 3, NULL);
}


/* Call and drop the result: 0 or -1. */
static int call0_void(PyObject* obj, PyObject* name) {
  PyObject* r = call0(obj, name);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}


static int call1_void(PyObject* obj, PyObject* name, PyObject* arg) {
  PyObject* r = call1(obj, name, arg);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}


/* A BIO's 'pending', or -1 with an exception. */
static Py_ssize_t bio_pending(SSLProtocolObject* self, PyObject* bio) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* n;
  Py_ssize_t v;

  if (t->d_bio_pending != NULL)  /* the getter itself: the BIOs are ours */
    n = Py_TYPE(t->d_bio_pending)->tp_descr_get(t->d_bio_pending, bio,
                                                (PyObject*) Py_TYPE(bio));
  else
    n = PyObject_GetAttr(bio, t->str_pending);
  if (n == NULL)
    return -1;
  v = PyLong_AsSsize_t(n);
  Py_DECREF(n);
  return v;
}


/* bio.read() / bio.write(data) of one of the protocol's MemoryBIOs. */
static PyObject* bio_read(SSLProtocolObject* self, PyObject* bio) {
  struct auvpy_tls_state* t = tls_state(self);

  if (t->d_bio_read != NULL)
    return PyObject_Vectorcall(t->d_bio_read, &bio, 1, NULL);
  return call0(bio, t->str_read);
}


static int bio_write(SSLProtocolObject* self, PyObject* bio, PyObject* data) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* args[2] = { bio, data };
  PyObject* r;

  if (t->d_bio_write != NULL)
    r = PyObject_Vectorcall(t->d_bio_write, args, 2, NULL);
  else
    r = PyObject_VectorcallMethod(t->str_write, args, 2, NULL);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}


/* sslobj.read(n, buffer) and sslobj.write(data): the _ssl methods
 * themselves when sslobj is the _ssl object. */
static PyObject* sslobj_read(SSLProtocolObject* self, PyObject* n, PyObject* buffer) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* args[3] = { self->sslobj, n, buffer };

  if (self->direct && t->d_ssl_read != NULL)
    return PyObject_Vectorcall(t->d_ssl_read, args, 3, NULL);
  return PyObject_VectorcallMethod(t->str_read, args, 3, NULL);
}


static PyObject* sslobj_write(SSLProtocolObject* self, PyObject* data) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* args[2] = { self->sslobj, data };

  if (self->direct && t->d_ssl_write != NULL)
    return PyObject_Vectorcall(t->d_ssl_write, args, 2, NULL);
  return PyObject_VectorcallMethod(t->str_write, args, 2, NULL);
}


/* The view over buf, for one call of a C method of ssl (a new reference:
 * give it back with view_done()). */
static PyObject* view_of(SSLProtocolObject* self, char* buf, Py_ssize_t len, int readonly) {
  ViewObject* v;

  v = self->view;
  if (v == NULL) {
    v = PyObject_New(ViewObject, tls_state(self)->ViewType);
    if (v == NULL)
      return NULL;
    v->exports = 0;
    self->view = v;
  }
  v->buf = buf;
  v->len = len;
  v->readonly = readonly;
  return Py_NewRef((PyObject*) v);
}


/* After the call: the view shows nothing any more.  One that is still
 * referenced or exported besides the protocol's own reference (the ssl
 * module's methods keep neither) is left to its holder, empty, and the
 * next call gets a new one. */
static void view_done(SSLProtocolObject* self, PyObject* view) {
  ViewObject* v = (ViewObject*) view;

  v->buf = NULL;
  v->len = 0;
  if (v->exports > 0 || Py_REFCNT(view) > 2) {
    if (self->view == v)
      Py_CLEAR(self->view);
  }
  Py_DECREF(view);
}


/* Is the current exception one of asyncio's SSLAgainErrors (SSLWantReadError,
 * SSLSyscallError)?  Then it is cleared and 1 returned. */
static int clear_again_error(SSLProtocolObject* self) {
  struct auvpy_tls_state* t = tls_state(self);

  if (PyErr_ExceptionMatches(t->SSLWantReadError) ||
      PyErr_ExceptionMatches(t->SSLSyscallError)) {
    PyErr_Clear();
    return 1;
  }
  return 0;
}


/* The current exception is an Exception (not SystemExit, KeyboardInterrupt,
 * GeneratorExit or another BaseException only). */
static int is_exception(void) {
  return PyErr_ExceptionMatches(PyExc_Exception);
}


static void log_debug(SSLProtocolObject* self, const char* fmt, PyObject* a, PyObject* b) {
  PyObject* r;

  if (b != NULL)
    r = PyObject_CallMethod(proto_state(self)->logger, "debug", "sOO", fmt, a, b);
  else
    r = PyObject_CallMethod(proto_state(self)->logger, "debug", "sO", fmt, a);
  if (r == NULL)
    PyErr_WriteUnraisable((PyObject*) self);
  Py_XDECREF(r);
}


static void log_warning(SSLProtocolObject* self, const char* message) {
  PyObject* r;

  r = PyObject_CallMethod(proto_state(self)->logger, "warning", "s", message);
  if (r == NULL)
    PyErr_WriteUnraisable((PyObject*) self);
  Py_XDECREF(r);
}


static int set_state(SSLProtocolObject* self, int new_state) {
  int allowed;

  allowed = new_state == S_UNWRAPPED ||
            (self->state == S_UNWRAPPED && new_state == S_DO_HANDSHAKE) ||
            (self->state == S_DO_HANDSHAKE && new_state == S_WRAPPED) ||
            (self->state == S_WRAPPED && new_state == S_FLUSHING) ||
            (self->state == S_FLUSHING && new_state == S_SHUTDOWN);
  if (!allowed) {
    PyErr_Format(PyExc_RuntimeError, "cannot switch state from %s to %s",
                 state_names[self->state], state_names[new_state]);
    return -1;
  }
  self->state = (unsigned char) new_state;
  return 0;
}


static void cancel_handle(SSLProtocolObject* self, PyObject** handle) {
  PyObject* h = *handle;

  if (h == NULL)
    return;
  *handle = NULL;
  if (call0_void(h, proto_state(self)->str_cancel) < 0)
    PyErr_WriteUnraisable((PyObject*) self);
  Py_DECREF(h);
}


/* loop.call_later(delay, getattr(self, name)). */
static PyObject* call_later_method(SSLProtocolObject* self, PyObject* delay, PyObject* name) {
  PyObject* method;
  PyObject* r;

  method = PyObject_GetAttr((PyObject*) self, name);
  if (method == NULL)
    return NULL;
  r = call2((PyObject*) self->loop, tls_state(self)->str_call_later, delay, method);
  Py_DECREF(method);
  return r;
}


/* --- Errors and the waiter ------------------------------------------------------ */

static void wakeup_waiter(SSLProtocolObject* self, PyObject* exc) {
  auvpy_state* st = proto_state(self);
  PyObject* waiter;
  PyObject* r;
  int cancelled;

  waiter = self->waiter;
  if (waiter == NULL)
    return;
  self->waiter = NULL;
  r = call0(waiter, st->str_cancelled);
  cancelled = r == NULL ? -1 : PyObject_IsTrue(r);
  Py_XDECREF(r);
  if (cancelled == 0) {
    if (exc != NULL)
      r = call1(waiter, st->str_set_exception, exc);
    else
      r = call1(waiter, st->str_set_result, Py_None);
    if (r == NULL)
      cancelled = -1;
    Py_XDECREF(r);
  }
  if (cancelled < 0)
    PyErr_WriteUnraisable((PyObject*) self);
  Py_DECREF(waiter);
}


/* asyncio's _fatal_error(exc, message): close the raw transport with exc;
 * OS errors are logged in debug mode, others (but cancellation) go to the
 * exception handler.  Steals nothing; keeps any current exception out. */
static void fatal_error(SSLProtocolObject* self, PyObject* exc, const char* message) {
  auvpy_state* st = proto_state(self);
  PyObject* transport;
  PyObject* r;

  transport = self->transport != NULL ? Py_NewRef(self->transport) : NULL;
  if (transport != NULL) {
    r = call1(transport, st->tls->str_force_close, exc);
    if (r == NULL)
      PyErr_WriteUnraisable((PyObject*) self);
    Py_XDECREF(r);
  }
  if (PyObject_TypeCheck(exc, (PyTypeObject*) PyExc_OSError)) {
    if (self->loop != NULL && self->loop->debug) {
      PyObject* kwargs = Py_BuildValue("{sO}", "exc_info", exc);
      PyObject* debug = PyObject_GetAttr(st->logger, st->str_debug);
      PyObject* args = Py_BuildValue("(sOs)", "%r: %s", (PyObject*) self, message);
      r = kwargs && debug && args ? PyObject_Call(debug, args, kwargs) : NULL;
      if (r == NULL)
        PyErr_WriteUnraisable((PyObject*) self);
      Py_XDECREF(r);
      Py_XDECREF(kwargs);
      Py_XDECREF(debug);
      Py_XDECREF(args);
    }
  } else if (!PyObject_TypeCheck(exc, (PyTypeObject*) st->tls->CancelledError)) {
    auvpy_report_transport_error(self->loop, transport != NULL ? transport : Py_None,
                                (PyObject*) self, message, exc);
  }
  Py_XDECREF(transport);
}


/* fatal_error() with the current exception, which is taken. */
static void fatal_error_current(SSLProtocolObject* self, const char* message) {
  PyObject* exc = auvpy_take_exception();

  if (exc != NULL) {
    fatal_error(self, exc, message);
    Py_DECREF(exc);
  }
}


/* A step that fails with an Exception becomes a fatal error, as asyncio's
 * "except Exception as ex: self._fatal_error(ex, message)"; other
 * exceptions (KeyboardInterrupt, SystemExit) propagate. */
static int fatal_unless_base(SSLProtocolObject* self, int r, const char* message) {
  if (r < 0 && is_exception()) {
    fatal_error_current(self, message);
    return 0;
  }
  return r;
}


/* --- The ssl object ------------------------------------------------------------- */

/* sslobj.read(len) of an SSLObject subclass (Python code, which may keep
 * what it is given: it gets no view of ours), copied into buf. */
static Py_ssize_t ssl_read_copy(SSLProtocolObject* self, PyObject* n, char* buf,
                                Py_ssize_t len) {
  PyObject* r;
  Py_buffer data;
  Py_ssize_t count;

  r = call1(self->sslobj, tls_state(self)->str_read, n);
  if (r == NULL)
    return clear_again_error(self) ? -2 : -1;
  if (PyObject_GetBuffer(r, &data, PyBUF_SIMPLE) < 0) {
    Py_DECREF(r);
    return -1;
  }
  count = data.len;
  if (count > len) {
    PyErr_SetString(PyExc_RuntimeError, "SSLObject.read() returned more than asked");
    count = -1;
  } else {
    memcpy(buf, data.buf, (size_t) count);
  }
  PyBuffer_Release(&data);
  Py_DECREF(r);
  return count;
}


/* sslobj.read(len, buffer) into buf: the count (0: close_notify), or -2 for
 * SSLAgainErrors (cleared), or -1. */
static Py_ssize_t ssl_read_into(SSLProtocolObject* self, char* buf, Py_ssize_t len) {
  PyObject* view;
  PyObject* n;
  PyObject* r;
  Py_ssize_t count;

  n = PyLong_FromSsize_t(len);
  if (n == NULL)
    return -1;
  if (!self->direct) {
    count = ssl_read_copy(self, n, buf, len);
    Py_DECREF(n);
    return count;
  }
  view = view_of(self, buf, len, 0);
  if (view == NULL) {
    Py_DECREF(n);
    return -1;
  }
  r = sslobj_read(self, n, view);
  view_done(self, view);
  Py_DECREF(n);
  if (r == NULL)
    return clear_again_error(self) ? -2 : -1;
  count = PyLong_AsSsize_t(r);
  Py_DECREF(r);
  if (count < 0 && !PyErr_Occurred()) {
    PyErr_SetString(PyExc_RuntimeError, "SSLObject.read() returned a negative count");
    return -1;
  }
  return count;
}


static PyObject* ssl_method(SSLProtocolObject* self, PyObject* name) {
  return call0(self->sslobj, name);
}


/* --- Outgoing flow --------------------------------------------------------------- */

static size_t write_buffer_size(SSLProtocolObject* self, int* err) {
  Py_ssize_t pending = bio_pending(self, self->outgoing);

  if (pending < 0) {
    *err = -1;
    return 0;
  }
  return (size_t) pending + self->write_buffer_size;
}


static void app_flow_failed(SSLProtocolObject* self, const char* message) {
  PyObject* exc;
  PyObject* context;
  PyObject* r;

  exc = auvpy_take_exception();
  context = Py_BuildValue("{sssOsOsO}", "message", message,
                          "exception", exc != NULL ? exc : Py_None,
                          "transport", self->app_transport != NULL
                                       ? (PyObject*) self->app_transport : Py_None,
                          "protocol", (PyObject*) self);
  Py_XDECREF(exc);
  if (context == NULL) {
    PyErr_WriteUnraisable((PyObject*) self);
    return;
  }
  r = auvpy_loop_call_exception_handler(self->loop, context);
  Py_DECREF(context);
  if (r == NULL)
    PyErr_WriteUnraisable((PyObject*) self);
  Py_XDECREF(r);
}


/* asyncio's _control_app_writing(): pause_writing()/resume_writing() of the
 * application at the water marks of the plaintext not yet sent (size). */
static int control_app_writing_size(SSLProtocolObject* self, size_t size) {
  auvpy_state* st = proto_state(self);
  PyObject* app;
  PyObject* r;
  int pause;

  if (size >= self->out_high && !self->app_writing_paused)
    pause = 1;
  else if (size <= self->out_low && self->app_writing_paused)
    pause = 0;
  else
    return 0;
  self->app_writing_paused = (char) pause;
  app = Py_NewRef(self->app_protocol != NULL ? self->app_protocol : Py_None);
  r = call0(app, pause ? st->str_pause_writing : st->str_resume_writing);
  Py_DECREF(app);
  if (r != NULL) {
    Py_DECREF(r);
    return 0;
  }
  if (auvpy_is_exit_exception())
    return -1;
  app_flow_failed(self, pause ? "protocol.pause_writing() failed"
                              : "protocol.resume_writing() failed");
  return 0;
}


static int control_app_writing(SSLProtocolObject* self) {
  size_t size;
  int err = 0;

  size = write_buffer_size(self, &err);
  if (err < 0)
    return -1;
  return control_app_writing_size(self, size);
}


/* asyncio's _process_outgoing(): what the SSL object wrote goes to the raw
 * transport, unless it asked to pause. */
static int process_outgoing(SSLProtocolObject* self) {
  PyObject* data;
  Py_ssize_t pending;
  int r;

  pending = bio_pending(self, self->outgoing);
  if (pending < 0)
    return -1;
  if (!self->ssl_writing_paused && pending > 0) {
    PyObject* transport;

    data = bio_read(self, self->outgoing);
    if (data == NULL)
      return -1;
    transport = Py_NewRef(self->transport != NULL ? self->transport : Py_None);
    r = call1_void(transport, tls_state(self)->str_write, data);
    Py_DECREF(transport);
    Py_DECREF(data);
    if (r < 0)
      return -1;
    pending = 0;  /* all read; only this protocol writes into the BIO */
  }
  return control_app_writing_size(self, (size_t) pending + self->write_buffer_size);
}


static Py_ssize_t buffer_len(PyObject* data) {
  if (PyBytes_CheckExact(data))
    return PyBytes_GET_SIZE(data);
  return PyObject_Size(data);
}


/* The first items of the backlog, if several and small, joined into one:
 * one SSLObject.write(), one record. */
static int join_backlog_head(SSLProtocolObject* self) {
  PyObject* joined;
  Py_ssize_t n;
  Py_ssize_t i;
  Py_ssize_t total;
  char* p;

  n = PyList_GET_SIZE(self->backlog);
  total = 0;
  for (i = 0; i < n; i++) {
    Py_ssize_t len = buffer_len(PyList_GET_ITEM(self->backlog, i));
    if (len < 0) {
      PyErr_Clear();
      break;
    }
    if (i > 0 && total + len > TLS_GATHER_MAX)
      break;
    total += len;
  }
  if (i < 2)
    return 0;
  joined = PyBytes_FromStringAndSize(NULL, total);
  if (joined == NULL)
    return -1;
  p = PyBytes_AS_STRING(joined);
  for (n = 0; n < i; n++) {
    Py_buffer view;
    if (PyObject_GetBuffer(PyList_GET_ITEM(self->backlog, n), &view, PyBUF_SIMPLE) < 0) {
      Py_DECREF(joined);
      return -1;
    }
    memcpy(p, view.buf, (size_t) view.len);
    p += view.len;
    PyBuffer_Release(&view);
  }
  if (PyList_SetSlice(self->backlog, 1, i, NULL) < 0) {
    Py_DECREF(joined);
    return -1;
  }
  return PyList_SetItem(self->backlog, 0, joined);  /* steals; drops the old first */
}


/* asyncio's _do_write(): encrypt the backlog, then send.  What the SSL
 * object does not take (SSLWantReadError: a handshake under way) stays. */
static int do_write(SSLProtocolObject* self) {
  PyObject* data;
  PyObject* r;
  Py_ssize_t count;
  Py_ssize_t len;

  while (self->backlog != NULL && PyList_GET_SIZE(self->backlog) > 0) {
    if (PyList_GET_SIZE(self->backlog) > 1 && join_backlog_head(self) < 0)
      return -1;
    data = Py_NewRef(PyList_GET_ITEM(self->backlog, 0));
    r = sslobj_write(self, data);
    if (r == NULL) {
      Py_DECREF(data);
      if (clear_again_error(self))
        break;
      return -1;
    }
    count = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    len = count < 0 ? -1 : buffer_len(data);
    if (len < 0) {
      Py_DECREF(data);
      return -1;
    }
    if (count < len) {
      PyObject* rest = PySequence_GetSlice(data, count, len);
      if (rest == NULL || PyList_SetItem(self->backlog, 0, rest) < 0) {
        Py_DECREF(data);
        return -1;
      }
      self->write_buffer_size -= self->write_buffer_size < (size_t) count
                                 ? self->write_buffer_size : (size_t) count;
    } else {
      if (PyList_SetSlice(self->backlog, 0, 1, NULL) < 0) {
        Py_DECREF(data);
        return -1;
      }
      self->write_buffer_size -= self->write_buffer_size < (size_t) len
                                 ? self->write_buffer_size : (size_t) len;
    }
    Py_DECREF(data);
  }
  return process_outgoing(self);
}


static int backlog_nonempty(SSLProtocolObject* self) {
  return self->backlog != NULL && PyList_GET_SIZE(self->backlog) > 0;
}


/* Writes gathered during callbacks go out before anything that must
 * follow them (close(), abort()). */
static int flush_backlog(SSLProtocolObject* self) {
  if (self->state != S_WRAPPED || !backlog_nonempty(self))
    return 0;
  return fatal_unless_base(self, do_write(self), "Fatal error on SSL protocol");
}


/* Entry points that may run application callbacks gather its writes. */
static void gather_begin(SSLProtocolObject* self) {
  self->gathering++;
}


static int gather_end(SSLProtocolObject* self, int r) {
  if (--self->gathering > 0 || r < 0)
    return r;
  return flush_backlog(self);
}


/* asyncio's _write_appdata(list_of_data): one item (data), or each item of
 * an iterable. */
static int write_appdata(SSLProtocolObject* self, PyObject* data, PyObject* iterable) {
  PyObject* iter;
  PyObject* item;
  Py_ssize_t len;
  int r;

  if (self->state == S_FLUSHING || self->state == S_SHUTDOWN ||
      self->state == S_UNWRAPPED) {
    if (self->conn_lost >= AUVPY_CONNLOST_WRITES_LOG)
      log_warning(self, "SSL connection is closed");
    self->conn_lost++;
    return 0;
  }

  if (data != NULL && self->state == S_WRAPPED && !self->gathering &&
      !backlog_nonempty(self)) {
    /* The common case: nothing waits, encrypt and send now. */
    PyObject* res = sslobj_write(self, data);
    Py_ssize_t count;

    if (res == NULL) {
      if (!clear_again_error(self))
        return fatal_unless_base(self, -1, "Fatal error on SSL protocol");
      count = 0;
    } else {
      count = PyLong_AsSsize_t(res);
      Py_DECREF(res);
      if (count < 0)
        return fatal_unless_base(self, -1, "Fatal error on SSL protocol");
    }
    len = buffer_len(data);
    if (len < 0)
      return -1;
    if (count < len) {  /* the rest waits in the backlog */
      PyObject* rest = count > 0 ? PySequence_GetSlice(data, count, len) : Py_NewRef(data);
      if (rest == NULL)
        return -1;
      if (self->backlog == NULL && (self->backlog = PyList_New(0)) == NULL) {
        Py_DECREF(rest);
        return -1;
      }
      r = PyList_Append(self->backlog, rest);
      Py_DECREF(rest);
      if (r < 0)
        return -1;
      self->write_buffer_size += (size_t) (len - count);
    }
    return fatal_unless_base(self, process_outgoing(self), "Fatal error on SSL protocol");
  }

  if (self->backlog == NULL && (self->backlog = PyList_New(0)) == NULL)
    return -1;
  iter = data != NULL ? NULL : PyObject_GetIter(iterable);
  if (data == NULL && iter == NULL)
    return -1;
  for (;;) {
    if (iter != NULL) {
      item = PyIter_Next(iter);
      if (item == NULL)
        break;
    } else {
      item = Py_NewRef(data);
    }
    len = buffer_len(item);
    if (len < 0) {
      Py_DECREF(item);
      Py_XDECREF(iter);
      return -1;
    }
    /* Gathered data is encrypted later: keep a copy of what may change. */
    if (self->gathering && self->state == S_WRAPPED && !PyBytes_CheckExact(item)) {
      PyObject* copy = PyBytes_FromObject(item);
      if (copy == NULL) {
        PyErr_Clear();  /* not a buffer: sslobj.write() will say so */
      } else {
        Py_SETREF(item, copy);
      }
    }
    r = PyList_Append(self->backlog, item);
    Py_DECREF(item);
    if (r < 0) {
      Py_XDECREF(iter);
      return -1;
    }
    self->write_buffer_size += (size_t) len;
    if (iter == NULL)
      break;
  }
  Py_XDECREF(iter);
  if (PyErr_Occurred())
    return -1;
  if (self->state == S_WRAPPED &&
      (!self->gathering || self->write_buffer_size >= TLS_GATHER_MAX))
    return fatal_unless_base(self, do_write(self), "Fatal error on SSL protocol");
  return 0;
}


/* --- Incoming flow ---------------------------------------------------------------- */

static int call_eof_received(SSLProtocolObject* self);
static int start_shutdown(SSLProtocolObject* self);
static int control_ssl_reading(SSLProtocolObject* self);

static int deliver_data(SSLProtocolObject* self, PyObject* data) {
  PyObject* cb;
  PyObject* r;

  if (self->app_data_received != NULL) {
    cb = Py_NewRef(self->app_data_received);
    r = PyObject_CallOneArg(cb, data);
    Py_DECREF(cb);
  } else {
    PyObject* app = Py_NewRef(self->app_protocol != NULL ? self->app_protocol : Py_None);
    r = call1(app, proto_state(self)->str_data_received, data);
    Py_DECREF(app);
  }
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}


/* asyncio's _do_read__copied(): all the plaintext there is, to
 * data_received(); close_notify means EOF.
 *
 * The plaintext is read straight into the bytes object that data_received()
 * gets, sized by the ciphertext waiting in the incoming BIO (plaintext is
 * shorter), plus one record when the SSL object may hold the start of one
 * (the last read stopped in the middle of a record); then shrunk to fit.
 * With nothing in the BIO, what the SSL object still holds is read into the
 * loop's buffer and copied. */
static int do_read_copied(SSLProtocolObject* self) {
  PyObject* dest;
  PyObject* data;
  char* buf;
  Py_ssize_t cap;
  Py_ssize_t got;
  Py_ssize_t n;
  Py_ssize_t avail;
  int eof = 0;
  int full;

  for (;;) {
    avail = bio_pending(self, self->incoming);
    if (avail < 0)
      return -1;
    if (avail > 0) {
      cap = avail + (self->read_partial ? TLS_RECORD_MAX : 0);
      if (cap > TLS_MAX_SIZE)
        cap = TLS_MAX_SIZE;
      dest = PyBytes_FromStringAndSize(NULL, cap);
      if (dest == NULL)
        return -1;
      buf = PyBytes_AS_STRING(dest);
    } else {
      dest = NULL;
      buf = auvpy_loop_read_buf(self->loop);
      if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
      }
      cap = AUV_READ_BUF_SIZE;
    }
    got = 0;
    full = 0;
    for (;;) {
      n = ssl_read_into(self, buf + got, cap - got);
      if (n == -1) {
        Py_XDECREF(dest);
        return -1;
      }
      if (n == -2) {  /* SSLWantReadError: a record is incomplete */
        self->read_partial = 1;
        break;
      }
      if (n == 0) {
        eof = 1;
        break;
      }
      got += n;
      if (got == cap) {
        full = 1;
        break;
      }
      /* A record is consumed whole: nothing left in the BIO, nothing left
       * to read now (and no SSLWantReadError to make). */
      avail = bio_pending(self, self->incoming);
      if (avail < 0) {
        Py_XDECREF(dest);
        return -1;
      }
      if (avail == 0) {
        self->read_partial = 0;
        break;
      }
    }
    if (got > 0) {
      if (dest != NULL) {
        if (got < cap && _PyBytes_Resize(&dest, got) < 0)
          return -1;
        data = dest;
      } else {
        data = auvpy_bytes_copy(buf, got);
        if (data == NULL)
          return -1;
      }
      n = deliver_data(self, data);
      Py_DECREF(data);
      if (n < 0)
        return -1;
    } else {
      Py_XDECREF(dest);
    }
    if (!full)
      break;
    if ((self->state != S_WRAPPED && self->state != S_FLUSHING) ||
        self->app_reading_paused)
      return 0;
  }
  if (eof) {
    if (call_eof_received(self) < 0 || start_shutdown(self) < 0)
      return -1;
  }
  return 0;
}


/* asyncio's _do_read__buffered(): into the application's own buffer. */
static int do_read_buffered(SSLProtocolObject* self) {
  auvpy_state* st = proto_state(self);
  PyObject* hint;
  PyObject* buf;
  PyObject* r;
  Py_buffer view;
  Py_ssize_t offset = 0;
  Py_ssize_t count = 1;
  Py_ssize_t wants;
  Py_ssize_t n;
  Py_ssize_t avail;
  int again = 0;
  int read_more = 0;

  avail = bio_pending(self, self->incoming);
  if (avail < 0)
    return -1;
  hint = PyLong_FromSsize_t(avail);
  if (hint == NULL)
    return -1;
  if (self->app_get_buffer != NULL) {
    PyObject* cb = Py_NewRef(self->app_get_buffer);
    buf = PyObject_CallOneArg(cb, hint);
    Py_DECREF(cb);
  } else {
    PyObject* app = Py_NewRef(self->app_protocol != NULL ? self->app_protocol : Py_None);
    buf = call1(app, st->str_get_buffer, hint);
    Py_DECREF(app);
  }
  Py_DECREF(hint);
  if (buf == NULL)
    return -1;
  if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
    Py_DECREF(buf);
    return -1;
  }
  Py_DECREF(buf);
  wants = view.len;

  n = ssl_read_into(self, view.buf, wants);
  if (n == -1) {
    PyBuffer_Release(&view);
    return -1;
  }
  if (n == -2) {
    again = 1;
  } else {
    count = n;
  }
  if (!again && count > 0) {
    offset = count;
    for (;;) {
      if (offset >= wants) {
        read_more = 1;   /* full: read on soon */
        break;
      }
      avail = bio_pending(self, self->incoming);
      if (avail < 0) {
        PyBuffer_Release(&view);
        return -1;
      }
      if (avail == 0)
        break;           /* as SSLWantReadError would */
      n = ssl_read_into(self, (char*) view.buf + offset, wants - offset);
      if (n == -1) {
        PyBuffer_Release(&view);
        return -1;
      }
      if (n == -2)
        break;
      count = n;
      if (n == 0)
        break;
      offset += n;
    }
  }
  PyBuffer_Release(&view);
  if (read_more &&
      auvpy_loop_call_soon_method(self->loop, (PyObject*) self, st->tls->str_do_read_cb, NULL) < 0)
    return -1;
  if (offset > 0) {
    PyObject* nbytes = PyLong_FromSsize_t(offset);
    if (nbytes == NULL)
      return -1;
    if (self->app_buffer_updated != NULL) {
      PyObject* cb = Py_NewRef(self->app_buffer_updated);
      r = PyObject_CallOneArg(cb, nbytes);
      Py_DECREF(cb);
    } else {
      PyObject* app = Py_NewRef(self->app_protocol != NULL ? self->app_protocol : Py_None);
      r = call1(app, st->str_buffer_updated, nbytes);
      Py_DECREF(app);
    }
    Py_DECREF(nbytes);
    if (r == NULL)
      return -1;
    Py_DECREF(r);
  }
  if (count == 0) {
    if (call_eof_received(self) < 0 || start_shutdown(self) < 0)
      return -1;
  }
  return 0;
}


/* asyncio's _do_read(). */
static int do_read(SSLProtocolObject* self) {
  int r;

  if (self->state != S_WRAPPED && self->state != S_FLUSHING)
    return 0;
  if (!self->app_reading_paused) {
    r = self->app_is_buffer ? do_read_buffered(self) : do_read_copied(self);
    if (r == 0)
      r = backlog_nonempty(self) ? do_write(self) : process_outgoing(self);
    if (r < 0) {
      if (is_exception() && self->state == S_WRAPPED && backlog_nonempty(self)) {
        /* What the application wrote before it failed goes out first, as
         * it would have with asyncio, which writes at once. */
        PyObject* type;
        PyObject* value;
        PyObject* tb;
        PyErr_Fetch(&type, &value, &tb);
        if (do_write(self) < 0)
          PyErr_Clear();
        PyErr_Restore(type, value, tb);
      }
      return fatal_unless_base(self, r, "Fatal error on SSL protocol");
    }
  }
  return fatal_unless_base(self, control_ssl_reading(self), "Fatal error on SSL protocol");
}


static int call_eof_received(SSLProtocolObject* self) {
  PyObject* app;
  PyObject* r;
  int keep_open;

  if (self->app_state != A_CON_MADE)
    return 0;
  self->app_state = A_EOF;
  app = Py_NewRef(self->app_protocol != NULL ? self->app_protocol : Py_None);
  r = call0(app, proto_state(self)->str_eof_received);
  Py_DECREF(app);
  keep_open = r == NULL ? -1 : PyObject_IsTrue(r);
  Py_XDECREF(r);
  if (keep_open > 0)
    log_warning(self, "returning true from eof_received() has no effect when using ssl");
  if (keep_open < 0) {
    if (auvpy_is_exit_exception())
      return -1;
    fatal_error_current(self, "Error calling eof_received()");
  }
  return 0;
}


/* --- Flow control of the raw transport's reading ------------------------------------ */

static int control_ssl_reading(SSLProtocolObject* self) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* transport;
  Py_ssize_t size;
  int r;

  size = bio_pending(self, self->incoming);
  if (size < 0)
    return -1;
  if ((size_t) size >= self->in_high && !self->ssl_reading_paused) {
    self->ssl_reading_paused = 1;
    transport = Py_NewRef(self->transport != NULL ? self->transport : Py_None);
    r = call0_void(transport, t->str_pause_reading);
    Py_DECREF(transport);
    return r;
  }
  if ((size_t) size <= self->in_low && self->ssl_reading_paused) {
    self->ssl_reading_paused = 0;
    transport = Py_NewRef(self->transport != NULL ? self->transport : Py_None);
    r = call0_void(transport, t->str_resume_reading);
    Py_DECREF(transport);
    return r;
  }
  return 0;
}


/* --- Handshake ---------------------------------------------------------------------- */

static int on_handshake_complete(SSLProtocolObject* self, PyObject* handshake_exc);

static int do_handshake(SSLProtocolObject* self) {
  PyObject* r;
  PyObject* exc;
  int rc;

  r = ssl_method(self, tls_state(self)->str_do_handshake);
  if (r != NULL) {
    Py_DECREF(r);
    return on_handshake_complete(self, NULL);
  }
  if (clear_again_error(self))
    return process_outgoing(self);
  if (!PyErr_ExceptionMatches(tls_state(self)->SSLError))
    return -1;
  exc = auvpy_take_exception();
  rc = on_handshake_complete(self, exc);
  Py_XDECREF(exc);
  return rc;
}


static int on_handshake_complete(SSLProtocolObject* self, PyObject* handshake_exc) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* peercert;
  PyObject* cipher;
  PyObject* compression;
  PyObject* exc;
  PyObject* r;

  cancel_handle(self, &self->handshake_timeout_handle);

  if (handshake_exc != NULL) {
    if (PyExceptionClass_Check(handshake_exc))  /* "raise ConnectionResetError" */
      exc = PyObject_CallNoArgs(handshake_exc);
    else
      exc = Py_NewRef(handshake_exc);
    if (exc == NULL)
      goto failed;
    goto failed_with;
  }
  if (set_state(self, S_WRAPPED) < 0)
    goto failed;
  peercert = ssl_method(self, t->str_getpeercert);
  if (peercert == NULL)
    goto failed;

  if (self->loop->debug) {
    r = call0((PyObject*) self->loop, t->str_time);
    if (r != NULL) {
      PyObject* ms = PyFloat_FromDouble((PyFloat_AsDouble(r) - self->handshake_start) * 1e3);
      if (ms != NULL)
        log_debug(self, "%r: SSL handshake took %.1f ms", (PyObject*) self, ms);
      Py_XDECREF(ms);
      Py_DECREF(r);
    }
    if (PyErr_Occurred())
      PyErr_WriteUnraisable((PyObject*) self);
  }

  cipher = ssl_method(self, t->str_cipher);
  compression = cipher == NULL ? NULL : ssl_method(self, t->str_compression);
  if (compression == NULL) {
    Py_DECREF(peercert);
    Py_XDECREF(cipher);
    return -1;
  }
  Py_XSETREF(self->peercert, peercert);
  Py_XSETREF(self->cipher, cipher);
  Py_XSETREF(self->compression, compression);

  if (self->app_state == A_INIT) {
    PyObject* app;
    if (self->app_transport == NULL) {
      PyErr_SetString(PyExc_RuntimeError, "Creating _SSLProtocolTransport twice");
      return -1;
    }
    self->app_state = A_CON_MADE;
    app = Py_NewRef(self->app_protocol != NULL ? self->app_protocol : Py_None);
    r = call1(app, proto_state(self)->str_connection_made,
              (PyObject*) self->app_transport);
    Py_DECREF(app);
    if (r == NULL)
      return -1;
    Py_DECREF(r);
  }
  wakeup_waiter(self, NULL);
  return do_read(self);

failed:
  if (!is_exception())
    return -1;
  exc = auvpy_take_exception();
failed_with:
  self->state = S_UNWRAPPED;
  fatal_error(self, exc,
              PyObject_TypeCheck(exc, (PyTypeObject*) t->CertificateError)
              ? "SSL handshake failed on verifying the certificate"
              : "SSL handshake failed");
  wakeup_waiter(self, exc);
  Py_DECREF(exc);
  return 0;
}


static int start_handshake(SSLProtocolObject* self) {
  PyObject* r;

  if (self->loop->debug) {
    log_debug(self, "%r starts SSL handshake", (PyObject*) self, NULL);
    r = call0((PyObject*) self->loop, tls_state(self)->str_time);
    if (r == NULL)
      return -1;
    self->handshake_start = PyFloat_AsDouble(r);
    Py_DECREF(r);
  }
  if (set_state(self, S_DO_HANDSHAKE) < 0)
    return -1;
  r = call_later_method(self, self->handshake_timeout,
                        tls_state(self)->str_check_handshake_timeout);
  if (r == NULL)
    return -1;
  Py_XSETREF(self->handshake_timeout_handle, r);
  return do_handshake(self);
}


/* --- Shutdown ----------------------------------------------------------------------- */

static int do_shutdown(SSLProtocolObject* self);

static int tls_abort(SSLProtocolObject* self, PyObject* exc) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* transport;
  int r;

  self->state = S_UNWRAPPED;
  if (self->transport == NULL)
    return 0;
  transport = Py_NewRef(self->transport);
  /* 3.11 and 3.12 call transport.abort(); 3.13 transport._force_close(exc),
   * which is the same for every transport start_tls() accepts. */
  if (exc == NULL && Py_Version < 0x030D0000)
    r = call0_void(transport, t->str_abort);
  else
    r = call1_void(transport, t->str_force_close, exc != NULL ? exc : Py_None);
  Py_DECREF(transport);
  return r;
}


static int on_shutdown_complete(SSLProtocolObject* self, PyObject* exc) {
  PyObject* transport;
  int r;

  cancel_handle(self, &self->shutdown_timeout_handle);
  if (exc != NULL) {
    fatal_error(self, exc, "Fatal error on transport");
    return 0;
  }
  transport = Py_NewRef(self->transport != NULL ? self->transport : Py_None);
  r = auvpy_loop_call_soon_method(self->loop, transport, proto_state(self)->str_close,
                                 NULL);
  Py_DECREF(transport);
  return r;
}


static int do_shutdown(SSLProtocolObject* self) {
  struct auvpy_tls_state* t = tls_state(self);
  PyObject* r;
  PyObject* exc;
  int rc;

  if (!self->eof_received) {
    r = ssl_method(self, self->direct ? t->str_shutdown : t->str_unwrap);
    if (r == NULL) {
      if (clear_again_error(self))
        return process_outgoing(self);
      if (!PyErr_ExceptionMatches(t->SSLError))
        return -1;
      exc = auvpy_take_exception();
      rc = on_shutdown_complete(self, exc);
      Py_XDECREF(exc);
      return rc;
    }
    Py_DECREF(r);
  }
  if (process_outgoing(self) < 0 || call_eof_received(self) < 0)
    return -1;
  return on_shutdown_complete(self, NULL);
}


static int do_flush(SSLProtocolObject* self) {
  if (do_read(self) < 0 || set_state(self, S_SHUTDOWN) < 0)
    return -1;
  return do_shutdown(self);
}


static int start_shutdown(SSLProtocolObject* self) {
  PyObject* handle;

  if (self->state == S_FLUSHING || self->state == S_SHUTDOWN ||
      self->state == S_UNWRAPPED)
    return 0;
  if (self->app_transport != NULL)
    self->app_transport->closed = 1;
  if (self->state == S_DO_HANDSHAKE)
    return tls_abort(self, NULL);
  if (flush_backlog(self) < 0)
    return -1;
  if (self->state != S_WRAPPED)  /* the flush failed: closed already */
    return 0;
  if (set_state(self, S_FLUSHING) < 0)
    return -1;
  handle = call_later_method(self, self->shutdown_timeout,
                             tls_state(self)->str_check_shutdown_timeout);
  if (handle == NULL)
    return -1;
  Py_XSETREF(self->shutdown_timeout_handle, handle);
  return do_flush(self);
}


/* What arrived in the incoming BIO: asyncio's buffer_updated() after its
 * write into the BIO. */
static int incoming_ready(SSLProtocolObject* self) {
  switch (self->state) {
  case S_DO_HANDSHAKE:
    return do_handshake(self);
  case S_WRAPPED:
    return do_read(self);
  case S_FLUSHING:
    return do_flush(self);
  case S_SHUTDOWN:
    return do_shutdown(self);
  default:
    return 0;
  }
}


static int feed(SSLProtocolObject* self, char* data, Py_ssize_t len) {
  PyObject* view;
  int r;

  if (check_alive(self) < 0)
    return -1;
  /* MemoryBIO.write() copies the ciphertext from the loop's buffer: no
   * bytes object in between. */
  view = view_of(self, data, len, 1);
  if (view == NULL)
    return -1;
  r = bio_write(self, self->incoming, view);
  view_done(self, view);
  if (r < 0)
    return -1;
  gather_begin(self);
  return gather_end(self, incoming_ready(self));
}


/* transport.c: ciphertext read by asyncuv's socket transport, from its
 * buffer; 0, or -1 with an exception as the protocol's buffer_updated()
 * would have raised it. */
int auvpy_sslproto_feed(PyObject* protocol, char* data, size_t len) {
  int r;

  Py_INCREF(protocol);
  r = feed((SSLProtocolObject*) protocol, data, (Py_ssize_t) len);
  Py_DECREF(protocol);
  return r;
}


/* --- SSLProtocol's methods (the raw transport calls them) ----------------------------- */

static PyObject* result(int r) {
  if (r < 0)
    return NULL;
  Py_RETURN_NONE;
}


static PyObject* proto_connection_made(SSLProtocolObject* self, PyObject* transport) {
  int r;

  if (check_alive(self) < 0)
    return NULL;
  Py_XSETREF(self->transport, Py_NewRef(transport));
  gather_begin(self);
  r = gather_end(self, start_handshake(self));
  return result(r);
}


static PyObject* proto_connection_lost(SSLProtocolObject* self, PyObject* exc) {
  auvpy_state* st = proto_state(self);
  PyObject* r;
  int rc = 0;

  if (check_alive(self) < 0)
    return NULL;
  if (self->backlog != NULL && PyList_SetSlice(self->backlog, 0,
                                               PyList_GET_SIZE(self->backlog), NULL) < 0)
    return NULL;
  self->write_buffer_size = 0;
  r = bio_read(self, self->outgoing);
  if (r == NULL)
    return NULL;
  Py_DECREF(r);
  self->conn_lost++;

  if (self->app_transport != NULL)
    self->app_transport->closed = 1;
  if (self->state != S_DO_HANDSHAKE &&
      (self->app_state == A_CON_MADE || self->app_state == A_EOF)) {
    self->app_state = A_CON_LOST;
    rc = auvpy_loop_call_soon_method(self->loop,
                                    self->app_protocol != NULL ? self->app_protocol : Py_None,
                                    st->str_connection_lost, exc);
  }
  self->state = S_UNWRAPPED;
  Py_CLEAR(self->transport);
  Py_CLEAR(self->app_transport);
  Py_CLEAR(self->app_protocol);
  Py_CLEAR(self->app_data_received);
  Py_CLEAR(self->app_get_buffer);
  Py_CLEAR(self->app_buffer_updated);
  wakeup_waiter(self, exc == Py_None ? NULL : exc);
  cancel_handle(self, &self->shutdown_timeout_handle);
  cancel_handle(self, &self->handshake_timeout_handle);
  return result(rc);
}


static PyObject* proto_get_buffer(SSLProtocolObject* self, PyObject* n) {
  if (self->rbuffer == NULL) {
    self->rbuffer = PyByteArray_FromStringAndSize(NULL, TLS_MAX_SIZE);
    if (self->rbuffer == NULL)
      return NULL;
    self->rview = PyMemoryView_FromObject(self->rbuffer);
    if (self->rview == NULL) {
      Py_CLEAR(self->rbuffer);
      return NULL;
    }
  }
  return Py_NewRef(self->rview);
}


static PyObject* proto_buffer_updated(SSLProtocolObject* self, PyObject* arg) {
  Py_ssize_t nbytes;
  PyObject* r;

  if (check_alive(self) < 0)
    return NULL;
  nbytes = PyLong_AsSsize_t(arg);
  if (nbytes == -1 && PyErr_Occurred())
    return NULL;
  if (self->rbuffer == NULL) {
    r = proto_get_buffer(self, arg);
    if (r == NULL)
      return NULL;
    Py_DECREF(r);
  }
  if (nbytes < 0 || nbytes > PyByteArray_GET_SIZE(self->rbuffer))
    nbytes = nbytes < 0 ? 0 : PyByteArray_GET_SIZE(self->rbuffer);
  return result(feed(self, PyByteArray_AS_STRING(self->rbuffer), nbytes));
}


static PyObject* proto_eof_received(SSLProtocolObject* self, PyObject* unused) {
  PyObject* transport;
  int r = 0;

  if (check_alive(self) < 0)
    return NULL;
  self->eof_received = 1;
  if (self->loop->debug)
    log_debug(self, "%r received EOF", (PyObject*) self, NULL);
  gather_begin(self);
  switch (self->state) {
  case S_DO_HANDSHAKE:
    r = on_handshake_complete(self, PyExc_ConnectionResetError);
    break;
  case S_WRAPPED:
    r = set_state(self, S_FLUSHING);
    if (r == 0 && self->app_reading_paused) {
      r = gather_end(self, 0);
      if (r < 0)
        return NULL;
      Py_RETURN_TRUE;
    }
    if (r == 0)
      r = do_flush(self);
    break;
  case S_FLUSHING:
    r = do_write(self);
    if (r == 0)
      r = set_state(self, S_SHUTDOWN);
    if (r == 0)
      r = do_shutdown(self);
    break;
  case S_SHUTDOWN:
    r = do_shutdown(self);
    break;
  }
  r = gather_end(self, r);
  if (r < 0 && is_exception() && self->transport != NULL) {
    /* asyncio closes the transport, and re-raises. */
    PyObject* type;
    PyObject* value;
    PyObject* tb;
    PyErr_Fetch(&type, &value, &tb);
    transport = Py_NewRef(self->transport);
    if (call0_void(transport, proto_state(self)->str_close) < 0)
      PyErr_WriteUnraisable((PyObject*) self);
    Py_DECREF(transport);
    PyErr_Restore(type, value, tb);
  }
  return result(r);
}


static PyObject* proto_pause_writing(SSLProtocolObject* self, PyObject* unused) {
  self->ssl_writing_paused = 1;
  Py_RETURN_NONE;
}


static PyObject* proto_resume_writing(SSLProtocolObject* self, PyObject* unused) {
  if (check_alive(self) < 0)
    return NULL;
  self->ssl_writing_paused = 0;
  return result(process_outgoing(self));
}


static PyObject* proto_check_handshake_timeout(SSLProtocolObject* self, PyObject* unused) {
  PyObject* exc;

  if (check_alive(self) < 0)
    return NULL;
  if (self->state == S_DO_HANDSHAKE) {
    PyObject* msg = PyUnicode_FromFormat("SSL handshake is taking longer than %S seconds: "
                                         "aborting the connection", self->handshake_timeout);
    if (msg == NULL)
      return NULL;
    exc = PyObject_CallOneArg(PyExc_ConnectionAbortedError, msg);
    Py_DECREF(msg);
    if (exc == NULL)
      return NULL;
    fatal_error(self, exc, "Fatal error on transport");
    Py_DECREF(exc);
  }
  Py_RETURN_NONE;
}


static PyObject* proto_check_shutdown_timeout(SSLProtocolObject* self, PyObject* unused) {
  PyObject* exc;
  PyObject* transport;
  int r;

  if (check_alive(self) < 0)
    return NULL;
  if (self->state != S_FLUSHING && self->state != S_SHUTDOWN)
    Py_RETURN_NONE;
  exc = PyObject_CallFunction(PyExc_TimeoutError, "s", "SSL shutdown timed out");
  if (exc == NULL)
    return NULL;
  transport = Py_NewRef(self->transport != NULL ? self->transport : Py_None);
  r = call1_void(transport, tls_state(self)->str_force_close, exc);
  Py_DECREF(transport);
  Py_DECREF(exc);
  return result(r);
}


/* The application resumed reading (asyncio's resume() in _resume_reading()). */
static PyObject* proto_resume_cb(SSLProtocolObject* self, PyObject* unused) {
  int r = 0;

  if (check_alive(self) < 0)
    return NULL;
  gather_begin(self);
  if (self->state == S_WRAPPED)
    r = do_read(self);
  else if (self->state == S_FLUSHING)
    r = do_flush(self);
  else if (self->state == S_SHUTDOWN)
    r = do_shutdown(self);
  return result(gather_end(self, r));
}


/* The application's buffer was full: read on (asyncio's call_soon(_do_read)). */
static PyObject* proto_do_read_cb(SSLProtocolObject* self, PyObject* unused) {
  if (check_alive(self) < 0)
    return NULL;
  gather_begin(self);
  return result(gather_end(self, do_read(self)));
}


/* --- The application's side -------------------------------------------------------- */

static int set_app_protocol(SSLProtocolObject* self, PyObject* protocol) {
  auvpy_state* st = proto_state(self);
  PyObject* get_buffer = NULL;
  PyObject* buffer_updated = NULL;
  PyObject* data_received = NULL;
  int is_buffer;

  /* asyncio: hasattr(app_protocol, 'get_buffer') and isinstance(app_protocol,
   * protocols.BufferedProtocol). */
  get_buffer = PyObject_GetAttr(protocol, st->str_get_buffer);
  if (get_buffer == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
      return -1;
    PyErr_Clear();
    is_buffer = 0;
  } else {
    is_buffer = PyObject_IsInstance(protocol, st->BufferedProtocol);
    if (is_buffer < 0) {
      Py_DECREF(get_buffer);
      return -1;
    }
  }
  if (is_buffer) {
    buffer_updated = PyObject_GetAttr(protocol, st->str_buffer_updated);
    if (buffer_updated == NULL) {
      Py_DECREF(get_buffer);
      return -1;
    }
  } else {
    Py_CLEAR(get_buffer);
    /* Looked up now if there; otherwise at each call, as asyncio does. */
    data_received = PyObject_GetAttr(protocol, st->str_data_received);
    if (data_received == NULL) {
      if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return -1;
      PyErr_Clear();
    }
  }
  self->app_is_buffer = (char) is_buffer;
  Py_XSETREF(self->app_get_buffer, get_buffer);
  Py_XSETREF(self->app_buffer_updated, buffer_updated);
  Py_XSETREF(self->app_data_received, data_received);
  Py_XSETREF(self->app_protocol, Py_NewRef(protocol));
  return 0;
}


static PyObject* get_extra_info(SSLProtocolObject* self, PyObject* name, PyObject* dflt) {
  struct auvpy_tls_state* t = tls_state(self);

  if (PyUnicode_Check(name)) {
    if (PyUnicode_Compare(name, t->str_sslcontext) == 0)
      return Py_NewRef(self->sslcontext);
    if (self->peercert != NULL) {
      if (PyUnicode_Compare(name, t->str_peercert) == 0)
        return Py_NewRef(self->peercert);
      if (PyUnicode_Compare(name, t->str_cipher_key) == 0)
        return Py_NewRef(self->cipher);
      if (PyUnicode_Compare(name, t->str_compression_key) == 0)
        return Py_NewRef(self->compression);
      if (PyUnicode_Compare(name, t->str_ssl_object) == 0)
        return Py_NewRef(self->sslobject);
    }
  }
  if (self->transport != NULL) {
    PyObject* transport = Py_NewRef(self->transport);
    PyObject* r = call2(transport, t->str_get_extra_info, name, dflt);
    Py_DECREF(transport);
    return r;
  }
  return Py_NewRef(dflt);
}


/* high and low as asyncio's add_flowcontrol_defaults() takes them. */
static int set_limits(PyObject* high, PyObject* low, size_t kb, size_t* high_out,
                      size_t* low_out, PyObject** limits) {
  PyObject* h;

  if (auvpy_parse_write_limits(high, low, kb * 1024, high_out, low_out, limits) < 0)
    return -1;
  /* size >= high: a fractional high is reached at its ceiling. */
  h = PyTuple_GET_ITEM(*limits, 1);
  if (PyFloat_Check(h) && *high_out != SIZE_MAX &&
      PyFloat_AS_DOUBLE(h) != floor(PyFloat_AS_DOUBLE(h)))
    (*high_out)++;
  return 0;
}


/* --- SSLTransport ---------------------------------------------------------------- */

/* The transport's protocol, or AttributeError as asyncio's transport gives
 * after a second close() dropped it. */
static SSLProtocolObject* app_proto(SSLTransportObject* self, const char* attr) {
  if (self->proto == NULL || self->proto->incoming == NULL) {
    PyErr_Format(PyExc_AttributeError, "'NoneType' object has no attribute '%s'", attr);
    return NULL;
  }
  return self->proto;
}


static int app_check_thread(SSLTransportObject* self) {
  return auvpy_loop_check_thread(self->loop);
}


static PyObject* tr_get_extra_info(SSLTransportObject* self, PyObject* const* args,
                                   Py_ssize_t nargs, PyObject* kwnames) {
  SSLProtocolObject* proto;
  PyObject* name;
  PyObject* dflt;
  PyObject* r;

  if (auvpy_parse_extra_info_args(args, nargs, kwnames, &name, &dflt) < 0)
    return NULL;
  proto = app_proto(self, "_get_extra_info");
  if (proto == NULL)
    return NULL;
  Py_INCREF(proto);
  r = get_extra_info(proto, name, dflt);
  Py_DECREF(proto);
  return r;
}


static PyObject* tr_set_protocol(SSLTransportObject* self, PyObject* protocol) {
  SSLProtocolObject* proto = app_proto(self, "_set_app_protocol");

  if (proto == NULL)
    return NULL;
  return result(set_app_protocol(proto, protocol));
}


static PyObject* tr_get_protocol(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto = app_proto(self, "_app_protocol");

  if (proto == NULL)
    return NULL;
  return Py_NewRef(proto->app_protocol != NULL ? proto->app_protocol : Py_None);
}


/* From 3.12.8 and 3.13.1 on (gh-118950), the transport also says it is
 * closing when the raw transport under it is. */
static int closing_follows_raw(void) {
  return (Py_Version >= 0x030C0800 && Py_Version < 0x030D0000) || Py_Version >= 0x030D0100;
}


static PyObject* tr_is_closing(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto;

  if (self->closed || !closing_follows_raw())
    return PyBool_FromLong(self->closed);
  proto = app_proto(self, "_is_transport_closing");
  if (proto == NULL)
    return NULL;
  if (proto->transport == NULL)
    Py_RETURN_FALSE;
  {
    PyObject* transport = Py_NewRef(proto->transport);
    PyObject* r = call0(transport, auvpy_object_state(self)->str_is_closing);
    Py_DECREF(transport);
    return r;
  }
}


static PyObject* tr_close(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto;
  int r;

  if (app_check_thread(self) < 0)
    return NULL;
  if (self->closed) {
    Py_CLEAR(self->proto);  /* asyncio: self._ssl_protocol = None */
    Py_RETURN_NONE;
  }
  self->closed = 1;
  proto = app_proto(self, "_start_shutdown");
  if (proto == NULL)
    return NULL;
  Py_INCREF(proto);
  r = start_shutdown(proto);
  Py_DECREF(proto);
  return result(r);
}


static PyObject* tr_is_reading(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto = app_proto(self, "_app_reading_paused");

  if (proto == NULL)
    return NULL;
  return PyBool_FromLong(!proto->app_reading_paused);
}


static PyObject* tr_pause_reading(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto = app_proto(self, "_pause_reading");

  if (proto == NULL)
    return NULL;
  proto->app_reading_paused = 1;
  Py_RETURN_NONE;
}


static PyObject* tr_resume_reading(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto = app_proto(self, "_resume_reading");

  if (proto == NULL)
    return NULL;
  if (app_check_thread(self) < 0)
    return NULL;
  if (proto->app_reading_paused) {
    proto->app_reading_paused = 0;
    if (auvpy_loop_call_soon_method(proto->loop, (PyObject*) proto,
                                   tls_state(proto)->str_resume_cb, NULL) < 0)
      return NULL;
  }
  Py_RETURN_NONE;
}


/* set_write_buffer_limits() and set_read_buffer_limits(): the application's
 * side (reading 0) or the incoming ciphertext's (reading 1). */
static PyObject* set_buffer_limits(SSLTransportObject* self, PyObject* args,
                                   PyObject* kwargs, int reading) {
  static char* kwlist[] = { "high", "low", NULL };
  SSLProtocolObject* proto;
  PyObject* high = Py_None;
  PyObject* low = Py_None;
  PyObject* limits;
  int r;

  if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                   reading ? "|OO:set_read_buffer_limits"
                                           : "|OO:set_write_buffer_limits",
                                   kwlist, &high, &low))
    return NULL;
  proto = app_proto(self, reading ? "_set_read_buffer_limits" : "_set_write_buffer_limits");
  if (proto == NULL)
    return NULL;
  if (set_limits(high, low, reading ? TLS_HIGH_WATER_READ : TLS_HIGH_WATER_WRITE,
                 reading ? &proto->in_high : &proto->out_high,
                 reading ? &proto->in_low : &proto->out_low, &limits) < 0)
    return NULL;
  Py_XSETREF(*(reading ? &proto->in_limits : &proto->out_limits), limits);
  Py_INCREF(proto);
  r = reading ? control_ssl_reading(proto) : control_app_writing(proto);
  Py_DECREF(proto);
  return result(r);
}


static PyObject* get_buffer_limits(SSLTransportObject* self, int reading) {
  SSLProtocolObject* proto;
  PyObject* limits;

  proto = app_proto(self, reading ? "_incoming_low_water" : "_outgoing_low_water");
  if (proto == NULL)
    return NULL;
  limits = reading ? proto->in_limits : proto->out_limits;
  if (limits != NULL)
    return Py_NewRef(limits);
  return Py_BuildValue("(nn)", (Py_ssize_t) (reading ? proto->in_low : proto->out_low),
                       (Py_ssize_t) (reading ? proto->in_high : proto->out_high));
}


static PyObject* tr_set_write_buffer_limits(SSLTransportObject* self, PyObject* args,
                                            PyObject* kwargs) {
  return set_buffer_limits(self, args, kwargs, 0);
}


static PyObject* tr_get_write_buffer_limits(SSLTransportObject* self, PyObject* unused) {
  return get_buffer_limits(self, 0);
}


static PyObject* tr_set_read_buffer_limits(SSLTransportObject* self, PyObject* args,
                                           PyObject* kwargs) {
  return set_buffer_limits(self, args, kwargs, 1);
}


static PyObject* tr_get_read_buffer_limits(SSLTransportObject* self, PyObject* unused) {
  return get_buffer_limits(self, 1);
}


static PyObject* tr_get_write_buffer_size(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto = app_proto(self, "_get_write_buffer_size");
  size_t size;
  int err = 0;

  if (proto == NULL)
    return NULL;
  size = write_buffer_size(proto, &err);
  if (err < 0)
    return NULL;
  return PyLong_FromSize_t(size);
}


static PyObject* tr_get_read_buffer_size(SSLTransportObject* self, PyObject* unused) {
  SSLProtocolObject* proto = app_proto(self, "_get_read_buffer_size");
  Py_ssize_t n;

  if (proto == NULL)
    return NULL;
  n = bio_pending(proto, proto->incoming);
  return n < 0 ? NULL : PyLong_FromSsize_t(n);
}


static PyObject* tr_write(SSLTransportObject* self, PyObject* data) {
  SSLProtocolObject* proto;
  int truth;
  int r;

  if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
    PyErr_Format(PyExc_TypeError, "data: expecting a bytes-like instance, got %s",
                 Py_TYPE(data)->tp_name);
    return NULL;
  }
  truth = PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data) != 0 : PyObject_IsTrue(data);
  if (truth <= 0)
    return truth < 0 ? NULL : Py_NewRef(Py_None);
  proto = app_proto(self, "_write_appdata");
  if (proto == NULL || app_check_thread(self) < 0)
    return NULL;
  Py_INCREF(proto);
  r = write_appdata(proto, data, NULL);
  Py_DECREF(proto);
  return result(r);
}


static PyObject* tr_writelines(SSLTransportObject* self, PyObject* lines) {
  SSLProtocolObject* proto;
  int r;

  proto = app_proto(self, "_write_appdata");
  if (proto == NULL || app_check_thread(self) < 0)
    return NULL;
  Py_INCREF(proto);
  r = write_appdata(proto, NULL, lines);
  Py_DECREF(proto);
  return result(r);
}


static PyObject* tr_write_eof(SSLTransportObject* self, PyObject* unused) {
  PyErr_SetNone(PyExc_NotImplementedError);
  return NULL;
}


static PyObject* tr_can_write_eof(SSLTransportObject* self, PyObject* unused) {
  Py_RETURN_FALSE;
}


static PyObject* tr_force_close(SSLTransportObject* self, PyObject* exc) {
  SSLProtocolObject* proto;
  int r;

  if (app_check_thread(self) < 0)
    return NULL;
  self->closed = 1;
  proto = self->proto;
  if (proto == NULL || proto->incoming == NULL)
    Py_RETURN_NONE;
  Py_INCREF(proto);
  /* What was gathered goes first, as it would have with asyncio. */
  r = flush_backlog(proto);
  if (r == 0)
    r = tls_abort(proto, exc == Py_None ? NULL : exc);
  Py_DECREF(proto);
  return result(r);
}


static PyObject* tr_abort(SSLTransportObject* self, PyObject* unused) {
  return tr_force_close(self, Py_None);
}


/* asyncio's hook for its tests: data in the backlog, as if the SSL object
 * had not taken it. */
static PyObject* tr_test_append_write_backlog(SSLTransportObject* self, PyObject* data) {
  SSLProtocolObject* proto = app_proto(self, "_write_backlog");
  Py_ssize_t len;

  if (proto == NULL)
    return NULL;
  len = buffer_len(data);
  if (len < 0)
    return NULL;
  if (proto->backlog == NULL && (proto->backlog = PyList_New(0)) == NULL)
    return NULL;
  if (PyList_Append(proto->backlog, data) < 0)
    return NULL;
  proto->write_buffer_size += (size_t) len;
  Py_RETURN_NONE;
}


static PyObject* tr_get_protocol_paused(SSLTransportObject* self, void* closure) {
  SSLProtocolObject* proto = app_proto(self, "_app_writing_paused");

  if (proto == NULL)
    return NULL;
  return PyBool_FromLong(proto->app_writing_paused);
}


static PyObject* tr_get_ssl_protocol(SSLTransportObject* self, void* closure) {
  return Py_NewRef(self->proto != NULL ? (PyObject*) self->proto : Py_None);
}


static PyObject* tr_get_loop(SSLTransportObject* self, void* closure) {
  return Py_NewRef(self->loop != NULL ? (PyObject*) self->loop : Py_None);
}


static PyObject* tr_get_start_tls_compatible(SSLTransportObject* self, void* closure) {
  Py_RETURN_TRUE;
}


static PyObject* tr_get_sendfile_compatible(SSLTransportObject* self, void* closure) {
  return Py_NewRef(auvpy_object_state(self)->tls->sendfile_fallback);
}


static int tr_traverse(SSLTransportObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->proto);
  Py_VISIT(self->loop);
  return 0;
}


static int tr_clear(SSLTransportObject* self) {
  Py_CLEAR(self->proto);
  Py_CLEAR(self->loop);
  return 0;
}


/* asyncio's __del__: an unclosed transport warns. */
static void tr_finalize(SSLTransportObject* self) {
  PyObject* type;
  PyObject* value;
  PyObject* tb;

  if (self->closed)
    return;
  self->closed = 1;
  PyErr_Fetch(&type, &value, &tb);
  if (PyErr_WarnEx(PyExc_ResourceWarning,
                   "unclosed transport <asyncuv.SSLTransport object>", 1) < 0)
    PyErr_WriteUnraisable((PyObject*) self);
  PyErr_Restore(type, value, tb);
}


static void tr_dealloc(SSLTransportObject* self) {
  PyTypeObject* tp = Py_TYPE(self);

  if (PyObject_CallFinalizerFromDealloc((PyObject*) self) < 0)
    return;
  PyObject_GC_UnTrack(self);
  if (self->weakreflist != NULL)
    PyObject_ClearWeakRefs((PyObject*) self);
  tr_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}


static PyMethodDef tr_methods[] = {
  {"get_extra_info", (PyCFunction) (void (*)(void)) tr_get_extra_info,
   METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("get_extra_info(name, default=None)\n--\n\n"
             "'sslcontext', 'ssl_object', 'peercert', 'cipher', 'compression', or "
             "what the raw transport knows.")},
  {"set_protocol", (PyCFunction) tr_set_protocol, METH_O, NULL},
  {"get_protocol", (PyCFunction) tr_get_protocol, METH_NOARGS, NULL},
  {"is_closing", (PyCFunction) tr_is_closing, METH_NOARGS, NULL},
  {"close", (PyCFunction) tr_close, METH_NOARGS,
   PyDoc_STR("Close after the TLS shutdown (close_notify); connection_lost(None) follows.")},
  {"is_reading", (PyCFunction) tr_is_reading, METH_NOARGS, NULL},
  {"pause_reading", (PyCFunction) tr_pause_reading, METH_NOARGS, NULL},
  {"resume_reading", (PyCFunction) tr_resume_reading, METH_NOARGS, NULL},
  {"set_write_buffer_limits", (PyCFunction) (void (*)(void)) tr_set_write_buffer_limits,
   METH_VARARGS | METH_KEYWORDS, NULL},
  {"get_write_buffer_limits", (PyCFunction) tr_get_write_buffer_limits, METH_NOARGS, NULL},
  {"get_write_buffer_size", (PyCFunction) tr_get_write_buffer_size, METH_NOARGS, NULL},
  {"set_read_buffer_limits", (PyCFunction) (void (*)(void)) tr_set_read_buffer_limits,
   METH_VARARGS | METH_KEYWORDS, NULL},
  {"get_read_buffer_limits", (PyCFunction) tr_get_read_buffer_limits, METH_NOARGS, NULL},
  {"get_read_buffer_size", (PyCFunction) tr_get_read_buffer_size, METH_NOARGS, NULL},
  {"write", (PyCFunction) tr_write, METH_O,
   PyDoc_STR("Write bytes: encrypted and sent now, or buffered.")},
  {"writelines", (PyCFunction) tr_writelines, METH_O, NULL},
  {"write_eof", (PyCFunction) tr_write_eof, METH_NOARGS,
   PyDoc_STR("Raise NotImplementedError: TLS has no half-close.")},
  {"can_write_eof", (PyCFunction) tr_can_write_eof, METH_NOARGS, NULL},
  {"abort", (PyCFunction) tr_abort, METH_NOARGS,
   PyDoc_STR("Close at once, without the TLS shutdown.")},
  {"_force_close", (PyCFunction) tr_force_close, METH_O, NULL},
  {"_test__append_write_backlog", (PyCFunction) tr_test_append_write_backlog, METH_O, NULL},
  {NULL}
};

static PyMemberDef tr_members[] = {
  {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(SSLTransportObject, weakreflist), Py_READONLY, NULL},
  {"_closed", Py_T_BOOL, offsetof(SSLTransportObject, closed), 0, NULL},
  {NULL}
};

static PyGetSetDef tr_getset[] = {
  {"_protocol_paused", (getter) tr_get_protocol_paused, NULL, NULL, NULL},
  {"_ssl_protocol", (getter) tr_get_ssl_protocol, NULL, NULL, NULL},
  {"_loop", (getter) tr_get_loop, NULL, NULL, NULL},
  {"_start_tls_compatible", (getter) tr_get_start_tls_compatible, NULL, NULL, NULL},
  {"_sendfile_compatible", (getter) tr_get_sendfile_compatible, NULL, NULL, NULL},
  {NULL}
};

static PyType_Slot tr_slots[] = {
  {Py_tp_doc, (void*) PyDoc_STR("The transport of a TLS connection (asyncio.Transport).")},
  {Py_tp_dealloc, tr_dealloc},
  {Py_tp_traverse, tr_traverse},
  {Py_tp_clear, tr_clear},
  {Py_tp_finalize, tr_finalize},
  {Py_tp_methods, tr_methods},
  {Py_tp_members, tr_members},
  {Py_tp_getset, tr_getset},
  {0, NULL}
};

static PyType_Spec tr_spec = {
  .name = "asyncuv._asyncuv.SSLTransport",
  .basicsize = sizeof(SSLTransportObject),
  .flags = AUV_TPFLAGS_ASYNCIO_SUBTYPE,
  .slots = tr_slots,
};


/* --- SSLProtocol: creation and type -------------------------------------------------- */

/* SSLProtocol._create(loop, app_protocol, sslcontext, waiter, server_side,
 * server_hostname, call_connection_made, ssl_handshake_timeout,
 * ssl_shutdown_timeout): asyncio's SSLProtocol(...), for the loop's
 * _make_ssl_transport() and start_tls(), which have resolved the context
 * (ssl=True) and the timeouts (None: asyncio's constants) and checked them. */
static PyObject* proto_create(PyTypeObject* type, PyObject* const* args, Py_ssize_t nargs) {
  auvpy_state* st;
  struct auvpy_tls_state* t;
  SSLProtocolObject* self;
  PyObject* hostname;
  PyObject* wrap_args[5];
  int server_side;
  int call_made;
  int truth;

  st = auvpy_state_from_type(type);
  if (st == NULL)
    return NULL;
  t = st->tls;
  if (nargs != 9) {
    PyErr_SetString(PyExc_TypeError, "_create() takes 9 arguments");
    return NULL;
  }
  if (!PyObject_TypeCheck(args[0], st->LoopType)) {
    PyErr_SetString(PyExc_TypeError, "_create() needs an asyncuv loop");
    return NULL;
  }
  server_side = PyObject_IsTrue(args[4]);
  call_made = PyObject_IsTrue(args[6]);
  truth = PyObject_IsTrue(args[5]);
  if (server_side < 0 || call_made < 0 || truth < 0)
    return NULL;

  self = PyObject_GC_New(SSLProtocolObject, type);
  if (self == NULL)
    return NULL;
  memset((char*) self + sizeof(PyObject), 0, sizeof(*self) - sizeof(PyObject));
  self->loop = (LoopObject*) Py_NewRef(args[0]);
  self->sslcontext = Py_NewRef(args[2]);
  self->waiter = args[3] != Py_None ? Py_NewRef(args[3]) : NULL;
  self->server_side = (char) server_side;
  self->handshake_timeout = Py_NewRef(args[7]);
  self->shutdown_timeout = Py_NewRef(args[8]);
  self->out_high = TLS_HIGH_WATER_WRITE * 1024;
  self->out_low = self->out_high / 4;
  self->in_high = TLS_HIGH_WATER_READ * 1024;
  self->in_low = self->in_high / 4;
  self->state = S_UNWRAPPED;
  self->app_state = call_made ? A_INIT : A_CON_MADE;
  PyObject_GC_Track(self);

  if (set_app_protocol(self, args[1]) < 0)
    goto error;
  self->incoming = PyObject_CallNoArgs(t->MemoryBIO);
  if (self->incoming == NULL)
    goto error;
  self->outgoing = PyObject_CallNoArgs(t->MemoryBIO);
  if (self->outgoing == NULL)
    goto error;
  hostname = truth && !server_side ? args[5] : Py_None;
  wrap_args[0] = self->sslcontext;
  wrap_args[1] = self->incoming;
  wrap_args[2] = self->outgoing;
  wrap_args[3] = server_side ? Py_True : Py_False;
  wrap_args[4] = hostname;
  self->sslobject = PyObject_VectorcallMethod(t->str_wrap_bio, wrap_args, 3, t->kw_wrap_bio);
  if (self->sslobject == NULL)
    goto error;
  /* A plain ssl.SSLObject only forwards to the _ssl object it wraps. */
  if (Py_IS_TYPE(self->sslobject, (PyTypeObject*) t->SSLObject)) {
    PyObject* inner = PyObject_GetAttr(self->sslobject, t->str_sslobj);
    if (inner != NULL && Py_IS_TYPE(inner, (PyTypeObject*) t->SSLSocketType)) {
      self->sslobj = inner;
      self->direct = 1;
    } else {
      Py_XDECREF(inner);
      PyErr_Clear();
    }
  }
  if (self->sslobj == NULL)
    self->sslobj = Py_NewRef(self->sslobject);

  self->app_transport = PyObject_GC_New(SSLTransportObject, st->SSLTransportType);
  if (self->app_transport == NULL)
    goto error;
  memset(self->app_transport->asyncio_slots, 0, sizeof(self->app_transport->asyncio_slots));
  self->app_transport->proto = (SSLProtocolObject*) Py_NewRef(self);
  self->app_transport->loop = (LoopObject*) Py_NewRef(self->loop);
  self->app_transport->weakreflist = NULL;
  self->app_transport->closed = 0;
  PyObject_GC_Track(self->app_transport);
  self->app_transport_created = 1;
  return (PyObject*) self;

error:
  if (self->app_transport != NULL)
    self->app_transport->closed = 1;
  Py_DECREF(self);
  return NULL;
}


/* A field of the protocol as asyncio's attribute of the same name (None
 * while it is unset): the getter's closure is the field's offset. */
static PyObject* proto_get_field(SSLProtocolObject* self, void* offset) {
  PyObject* value = *(PyObject**) ((char*) self + (size_t) offset);

  return Py_NewRef(value != NULL ? value : Py_None);
}

#define PROTO_FIELD(name, field)                                               \
  {name, (getter) proto_get_field, NULL, NULL,                                 \
   (void*) offsetof(SSLProtocolObject, field)}


static PyObject* proto_get_state(SSLProtocolObject* self, void* c) {
  return PyUnicode_FromString(state_names[self->state] + sizeof("SSLProtocolState"));
}


static int proto_traverse(SSLProtocolObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->loop);
  Py_VISIT(self->app_protocol);
  Py_VISIT(self->app_data_received);
  Py_VISIT(self->app_get_buffer);
  Py_VISIT(self->app_buffer_updated);
  Py_VISIT(self->sslcontext);
  Py_VISIT(self->sslobject);
  Py_VISIT(self->sslobj);
  Py_VISIT(self->incoming);
  Py_VISIT(self->outgoing);
  Py_VISIT(self->waiter);
  Py_VISIT(self->app_transport);
  Py_VISIT(self->transport);
  Py_VISIT(self->peercert);
  Py_VISIT(self->cipher);
  Py_VISIT(self->compression);
  Py_VISIT(self->backlog);
  Py_VISIT(self->handshake_timeout);
  Py_VISIT(self->shutdown_timeout);
  Py_VISIT(self->handshake_timeout_handle);
  Py_VISIT(self->shutdown_timeout_handle);
  Py_VISIT(self->out_limits);
  Py_VISIT(self->in_limits);
  Py_VISIT(self->rbuffer);
  Py_VISIT(self->rview);
  return 0;
}


static int proto_clear(SSLProtocolObject* self) {
  Py_CLEAR(self->loop);
  Py_CLEAR(self->app_protocol);
  Py_CLEAR(self->app_data_received);
  Py_CLEAR(self->app_get_buffer);
  Py_CLEAR(self->app_buffer_updated);
  Py_CLEAR(self->sslcontext);
  Py_CLEAR(self->sslobject);
  Py_CLEAR(self->sslobj);
  Py_CLEAR(self->incoming);
  Py_CLEAR(self->outgoing);
  Py_CLEAR(self->waiter);
  Py_CLEAR(self->app_transport);
  Py_CLEAR(self->transport);
  Py_CLEAR(self->peercert);
  Py_CLEAR(self->cipher);
  Py_CLEAR(self->compression);
  Py_CLEAR(self->backlog);
  Py_CLEAR(self->handshake_timeout);
  Py_CLEAR(self->shutdown_timeout);
  Py_CLEAR(self->handshake_timeout_handle);
  Py_CLEAR(self->shutdown_timeout_handle);
  Py_CLEAR(self->out_limits);
  Py_CLEAR(self->in_limits);
  Py_CLEAR(self->rview);
  Py_CLEAR(self->rbuffer);
  return 0;
}


static void proto_dealloc(SSLProtocolObject* self) {
  PyTypeObject* tp = Py_TYPE(self);

  PyObject_GC_UnTrack(self);
  if (self->weakreflist != NULL)
    PyObject_ClearWeakRefs((PyObject*) self);
  proto_clear(self);
  Py_CLEAR(self->view);
  tp->tp_free(self);
  Py_DECREF(tp);
}


static PyMethodDef proto_methods[] = {
  {"_create", (PyCFunction) (void (*)(void)) proto_create, METH_FASTCALL | METH_CLASS, NULL},
  {"connection_made", (PyCFunction) proto_connection_made, METH_O,
   PyDoc_STR("The raw transport is connected: start the handshake.")},
  {"connection_lost", (PyCFunction) proto_connection_lost, METH_O, NULL},
  {"get_buffer", (PyCFunction) proto_get_buffer, METH_O, NULL},
  {"buffer_updated", (PyCFunction) proto_buffer_updated, METH_O, NULL},
  {"eof_received", (PyCFunction) proto_eof_received, METH_NOARGS, NULL},
  {"pause_writing", (PyCFunction) proto_pause_writing, METH_NOARGS, NULL},
  {"resume_writing", (PyCFunction) proto_resume_writing, METH_NOARGS, NULL},
  {"_check_handshake_timeout", (PyCFunction) proto_check_handshake_timeout, METH_NOARGS, NULL},
  {"_check_shutdown_timeout", (PyCFunction) proto_check_shutdown_timeout, METH_NOARGS, NULL},
  {"_resume_cb", (PyCFunction) proto_resume_cb, METH_NOARGS, NULL},
  {"_do_read_cb", (PyCFunction) proto_do_read_cb, METH_NOARGS, NULL},
  {NULL}
};

static PyMemberDef proto_members[] = {
  {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(SSLProtocolObject, weakreflist), Py_READONLY, NULL},
  {"_server_side", Py_T_BOOL, offsetof(SSLProtocolObject, server_side), Py_READONLY, NULL},
  {"_app_reading_paused", Py_T_BOOL, offsetof(SSLProtocolObject, app_reading_paused), Py_READONLY, NULL},
  {"_app_writing_paused", Py_T_BOOL, offsetof(SSLProtocolObject, app_writing_paused), Py_READONLY, NULL},
  {"_ssl_reading_paused", Py_T_BOOL, offsetof(SSLProtocolObject, ssl_reading_paused), Py_READONLY, NULL},
  {"_ssl_writing_paused", Py_T_BOOL, offsetof(SSLProtocolObject, ssl_writing_paused), Py_READONLY, NULL},
  {"_conn_lost", Py_T_INT, offsetof(SSLProtocolObject, conn_lost), Py_READONLY, NULL},
  {NULL}
};

static PyGetSetDef proto_getset[] = {
  PROTO_FIELD("_app_transport", app_transport),
  PROTO_FIELD("_incoming", incoming),
  PROTO_FIELD("_outgoing", outgoing),
  PROTO_FIELD("_sslobj", sslobject),
  PROTO_FIELD("_sslcontext", sslcontext),
  PROTO_FIELD("_transport", transport),
  PROTO_FIELD("_app_protocol", app_protocol),
  {"_state", (getter) proto_get_state, NULL, NULL, NULL},
  {NULL}
};

static PyType_Slot proto_slots[] = {
  {Py_tp_doc, (void*) PyDoc_STR("asyncio's SSL protocol, in C: TLS between a raw "
                                "transport and the application's protocol.")},
  {Py_tp_dealloc, proto_dealloc},
  {Py_tp_traverse, proto_traverse},
  {Py_tp_clear, proto_clear},
  {Py_tp_methods, proto_methods},
  {Py_tp_members, proto_members},
  {Py_tp_getset, proto_getset},
  {0, NULL}
};

static PyType_Spec proto_spec = {
  .name = "asyncuv._asyncuv.SSLProtocol",
  .basicsize = sizeof(SSLProtocolObject),
  .flags = AUV_TPFLAGS_ASYNCIO_SUBTYPE,
  .slots = proto_slots,
};


/* --- Module ------------------------------------------------------------------------- */

/* type.name if it is a method descriptor of type's own, else NULL. */
static PyObject* method_descriptor(PyObject* type, const char* name) {
  PyObject* d = PyObject_GetAttrString(type, name);

  if (d != NULL && PyObject_TypeCheck(d, &PyMethodDescr_Type))
    return d;
  Py_XDECREF(d);
  PyErr_Clear();
  return NULL;
}


int auvpy_tls_init(PyObject* module, auvpy_state* st) {
  struct auvpy_tls_state* t;
  PyObject* base;
  PyObject* mode;

  if (st->SSLSocket == NULL)
    return 0;  /* Python built without ssl (module.c): asyncio's protocol is refused too */
  t = PyMem_Calloc(1, sizeof(*t));
  if (t == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  st->tls = t;

#define IMPORT(field, mod, name) AUVPY_IMPORT(t->field, mod, name)
  IMPORT(SSLObject, "ssl", "SSLObject");
  IMPORT(SSLSocketType, "_ssl", "_SSLSocket");
  IMPORT(MemoryBIO, "ssl", "MemoryBIO");
  IMPORT(SSLError, "ssl", "SSLError");
  IMPORT(SSLWantReadError, "ssl", "SSLWantReadError");
  IMPORT(SSLSyscallError, "ssl", "SSLSyscallError");
  IMPORT(CertificateError, "ssl", "CertificateError");
  IMPORT(CancelledError, "asyncio.exceptions", "CancelledError");
#undef IMPORT
  mode = auvpy_import_attr("asyncio.constants", "_SendfileMode");
  if (mode == NULL)
    return -1;
  t->sendfile_fallback = PyObject_GetAttrString(mode, "FALLBACK");
  Py_DECREF(mode);
  if (t->sendfile_fallback == NULL)
    return -1;

#define INTERN(field, text) AUVPY_INTERN(t->field, text)
  INTERN(str_read, "read");
  INTERN(str_write, "write");
  INTERN(str_do_handshake, "do_handshake");
  INTERN(str_getpeercert, "getpeercert");
  INTERN(str_cipher, "cipher");
  INTERN(str_compression, "compression");
  INTERN(str_pending, "pending");
  INTERN(str_shutdown, "shutdown");
  INTERN(str_unwrap, "unwrap");
  INTERN(str_sslobj, "_sslobj");
  INTERN(str_wrap_bio, "wrap_bio");
  INTERN(str_call_later, "call_later");
  INTERN(str_time, "time");
  INTERN(str_abort, "abort");
  INTERN(str_force_close, "_force_close");
  INTERN(str_pause_reading, "pause_reading");
  INTERN(str_resume_reading, "resume_reading");
  INTERN(str_get_extra_info, "get_extra_info");
  INTERN(str_check_handshake_timeout, "_check_handshake_timeout");
  INTERN(str_check_shutdown_timeout, "_check_shutdown_timeout");
  INTERN(str_resume_cb, "_resume_cb");
  INTERN(str_do_read_cb, "_do_read_cb");
  INTERN(str_sslcontext, "sslcontext");
  INTERN(str_peercert, "peercert");
  INTERN(str_cipher_key, "cipher");
  INTERN(str_compression_key, "compression");
  INTERN(str_ssl_object, "ssl_object");
#undef INTERN
  t->kw_wrap_bio = Py_BuildValue("(ss)", "server_side", "server_hostname");
  if (t->kw_wrap_bio == NULL)
    return -1;
  t->d_ssl_read = method_descriptor(t->SSLSocketType, "read");
  t->d_ssl_write = method_descriptor(t->SSLSocketType, "write");
  t->d_bio_read = method_descriptor(t->MemoryBIO, "read");
  t->d_bio_write = method_descriptor(t->MemoryBIO, "write");
  base = PyObject_GetAttrString(t->MemoryBIO, "pending");
  if (base != NULL && Py_TYPE(base)->tp_descr_get != NULL &&
      !PyObject_TypeCheck(base, &PyMethodDescr_Type))
    t->d_bio_pending = base;
  else
    Py_XDECREF(base);
  PyErr_Clear();

  t->ViewType = (PyTypeObject*) PyType_FromModuleAndSpec(module, &view_spec, NULL);
  if (t->ViewType == NULL)
    return -1;
  st->SSLProtocolType = (PyTypeObject*) PyType_FromModuleAndSpec(module, &proto_spec,
                                                                 st->BufferedProtocol);
  if (st->SSLProtocolType == NULL)
    return -1;
  base = auvpy_import_attr("asyncio.transports", "Transport");
  if (base == NULL)
    return -1;
  if (((PyTypeObject*) base)->tp_basicsize >
      (Py_ssize_t) offsetof(SSLTransportObject, proto)) {
    Py_DECREF(base);
    PyErr_SetString(PyExc_ImportError, "asyncuv: asyncio.Transport is larger "
                    "than this build of asyncuv allows");
    return -1;
  }
  st->SSLTransportType = (PyTypeObject*) PyType_FromModuleAndSpec(module, &tr_spec, base);
  Py_DECREF(base);
  if (st->SSLTransportType == NULL)
    return -1;
  if (PyModule_AddType(module, st->SSLProtocolType) < 0 ||
      PyModule_AddType(module, st->SSLTransportType) < 0)
    return -1;
  return 0;
}


#define TLS_FIELDS(X)                                                          \
  X(ViewType) X(SSLObject) X(SSLSocketType) X(MemoryBIO) X(SSLError)           \
  X(SSLWantReadError) X(SSLSyscallError) X(CertificateError) X(CancelledError) \
  X(sendfile_fallback) X(kw_wrap_bio) X(str_read) X(str_write)                 \
  X(d_ssl_read) X(d_ssl_write) X(d_bio_read) X(d_bio_write) X(d_bio_pending)   \
  X(str_do_handshake) X(str_getpeercert) X(str_cipher) X(str_compression)      \
  X(str_pending) X(str_shutdown) X(str_unwrap) X(str_sslobj) X(str_wrap_bio)   \
  X(str_call_later) X(str_time) X(str_abort) X(str_force_close)                \
  X(str_pause_reading) X(str_resume_reading) X(str_get_extra_info)             \
  X(str_check_handshake_timeout) X(str_check_shutdown_timeout)                 \
  X(str_resume_cb) X(str_do_read_cb) X(str_sslcontext) X(str_peercert)         \
  X(str_cipher_key) X(str_compression_key) X(str_ssl_object)

int auvpy_tls_traverse(auvpy_state* st, visitproc visit, void* arg) {
  struct auvpy_tls_state* t = st->tls;

  Py_VISIT(st->SSLProtocolType);
  Py_VISIT(st->SSLTransportType);
  if (t == NULL)
    return 0;
#define VISIT(f) Py_VISIT(t->f);
  TLS_FIELDS(VISIT)
#undef VISIT
  return 0;
}


void auvpy_tls_clear(auvpy_state* st) {
  struct auvpy_tls_state* t = st->tls;

  Py_CLEAR(st->SSLProtocolType);
  Py_CLEAR(st->SSLTransportType);
  if (t == NULL)
    return;
#define CLEAR(f) Py_CLEAR(t->f);
  TLS_FIELDS(CLEAR)
#undef CLEAR
}


void auvpy_tls_free(auvpy_state* st) {
  auvpy_tls_clear(st);
  PyMem_Free(st->tls);
  st->tls = NULL;
}

/* Private declarations of the asyncuv._asyncuv extension module.  Every
 * module file includes this header first: Python.h must come before the
 * standard headers (it sets feature macros such as _POSIX_C_SOURCE). */
#ifndef ASYNCUV_MODULE_H
#define ASYNCUV_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "compat.h"

#include "asyncuv.h"
#include "copy.h"

#define AUV_MOD_INTERNAL __attribute__((visibility("hidden")))

/* Flags of the types whose bases are asyncio's Python classes (Handle,
 * TimerHandle, Transport, DatagramTransport).  They cannot be immutable:
 * Python 3.12 deprecates an immutable type with a mutable base and 3.14
 * refuses to create one, so they are exactly as mutable as asyncio's own
 * classes.  Only the loop makes them: a bare Type() would inherit
 * object.__new__ through the Python base and give an empty object. */
#define AUV_TPFLAGS_ASYNCIO_SUBTYPE                                         \
  (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION)

/* Everything the module keeps: types, and the asyncio objects it calls. */
#define AUV_HANDLE_FREELIST 512
/* The loop's shared read buffer: transports and sock_recv read here. */
#define AUV_READ_BUF_SIZE (256 * 1024)
#define AUV_READ_BUF_ALIGN 4096

typedef struct HandleObject HandleObject;

typedef struct {
  PyTypeObject* LoopType;
  PyTypeObject* HandleType;
  PyTypeObject* TimerHandleType;
  PyTypeObject* ThreadSafeHandleType; /* NULL where asyncio has no
                                         events._ThreadSafeHandle (< 3.14) */
  PyTypeObject* FdWatcherType;
  PyTypeObject* TransportType;
  PyTypeObject* DatagramType;
  PyTypeObject* ListenerType;
  PyTypeObject* SockOpType;
  PyTypeObject* SockSendfileType;
  PyTypeObject* ChildWatchType;
  PyTypeObject* SSLProtocolType;    /* sslproto.c; NULL without ssl */
  PyTypeObject* SSLTransportType;
  struct auvpy_tls_state* tls;        /* sslproto.c's state; NULL without ssl */
  PyObject* SSLSocket;              /* ssl.SSLSocket, or NULL without ssl */
  PyObject* zero;                   /* 0, for sock.gettimeout() != 0 */
  PyObject* str_set_result;
  PyObject* str_set_exception;
  PyObject* socket_type;            /* socket.socket */
  PyObject* BufferedProtocol;       /* asyncio.BufferedProtocol */
  PyObject* TransportSocket;        /* asyncio.trsock.TransportSocket */
  PyObject* futures;                /* asyncio.futures */
  PyObject* futures_dict;           /* its __dict__: Future is looked up there */
  PyObject* tasks_dict;             /* asyncio.tasks.__dict__: Task likewise */
  /* Where dict watchers exist (3.12+), the two dicts are watched, and the
   * classes found there are kept until either dict changes (see
   * auvpy_asyncio_class()).  dict_watcher: PyDict_AddWatcher()'s id + 1, or
   * 0 without one. */
  int dict_watcher;
  unsigned long classes_epoch;      /* auvpy_asyncio_dicts_epoch when kept */
  PyObject* kept_Future;
  PyObject* kept_Task;

  PyObject* Future;                 /* asyncio.Future */
  PyObject* aio_Handle;             /* asyncio.Handle */
  PyObject* aio_TimerHandle;        /* asyncio.TimerHandle */
  PyObject* aio_ThreadSafeHandle;   /* asyncio.events._ThreadSafeHandle, or NULL */
  PyObject* Task;                   /* asyncio.Task */
  PyObject* iscoroutine;            /* asyncio.iscoroutine */
  PyObject* iscoroutinefunction;    /* what asyncio's loop checks callbacks with */
  PyObject* format_callback_source; /* asyncio.format_helpers._format_callback_source */
  PyObject* extract_stack;          /* asyncio.format_helpers.extract_stack */
  PyObject* format_handle;          /* asyncio.base_events._format_handle */
  PyObject* logger;                 /* asyncio.log.logger */
  PyObject* isfuture;               /* asyncio.isfuture */
  PyObject* ensure_future;          /* asyncio.ensure_future */
  PyObject* get_running_loop;       /* asyncio.events._get_running_loop */
  PyObject* set_running_loop;       /* asyncio.events._set_running_loop */
  PyObject* WeakSet;                /* weakref.WeakSet */
  PyObject* format_list;            /* traceback.format_list */
  PyObject* get_asyncgen_hooks;     /* sys.get_asyncgen_hooks */
  PyObject* set_asyncgen_hooks;     /* sys.set_asyncgen_hooks */
  PyObject* get_origin_depth;       /* sys.get_coroutine_origin_tracking_depth */
  PyObject* set_origin_depth;       /* sys.set_coroutine_origin_tracking_depth */
  PyObject* set_wakeup_fd;          /* signal.set_wakeup_fd */
  PyObject* stop_when_done;         /* our run_until_complete() callback */
  PyObject* coroutines;             /* asyncio.coroutines, for _is_debug_mode()
                                       (looked up per loop: tests patch it) */

  PyObject* kw_loop;                /* ("loop",) */
  PyObject* kw_loop_name;           /* ("loop", "name") */
  PyObject* kw_loop_context;        /* ("loop", "context") */
  PyObject* kw_loop_name_context;   /* ("loop", "name", "context") */
  PyObject* kw_context;             /* ("context",) */
  PyObject* seen_context_key;       /* the last "context" keyword seen */
  PyObject* kw_debug;               /* ("debug",) */
  PyObject* str_call_exception_handler;
  PyObject* str_set_name;
  PyObject* str_message;
  PyObject* str_exception;
  PyObject* str_handle;
  PyObject* str_source_traceback;
  PyObject* str_warning;
  PyObject* str_error;
  PyObject* str_debug;
  PyObject* str_run_forever;
  PyObject* str_close;
  PyObject* str_default_exception_handler;
  PyObject* str_log_destroy_pending;
  PyObject* str_add_done_callback;
  PyObject* str_remove_done_callback;
  PyObject* str_done;
  PyObject* str_cancelled;
  PyObject* str_result;
  PyObject* str_get_loop;
  PyObject* str_stop;
  PyObject* str_get_context;
  PyObject* str_run;
  PyObject* str_task;
  PyObject* str_future;
  PyObject* str_context;
  PyObject* str_name;
  PyObject* str_loop;
  PyObject* str_Future;
  PyObject* str_Task;
  PyObject* str_handle_traceback;
  PyObject* str_exc_info;
  PyObject* str_shutdown;
  PyObject* str_wait;
  PyObject* str_add;
  PyObject* str_discard;
  PyObject* str_aclose;
  PyObject* str_create_task;
  PyObject* str_firstiter;
  PyObject* str_finalizer;
  PyObject* str_warn_on_full_buffer;
  PyObject* str_set_origin_tracking;
  PyObject* str_call_soon_threadsafe;
  PyObject* str_get;
  PyObject* str_connection_made;
  PyObject* str_connection_lost;
  PyObject* str_call_connection_lost;
  PyObject* str_start_reading;
  PyObject* str_pause_writing;
  PyObject* str_resume_writing;
  PyObject* str_eof_received;
  PyObject* str_getsockname;
  PyObject* str_getpeername;
  PyObject* str_attach;
  PyObject* str_detach;
  PyObject* str_data_received;
  PyObject* str_get_buffer;
  PyObject* str_buffer_updated;
  PyObject* str_datagram_received;
  PyObject* str_error_received;
  PyObject* str_set_result_unless_cancelled;
  PyObject* str_is_closing;
  PyObject* str_fileno;
  PyObject* str_cancel;
  PyObject* str_sendto;
  PyObject* str_gettimeout;
  PyObject* str_firstiter_hook;
  PyObject* str_finalizer_hook;
  PyObject* empty_tuple;

  /* Dead handles kept for reuse (memory only: no references held). */
  HandleObject* handle_free[AUV_HANDLE_FREELIST];
  HandleObject* timer_free[AUV_HANDLE_FREELIST];
  int handle_nfree;
  int timer_nfree;
} auvpy_state;

typedef struct LoopObject LoopObject;

/* Handles subclass asyncio.Handle / asyncio.TimerHandle (CPython's loop
 * returns those, and code checks isinstance).  Their __slots__ storage comes
 * first; asyncuv keeps its own fields after it, at the same offset in both
 * types.  Import fails cleanly if a future asyncio outgrows the pad. */
#define AUV_ASYNCIO_HANDLE_PAD 12   /* a multiple of 4: see handle_clear_pad() */

struct HandleObject {
  PyObject_HEAD
  PyObject* asyncio_slots[AUV_ASYNCIO_HANDLE_PAD];
  LoopObject* loop;
  PyObject* callback;          /* NULL once cancelled */
  PyObject* args;              /* a tuple, or NULL: see arg0 */
  PyObject* arg0;              /* the one argument, while args is NULL: its
                                * tuple is made only if asked for (handle
                                * args); both NULL once cancelled */
  PyObject* context;
  PyObject* source_traceback;  /* debug mode only */
  PyObject* repr;              /* kept at cancel() in debug mode */
  char cancelled;
};

typedef struct {
  HandleObject base;
  double when;
  char scheduled;              /* in the engine's heap, owning a reference */
  /* auv_timer_size() bytes of engine timer follow, at auvpy_timer_offset. */
} TimerHandleObject;

struct LoopObject {
  PyObject_HEAD
  auv_loop_t* loop;            /* NULL once closed */
  auv_poll_t* signal_poll;     /* the signal wake-up fd, while running */
  struct FdWatcherObject** watchers;  /* add_reader()/add_writer() by fd */
  struct SockSendfileObject* sock_sendfiles;  /* running, sockops.c */
  auvpy_state* state;
  PyThreadState* tstate;       /* saved while blocked in the poll */
  PyObject* task_factory;
  PyObject* pending_exc;       /* a KeyboardInterrupt/SystemExit to re-raise */
  PyObject* exception_handler;
  PyObject* default_executor;
  PyObject* asyncgens;         /* weakref.WeakSet of live async generators */
  PyObject* fd_owners;         /* fd -> its transport */
  PyObject* listeners;         /* listening fd -> its _Listener */
  PyObject* signal_handlers;   /* signal number -> its Handle */
  char* read_buf;              /* transports read here for data_received() */
  PyObject* last_sockname;     /* shared by transports with equal names */
  PyObject* last_peer_host;
  void* drop_ctx;              /* auvpy_loop_drop_callbacks(), while it runs */
  size_t engine_holders;       /* C API loop_acquire()s not yet released */
  unsigned long thread_id;     /* of the thread running the loop, or 0 */
  double slow_callback_duration;
  int signal_fds[2];           /* wake-up socket pair, -1 until first run */
  int nwatchers;               /* length of watchers */
  int origin_saved_depth;
  char debug;
  char closed;
  char origin_tracking;
  char asyncgens_shutdown_called;
  char executor_shutdown_called;
};

AUV_MOD_INTERNAL extern size_t auvpy_timer_offset;

static inline auv_timer_t* auvpy_handle_timer(TimerHandleObject* th) {
  return (auv_timer_t*) ((char*) th + auvpy_timer_offset);
}

/* PyBytes_FromStringAndSize(src, n), copied with auv__copy(). */
static inline PyObject* auvpy_bytes_copy(const char* src, Py_ssize_t n) {
  PyObject* bytes;

  bytes = PyBytes_FromStringAndSize(NULL, n);
  if (bytes != NULL)
    auv__copy(PyBytes_AS_STRING(bytes), src, (size_t) n);
  return bytes;
}

AUV_MOD_INTERNAL auvpy_state* auvpy_state_from_type(PyTypeObject* tp);

/* The module state of an object of one of the module's own types (not a
 * subclass), found from its type: also when its loop is gone (released at
 * connection_lost(), or cleared by the garbage collector). */
static inline auvpy_state* auvpy_object_state(void* obj) {
  return (auvpy_state*) PyType_GetModuleState(Py_TYPE((PyObject*) obj));
}

/* handle.c */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_handle_spec;
AUV_MOD_INTERNAL extern PyType_Spec auvpy_timer_handle_spec;
AUV_MOD_INTERNAL HandleObject* auvpy_handle_new(auvpy_state* st, LoopObject* loop,
                                               PyObject* callback,
                                               PyObject* const* args,
                                               Py_ssize_t nargs,
                                               PyObject* context);
AUV_MOD_INTERNAL TimerHandleObject* auvpy_timer_handle_new(auvpy_state* st,
                                                          LoopObject* loop,
                                                          double when,
                                                          PyObject* callback,
                                                          PyObject* const* args,
                                                          Py_ssize_t nargs,
                                                          PyObject* context);
/* call_soon_threadsafe()'s handle where asyncio has one of its own (3.14):
 * cancel() from another thread waits for a running callback. */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_threadsafe_handle_spec;
AUV_MOD_INTERNAL HandleObject* auvpy_threadsafe_handle_new(auvpy_state* st,
                                                          LoopObject* loop,
                                                          PyObject* callback,
                                                          PyObject* const* args,
                                                          Py_ssize_t nargs,
                                                          PyObject* context);
AUV_MOD_INTERNAL void auvpy_threadsafe_handle_call_cb(auv_loop_t* loop, void* arg);
AUV_MOD_INTERNAL void auvpy_handle_run(HandleObject* h);
/* Drop the ready queue's reference to h (see handle.c on GC tracking). */
AUV_MOD_INTERNAL void auvpy_handle_release(HandleObject* h);
AUV_MOD_INTERNAL int auvpy_handle_visit_fields(HandleObject* h, visitproc visit, void* arg);
AUV_MOD_INTERNAL void auvpy_handle_freelist_clear(auvpy_state* st);
AUV_MOD_INTERNAL void auvpy_handle_call_cb(auv_loop_t* loop, void* arg);
AUV_MOD_INTERNAL void auvpy_timer_fire_cb(auv_timer_t* timer);
AUV_MOD_INTERNAL PyObject* auvpy_asyncio_class(auvpy_state* st, PyObject** kept,
                                               PyObject* dict, PyObject* name,
                                               const char* where);

/* Is a call in the engine's queue one of our handles (arg a HandleObject)? */
static inline int auvpy_is_handle_call(auv_call_cb cb) {
  return cb == auvpy_handle_call_cb || cb == auvpy_threadsafe_handle_call_cb;
}

/* loopbase.c: the LoopBase type, the C half of asyncuv.Loop */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_loop_spec;
AUV_MOD_INTERNAL void auvpy_loop_set_pending(LoopObject* loop);
/* Raise the loop's pending KeyboardInterrupt/SystemExit, if any: 1 if it
 * did (it is the current exception then), else 0. */
AUV_MOD_INTERNAL int auvpy_loop_raise_pending(LoopObject* loop);
AUV_MOD_INTERNAL int auvpy_loop_check_closed(LoopObject* loop);
/* RuntimeError unless the loop is idle or runs in this thread. */
AUV_MOD_INTERNAL int auvpy_loop_check_thread(LoopObject* loop);
AUV_MOD_INTERNAL char* auvpy_loop_read_buf(LoopObject* loop);
AUV_MOD_INTERNAL int auvpy_loop_call_soon(LoopObject* loop, PyObject* callable,
                                         PyObject* const* args, Py_ssize_t nargs);
AUV_MOD_INTERNAL int auvpy_loop_call_soon_method(LoopObject* loop, PyObject* obj,
                                                PyObject* name, PyObject* arg);
AUV_MOD_INTERNAL int auvpy_loop_wake_waiter_soon(LoopObject* loop, PyObject* waiter);
/* Free the engine of a closed loop, unless it is busy; 0 or UV_EBUSY. */
AUV_MOD_INTERNAL int auvpy_loop_free_engine(LoopObject* loop);

/* capi.c: the capsule of asyncuv-python.h */
AUV_MOD_INTERNAL int auvpy_capi_add(PyObject* module);

/* run.c: running, closing, debug mode, async generator hooks */
AUV_MOD_INTERNAL PyObject* auvpy_loop_run_forever(LoopObject* self, PyObject* unused);
AUV_MOD_INTERNAL PyObject* auvpy_loop_run_until_complete(LoopObject* self, PyObject* future);
AUV_MOD_INTERNAL PyObject* auvpy_loop_close(LoopObject* self, PyObject* unused);
AUV_MOD_INTERNAL PyObject* auvpy_loop_set_debug(LoopObject* self, PyObject* enabled);
AUV_MOD_INTERNAL PyObject* auvpy_loop_set_origin_tracking(LoopObject* self, PyObject* enabled);
AUV_MOD_INTERNAL PyObject* auvpy_loop_asyncgen_firstiter(LoopObject* self, PyObject* agen);
AUV_MOD_INTERNAL PyObject* auvpy_loop_asyncgen_finalizer(LoopObject* self, PyObject* agen);
AUV_MOD_INTERNAL PyObject* auvpy_stop_when_done(PyObject* module, PyObject* fut);
AUV_MOD_INTERNAL void auvpy_loop_drop_callbacks(LoopObject* self);
AUV_MOD_INTERNAL void auvpy_loop_stop_signal_wakeup(LoopObject* self);
AUV_MOD_INTERNAL PyObject* auvpy_loop_signal_wakeup_fd(LoopObject* self, PyObject* unused);
AUV_MOD_INTERNAL PyObject* auvpy_loop_make_signal_handle(LoopObject* self, PyObject* const* args,
                                                      Py_ssize_t nargs);

/* fdwatch.c: add_reader() and friends */
typedef struct FdWatcherObject FdWatcherObject;
AUV_MOD_INTERNAL extern PyType_Spec auvpy_fd_watcher_spec;
AUV_MOD_INTERNAL int auvpy_fileobj_to_fd(auvpy_state* st, PyObject* fileobj);
AUV_MOD_INTERNAL PyObject* auvpy_loop_add_reader(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);
AUV_MOD_INTERNAL PyObject* auvpy_loop_add_writer(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);
AUV_MOD_INTERNAL PyObject* auvpy_loop_remove_reader(LoopObject* self, PyObject* fd);
AUV_MOD_INTERNAL PyObject* auvpy_loop_remove_writer(LoopObject* self, PyObject* fd);
AUV_MOD_INTERNAL void auvpy_loop_free_watchers(LoopObject* self);
/* Cancel and drop every watcher (at close, and when the collector clears
 * the loop). */
AUV_MOD_INTERNAL void auvpy_loop_clear_watchers(LoopObject* self);
AUV_MOD_INTERNAL int auvpy_loop_visit_watchers(LoopObject* self, visitproc visit, void* arg);
AUV_MOD_INTERNAL PyObject* auvpy_loop_add_reader_handle(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);
AUV_MOD_INTERNAL PyObject* auvpy_loop_add_writer_handle(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);

/* listener.c: servers' listening sockets */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_listener_spec;
AUV_MOD_INTERNAL PyObject* auvpy_loop_listen(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);
AUV_MOD_INTERNAL PyObject* auvpy_loop_unlisten(LoopObject* self, PyObject* sock);
AUV_MOD_INTERNAL void auvpy_loop_close_listeners(LoopObject* self);
AUV_MOD_INTERNAL int auvpy_loop_visit_listeners(LoopObject* self, visitproc visit, void* arg);

/* transport.c: stream transports */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_transport_spec;
AUV_MOD_INTERNAL extern size_t auvpy_transport_pad_end;
AUV_MOD_INTERNAL PyObject* auvpy_loop_make_socket_transport(LoopObject* loop, PyObject* args, PyObject* kwargs);
AUV_MOD_INTERNAL PyObject* auvpy_loop_make_write_pipe_transport(LoopObject* loop, PyObject* args);
AUV_MOD_INTERNAL void auvpy_transport_close_stream(PyObject* transport);
AUV_MOD_INTERNAL int auvpy_transport_visit_engine_ref(PyObject* transport, visitproc visit,
                                                     void* arg);

/* module.c: modname.attr, imported (a new reference, or NULL); and what the
 * module's exec functions set their fields with: dst = modname.attr, or
 * an interned string, or "return -1" with the exception. */
AUV_MOD_INTERNAL PyObject* auvpy_import_attr(const char* modname, const char* attr);
#define AUVPY_IMPORT(dst, modname, attr)                           \
  do {                                                             \
    (dst) = auvpy_import_attr(modname, attr);                      \
    if ((dst) == NULL)                                             \
      return -1;                                                   \
  } while (0)
#define AUVPY_INTERN(dst, text)                                    \
  do {                                                             \
    (dst) = PyUnicode_InternFromString(text);                      \
    if ((dst) == NULL)                                             \
      return -1;                                                   \
  } while (0)

/* sslproto.c: TLS, asyncio's SSL protocol in C */
AUV_MOD_INTERNAL int auvpy_tls_init(PyObject* module, auvpy_state* st);
AUV_MOD_INTERNAL int auvpy_tls_traverse(auvpy_state* st, visitproc visit, void* arg);
AUV_MOD_INTERNAL void auvpy_tls_clear(auvpy_state* st);
AUV_MOD_INTERNAL void auvpy_tls_free(auvpy_state* st);
/* Ciphertext that a socket transport read, for its SSLProtocol (transport.c
 * calls it in place of buffer_updated()): 0, or -1 with an exception. */
AUV_MOD_INTERNAL int auvpy_sslproto_feed(PyObject* protocol, char* data, size_t len);

static inline int auvpy_is_sslproto(auvpy_state* st, PyObject* protocol) {
  return st->SSLProtocolType != NULL && Py_IS_TYPE(protocol, st->SSLProtocolType);
}

/* datagram.c: datagram transports */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_datagram_spec;
AUV_MOD_INTERNAL extern size_t auvpy_datagram_pad_end;
AUV_MOD_INTERNAL void auvpy_datagram_close_engine(PyObject* datagram);
AUV_MOD_INTERNAL int auvpy_datagram_visit_engine_ref(PyObject* datagram, visitproc visit,
                                                    void* arg);
AUV_MOD_INTERNAL PyObject* auvpy_loop_make_datagram_transport(LoopObject* loop, PyObject* args,
                                                             PyObject* kwargs);

/* childwatch.c: child exit watches on the engine */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_child_watch_spec;
AUV_MOD_INTERNAL PyObject* auvpy_loop_watch_child_exit(LoopObject* loop, PyObject* const* args,
                                                      Py_ssize_t nargs);

/* sockops.c: sock_recv, sock_recv_into, sock_sendall; sock_sendfile's
 * engine request */
AUV_MOD_INTERNAL extern PyType_Spec auvpy_sockop_spec;
AUV_MOD_INTERNAL extern PyType_Spec auvpy_sock_sendfile_spec;
AUV_MOD_INTERNAL PyObject* auvpy_loop_sock_sendfile(LoopObject* self, PyObject* const* args,
                                                   Py_ssize_t nargs);
AUV_MOD_INTERNAL void auvpy_loop_cancel_sock_sendfiles(LoopObject* self);
AUV_MOD_INTERNAL int auvpy_loop_visit_sock_sendfiles(LoopObject* self, visitproc visit, void* arg);
AUV_MOD_INTERNAL PyObject* auvpy_loop_sock_recv(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);
AUV_MOD_INTERNAL PyObject* auvpy_loop_sock_recv_into(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);
AUV_MOD_INTERNAL PyObject* auvpy_loop_sock_sendall(LoopObject* self, PyObject* const* args, Py_ssize_t nargs);

/* errors.c: the exception handler chain, exceptions from engine errors */
/* Is the current exception SystemExit or KeyboardInterrupt (which end a run
 * rather than go to the exception handler)? */
AUV_MOD_INTERNAL int auvpy_is_exit_exception(void);
/* Take the current exception: normalized, its traceback attached. */
AUV_MOD_INTERNAL PyObject* auvpy_take_exception(void);
/* logger.<level>(*args, exc_info=True), the current exception (taken)
 * being handled meanwhile, as asyncio logs from an except clause. */
AUV_MOD_INTERNAL void auvpy_log_with_exc_info(auvpy_state* st, PyObject* level, PyObject* args);
AUV_MOD_INTERNAL PyObject* auvpy_loop_call_exception_handler(LoopObject* self, PyObject* context);
AUV_MOD_INTERNAL PyObject* auvpy_loop_default_exception_handler(LoopObject* self, PyObject* context);
AUV_MOD_INTERNAL PyObject* auvpy_loop_set_exception_handler(LoopObject* self, PyObject* handler);
AUV_MOD_INTERNAL PyObject* auvpy_loop_get_exception_handler(LoopObject* self, PyObject* unused);

/* OSError from a negative errno (the engine's error codes), raised: NULL. */
AUV_MOD_INTERNAL PyObject* auvpy_oserror(int err);
/* The error of a sendfile request that failed with status after sending
 * `sent` bytes, raised as asyncio's sock_sendfile() raises it: NULL. */
AUV_MOD_INTERNAL PyObject* auvpy_sendfile_error(int status, uint64_t sent);

/* transport_common.c: what stream and datagram transports share. */
/* asyncio's default high-water mark of a transport's write buffer */
#define AUVPY_HIGH_WATER (64 * 1024)
/* asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */
#define AUVPY_CONNLOST_WRITES_LOG 5
/* Write flow control, asyncio's _FlowControlMixin: the protocol is paused
 * above `high` bytes queued and resumed at `low` or fewer. */
typedef struct {
  size_t high;
  size_t low;
  PyObject* limits;  /* (low, high) as set_write_buffer_limits() took them, or NULL */
  char paused;       /* pause_writing() called, resume_writing() not yet */
} auvpy_flow_t;
AUV_MOD_INTERNAL void auvpy_flow_init(auvpy_flow_t* flow);
AUV_MOD_INTERNAL int auvpy_parse_write_limits(PyObject* high_obj, PyObject* low_obj,
                                              size_t default_high, size_t* high,
                                              size_t* low, PyObject** limits);
AUV_MOD_INTERNAL int auvpy_flow_set_limits(auvpy_flow_t* flow, PyObject* high,
                                           PyObject* low);
AUV_MOD_INTERNAL PyObject* auvpy_flow_get_limits(const auvpy_flow_t* flow);
/* 1 when `size` bytes queued cross the high-water mark of a running
 * protocol: the caller then calls pause_writing() (auvpy_flow_call()). */
static inline int auvpy_flow_pause_due(auvpy_flow_t* flow, size_t size) {
  if (size <= flow->high || flow->paused)
    return 0;
  flow->paused = 1;
  return 1;
}
/* 1 when a paused protocol is due its resume_writing(). */
static inline int auvpy_flow_resume_due(auvpy_flow_t* flow, size_t size) {
  if (!flow->paused || size > flow->low)
    return 0;
  flow->paused = 0;
  return 1;
}
AUV_MOD_INTERNAL void auvpy_flow_call(LoopObject* loop, PyObject* transport,
                                      PyObject* protocol, PyObject* method,
                                      const char* message);
AUV_MOD_INTERNAL void auvpy_callback_failed(LoopObject* loop, PyObject* transport,
                                            PyObject* protocol, const char* message);
AUV_MOD_INTERNAL void auvpy_write_after_lost(LoopObject* loop, int* conn_lost);
AUV_MOD_INTERNAL PyObject* auvpy_connection_lost_call(auvpy_state* st, PyObject* protocol,
                                                      PyObject* exc, PyObject** error);
AUV_MOD_INTERNAL void auvpy_connection_lost_release(auvpy_state* st, LoopObject* loop,
                                                    PyObject* transport, int fd,
                                                    PyObject** sock);
AUV_MOD_INTERNAL PyObject* auvpy_connection_lost_return(PyObject* r, PyObject* error);
/* The loop's fd_owners: fd -> the transport that owns it. */
AUV_MOD_INTERNAL int auvpy_loop_own_fd(LoopObject* self, int fd, PyObject* owner);
AUV_MOD_INTERNAL void auvpy_loop_disown_fd(LoopObject* self, int fd, PyObject* owner);
/* RuntimeError (-1) if a transport that is not closing owns fd. */
AUV_MOD_INTERNAL int auvpy_loop_check_fd_unowned(LoopObject* self, PyObject* fileobj, int fd);
AUV_MOD_INTERNAL int auvpy_loop_visit_transports(LoopObject* self, visitproc visit, void* arg);
AUV_MOD_INTERNAL void auvpy_loop_close_transports(LoopObject* self);
AUV_MOD_INTERNAL void auvpy_finalize_unclosed(PyObject* transport, PyObject** sock,
                                             void (*release)(PyObject* transport));
AUV_MOD_INTERNAL void auvpy_report_transport_error(LoopObject* loop, PyObject* transport,
                                                  PyObject* protocol, const char* message,
                                                  PyObject* exc);

/* transport.c, shared with datagram.c: the arguments of get_extra_info(),
 * parsed as asyncio's transports do. */
AUV_MOD_INTERNAL const char* auvpy_type_name(PyObject* obj);
/* Enter ctx (a contextvars.Context) around protocol callbacks, as asyncio
 * runs them in the context current when the transport was made.  Returns
 * a reference to exit with auvpy_context_exit(), or NULL where there is
 * nothing to enter (no context, or it is entered already: a callback of
 * the same transport is running further up the stack). */
static inline PyObject* auvpy_context_enter(PyObject* ctx) {
  if (ctx == NULL)
    return NULL;
  if (PyContext_Enter(ctx) < 0) {
    PyErr_Clear();
    return NULL;
  }
  return Py_NewRef(ctx);
}
static inline void auvpy_context_exit(PyObject* ctx) {
  if (ctx == NULL)
    return;
  if (PyContext_Exit(ctx) < 0)
    PyErr_WriteUnraisable(ctx);
  Py_DECREF(ctx);
}
AUV_MOD_INTERNAL int auvpy_get_data_buffer(PyObject* data, Py_buffer* view, PyObject** copy);
AUV_MOD_INTERNAL int auvpy_parse_extra_info_args(PyObject* const* args, Py_ssize_t nargs,
                                                PyObject* kwnames, PyObject** name,
                                                PyObject** dflt);

#endif /* ASYNCUV_MODULE_H */

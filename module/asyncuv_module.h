/* Private declarations of the asyncuv._asyncuv extension module. */
#ifndef ASYNCUV_MODULE_H
#define ASYNCUV_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "asyncuv.h"

#define AUV_MOD_INTERNAL __attribute__((visibility("hidden")))

/* Everything the module keeps: types, and the asyncio objects it calls. */
#define AUV_HANDLE_FREELIST 512

typedef struct HandleObject HandleObject;

typedef struct {
  PyTypeObject* LoopType;
  PyTypeObject* HandleType;
  PyTypeObject* TimerHandleType;

  PyObject* Future;                 /* asyncio.Future */
  PyObject* aio_Handle;             /* asyncio.Handle */
  PyObject* aio_TimerHandle;        /* asyncio.TimerHandle */
  PyObject* Task;                   /* asyncio.Task */
  PyObject* iscoroutine;            /* asyncio.iscoroutine */
  PyObject* iscoroutinefunction;    /* asyncio.iscoroutinefunction */
  PyObject* format_callback_source; /* asyncio.format_helpers._format_callback_source */
  PyObject* extract_stack;          /* asyncio.format_helpers.extract_stack */
  PyObject* format_handle;          /* asyncio.base_events._format_handle */
  PyObject* logger;                 /* asyncio.log.logger */

  PyObject* kw_loop;                /* ("loop",) */
  PyObject* kw_loop_name;           /* ("loop", "name") */
  PyObject* kw_loop_context;        /* ("loop", "context") */
  PyObject* kw_loop_name_context;   /* ("loop", "name", "context") */
  PyObject* kw_context;             /* ("context",) */
  PyObject* str_call_exception_handler;
  PyObject* str_set_name;
  PyObject* str_message;
  PyObject* str_exception;
  PyObject* str_handle;
  PyObject* str_source_traceback;
  PyObject* str_warning;
  PyObject* empty_tuple;

  /* Dead handles kept for reuse (memory only: no references held). */
  HandleObject* handle_free[AUV_HANDLE_FREELIST];
  HandleObject* timer_free[AUV_HANDLE_FREELIST];
  int handle_nfree;
  int timer_nfree;
} auv_state;

typedef struct LoopObject LoopObject;

/* Handles subclass asyncio.Handle / asyncio.TimerHandle (CPython's loop
 * returns those, and code checks isinstance).  Their __slots__ storage comes
 * first; asyncuv keeps its own fields after it, at the same offset in both
 * types.  Import fails cleanly if a future asyncio outgrows the pad. */
#define AUV_ASYNCIO_HANDLE_PAD 12

struct HandleObject {
  PyObject_HEAD
  PyObject* asyncio_slots[AUV_ASYNCIO_HANDLE_PAD];
  LoopObject* loop;
  PyObject* callback;          /* NULL once cancelled */
  PyObject* args;              /* a tuple; NULL once cancelled */
  PyObject* context;
  PyObject* source_traceback;  /* debug mode only */
  PyObject* repr;              /* kept at cancel() in debug mode */
  char cancelled;
};

typedef struct {
  HandleObject base;
  double when;
  char scheduled;              /* in the engine's heap, owning a reference */
  /* auv_timer_size() bytes of engine timer follow, at auv__timer_offset. */
} TimerHandleObject;

struct LoopObject {
  PyObject_HEAD
  auv_loop_t* loop;            /* NULL once closed */
  auv_poll_t* signal_poll;     /* the signal wake-up fd, while running */
  auv_state* state;
  PyThreadState* tstate;       /* saved while blocked in the poll */
  PyObject* task_factory;
  PyObject* pending_type;      /* a KeyboardInterrupt/SystemExit to re-raise */
  PyObject* pending_value;
  PyObject* pending_tb;
  unsigned long thread_id;     /* of the thread running the loop, or 0 */
  double slow_callback_duration;
  char debug;
  char closed;
};

AUV_MOD_INTERNAL extern size_t auv__timer_offset;

static inline auv_timer_t* auv__handle_timer(TimerHandleObject* th) {
  return (auv_timer_t*) ((char*) th + auv__timer_offset);
}

AUV_MOD_INTERNAL auv_state* auv__state_from_type(PyTypeObject* tp);

/* handle.c */
AUV_MOD_INTERNAL extern PyType_Spec auv__handle_spec;
AUV_MOD_INTERNAL extern PyType_Spec auv__timer_handle_spec;
AUV_MOD_INTERNAL HandleObject* auv__handle_new(auv_state* st, LoopObject* loop,
                                               PyObject* callback,
                                               PyObject* const* args,
                                               Py_ssize_t nargs,
                                               PyObject* context);
AUV_MOD_INTERNAL TimerHandleObject* auv__timer_handle_new(auv_state* st,
                                                          LoopObject* loop,
                                                          double when,
                                                          PyObject* callback,
                                                          PyObject* const* args,
                                                          Py_ssize_t nargs,
                                                          PyObject* context);
AUV_MOD_INTERNAL void auv__handle_run(HandleObject* h);
/* Drop the ready queue's reference to h (see handle.c on GC tracking). */
AUV_MOD_INTERNAL void auv__handle_release(HandleObject* h);
AUV_MOD_INTERNAL int auv__handle_visit_fields(HandleObject* h, visitproc visit, void* arg);
AUV_MOD_INTERNAL void auv__handle_freelist_clear(auv_state* st);
AUV_MOD_INTERNAL void auv__handle_call_cb(auv_loop_t* loop, void* arg);
AUV_MOD_INTERNAL void auv__timer_fire_cb(auv_timer_t* timer);

/* loop.c */
AUV_MOD_INTERNAL extern PyType_Spec auv__loop_spec;
AUV_MOD_INTERNAL void auv__loop_set_pending(LoopObject* loop);

#endif /* ASYNCUV_MODULE_H */

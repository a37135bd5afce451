/* The C half of asyncuv.Loop: everything on the per-callback path.  The
 * Python class in asyncuv/__init__.py adds asyncio's cold paths (the
 * exception handler chain, async generator and executor shutdown) and
 * makes it an asyncio.AbstractEventLoop. */
#include "asyncuv_module.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static void loop_before_block(auv_loop_t* loop, void* arg) {
  LoopObject* self = arg;
  self->tstate = PyEval_SaveThread();
}


static void loop_after_block(auv_loop_t* loop, void* arg) {
  LoopObject* self = arg;
  PyEval_RestoreThread(self->tstate);
  self->tstate = NULL;
}


void auvpy_loop_set_pending(LoopObject* self) {
  PyObject* exc;

  exc = PyErr_GetRaisedException();
  if (self->pending_exc == NULL)
    self->pending_exc = exc;
  else
    Py_XDECREF(exc);  /* a second KeyboardInterrupt while unwinding: the
                         first one wins */
  if (self->loop != NULL)
    auv_loop_interrupt(self->loop);
}


int auvpy_loop_raise_pending(LoopObject* self) {
  if (self == NULL || self->pending_exc == NULL)
    return 0;
  PyErr_SetRaisedException(self->pending_exc);
  self->pending_exc = NULL;
  return 1;
}


/* Page-aligned on purpose: the kernel's copy to user memory (recv, read)
 * runs several times slower into a destination 16 bytes past a page
 * boundary, which is where malloc() puts a buffer this size (measured on
 * AMD EPYC: 0.7 GB/s against 4.4 GB/s; the 100 KiB echo went from 6,000 to
 * 20,000 requests/s). */
char* auvpy_loop_read_buf(LoopObject* self) {
  if (self->read_buf == NULL)
    self->read_buf = aligned_alloc(AUV_READ_BUF_ALIGN, AUV_READ_BUF_SIZE);
  return self->read_buf;
}


int auvpy_loop_check_closed(LoopObject* self) {
  if (self->closed) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return -1;
  }
  return 0;
}


/* asyncio's _check_thread(): a running loop is used from its own thread.
 * asyncio checks call_soon() and call_at() in debug mode.  asyncuv checks
 * in every mode what changes the engine's handles (transports, servers,
 * child watches): the loop's thread polls without the GIL, and libuv reads
 * their lists meanwhile. */
int auvpy_loop_check_thread(LoopObject* self) {
  if (self != NULL && self->thread_id != 0 &&
      self->thread_id != PyThread_get_thread_ident()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "Non-thread-safe operation invoked on an event loop "
                    "other than the current one");
    return -1;
  }
  return 0;
}


static int loop_is_coroutine(auvpy_state* st, PyObject* obj, PyObject* checker) {
  PyObject* r;
  int truth;

  r = PyObject_CallOneArg(checker, obj);
  if (r == NULL)
    return -1;
  truth = PyObject_IsTrue(r);
  Py_DECREF(r);
  return truth;
}


/* asyncio checks callbacks in debug mode only; a callback that cannot be
 * called is refused in every mode (it could only fail later, far from the
 * mistake).  Debug mode adds asyncio's coroutine-function check. */
static int loop_check_callback(LoopObject* self, PyObject* cb, const char* method) {
  auvpy_state* st;
  int r;

  st = self->state;
  if (self->debug) {
    r = loop_is_coroutine(st, cb, st->iscoroutine);
    if (r == 0)
      r = loop_is_coroutine(st, cb, st->iscoroutinefunction);
    if (r < 0)
      return -1;
    if (r > 0) {
      PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()", method);
      return -1;
    }
  }
  if (!PyCallable_Check(cb)) {
    if (PyCoro_CheckExact(cb) || loop_is_coroutine(st, cb, st->iscoroutine) > 0) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()", method);
      return -1;
    }
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError,
                 "a callable object was expected by %s(), got %R", method, cb);
    return -1;
  }
  return 0;
}


/* Parse the keyword-only `context=` that every call_* method takes. */
static int loop_parse_context_kw(auvpy_state* st, PyObject* kwnames,
                                 PyObject* const* kwvalues, PyObject** context,
                                 const char* method) {
  Py_ssize_t i;
  Py_ssize_t n;
  PyObject* key;

  n = PyTuple_GET_SIZE(kwnames);
  for (i = 0; i < n; i++) {
    key = PyTuple_GET_ITEM(kwnames, i);
    /* asyncio's C Task passes CPython's own "context" string, which is not
     * the one interned in module state on every version: remember the
     * last name object that matched. */
    if (key != st->str_context && key != st->seen_context_key) {
      if (!PyUnicode_Check(key) || PyUnicode_CompareWithASCIIString(key, "context") != 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got an unexpected keyword argument '%S'", method, key);
        return -1;
      }
      Py_XSETREF(st->seen_context_key, Py_NewRef(key));
    }
    *context = kwvalues[i];
  }
  return 0;
}


/* Most calls pass no keyword: that test stays in the caller. */
static inline int loop_parse_context(auvpy_state* st, PyObject* kwnames,
                                     PyObject* const* kwvalues,
                                     PyObject** context, const char* method) {
  *context = NULL;
  if (kwnames == NULL)
    return 0;
  return loop_parse_context_kw(st, kwnames, kwvalues, context, method);
}


static PyObject* loop_schedule_soon(LoopObject* self, PyObject* const* args,
                                    Py_ssize_t nargs, PyObject* kwnames,
                                    const char* method, int threadsafe) {
  PyObject* context;
  HandleObject* h;
  auv_call_cb call_cb;
  int err;

  if (loop_parse_context(self->state, kwnames, args + nargs, &context, method) < 0)
    return NULL;
  if (nargs < 1) {
    PyErr_Format(PyExc_TypeError,
                 "%s() missing 1 required positional argument: 'callback'",
                 method);
    return NULL;
  }
  if (auvpy_loop_check_closed(self) < 0)
    return NULL;
  if (self->debug && !threadsafe && auvpy_loop_check_thread(self) < 0)
    return NULL;
  if (loop_check_callback(self, args[0], method) < 0)
    return NULL;

  if (threadsafe && self->state->ThreadSafeHandleType != NULL) {
    h = auvpy_threadsafe_handle_new(self->state, self, args[0], args + 1,
                                   nargs - 1, context);
    call_cb = auvpy_threadsafe_handle_call_cb;
  } else {
    h = auvpy_handle_new(self->state, self, args[0], args + 1, nargs - 1, context);
    call_cb = auvpy_handle_call_cb;
  }
  if (h == NULL)
    return NULL;
  /* The ready queue's reference. */
  Py_INCREF(h);
  err = auv_loop_call_soon(self->loop, call_cb, h);
  if (err != 0) {
    Py_DECREF(h);
    Py_DECREF(h);
    return PyErr_NoMemory();
  }
  /* From another thread too: the GIL serialises the engine's ready queue,
   * so auv_loop_call_threadsafe()'s lock is not needed (asyncuv(7), "Data
   * path"); the wake-up is. */
  if (threadsafe)
    auv_loop_wakeup(self->loop);
  return (PyObject*) h;
}


static PyObject* loop_call_soon(LoopObject* self, PyObject* const* args,
                                Py_ssize_t nargs, PyObject* kwnames) {
  return loop_schedule_soon(self, args, nargs, kwnames, "call_soon", 0);
}


static PyObject* loop_call_soon_threadsafe(LoopObject* self, PyObject* const* args,
                                           Py_ssize_t nargs, PyObject* kwnames) {
  return loop_schedule_soon(self, args, nargs, kwnames,
                            "call_soon_threadsafe", 1);
}


static uint64_t loop_deadline(double when) {
  double ns;

  ns = when * 1e9;
  if (!(ns > 0))
    return 0;  /* the past, and NaN (which asyncio runs at once) */
  if (ns >= 18446744073709549568.0)
    return UINT64_MAX;
  return (uint64_t) ceil(ns);
}


static PyObject* loop_schedule_at(LoopObject* self, double when,
                                  PyObject* const* args, Py_ssize_t nargs,
                                  PyObject* context, const char* method) {
  TimerHandleObject* th;
  int err;

  if (auvpy_loop_check_closed(self) < 0)
    return NULL;
  if (self->debug && auvpy_loop_check_thread(self) < 0)
    return NULL;
  if (loop_check_callback(self, args[0], method) < 0)
    return NULL;

  th = auvpy_timer_handle_new(self->state, self, when, args[0], args + 1,
                             nargs - 1, context);
  if (th == NULL)
    return NULL;
  err = auv_timer_start(auvpy_handle_timer(th), auvpy_timer_fire_cb,
                        loop_deadline(when));
  if (err != 0) {
    Py_DECREF(th);
    return PyErr_NoMemory();
  }
  /* The heap's reference. */
  Py_INCREF(th);
  th->scheduled = 1;
  return (PyObject*) th;
}


/* call_later(delay, ...) and call_at(when, ...): the first argument is a
 * time, relative or absolute; errors carry call_at()'s name, as asyncio's
 * call_later() delegates to call_at(). */
static PyObject* loop_schedule_timer(LoopObject* self, PyObject* const* args,
                                     Py_ssize_t nargs, PyObject* kwnames,
                                     const char* method, const char* arg_name,
                                     const char* none_message, int relative) {
  PyObject* context;
  double t;

  if (loop_parse_context(self->state, kwnames, args + nargs, &context, method) < 0)
    return NULL;
  if (nargs < 2) {
    if (nargs == 1)
      PyErr_Format(PyExc_TypeError,
                   "%s() missing 1 required positional argument: 'callback'",
                   method);
    else
      PyErr_Format(PyExc_TypeError,
                   "%s() missing 2 required positional arguments: '%s' and "
                   "'callback'", method, arg_name);
    return NULL;
  }
  if (args[0] == Py_None) {
    PyErr_SetString(PyExc_TypeError, none_message);
    return NULL;
  }
  t = PyFloat_AsDouble(args[0]);
  if (t == -1.0 && PyErr_Occurred())
    return NULL;
  if (relative)
    t += (double) auv_loop_now(NULL) / 1e9;
  return loop_schedule_at(self, t, args + 1, nargs - 1, context, "call_at");
}


static PyObject* loop_call_later(LoopObject* self, PyObject* const* args,
                                 Py_ssize_t nargs, PyObject* kwnames) {
  return loop_schedule_timer(self, args, nargs, kwnames, "call_later", "delay",
                             "delay must not be None", 1);
}


static PyObject* loop_call_at(LoopObject* self, PyObject* const* args,
                              Py_ssize_t nargs, PyObject* kwnames) {
  return loop_schedule_timer(self, args, nargs, kwnames, "call_at", "when",
                             "when cannot be None", 0);
}


static PyObject* loop_time(LoopObject* self, PyObject* unused) {
  return PyFloat_FromDouble((double) auv_loop_now(self->loop) / 1e9);
}


static PyObject* loop_stop(LoopObject* self, PyObject* unused) {
  if (self->loop != NULL)
    auv_loop_stop(self->loop);
  Py_RETURN_NONE;
}


static PyObject* loop_is_running(LoopObject* self, PyObject* unused) {
  return PyBool_FromLong(self->thread_id != 0);
}


static PyObject* loop_is_closed(LoopObject* self, PyObject* unused) {
  return PyBool_FromLong(self->closed);
}


/* The engine's queue may hold calls of C extensions (asyncuv-python.h) as
 * well as our handles, and auv_loop_discard_calls() tells its dispose
 * callback only the argument: our handles are told apart by their address,
 * collected beforehand from the queue with their callback. */
typedef struct {
  void** ours;                 /* sorted */
  size_t count;
  size_t cap;
} drop_ctx_t;


static int loop_collect_call(auv_call_cb cb, void* arg, void* ctx) {
  drop_ctx_t* d = ctx;
  void** items;

  if (!auvpy_is_handle_call(cb))
    return 0;
  if (d->count == d->cap) {
    d->cap = d->cap == 0 ? 64 : 2 * d->cap;
    items = PyMem_RawRealloc(d->ours, d->cap * sizeof(*items));
    if (items == NULL)
      return -1;
    d->ours = items;
  }
  d->ours[d->count++] = arg;
  return 0;
}


static int loop_cmp_ptr(const void* a, const void* b) {
  uintptr_t x = (uintptr_t) *(void* const*) a;
  uintptr_t y = (uintptr_t) *(void* const*) b;
  return x < y ? -1 : x > y;
}


static void loop_dispose_call(auv_loop_t* loop, void* arg) {
  LoopObject* self = auv_loop_get_data(loop);
  drop_ctx_t* d = self->drop_ctx;

  /* Another extension's call is dropped, not run, as asyncio's close()
   * drops its callbacks. */
  if (d->count > 0 &&
      bsearch(&arg, d->ours, d->count, sizeof(void*), loop_cmp_ptr) != NULL)
    auvpy_handle_release(arg);
}


/* Drop every queued handle and scheduled timer, as asyncio's close()
 * clears _ready and _scheduled (without cancelling the handles).  Calls and
 * timers C extensions put on the engine are dropped too. */
void auvpy_loop_drop_callbacks(LoopObject* self) {
  TimerHandleObject* th;
  auv_timer_t* t;
  drop_ctx_t d = { NULL, 0, 0 };

  if (self->loop == NULL)
    return;
  if (auv_loop_walk_calls(self->loop, loop_collect_call, &d) != 0) {
    /* Out of memory: keep the queue (its references leak) rather than
     * guess which calls are ours. */
    PyMem_RawFree(d.ours);
    return;
  }
  if (d.count > 1)  /* qsort() of NULL is undefined, even of nothing */
    qsort(d.ours, d.count, sizeof(void*), loop_cmp_ptr);
  self->drop_ctx = &d;
  auv_loop_discard_calls(self->loop, loop_dispose_call);
  self->drop_ctx = NULL;
  PyMem_RawFree(d.ours);
  while ((t = auv_loop_next_timer(self->loop)) != NULL) {
    auv_timer_stop(t);
    if (auv_timer_get_cb(t) == auvpy_timer_fire_cb) {
      th = auv_timer_get_data(t);
      th->scheduled = 0;
      Py_DECREF(th);
    }
  }
}


int auvpy_loop_free_engine(LoopObject* self) {
  int err;

  if (self->loop == NULL)
    return 0;
  err = auv_loop_close(self->loop);
  if (err == 0)
    self->loop = NULL;
  return err;
}


static PyObject* loop_check_thread_method(LoopObject* self, PyObject* unused) {
  if (auvpy_loop_check_thread(self) < 0)
    return NULL;
  Py_RETURN_NONE;
}




static PyObject* loop_create_future(LoopObject* self, PyObject* unused) {
  PyObject* stack[1] = { (PyObject*) self };
  PyObject* cls;
  PyObject* fut;
  PyObject* running;

  cls = auvpy_asyncio_class(self->state, &self->state->kept_Future,
                            self->state->futures_dict, self->state->str_Future,
                            "asyncio.futures");
  if (cls == NULL)
    return NULL;
  /* Future() takes the running loop itself, at half the cost of
   * Future(loop=...), whose keyword makes the type call build a dict.
   * Before 3.12 asyncio's running-loop check calls getpid(2) each time
   * (fork safety): two system calls per future there, so always pass
   * loop= on those versions. */
#if PY_VERSION_HEX >= 0x030C0000
  running = self->thread_id != 0 ?
      PyObject_CallNoArgs(self->state->get_running_loop) : NULL;
#else
  running = NULL;
#endif
  if (running == (PyObject*) self)
    fut = PyObject_CallNoArgs(cls);
  else if (running == NULL && PyErr_Occurred())
    fut = NULL;
  else
    fut = PyObject_Vectorcall(cls, stack, 0, self->state->kw_loop);
  Py_XDECREF(running);
  Py_DECREF(cls);
  return fut;
}


static int kw_is(PyObject* key, PyObject* interned) {
  return key == interned || PyUnicode_Compare(key, interned) == 0;
}


static int kw_dropped(PyObject* key, PyObject* const* drop, int ndrop) {
  int j;

  for (j = 0; j < ndrop; j++)
    if (kw_is(key, drop[j]))
      return 1;
  return 0;
}


#define CREATE_TASK_STACK 8

/* callable(*prefix, **kwargs): kwargs are kwnames/kwvalues less the names
 * drop[0..ndrop), after first=first_value if first is not NULL. */
static PyObject* call_with_kwargs(PyObject* callable,
                                  PyObject* const* prefix, Py_ssize_t nprefix,
                                  PyObject* first, PyObject* first_value,
                                  PyObject* const* kwvalues, PyObject* kwnames,
                                  PyObject* const* drop, int ndrop) {
  PyObject* small[CREATE_TASK_STACK];
  PyObject** stack;
  PyObject* names;
  PyObject* key;
  PyObject* res;
  Py_ssize_t nkw;
  Py_ssize_t n;
  Py_ssize_t i;

  nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  n = first != NULL;
  for (i = 0; i < nkw; i++) {
    key = PyTuple_GET_ITEM(kwnames, i);
    if (kw_dropped(key, drop, ndrop))
      continue;
    if (first != NULL && kw_is(key, first)) {
      /* What a Python call with **kwargs says. */
      PyObject* mod = PyObject_GetAttrString(callable, "__module__");
      PyObject* qualname = mod == NULL ? NULL :
                           PyObject_GetAttrString(callable, "__qualname__");
      if (qualname != NULL)
        PyErr_Format(PyExc_TypeError,
                     "%S.%S() got multiple values for keyword argument '%U'",
                     mod, qualname, key);
      Py_XDECREF(mod);
      Py_XDECREF(qualname);
      return NULL;
    }
    n++;
  }
  if (n == 0)
    return PyObject_Vectorcall(callable, prefix, (size_t) nprefix, NULL);

  stack = small;
  if (nprefix + n > CREATE_TASK_STACK) {
    stack = PyMem_Malloc((size_t) (nprefix + n) * sizeof(PyObject*));
    if (stack == NULL)
      return PyErr_NoMemory();
  }
  names = PyTuple_New(n);
  if (names == NULL) {
    res = NULL;
    goto done;
  }
  for (i = 0; i < nprefix; i++)
    stack[i] = prefix[i];
  n = 0;
  if (first != NULL) {
    PyTuple_SET_ITEM(names, n, Py_NewRef(first));
    stack[nprefix + n++] = first_value;
  }
  for (i = 0; i < nkw; i++) {
    key = PyTuple_GET_ITEM(kwnames, i);
    if (kw_dropped(key, drop, ndrop))
      continue;
    PyTuple_SET_ITEM(names, n, Py_NewRef(key));
    stack[nprefix + n++] = kwvalues[i];
  }
  res = PyObject_Vectorcall(callable, stack, (size_t) nprefix, names);
  Py_DECREF(names);

done:
  if (stack != small)
    PyMem_Free(stack);
  return res;
}


/* Task(coro, loop=self, **kwargs), as asyncio's create_task() without a
 * task factory. */
static PyObject* loop_new_task(LoopObject* self, PyObject* coro,
                               PyObject* const* kwvalues, PyObject* kwnames) {
  auvpy_state* st = self->state;
  PyObject* stack[4];
  PyObject* task_class;
  PyObject* task;
  PyObject* kw;
  Py_ssize_t nkw;

  task_class = auvpy_asyncio_class(st, &st->kept_Task, st->tasks_dict,
                                   st->str_Task, "asyncio.tasks");
  if (task_class == NULL)
    return NULL;
  nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  stack[0] = coro;
  stack[1] = (PyObject*) self;
  kw = NULL;
  if (nkw == 0) {
    kw = st->kw_loop;
  } else if (nkw == 1 && kw_is(PyTuple_GET_ITEM(kwnames, 0), st->str_name)) {
    kw = st->kw_loop_name;
  } else if (nkw == 1 && kw_is(PyTuple_GET_ITEM(kwnames, 0), st->str_context)) {
    kw = st->kw_loop_context;
  } else if (nkw == 2 && kw_is(PyTuple_GET_ITEM(kwnames, 0), st->str_name) &&
             kw_is(PyTuple_GET_ITEM(kwnames, 1), st->str_context)) {
    kw = st->kw_loop_name_context;
  }
  if (kw != NULL) {
    memcpy(stack + 2, kwvalues, (size_t) nkw * sizeof(PyObject*));
    task = PyObject_Vectorcall(task_class, stack, 1, kw);
  } else {
    task = call_with_kwargs(task_class, stack, 1, st->str_loop,
                            (PyObject*) self, kwvalues, kwnames, NULL, 0);
  }
  Py_DECREF(task_class);
  return task;
}


/* create_task(coro, **kwargs) with asyncio's rules of this Python
 * (compat.h: auvpy_create_task_rule()): which keywords it takes, how a task
 * factory is called, and whether the name is set afterwards. */
static PyObject* loop_create_task(LoopObject* self, PyObject* const* args,
                                  Py_ssize_t nargs, PyObject* kwnames) {
  auvpy_state* st;
  auvpy_create_task_rule_t rule;
  PyObject* const* kwvalues;
  PyObject* name;
  PyObject* context;
  PyObject* drop[2] = { NULL, NULL };
  PyObject* stack[2];
  PyObject* task;
  PyObject* factory;
  PyObject* key;
  PyObject* r;
  Py_ssize_t nkw;
  Py_ssize_t i;
  int ndrop;

  st = self->state;
  if (nargs != 1) {
    PyErr_Format(PyExc_TypeError,
                 "create_task() takes 1 positional argument but %zd were given",
                 nargs);
    return NULL;
  }
  rule = auvpy_create_task_rule();
  kwvalues = args + 1;
  nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  name = Py_None;
  context = Py_None;
  for (i = 0; i < nkw; i++) {
    key = PyTuple_GET_ITEM(kwnames, i);
    if (kw_is(key, st->str_name)) {
      name = kwvalues[i];
    } else if (kw_is(key, st->str_context)) {
      context = kwvalues[i];
    } else if (rule == AUV_CREATE_TASK_NAME_CONTEXT ||
               rule == AUV_CREATE_TASK_NAME_CONTEXT_SET_NAME) {
      PyErr_Format(PyExc_TypeError,
                   "create_task() got an unexpected keyword argument '%S'", key);
      return NULL;
    }
  }
  if (auvpy_loop_check_closed(self) < 0)
    return NULL;

  if (self->task_factory == NULL)
    return loop_new_task(self, args[0], kwvalues, kwnames);

  /* Held for the call: the factory may replace itself. */
  factory = Py_NewRef(self->task_factory);
  stack[0] = (PyObject*) self;
  stack[1] = args[0];
  /* Before 3.13.3 and in later 3.13, the factory gets the keywords less
   * name, and context only if not None; the name is set on its task. */
  ndrop = 0;
  if (rule != AUV_CREATE_TASK_ALL_KWARGS) {
    drop[ndrop++] = st->str_name;
    if (context == Py_None)
      drop[ndrop++] = st->str_context;
  }
  task = call_with_kwargs(factory, stack, 2, NULL, NULL, kwvalues, kwnames,
                          drop, ndrop);
  Py_DECREF(factory);
  if (task == NULL || rule == AUV_CREATE_TASK_ALL_KWARGS ||
      (rule == AUV_CREATE_TASK_NAME_CONTEXT && name == Py_None))
    return task;
  r = PyObject_CallMethodOneArg(task, st->str_set_name, name);
  if (r == NULL) {
    Py_DECREF(task);
    return NULL;
  }
  Py_DECREF(r);
  return task;
}


static PyObject* loop_set_task_factory(LoopObject* self, PyObject* factory) {
  if (factory != Py_None && !PyCallable_Check(factory)) {
    PyErr_SetString(PyExc_TypeError, "task factory must be a callable or None");
    return NULL;
  }
  Py_XSETREF(self->task_factory, factory == Py_None ? NULL : Py_NewRef(factory));
  Py_RETURN_NONE;
}


static PyObject* loop_get_task_factory(LoopObject* self, PyObject* unused) {
  return Py_NewRef(self->task_factory ? self->task_factory : Py_None);
}


static PyObject* loop_get_debug(LoopObject* self, PyObject* unused) {
  return PyBool_FromLong(self->debug);
}


static PyObject* loop_get_debug_attr(LoopObject* self, void* closure) {
  return PyBool_FromLong(self->debug);
}


static int loop_set_debug_attr(LoopObject* self, PyObject* value, void* closure) {
  int truth;

  if (value == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete _debug");
    return -1;
  }
  truth = PyObject_IsTrue(value);
  if (truth < 0)
    return -1;
  self->debug = (char) truth;
  return 0;
}


static PyObject* loop_get_slow(LoopObject* self, void* closure) {
  return PyFloat_FromDouble(self->slow_callback_duration);
}


static int loop_set_slow(LoopObject* self, PyObject* value, void* closure) {
  double d;

  if (value == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete slow_callback_duration");
    return -1;
  }
  d = PyFloat_AsDouble(value);
  if (d == -1.0 && PyErr_Occurred())
    return -1;
  self->slow_callback_duration = d;
  return 0;
}


static PyObject* loop_get_default_executor(LoopObject* self, void* closure) {
  return Py_NewRef(self->default_executor ? self->default_executor : Py_None);
}


static int loop_set_default_executor(LoopObject* self, PyObject* value,
                                     void* closure) {
  Py_XSETREF(self->default_executor,
             value == NULL || value == Py_None ? NULL : Py_NewRef(value));
  return 0;
}


static PyObject* loop_get_engine_holders(LoopObject* self, void* closure) {
  return PyLong_FromSize_t(self->engine_holders);
}


static PyObject* loop_get_asyncgens(LoopObject* self, void* closure) {
  return Py_NewRef(self->asyncgens != NULL ? self->asyncgens : Py_None);
}


static PyObject* loop_repr(LoopObject* self) {
  PyObject* name;
  PyObject* res;

  name = PyType_GetName(Py_TYPE(self));
  if (name == NULL)
    return NULL;
  res = PyUnicode_FromFormat("<%U running=%s closed=%s debug=%s>", name,
                             self->thread_id != 0 ? "True" : "False",
                             self->closed ? "True" : "False",
                             self->debug ? "True" : "False");
  Py_DECREF(name);
  return res;
}


/* An unclosed loop warns when collected, and is closed if it can be. */
static void loop_finalize(LoopObject* self) {
  PyObject* exc;
  PyObject* r;

  if (self->closed)
    return;
  exc = PyErr_GetRaisedException();
  if (PyErr_ResourceWarning((PyObject*) self, 1, "unclosed event loop %R", self) < 0)
    PyErr_WriteUnraisable((PyObject*) self);
  if (self->thread_id == 0) {
    r = PyObject_CallMethodNoArgs((PyObject*) self, self->state->str_close);
    if (r == NULL)
      PyErr_WriteUnraisable((PyObject*) self);
    Py_XDECREF(r);
  }
  PyErr_SetRaisedException(exc);
}


static PyObject* loop_get_thread_id(LoopObject* self, void* closure) {
  if (self->thread_id == 0)
    Py_RETURN_NONE;
  return PyLong_FromUnsignedLong(self->thread_id);
}


/* callable(*args) soon, as a Handle in the ready queue: what asyncio's
 * transports do with loop.call_soon().  -1 with an exception set if the
 * loop is closed or out of memory. */
int auvpy_loop_call_soon(LoopObject* loop, PyObject* callable,
                        PyObject* const* args, Py_ssize_t nargs) {
  HandleObject* h;

  if (loop == NULL || auvpy_loop_check_closed(loop) < 0) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return -1;
  }
  h = auvpy_handle_new(loop->state, loop, callable, args, nargs, NULL);
  if (h == NULL)
    return -1;
  if (auv_loop_call_soon(loop->loop, auvpy_handle_call_cb, h) != 0) {
    Py_DECREF(h);
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}


/* getattr(obj, name)(arg) soon (no argument if arg is NULL). */
int auvpy_loop_call_soon_method(LoopObject* loop, PyObject* obj, PyObject* name,
                               PyObject* arg) {
  PyObject* method;
  int r;

  method = PyObject_GetAttr(obj, name);
  if (method == NULL)
    return -1;
  r = auvpy_loop_call_soon(loop, method, &arg, arg != NULL ? 1 : 0);
  Py_DECREF(method);
  return r;
}


/* futures._set_result_unless_cancelled(waiter, None) soon: a transport's
 * waiter is woken after connection_made(). */
int auvpy_loop_wake_waiter_soon(LoopObject* loop, PyObject* waiter) {
  PyObject* set_result;
  PyObject* args[2] = { waiter, Py_None };
  int r;

  set_result = PyObject_GetAttr(loop->state->futures,
                                loop->state->str_set_result_unless_cancelled);
  if (set_result == NULL)
    return -1;
  r = auvpy_loop_call_soon(loop, set_result, args, 2);
  Py_DECREF(set_result);
  return r;
}


static PyObject* loop_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  LoopObject* self;
  PyObject* debug;
  int err;

  self = (LoopObject*) type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  self->state = auvpy_state_from_type(type);
  if (self->state == NULL) {
    Py_DECREF(self);
    return NULL;
  }
  self->slow_callback_duration = 0.1;
  self->signal_fds[0] = self->signal_fds[1] = -1;
  self->fd_owners = PyDict_New();
  self->listeners = self->fd_owners == NULL ? NULL : PyDict_New();
  self->signal_handlers = self->listeners == NULL ? NULL : PyDict_New();
  self->asyncgens = self->signal_handlers == NULL ? NULL :
                    PyObject_CallNoArgs(self->state->WeakSet);
  debug = self->asyncgens == NULL ? NULL :
          PyObject_CallMethod(self->state->coroutines, "_is_debug_mode", NULL);
  if (debug != NULL) {
    self->debug = (char) (PyObject_IsTrue(debug) > 0);
    Py_DECREF(debug);
  }
  if (debug == NULL) {
    self->closed = 1;
    Py_DECREF(self);
    return NULL;
  }
  err = auv_loop_new(&self->loop);
  if (err != 0) {
    self->closed = 1;
    Py_DECREF(self);
    PyErr_Format(PyExc_OSError, "cannot create the engine loop: %s",
                 auv_strerror(err));
    return NULL;
  }
  auv_loop_set_data(self->loop, self);
  auv_loop_set_block_hooks(self->loop, loop_before_block, loop_after_block, self);
  return (PyObject*) self;
}


static int loop_visit_call(auv_call_cb cb, void* arg, void* ctx) {
  void** v = ctx;

  HandleObject* h;

  if (!auvpy_is_handle_call(cb))
    return 0;
  h = arg;
  /* An untracked handle that only the queue holds is, for the collector,
   * part of the loop: visit what it references. */
  if (!PyObject_GC_IsTracked((PyObject*) h) && Py_REFCNT(h) == 1)
    return auvpy_handle_visit_fields(h, (visitproc) v[0], v[1]);
  return ((visitproc) v[0])((PyObject*) h, v[1]);
}


static int loop_visit_timer(auv_timer_t* t, void* ctx) {
  void** v = ctx;

  if (auv_timer_get_cb(t) == auvpy_timer_fire_cb)
    return ((visitproc) v[0])((PyObject*) auv_timer_get_data(t), v[1]);
  return 0;
}


static int loop_traverse(LoopObject* self, visitproc visit, void* arg) {
  void* ctx[2] = { (void*) visit, arg };
  int r;

  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->task_factory);
  Py_VISIT(self->exception_handler);
  Py_VISIT(self->default_executor);
  Py_VISIT(self->asyncgens);
  Py_VISIT(self->fd_owners);
  r = auvpy_loop_visit_watchers(self, visit, arg);
  if (r != 0)
    return r;
  r = auvpy_loop_visit_transports(self, visit, arg);
  if (r != 0)
    return r;
  r = auvpy_loop_visit_listeners(self, visit, arg);
  if (r != 0)
    return r;
  r = auvpy_loop_visit_sock_sendfiles(self, visit, arg);
  if (r != 0)
    return r;
  Py_VISIT(self->last_sockname);
  Py_VISIT(self->last_peer_host);
  Py_VISIT(self->listeners);
  Py_VISIT(self->signal_handlers);
  Py_VISIT(self->pending_exc);
  if (self->loop != NULL) {
    r = auv_loop_walk_calls(self->loop, loop_visit_call, ctx);
    if (r != 0)
      return r;
    r = auv_loop_walk_timers(self->loop, loop_visit_timer, ctx);
    if (r != 0)
      return r;
  }
  return 0;
}


static int loop_clear(LoopObject* self) {
  /* What the collector clears is unusable, and every method says so. */
  self->closed = 1;
  Py_CLEAR(self->task_factory);
  Py_CLEAR(self->exception_handler);
  Py_CLEAR(self->default_executor);
  Py_CLEAR(self->asyncgens);
  Py_CLEAR(self->fd_owners);
  auvpy_loop_clear_watchers(self);
  Py_CLEAR(self->last_sockname);
  Py_CLEAR(self->last_peer_host);
  Py_CLEAR(self->listeners);
  Py_CLEAR(self->signal_handlers);
  Py_CLEAR(self->pending_exc);
  if (self->thread_id == 0)
    auvpy_loop_drop_callbacks(self);
  return 0;
}


static void loop_dealloc(LoopObject* self) {
  PyTypeObject* tp;

  tp = Py_TYPE(self);
  if (tp->tp_finalize != NULL &&
      PyObject_CallFinalizerFromDealloc((PyObject*) self) < 0)
    return;  /* resurrected */
  PyObject_GC_UnTrack(self);
  loop_clear(self);
  auvpy_loop_stop_signal_wakeup(self);
  auvpy_loop_free_watchers(self);
  auvpy_loop_free_engine(self);
  if (self->signal_fds[0] >= 0) {
    close(self->signal_fds[0]);
    close(self->signal_fds[1]);
  }
  free(self->read_buf);
  tp->tp_free(self);
  Py_DECREF(tp);
}


static PyMethodDef loop_methods[] = {
  {"call_soon", (PyCFunction) (void (*)(void)) loop_call_soon,
   METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("call_soon(callback, *args, context=None)\n--\n\n"
             "Arrange for callback(*args) to be called soon; return a Handle.")},
  {"call_soon_threadsafe", (PyCFunction) (void (*)(void)) loop_call_soon_threadsafe,
   METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("call_soon_threadsafe(callback, *args, context=None)\n--\n\n"
             "Like call_soon(), but callable from any thread.")},
  {"call_later", (PyCFunction) (void (*)(void)) loop_call_later,
   METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("call_later(delay, callback, *args, context=None)\n--\n\n"
             "Arrange for callback(*args) to be called after delay seconds.")},
  {"call_at", (PyCFunction) (void (*)(void)) loop_call_at,
   METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("call_at(when, callback, *args, context=None)\n--\n\n"
             "Arrange for callback(*args) to be called at loop time when.")},
  {"time", (PyCFunction) loop_time, METH_NOARGS,
   PyDoc_STR("Return the loop's time: the monotonic clock, in seconds.")},
  {"run_forever", (PyCFunction) auvpy_loop_run_forever, METH_NOARGS,
   PyDoc_STR("Run until stop() is called.")},
  {"run_until_complete", (PyCFunction) auvpy_loop_run_until_complete, METH_O,
   PyDoc_STR("Run until the future (or coroutine, wrapped in a Task) is done; "
             "return its result or raise its exception.")},
  {"set_debug", (PyCFunction) auvpy_loop_set_debug, METH_O,
   PyDoc_STR("Turn debug mode on or off.")},
  {"_set_coroutine_origin_tracking", (PyCFunction) auvpy_loop_set_origin_tracking,
   METH_O, NULL},
  {"_asyncgen_firstiter_hook", (PyCFunction) auvpy_loop_asyncgen_firstiter, METH_O, NULL},
  {"_asyncgen_finalizer_hook", (PyCFunction) auvpy_loop_asyncgen_finalizer, METH_O, NULL},
  {"call_exception_handler", (PyCFunction) auvpy_loop_call_exception_handler, METH_O,
   PyDoc_STR("Pass an error context to the exception handler.")},
  {"default_exception_handler", (PyCFunction) auvpy_loop_default_exception_handler,
   METH_O, PyDoc_STR("Log an error context on the 'asyncio' logger.")},
  {"set_exception_handler", (PyCFunction) auvpy_loop_set_exception_handler, METH_O,
   PyDoc_STR("Set the exception handler, a callable(loop, context), or None.")},
  {"get_exception_handler", (PyCFunction) auvpy_loop_get_exception_handler,
   METH_NOARGS, PyDoc_STR("Return the exception handler, or None.")},
  {"_make_socket_transport", (PyCFunction) (void (*)(void)) auvpy_loop_make_socket_transport,
   METH_VARARGS | METH_KEYWORDS, NULL},
  {"_make_write_pipe_transport", (PyCFunction) auvpy_loop_make_write_pipe_transport,
   METH_VARARGS, NULL},
  {"_make_datagram_transport", (PyCFunction) (void (*)(void)) auvpy_loop_make_datagram_transport,
   METH_VARARGS | METH_KEYWORDS, NULL},
  {"add_reader", (PyCFunction) (void (*)(void)) auvpy_loop_add_reader, METH_FASTCALL,
   PyDoc_STR("add_reader(fd, callback, *args)\n--\n\n"
             "Call callback(*args) whenever fd is readable.")},
  {"add_writer", (PyCFunction) (void (*)(void)) auvpy_loop_add_writer, METH_FASTCALL,
   PyDoc_STR("add_writer(fd, callback, *args)\n--\n\n"
             "Call callback(*args) whenever fd is writable.")},
  {"_add_reader", (PyCFunction) (void (*)(void)) auvpy_loop_add_reader_handle, METH_FASTCALL, NULL},
  {"_add_writer", (PyCFunction) (void (*)(void)) auvpy_loop_add_writer_handle, METH_FASTCALL, NULL},
  {"_sock_recv", (PyCFunction) (void (*)(void)) auvpy_loop_sock_recv, METH_FASTCALL, NULL},
  {"_watch_child_exit", (PyCFunction) (void (*)(void)) auvpy_loop_watch_child_exit,
   METH_FASTCALL, NULL},
  {"_sock_recv_into", (PyCFunction) (void (*)(void)) auvpy_loop_sock_recv_into, METH_FASTCALL, NULL},
  {"_sock_sendall", (PyCFunction) (void (*)(void)) auvpy_loop_sock_sendall, METH_FASTCALL, NULL},
  {"_sock_sendfile", (PyCFunction) (void (*)(void)) auvpy_loop_sock_sendfile, METH_FASTCALL, NULL},
  {"_listen", (PyCFunction) (void (*)(void)) auvpy_loop_listen, METH_FASTCALL, NULL},
  {"_unlisten", (PyCFunction) auvpy_loop_unlisten, METH_O, NULL},
  {"_signal_wakeup_fd", (PyCFunction) auvpy_loop_signal_wakeup_fd, METH_NOARGS, NULL},
  {"_make_signal_handle", (PyCFunction) (void (*)(void)) auvpy_loop_make_signal_handle,
   METH_FASTCALL, NULL},
  {"remove_reader", (PyCFunction) auvpy_loop_remove_reader, METH_O,
   PyDoc_STR("Stop watching fd for reading; return True if it was watched.")},
  {"remove_writer", (PyCFunction) auvpy_loop_remove_writer, METH_O,
   PyDoc_STR("Stop watching fd for writing; return True if it was watched.")},
  {"stop", (PyCFunction) loop_stop, METH_NOARGS,
   PyDoc_STR("Stop the loop after the current iteration.")},
  {"is_running", (PyCFunction) loop_is_running, METH_NOARGS,
   PyDoc_STR("Return True if the loop is running.")},
  {"is_closed", (PyCFunction) loop_is_closed, METH_NOARGS,
   PyDoc_STR("Return True if the loop was closed.")},
  {"close", (PyCFunction) auvpy_loop_close, METH_NOARGS,
   PyDoc_STR("Close the loop: drop pending callbacks, shut the default "
             "executor down.  Not while running; idempotent.")},
  {"_check_thread", (PyCFunction) loop_check_thread_method, METH_NOARGS,
   PyDoc_STR("RuntimeError if the loop runs in another thread (asyncio's check).")},
  {"create_future", (PyCFunction) loop_create_future, METH_NOARGS,
   PyDoc_STR("Create an asyncio.Future attached to the loop.")},
  {"create_task", (PyCFunction) (void (*)(void)) loop_create_task,
   METH_FASTCALL | METH_KEYWORDS,
   PyDoc_STR("create_task(coro, *, name=None, context=None, **kwargs)\n--\n\n"
             "Schedule a coroutine; return its Task.  The keywords go to\n"
             "the task factory or Task() as asyncio's loop passes them on\n"
             "this Python (other keywords from 3.13.3 on, e.g. 3.14's\n"
             "eager_start=).")},
  {"set_task_factory", (PyCFunction) loop_set_task_factory, METH_O,
   PyDoc_STR("Set the factory create_task() uses (None for the default).")},
  {"get_task_factory", (PyCFunction) loop_get_task_factory, METH_NOARGS,
   PyDoc_STR("Return the task factory, or None.")},
  {"get_debug", (PyCFunction) loop_get_debug, METH_NOARGS,
   PyDoc_STR("Return True if debug mode is on.")},
  {NULL}
};

static PyGetSetDef loop_getset[] = {
  {"_debug", (getter) loop_get_debug_attr, (setter) loop_set_debug_attr, NULL, NULL},
  {"slow_callback_duration", (getter) loop_get_slow, (setter) loop_set_slow,
   PyDoc_STR("Callbacks that take longer (in seconds) are logged in debug mode."),
   NULL},
  {"_thread_id", (getter) loop_get_thread_id, NULL, NULL, NULL},
  {"_default_executor", (getter) loop_get_default_executor,
   (setter) loop_set_default_executor, NULL, NULL},
  {"_asyncgens", (getter) loop_get_asyncgens, NULL, NULL, NULL},
  {"_engine_holders", (getter) loop_get_engine_holders, NULL,
   PyDoc_STR("C API loop_acquire()s not yet released (asyncuv-python.h)."), NULL},
  {"_exception_handler", (getter) auvpy_loop_get_exception_handler, NULL, NULL, NULL},
  {NULL}
};

static PyMemberDef loop_members[] = {
  {"_signal_handlers", Py_T_OBJECT_EX, offsetof(LoopObject, signal_handlers), Py_READONLY, NULL},
  {"_executor_shutdown_called", Py_T_BOOL,
   offsetof(LoopObject, executor_shutdown_called), 0, NULL},
  {"_asyncgens_shutdown_called", Py_T_BOOL,
   offsetof(LoopObject, asyncgens_shutdown_called), 0, NULL},
  {NULL}
};

static PyType_Slot loop_slots[] = {
  {Py_tp_doc, (void*) PyDoc_STR("The engine half of asyncuv.Loop.")},
  {Py_tp_new, loop_new},
  {Py_tp_dealloc, loop_dealloc},
  {Py_tp_traverse, loop_traverse},
  {Py_tp_clear, loop_clear},
  {Py_tp_methods, loop_methods},
  {Py_tp_getset, loop_getset},
  {Py_tp_members, loop_members},
  {Py_tp_repr, loop_repr},
  {Py_tp_finalize, loop_finalize},
  {0, NULL}
};

PyType_Spec auvpy_loop_spec = {
  .name = "asyncuv._asyncuv.LoopBase",
  .basicsize = sizeof(LoopObject),
  .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
           Py_TPFLAGS_IMMUTABLETYPE,
  .slots = loop_slots,
};

/* Handle and TimerHandle: asyncio's callback wrappers, run by the engine.
 *
 * The engine's ready queue holds (auvpy_handle_call_cb, handle) and owns one
 * reference to the handle.  A scheduled TimerHandle embeds its engine timer
 * and owns a reference to itself while the timer is in the heap. */
#include "asyncuv_module.h"

#include <string.h>

size_t auvpy_timer_offset;


static HandleObject* handle_alloc(PyTypeObject* tp, LoopObject* loop,
                                  PyObject* callback, PyObject* const* args,
                                  Py_ssize_t nargs, PyObject* context) {
  HandleObject* h;
  PyObject* argtuple;
  PyObject* arg0;
  PyObject* source_traceback;
  auvpy_state* st;
  Py_ssize_t i;

  /* One argument (a future's set_result(), a task's wake-up) is kept as it
   * is: no tuple unless someone asks for the handle's args. */
  arg0 = NULL;
  if (nargs == 0) {
    argtuple = Py_NewRef(loop->state->empty_tuple);
  } else if (nargs == 1) {
    argtuple = NULL;
    arg0 = Py_NewRef(args[0]);
  } else {
    argtuple = PyTuple_New(nargs);
    if (argtuple == NULL)
      return NULL;
    for (i = 0; i < nargs; i++)
      PyTuple_SET_ITEM(argtuple, i, Py_NewRef(args[i]));
  }

  if (context == NULL || context == Py_None) {
    context = PyContext_CopyCurrent();
    if (context == NULL) {
      Py_XDECREF(argtuple);
      Py_XDECREF(arg0);
      return NULL;
    }
  } else {
    Py_INCREF(context);
  }

  source_traceback = NULL;
  if (loop->debug) {
    /* The stack of the caller of call_soon()/call_later(). */
    PyFrameObject* frame = PyEval_GetFrame();
    if (frame != NULL) {
      source_traceback = PyObject_CallOneArg(loop->state->extract_stack,
                                             (PyObject*) frame);
      if (source_traceback == NULL) {
        Py_XDECREF(argtuple);
        Py_XDECREF(arg0);
        Py_DECREF(context);
        return NULL;
      }
    }
  }

  /* A handle from the free list has its pad zeroed already (dealloc
   * clears it); fresh memory does not. */
  st = loop->state;
  if (tp == st->HandleType && st->handle_nfree > 0) {
    h = st->handle_free[--st->handle_nfree];
    PyObject_Init((PyObject*) h, tp);
  } else if (tp == st->TimerHandleType && st->timer_nfree > 0) {
    h = st->timer_free[--st->timer_nfree];
    PyObject_Init((PyObject*) h, tp);
  } else {
    h = PyObject_GC_New(HandleObject, tp);
    if (h == NULL) {
      Py_XDECREF(argtuple);
      Py_XDECREF(arg0);
      Py_DECREF(context);
      Py_XDECREF(source_traceback);
      return NULL;
    }
    memset(h->asyncio_slots, 0, sizeof(h->asyncio_slots));
  }
  /* Nothing fails from here on: the caller completes subtypes' fields
   * before anything can deallocate the handle. */
  h->loop = (LoopObject*) Py_NewRef(loop);
  h->callback = Py_NewRef(callback);
  h->args = argtuple;
  h->arg0 = arg0;
  h->context = context;
  h->source_traceback = source_traceback;
  h->repr = NULL;
  h->cancelled = 0;
  /* A plain Handle starts untracked: while only the ready queue holds it,
   * the loop's traversal visits its references (see loopbase.c), so queued
   * handles cost the collector nothing.  auvpy_handle_release() tracks one
   * that outlives its turn in the queue with other holders. */
  if (tp != st->HandleType)
    PyObject_GC_Track(h);
  return h;
}


void auvpy_handle_release(HandleObject* h) {
  if (Py_REFCNT(h) > 1 && !PyObject_GC_IsTracked((PyObject*) h))
    PyObject_GC_Track(h);
  Py_DECREF(h);
}


HandleObject* auvpy_handle_new(auvpy_state* st, LoopObject* loop,
                              PyObject* callback, PyObject* const* args,
                              Py_ssize_t nargs, PyObject* context) {
  return handle_alloc(st->HandleType, loop, callback, args, nargs, context);
}


TimerHandleObject* auvpy_timer_handle_new(auvpy_state* st, LoopObject* loop,
                                         double when, PyObject* callback,
                                         PyObject* const* args,
                                         Py_ssize_t nargs,
                                         PyObject* context) {
  TimerHandleObject* th;

  th = (TimerHandleObject*) handle_alloc(st->TimerHandleType, loop, callback,
                                         args, nargs, context);
  if (th == NULL)
    return NULL;
  th->when = when;
  th->scheduled = 0;
  auv_timer_init(loop->loop, auvpy_handle_timer(th));
  auv_timer_set_data(auvpy_handle_timer(th), th);
  return th;
}


/* The module state: the loop's copy (cheaper than asking the type, on
 * cancel()'s path), or the type's once the collector cleared the loop. */
static inline auvpy_state* handle_state(HandleObject* h) {
  return h->loop != NULL ? h->loop->state : auvpy_object_state(h);
}


/* The handle's args as asyncio keeps them: a tuple, None once cancelled.
 * A single argument gets its tuple now, kept from then on.  A new
 * reference; NULL with an exception set if the tuple cannot be made. */
static PyObject* handle_args(HandleObject* h) {
  if (h->args == NULL && h->arg0 != NULL) {
    h->args = PyTuple_Pack(1, h->arg0);
    if (h->args == NULL)
      return NULL;
    Py_CLEAR(h->arg0);
  }
  return Py_NewRef(h->args != NULL ? h->args : Py_None);
}


/* format_helpers._format_callback_source() of the handle's callback, as
 * asyncio's Handle calls it: from 3.13 on the arguments are shown in debug
 * mode only (they may hold secrets), so it is told the loop's mode. */
static PyObject* handle_format_source(HandleObject* h) {
  auvpy_state* st = handle_state(h);
  PyObject* stack[3];
  PyObject* res;

  stack[0] = h->callback != NULL ? h->callback : Py_None;
  stack[1] = handle_args(h);
  if (stack[1] == NULL)
    return NULL;
#if AUV_FORMAT_CALLBACK_SOURCE_TAKES_DEBUG
  stack[2] = h->loop != NULL && h->loop->debug ? Py_True : Py_False;
  res = PyObject_Vectorcall(st->format_callback_source, stack, 2, st->kw_debug);
#else
  res = PyObject_Vectorcall(st->format_callback_source, stack, 2, NULL);
#endif
  Py_DECREF(stack[1]);
  return res;
}


/* The error path of a callback, as asyncio's Handle._run(). */
static void handle_report(HandleObject* h) {
  PyObject* value;
  PyObject* source;
  PyObject* msg;
  PyObject* ctx;
  PyObject* res;
  auvpy_state* st;

  if (auvpy_is_exit_exception()) {
    auvpy_loop_set_pending(h->loop);
    return;
  }

  st = handle_state(h);
  value = auvpy_take_exception();

  ctx = NULL;
  msg = NULL;
  source = handle_format_source(h);
  if (source != NULL) {
    msg = PyUnicode_FromFormat("Exception in callback %U", source);
    Py_DECREF(source);
  }
  if (msg != NULL)
    ctx = PyDict_New();
  if (ctx != NULL &&
      (PyDict_SetItem(ctx, st->str_message, msg) < 0 ||
       PyDict_SetItem(ctx, st->str_exception, value) < 0 ||
       PyDict_SetItem(ctx, st->str_handle, (PyObject*) h) < 0 ||
       (h->source_traceback != NULL &&
        PyDict_SetItem(ctx, st->str_source_traceback, h->source_traceback) < 0)))
    Py_CLEAR(ctx);
  Py_XDECREF(msg);
  Py_XDECREF(value);

  if (ctx == NULL) {
    /* Out of memory building the report: say so rather than lose it. */
    PyErr_WriteUnraisable((PyObject*) h);
    return;
  }
  res = PyObject_CallMethodOneArg((PyObject*) h->loop,
                                  st->str_call_exception_handler, ctx);
  Py_DECREF(ctx);
  if (res != NULL) {
    Py_DECREF(res);
    return;
  }
  if (auvpy_is_exit_exception()) {
    auvpy_loop_set_pending(h->loop);
    return;
  }
  PyErr_WriteUnraisable((PyObject*) h->loop);
}


static void handle_run_debug(HandleObject* h) {
  LoopObject* loop;
  PyObject* res;
  uint64_t t0;
  double dt;

  loop = h->loop;
  t0 = auv_loop_now(loop->loop);
  auvpy_handle_run(h);
  if (loop->loop == NULL)
    return;
  dt = (double) (auv_loop_now(loop->loop) - t0) / 1e9;
  if (dt < loop->slow_callback_duration || PyErr_Occurred())
    return;
  /* Like asyncio's: 'Executing <Handle ...> took 0.123 seconds'. */
  {
    PyObject* what;
    PyObject* fmt;
    PyObject* secs;

    what = PyObject_CallOneArg(loop->state->format_handle, (PyObject*) h);
    if (what == NULL) {
      PyErr_WriteUnraisable((PyObject*) h);
      return;
    }
    fmt = PyUnicode_FromString("Executing %s took %.3f seconds");
    secs = PyFloat_FromDouble(dt);
    res = NULL;
    if (fmt != NULL && secs != NULL)
      res = PyObject_CallMethodObjArgs(loop->state->logger,
                                       loop->state->str_warning,
                                       fmt, what, secs, NULL);
    Py_XDECREF(fmt);
    Py_XDECREF(secs);
    Py_DECREF(what);
    if (res == NULL)
      PyErr_WriteUnraisable((PyObject*) h);
    Py_XDECREF(res);
  }
}


void auvpy_handle_run(HandleObject* h) {
  PyObject* res;
  PyObject* ctx;

  ctx = h->context;
  if (PyContext_Enter(ctx) < 0) {
    handle_report(h);
    return;
  }
  if (h->args != NULL)
    res = PyObject_Vectorcall(h->callback, &PyTuple_GET_ITEM(h->args, 0),
                              PyTuple_GET_SIZE(h->args), NULL);
  else {
    /* From a copy: the handle's field may change while the callback runs
     * (asking for its args makes their tuple); the caller keeps it alive. */
    PyObject* arg0 = h->arg0;
    res = PyObject_Vectorcall(h->callback, &arg0, 1, NULL);
  }
  if (PyContext_Exit(ctx) < 0 && res != NULL)
    Py_CLEAR(res);
  if (res == NULL)
    handle_report(h);
  else
    Py_DECREF(res);
}


/* Run the handle (with debug mode's slow-callback check if asked) holding
 * its callback and arguments: the callback may cancel its handle, which
 * clears them. */
static inline void handle_run_kept(HandleObject* h, int debug) {
  PyObject* cb = Py_NewRef(h->callback);
  PyObject* args = Py_XNewRef(h->args);
  PyObject* arg0 = Py_XNewRef(h->arg0);

  if (debug)
    handle_run_debug(h);
  else
    auvpy_handle_run(h);
  Py_DECREF(cb);
  Py_XDECREF(args);
  Py_XDECREF(arg0);
}


/* A queued handle's turn: run it unless it has no callback (cancelled, or
 * cleared by the collector, which also took its loop, while a queue still
 * held it). */
static inline void handle_call(HandleObject* h) {
  if (h->cancelled || h->callback == NULL)
    return;
  if (h->loop->debug) {
    handle_run_kept(h, 1);
    return;
  }
  /* An untracked handle that only the queue holds is out of everyone
   * else's reach (the collector does not list it): nothing can cancel it
   * while its callback runs. */
  if (Py_REFCNT(h) == 1 && !PyObject_GC_IsTracked((PyObject*) h)) {
    auvpy_handle_run(h);
    return;
  }
  handle_run_kept(h, 0);
}


void auvpy_handle_call_cb(auv_loop_t* loop, void* arg) {
  handle_call(arg);
  auvpy_handle_release(arg);
}


void auvpy_timer_fire_cb(auv_timer_t* timer) {
  TimerHandleObject* th;

  th = auv_timer_get_data(timer);
  th->scheduled = 0;
  /* The heap's reference is now ours. */
  auvpy_handle_call_cb(NULL, th);
}


/* --- Python-visible methods ---------------------------------------------- */

static PyObject* handle_repr_info(HandleObject* h) {
  PyObject* parts;
  PyObject* item;
  PyObject* res;
  PyObject* sep;

  parts = PyList_New(0);
  if (parts == NULL)
    return NULL;
  item = PyType_GetName(Py_TYPE(h));
  if (item == NULL || PyList_Append(parts, item) < 0)
    goto error;
  Py_DECREF(item);
  if (h->cancelled) {
    item = PyUnicode_FromString("cancelled");
    if (item == NULL || PyList_Append(parts, item) < 0)
      goto error;
    Py_DECREF(item);
  }
  if (PyObject_TypeCheck(h, handle_state(h)->TimerHandleType)) {
    PyObject* when = PyFloat_FromDouble(((TimerHandleObject*) h)->when);
    item = when == NULL ? NULL : PyUnicode_FromFormat("when=%R", when);
    Py_XDECREF(when);
    if (item == NULL || PyList_Append(parts, item) < 0)
      goto error;
    Py_DECREF(item);
  }
  if (h->callback != NULL) {
    item = handle_format_source(h);
    if (item == NULL || PyList_Append(parts, item) < 0)
      goto error;
    Py_DECREF(item);
  }
  if (h->source_traceback != NULL && PyList_Check(h->source_traceback) &&
      PyList_GET_SIZE(h->source_traceback) > 0) {
    PyObject* frame = PyList_GET_ITEM(h->source_traceback,
                                      PyList_GET_SIZE(h->source_traceback) - 1);
    PyObject* file = PySequence_GetItem(frame, 0);
    PyObject* line = PySequence_GetItem(frame, 1);
    item = NULL;
    if (file != NULL && line != NULL)
      item = PyUnicode_FromFormat("created at %S:%S", file, line);
    Py_XDECREF(file);
    Py_XDECREF(line);
    if (item == NULL || PyList_Append(parts, item) < 0)
      goto error;
    Py_DECREF(item);
  }
  sep = PyUnicode_FromString(" ");
  if (sep == NULL) {
    Py_DECREF(parts);
    return NULL;
  }
  res = PyUnicode_Join(sep, parts);
  Py_DECREF(sep);
  Py_DECREF(parts);
  return res;

error:
  Py_XDECREF(item);
  Py_DECREF(parts);
  return NULL;
}


static PyObject* handle_repr(HandleObject* h) {
  PyObject* info;
  PyObject* res;

  if (h->repr != NULL)
    return Py_NewRef(h->repr);
  info = handle_repr_info(h);
  if (info == NULL)
    return NULL;
  res = PyUnicode_FromFormat("<%U>", info);
  Py_DECREF(info);
  return res;
}


static void handle_clear_callback(HandleObject* h) {
  if (h->loop != NULL && h->loop->debug && h->repr == NULL) {
    /* Keep a representation for debugging, as asyncio does. */
    h->repr = handle_repr(h);
    if (h->repr == NULL)
      PyErr_Clear();
  }
  Py_CLEAR(h->callback);
  Py_CLEAR(h->args);
  Py_CLEAR(h->arg0);
}


static PyObject* handle_cancel(HandleObject* h, PyObject* unused) {
  TimerHandleObject* th;

  if (h->cancelled)
    Py_RETURN_NONE;
  h->cancelled = 1;
  if (PyObject_TypeCheck(h, handle_state(h)->TimerHandleType)) {
    th = (TimerHandleObject*) h;
    if (th->scheduled) {
      th->scheduled = 0;
      auv_timer_stop(auvpy_handle_timer(th));
      handle_clear_callback(h);
      Py_DECREF(th);  /* the heap's reference; the caller still holds one */
      Py_RETURN_NONE;
    }
  }
  /* A queued Handle stays in the ready queue, skipped when reached. */
  handle_clear_callback(h);
  Py_RETURN_NONE;
}


static PyObject* handle_cancelled(HandleObject* h, PyObject* unused) {
  return PyBool_FromLong(h->cancelled);
}


static PyObject* handle_get_context(HandleObject* h, PyObject* unused) {
  return Py_NewRef(h->context != NULL ? h->context : Py_None);
}


static PyObject* handle_run_method(HandleObject* h, PyObject* unused) {
  if (h->callback != NULL)
    handle_run_kept(h, 0);
  if (auvpy_loop_raise_pending(h->loop))
    return NULL;
  Py_RETURN_NONE;
}


/* Objects stored through asyncio's own slot descriptors, called directly
 * (asyncio.Handle._repr.__set__(h, x)): every pad entry but the weak
 * reference list.  Released at deallocation. */
#define FOR_EACH_ASYNCIO_SLOT(h, p)                                          \
  for (PyObject** p = (h)->asyncio_slots;                                   \
       p < (h)->asyncio_slots + AUV_ASYNCIO_HANDLE_PAD; p++)                \
    if ((char*) p - (char*) (h) != Py_TYPE(h)->tp_weaklistoffset)


/* asyncio's slots are shadowed by read-only descriptors of ours, so the
 * pad holds nothing that a collection must see; traversal (run for every
 * young handle at every collection) skips it. */
int auvpy_handle_visit_fields(HandleObject* h, visitproc visit, void* arg) {
  Py_VISIT(h->loop);
  Py_VISIT(h->callback);
  Py_VISIT(h->args);
  Py_VISIT(h->arg0);
  Py_VISIT(h->context);
  Py_VISIT(h->source_traceback);
  Py_VISIT(h->repr);
  return 0;
}


static int handle_traverse(HandleObject* h, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(h));
  return auvpy_handle_visit_fields(h, visit, arg);
}


_Static_assert(AUV_ASYNCIO_HANDLE_PAD % 4 == 0,
               "handle_clear_pad() tests the pad four slots a step");

static void handle_clear_pad(HandleObject* h) {
  uintptr_t any;
  int i;

  /* Almost always all NULL: test that cheaply first, four slots a step
   * (the pad's size is a multiple of four). */
  any = 0;
  for (i = 0; i < AUV_ASYNCIO_HANDLE_PAD; i += 4)
    any |= (uintptr_t) h->asyncio_slots[i] | (uintptr_t) h->asyncio_slots[i + 1] |
           (uintptr_t) h->asyncio_slots[i + 2] | (uintptr_t) h->asyncio_slots[i + 3];
  if (any == 0)
    return;
  FOR_EACH_ASYNCIO_SLOT(h, p)
    Py_CLEAR(*p);
}


static int handle_clear(HandleObject* h) {
  handle_clear_pad(h);
  Py_CLEAR(h->callback);
  Py_CLEAR(h->args);
  Py_CLEAR(h->arg0);
  Py_CLEAR(h->context);
  Py_CLEAR(h->source_traceback);
  Py_CLEAR(h->repr);
  Py_CLEAR(h->loop);
  return 0;
}


static void handle_dealloc(HandleObject* h) {
  PyTypeObject* tp;
  auvpy_state* st;

  tp = Py_TYPE(h);
  /* The loop's copy of the module state: cheaper than asking the type. */
  st = h->loop != NULL ? h->loop->state : NULL;
  PyObject_GC_UnTrack(h);
  if (*(PyObject**) ((char*) h + tp->tp_weaklistoffset) != NULL)
    PyObject_ClearWeakRefs((PyObject*) h);
  handle_clear(h);
  /* Keep the memory for the next handle of this type: no allocation, and
   * no count towards the next garbage collection. */
  if (st != NULL) {
    if (tp == st->HandleType && st->handle_nfree < AUV_HANDLE_FREELIST) {
      st->handle_free[st->handle_nfree++] = h;
      Py_DECREF(tp);
      return;
    }
    if (tp == st->TimerHandleType && st->timer_nfree < AUV_HANDLE_FREELIST) {
      st->timer_free[st->timer_nfree++] = h;
      Py_DECREF(tp);
      return;
    }
  }
  tp->tp_free(h);
  Py_DECREF(tp);
}


void auvpy_handle_freelist_clear(auvpy_state* st) {
  while (st->handle_nfree > 0)
    PyObject_GC_Del(st->handle_free[--st->handle_nfree]);
  while (st->timer_nfree > 0)
    PyObject_GC_Del(st->timer_free[--st->timer_nfree]);
}


static PyObject* handle_get_callback(HandleObject* h, void* closure) {
  return Py_NewRef(h->callback ? h->callback : Py_None);
}


static PyObject* handle_get_args(HandleObject* h, void* closure) {
  return handle_args(h);
}


static PyObject* handle_get_source_traceback(HandleObject* h, void* closure) {
  return Py_NewRef(h->source_traceback ? h->source_traceback : Py_None);
}


static PyObject* handle_get_repr(HandleObject* h, void* closure) {
  return Py_NewRef(h->repr ? h->repr : Py_None);
}


static PyObject* handle_get_loop(HandleObject* h, void* closure) {
  return Py_NewRef(h->loop != NULL ? (PyObject*) h->loop : Py_None);
}


/* Handle and TimerHandle share these (TimerHandle subclasses
 * asyncio.TimerHandle, not our Handle, so it cannot inherit them). */
#define AUV_HANDLE_METHODS                                                    \
  {"cancel", (PyCFunction) handle_cancel, METH_NOARGS,                        \
   PyDoc_STR("Cancel the call; a no-op if it ran or was cancelled.")},        \
  {"cancelled", (PyCFunction) handle_cancelled, METH_NOARGS,                  \
   PyDoc_STR("Return True if the call was cancelled.")},                      \
  {"get_context", (PyCFunction) handle_get_context, METH_NOARGS,              \
   PyDoc_STR("Return the contextvars.Context the callback runs in.")},        \
  {"_run", (PyCFunction) handle_run_method, METH_NOARGS, NULL}

#define AUV_HANDLE_GETSET                                                     \
  {"_callback", (getter) handle_get_callback, NULL, NULL, NULL},              \
  {"_args", (getter) handle_get_args, NULL, NULL, NULL},                      \
  {"_loop", (getter) handle_get_loop, NULL, NULL, NULL},                      \
  {"_context", (getter) handle_get_context, NULL, NULL, NULL},                \
  {"_repr", (getter) handle_get_repr, NULL, NULL, NULL},                      \
  {"_source_traceback", (getter) handle_get_source_traceback, NULL, NULL, NULL}

static PyMethodDef handle_methods[] = {
  AUV_HANDLE_METHODS,
  {NULL}
};

static PyMemberDef handle_members[] = {
  {"_cancelled", Py_T_BOOL, offsetof(HandleObject, cancelled), Py_READONLY, NULL},
  {NULL}
};

static PyGetSetDef handle_getset[] = {
  AUV_HANDLE_GETSET,
  {NULL}
};

static PyType_Slot handle_slots[] = {
  {Py_tp_doc, (void*) PyDoc_STR("A callback scheduled with call_soon(); see asyncio.Handle.")},
  {Py_tp_dealloc, handle_dealloc},
  {Py_tp_traverse, handle_traverse},
  {Py_tp_clear, handle_clear},
  {Py_tp_repr, handle_repr},
  {Py_tp_methods, handle_methods},
  {Py_tp_members, handle_members},
  {Py_tp_getset, handle_getset},
  {0, NULL}
};

PyType_Spec auvpy_handle_spec = {
  .name = "asyncuv.Handle",
  .basicsize = sizeof(HandleObject),
  .flags = AUV_TPFLAGS_ASYNCIO_SUBTYPE,
  .slots = handle_slots,
};


/* --- TimerHandle --------------------------------------------------------- */

static PyObject* timer_handle_when(TimerHandleObject* th, PyObject* unused) {
  return PyFloat_FromDouble(th->when);
}


static PyObject* timer_handle_richcompare(TimerHandleObject* a, PyObject* other,
                                          int op) {
  TimerHandleObject* b;
  int r;

  if (!PyObject_TypeCheck(other, Py_TYPE(a)))
    Py_RETURN_NOTIMPLEMENTED;
  b = (TimerHandleObject*) other;
  if (op == Py_LT)
    return PyBool_FromLong(a->when < b->when);
  if (op == Py_GT)
    return PyBool_FromLong(a->when > b->when);
  if ((op == Py_LE && a->when < b->when) || (op == Py_GE && a->when > b->when))
    Py_RETURN_TRUE;
  /* Equality as asyncio's TimerHandle.__eq__; it also completes <= and >=. */
  if (a == b) {
    r = 1;
  } else if (a->when != b->when || a->base.cancelled != b->base.cancelled) {
    r = 0;
  } else {
    r = PyObject_RichCompareBool(a->base.callback ? a->base.callback : Py_None,
                                 b->base.callback ? b->base.callback : Py_None,
                                 Py_EQ);
    if (r > 0) {
      PyObject* aa = handle_args(&a->base);
      PyObject* ba = aa == NULL ? NULL : handle_args(&b->base);
      r = ba == NULL ? -1 : PyObject_RichCompareBool(aa, ba, Py_EQ);
      Py_XDECREF(aa);
      Py_XDECREF(ba);
    }
    if (r < 0)
      return NULL;
  }
  return PyBool_FromLong(op == Py_NE ? !r : r);
}


static Py_hash_t timer_handle_hash(TimerHandleObject* th) {
  PyObject* f;
  Py_hash_t h;

  f = PyFloat_FromDouble(th->when);
  if (f == NULL)
    return -1;
  h = PyObject_Hash(f);
  Py_DECREF(f);
  return h;
}


static PyObject* timer_handle_get_scheduled(TimerHandleObject* th, void* c) {
  return PyBool_FromLong(th->scheduled);
}


static PyObject* timer_handle_get_when(TimerHandleObject* th, void* c) {
  return PyFloat_FromDouble(th->when);
}


static PyMethodDef timer_handle_methods[] = {
  AUV_HANDLE_METHODS,
  {"when", (PyCFunction) timer_handle_when, METH_NOARGS,
   PyDoc_STR("Return the scheduled time, in loop.time() units.")},
  {NULL}
};

static PyGetSetDef timer_handle_getset[] = {
  AUV_HANDLE_GETSET,
  {"_scheduled", (getter) timer_handle_get_scheduled, NULL, NULL, NULL},
  {"_when", (getter) timer_handle_get_when, NULL, NULL, NULL},
  {NULL}
};

static PyType_Slot timer_handle_slots[] = {
  {Py_tp_doc, (void*) PyDoc_STR("A callback scheduled with call_later()/call_at(); see asyncio.TimerHandle.")},
  {Py_tp_dealloc, handle_dealloc},
  {Py_tp_traverse, handle_traverse},
  {Py_tp_clear, handle_clear},
  {Py_tp_repr, handle_repr},
  {Py_tp_members, handle_members},
  {Py_tp_methods, timer_handle_methods},
  {Py_tp_getset, timer_handle_getset},
  {Py_tp_richcompare, timer_handle_richcompare},
  {Py_tp_hash, timer_handle_hash},
  {0, NULL}
};

/* basicsize is set at module init: the engine timer's size is a run-time
 * value (auv_timer_size()). */
PyType_Spec auvpy_timer_handle_spec = {
  .name = "asyncuv.TimerHandle",
  .basicsize = 0,
  .flags = AUV_TPFLAGS_ASYNCIO_SUBTYPE,
  .slots = timer_handle_slots,
};


/* --- _ThreadSafeHandle --------------------------------------------------- */

/* What call_soon_threadsafe() returns where asyncio has
 * events._ThreadSafeHandle (Python 3.14): a Handle whose cancel(),
 * cancelled() and run hold a lock, so that another thread that cancels the
 * handle, or asks whether it was cancelled, waits until a callback that has
 * started has finished -- asyncio's RLock, in C.  The loop's thread takes
 * the lock for the callback's run (auvpy_threadsafe_handle_call_cb); the
 * lock is reentrant, so the callback may cancel its own handle. */
typedef struct {
  HandleObject base;
  PyThread_type_lock lock;
  unsigned long owner;         /* thread ident holding the lock, or 0 */
} ThreadSafeHandleObject;


/* 1 if this call took the lock, 0 if this thread already held it.  Waits
 * with the GIL released: the holder may need the GIL to finish. */
static int ts_acquire(ThreadSafeHandleObject* h) {
  unsigned long me;

  me = PyThread_get_thread_ident();
  if (h->owner == me)
    return 0;
  if (!PyThread_acquire_lock(h->lock, NOWAIT_LOCK)) {
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(h->lock, WAIT_LOCK);
    Py_END_ALLOW_THREADS
  }
  h->owner = me;
  return 1;
}


static void ts_release(ThreadSafeHandleObject* h, int acquired) {
  if (acquired) {
    h->owner = 0;
    PyThread_release_lock(h->lock);
  }
}


HandleObject* auvpy_threadsafe_handle_new(auvpy_state* st, LoopObject* loop,
                                         PyObject* callback,
                                         PyObject* const* args,
                                         Py_ssize_t nargs, PyObject* context) {
  ThreadSafeHandleObject* h;

  h = (ThreadSafeHandleObject*) handle_alloc(st->ThreadSafeHandleType, loop,
                                             callback, args, nargs, context);
  if (h == NULL)
    return NULL;
  h->owner = 0;
  h->lock = PyThread_allocate_lock();
  if (h->lock == NULL) {
    Py_DECREF(h);
    PyErr_NoMemory();
    return NULL;
  }
  return (HandleObject*) h;
}


void auvpy_threadsafe_handle_call_cb(auv_loop_t* loop, void* arg) {
  ThreadSafeHandleObject* h = arg;
  int acquired;

  /* Checked again under the lock: another thread may have cancelled the
   * handle while this one waited for it. */
  acquired = ts_acquire(h);
  handle_call(&h->base);
  ts_release(h, acquired);
  auvpy_handle_release(&h->base);
}


static PyObject* ts_cancel(ThreadSafeHandleObject* h, PyObject* unused) {
  PyObject* r;
  int acquired;

  acquired = ts_acquire(h);
  r = handle_cancel(&h->base, NULL);
  ts_release(h, acquired);
  return r;
}


static PyObject* ts_cancelled(ThreadSafeHandleObject* h, PyObject* unused) {
  PyObject* r;
  int acquired;

  acquired = ts_acquire(h);
  r = handle_cancelled(&h->base, NULL);
  ts_release(h, acquired);
  return r;
}


static PyObject* ts_run(ThreadSafeHandleObject* h, PyObject* unused) {
  PyObject* r;
  int acquired;

  acquired = ts_acquire(h);
  r = handle_run_method(&h->base, NULL);
  ts_release(h, acquired);
  return r;
}


static void ts_dealloc(ThreadSafeHandleObject* h) {
  if (h->lock != NULL) {
    PyThread_free_lock(h->lock);
    h->lock = NULL;
  }
  handle_dealloc(&h->base);
}


static PyMethodDef ts_methods[] = {
  {"cancel", (PyCFunction) ts_cancel, METH_NOARGS,
   PyDoc_STR("Cancel the call; a no-op if it ran or was cancelled.  From "
             "another thread, waits for a callback that has started.")},
  {"cancelled", (PyCFunction) ts_cancelled, METH_NOARGS,
   PyDoc_STR("Return True if the call was cancelled.")},
  {"get_context", (PyCFunction) handle_get_context, METH_NOARGS,
   PyDoc_STR("Return the contextvars.Context the callback runs in.")},
  {"_run", (PyCFunction) ts_run, METH_NOARGS, NULL},
  {NULL}
};

static PyType_Slot ts_slots[] = {
  {Py_tp_doc, (void*) PyDoc_STR("A callback scheduled with call_soon_threadsafe(); "
                                "see asyncio.Handle.")},
  {Py_tp_dealloc, ts_dealloc},
  {Py_tp_traverse, handle_traverse},
  {Py_tp_clear, handle_clear},
  {Py_tp_repr, handle_repr},
  {Py_tp_methods, ts_methods},
  {Py_tp_members, handle_members},
  {Py_tp_getset, handle_getset},
  {0, NULL}
};

PyType_Spec auvpy_threadsafe_handle_spec = {
  .name = "asyncuv._asyncuv._ThreadSafeHandle",
  .basicsize = sizeof(ThreadSafeHandleObject),
  .flags = AUV_TPFLAGS_ASYNCIO_SUBTYPE,
  .slots = ts_slots,
};

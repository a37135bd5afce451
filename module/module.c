/* asyncuv._asyncuv: module state, types and initialisation (PEP 489). */
#include "asyncuv_module.h"

static struct PyModuleDef auvpy_module_def;

static PyMethodDef auvpy_stop_when_done_def = {
  "_stop_when_done", (PyCFunction) auvpy_stop_when_done, METH_O,
  PyDoc_STR("run_until_complete()'s done callback: stop the future's loop.")
};


auvpy_state* auvpy_state_from_type(PyTypeObject* tp) {
  PyObject* module;

  module = PyType_GetModuleByDef(tp, &auvpy_module_def);
  if (module == NULL)
    return NULL;
  return PyModule_GetState(module);
}


PyObject* auvpy_import_attr(const char* modname, const char* attr) {
  PyObject* mod;
  PyObject* obj;

  mod = PyImport_ImportModule(modname);
  if (mod == NULL)
    return NULL;
  obj = PyObject_GetAttrString(mod, attr);
  Py_DECREF(mod);
  return obj;
}


static PyObject* str_tuple(int n, const char* a, const char* b, const char* c) {
  const char* names[3] = { a, b, c };
  PyObject* t;
  PyObject* s;
  int i;

  t = PyTuple_New(n);
  if (t == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    s = PyUnicode_InternFromString(names[i]);
    if (s == NULL) {
      Py_DECREF(t);
      return NULL;
    }
    PyTuple_SET_ITEM(t, i, s);
  }
  return t;
}


/* --- asyncio's Future and Task classes ------------------------------------ */

/* Changed whenever a dict that some module state watches changes: each
 * state compares it with the value it had when it kept its classes.  One
 * counter for every interpreter is enough (a change anywhere only makes
 * the others look again); the module does not run under a per-interpreter
 * GIL. */
static unsigned long auvpy_asyncio_dicts_epoch;

#if AUV_HAVE_DICT_WATCHERS
static int asyncio_dict_changed(PyDict_WatchEvent event, PyObject* dict,
                                PyObject* key, PyObject* new_value) {
  auvpy_asyncio_dicts_epoch++;
  return 0;
}
#endif


/* asyncio.futures.Future or asyncio.tasks.Task as asyncio's loop finds it:
 * whatever the module holds under that name now, since code (CPython's
 * tests among it) swaps in the pure-Python classes.  With a dict watcher
 * the class found is kept until the module's dict changes; without, it is
 * looked up each time.  A new reference, or NULL with an exception. */
PyObject* auvpy_asyncio_class(auvpy_state* st, PyObject** kept, PyObject* dict,
                              PyObject* name, const char* where) {
  PyObject* cls;

  if (st->dict_watcher != 0) {
    if (st->classes_epoch != auvpy_asyncio_dicts_epoch) {
      st->classes_epoch = auvpy_asyncio_dicts_epoch;
      Py_CLEAR(st->kept_Future);
      Py_CLEAR(st->kept_Task);
    }
    if (*kept != NULL)
      return Py_NewRef(*kept);
  }
  if (PyDict_GetItemRef(dict, name, &cls) == 0)
    PyErr_Format(PyExc_AttributeError, "module '%s' has no attribute '%U'",
                 where, name);
  if (cls != NULL && st->dict_watcher != 0 &&
      st->classes_epoch == auvpy_asyncio_dicts_epoch)
    Py_XSETREF(*kept, Py_NewRef(cls));
  return cls;
}


/* Watch asyncio.futures' and asyncio.tasks' dicts, where there are dict
 * watchers and one is free (an interpreter has 8); else nothing is kept. */
static void watch_asyncio_dicts(auvpy_state* st) {
#if AUV_HAVE_DICT_WATCHERS
  int id;

  id = PyDict_AddWatcher(asyncio_dict_changed);
  if (id < 0) {
    PyErr_Clear();
    return;
  }
  if (PyDict_Watch(id, st->futures_dict) < 0 ||
      PyDict_Watch(id, st->tasks_dict) < 0) {
    PyErr_Clear();
    PyDict_Unwatch(id, st->futures_dict);
    PyErr_Clear();
    PyDict_ClearWatcher(id);
    PyErr_Clear();
    return;
  }
  st->dict_watcher = id + 1;
#endif
}


static void unwatch_asyncio_dicts(auvpy_state* st) {
#if AUV_HAVE_DICT_WATCHERS
  PyObject* exc;
  int id;

  if (st->dict_watcher == 0)
    return;
  id = st->dict_watcher - 1;
  st->dict_watcher = 0;
  exc = PyErr_GetRaisedException();
  if (st->futures_dict != NULL && PyDict_Unwatch(id, st->futures_dict) < 0)
    PyErr_Clear();
  if (st->tasks_dict != NULL && PyDict_Unwatch(id, st->tasks_dict) < 0)
    PyErr_Clear();
  if (PyDict_ClearWatcher(id) < 0)
    PyErr_Clear();
  PyErr_SetRaisedException(exc);
#endif
}


static int auvpy_exec(PyObject* module) {
  auvpy_state* st;
  PyObject* base;
  PyType_Spec timer_spec;
  size_t align;

  st = PyModule_GetState(module);

#define IMPORT(field, mod, name) AUVPY_IMPORT(st->field, mod, name)
  IMPORT(Future, "asyncio.futures", "Future");
  IMPORT(Task, "asyncio.tasks", "Task");
  IMPORT(aio_Handle, "asyncio.events", "Handle");
  IMPORT(aio_TimerHandle, "asyncio.events", "TimerHandle");
  IMPORT(iscoroutine, "asyncio.coroutines", "iscoroutine");
  IMPORT(iscoroutinefunction, "asyncio.coroutines", AUV_ASYNCIO_ISCOROUTINEFUNCTION);
  IMPORT(format_callback_source, "asyncio.format_helpers", "_format_callback_source");
  IMPORT(extract_stack, "asyncio.format_helpers", "extract_stack");
  IMPORT(format_handle, "asyncio.base_events", "_format_handle");
  IMPORT(logger, "asyncio.log", "logger");
  IMPORT(isfuture, "asyncio.futures", "isfuture");
  IMPORT(ensure_future, "asyncio.tasks", "ensure_future");
  IMPORT(get_running_loop, "asyncio.events", "_get_running_loop");
  IMPORT(set_running_loop, "asyncio.events", "_set_running_loop");
  IMPORT(WeakSet, "weakref", "WeakSet");
  IMPORT(format_list, "traceback", "format_list");
  IMPORT(get_asyncgen_hooks, "sys", "get_asyncgen_hooks");
  IMPORT(set_asyncgen_hooks, "sys", "set_asyncgen_hooks");
  IMPORT(get_origin_depth, "sys", "get_coroutine_origin_tracking_depth");
  IMPORT(set_origin_depth, "sys", "set_coroutine_origin_tracking_depth");
  IMPORT(set_wakeup_fd, "signal", "set_wakeup_fd");
  IMPORT(BufferedProtocol, "asyncio.protocols", "BufferedProtocol");
  IMPORT(socket_type, "socket", "socket");
  st->SSLSocket = auvpy_import_attr("ssl", "SSLSocket");
  if (st->SSLSocket == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_ImportError))
      return -1;
    PyErr_Clear();  /* Python built without ssl */
  }
  if ((st->zero = PyLong_FromLong(0)) == NULL)
    return -1;
  IMPORT(TransportSocket, "asyncio.trsock", "TransportSocket");
  st->futures = PyImport_ImportModule("asyncio.futures");
  if (st->futures == NULL)
    return -1;
  st->futures_dict = Py_NewRef(PyModule_GetDict(st->futures));
  {
    PyObject* tasks = PyImport_ImportModule("asyncio.tasks");
    if (tasks == NULL)
      return -1;
    st->tasks_dict = Py_NewRef(PyModule_GetDict(tasks));
    watch_asyncio_dicts(st);
    Py_DECREF(tasks);
  }
  st->coroutines = PyImport_ImportModule("asyncio.coroutines");
  if (st->coroutines == NULL)
    return -1;
#undef IMPORT

#define INTERN(field, text) AUVPY_INTERN(st->field, text)
  INTERN(str_call_exception_handler, "call_exception_handler");
  INTERN(str_set_name, "set_name");
  INTERN(str_message, "message");
  INTERN(str_exception, "exception");
  INTERN(str_handle, "handle");
  INTERN(str_source_traceback, "source_traceback");
  INTERN(str_warning, "warning");
  INTERN(str_set_result, "set_result");
  INTERN(str_set_exception, "set_exception");
  INTERN(str_error, "error");
  INTERN(str_debug, "debug");
  INTERN(str_run_forever, "run_forever");
  INTERN(str_close, "close");
  INTERN(str_default_exception_handler, "default_exception_handler");
  INTERN(str_log_destroy_pending, "_log_destroy_pending");
  INTERN(str_add_done_callback, "add_done_callback");
  INTERN(str_remove_done_callback, "remove_done_callback");
  INTERN(str_done, "done");
  INTERN(str_cancelled, "cancelled");
  INTERN(str_result, "result");
  INTERN(str_get_loop, "get_loop");
  INTERN(str_stop, "stop");
  INTERN(str_get_context, "get_context");
  INTERN(str_run, "run");
  INTERN(str_task, "task");
  INTERN(str_future, "future");
  INTERN(str_context, "context");
  INTERN(str_name, "name");
  INTERN(str_loop, "loop");
  INTERN(str_Future, "Future");
  INTERN(str_Task, "Task");
  INTERN(str_handle_traceback, "handle_traceback");
  INTERN(str_exc_info, "exc_info");
  INTERN(str_shutdown, "shutdown");
  INTERN(str_wait, "wait");
  INTERN(str_add, "add");
  INTERN(str_discard, "discard");
  INTERN(str_aclose, "aclose");
  INTERN(str_create_task, "create_task");
  INTERN(str_firstiter, "firstiter");
  INTERN(str_finalizer, "finalizer");
  INTERN(str_warn_on_full_buffer, "warn_on_full_buffer");
  INTERN(str_set_origin_tracking, "_set_coroutine_origin_tracking");
  INTERN(str_call_soon_threadsafe, "call_soon_threadsafe");
  INTERN(str_get, "get");
  INTERN(str_connection_made, "connection_made");
  INTERN(str_connection_lost, "connection_lost");
  INTERN(str_call_connection_lost, "_call_connection_lost");
  INTERN(str_start_reading, "_start_reading");
  INTERN(str_pause_writing, "pause_writing");
  INTERN(str_resume_writing, "resume_writing");
  INTERN(str_eof_received, "eof_received");
  INTERN(str_getsockname, "getsockname");
  INTERN(str_getpeername, "getpeername");
  INTERN(str_attach, "_attach");
  INTERN(str_detach, "_detach");
  INTERN(str_data_received, "data_received");
  INTERN(str_get_buffer, "get_buffer");
  INTERN(str_buffer_updated, "buffer_updated");
  INTERN(str_datagram_received, "datagram_received");
  INTERN(str_error_received, "error_received");
  INTERN(str_set_result_unless_cancelled, "_set_result_unless_cancelled");
  INTERN(str_is_closing, "is_closing");
  INTERN(str_fileno, "fileno");
  INTERN(str_cancel, "cancel");
  INTERN(str_sendto, "sendto");
  INTERN(str_gettimeout, "gettimeout");
  INTERN(str_firstiter_hook, "_asyncgen_firstiter_hook");
  INTERN(str_finalizer_hook, "_asyncgen_finalizer_hook");
#undef INTERN

  if ((st->kw_loop = str_tuple(1, "loop", NULL, NULL)) == NULL ||
      (st->kw_loop_name = str_tuple(2, "loop", "name", NULL)) == NULL ||
      (st->kw_loop_context = str_tuple(2, "loop", "context", NULL)) == NULL ||
      (st->kw_loop_name_context = str_tuple(3, "loop", "name", "context")) == NULL ||
      (st->kw_context = str_tuple(1, "context", NULL, NULL)) == NULL ||
      (st->kw_debug = str_tuple(1, "debug", NULL, NULL)) == NULL ||
      (st->empty_tuple = PyTuple_New(0)) == NULL)
    return -1;

  st->stop_when_done = PyCFunction_NewEx(&auvpy_stop_when_done_def, module, NULL);
  if (st->stop_when_done == NULL)
    return -1;

  if (((PyTypeObject*) st->aio_TimerHandle)->tp_basicsize >
          (Py_ssize_t) offsetof(HandleObject, loop) ||
      ((PyTypeObject*) st->aio_Handle)->tp_basicsize >
          (Py_ssize_t) offsetof(HandleObject, loop)) {
    PyErr_SetString(PyExc_ImportError,
                    "asyncuv: asyncio.TimerHandle is larger than this build "
                    "of asyncuv allows (AUV_ASYNCIO_HANDLE_PAD)");
    return -1;
  }
  st->HandleType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &auvpy_handle_spec, st->aio_Handle);
  if (st->HandleType == NULL)
    return -1;

  /* asyncio's call_soon_threadsafe() handle, new in 3.14. */
  st->aio_ThreadSafeHandle = auvpy_import_attr("asyncio.events", "_ThreadSafeHandle");
  if (st->aio_ThreadSafeHandle == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
      return -1;
    PyErr_Clear();
  } else {
    if (((PyTypeObject*) st->aio_ThreadSafeHandle)->tp_basicsize >
        (Py_ssize_t) offsetof(HandleObject, loop)) {
      PyErr_SetString(PyExc_ImportError,
                      "asyncuv: asyncio.events._ThreadSafeHandle is larger "
                      "than this build of asyncuv allows (AUV_ASYNCIO_HANDLE_PAD)");
      return -1;
    }
    st->ThreadSafeHandleType = (PyTypeObject*) PyType_FromModuleAndSpec(
        module, &auvpy_threadsafe_handle_spec, st->aio_ThreadSafeHandle);
    if (st->ThreadSafeHandleType == NULL)
      return -1;
  }

  /* The engine timer lives at the end of a TimerHandle, pointer-aligned. */
  align = sizeof(void*) > sizeof(double) ? sizeof(void*) : sizeof(double);
  auvpy_timer_offset = (sizeof(TimerHandleObject) + align - 1) & ~(align - 1);
  timer_spec = auvpy_timer_handle_spec;
  timer_spec.basicsize = (int) (auvpy_timer_offset + auv_timer_size());
  st->TimerHandleType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &timer_spec, st->aio_TimerHandle);
  if (st->TimerHandleType == NULL)
    return -1;

  st->FdWatcherType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &auvpy_fd_watcher_spec, NULL);
  if (st->FdWatcherType == NULL)
    return -1;

  {
    PyObject* aio_transport = auvpy_import_attr("asyncio.transports", "Transport");
    if (aio_transport == NULL)
      return -1;
    if (((PyTypeObject*) aio_transport)->tp_basicsize > (Py_ssize_t) auvpy_transport_pad_end) {
      Py_DECREF(aio_transport);
      PyErr_SetString(PyExc_ImportError, "asyncuv: asyncio.Transport is larger "
                      "than this build of asyncuv allows");
      return -1;
    }
    st->TransportType = (PyTypeObject*) PyType_FromModuleAndSpec(
        module, &auvpy_transport_spec, aio_transport);
    Py_DECREF(aio_transport);
    if (st->TransportType == NULL)
      return -1;
  }

  {
    PyObject* aio_transport = auvpy_import_attr("asyncio.transports", "Transport");
    PyObject* aio_datagram = aio_transport == NULL ? NULL :
        auvpy_import_attr("asyncio.transports", "DatagramTransport");
    PyObject* bases = aio_datagram == NULL ? NULL :
        PyTuple_Pack(2, aio_transport, aio_datagram);
    Py_XDECREF(aio_transport);
    Py_XDECREF(aio_datagram);
    if (bases == NULL)
      return -1;
    if (((PyTypeObject*) PyTuple_GET_ITEM(bases, 0))->tp_basicsize >
        (Py_ssize_t) auvpy_datagram_pad_end) {
      Py_DECREF(bases);
      PyErr_SetString(PyExc_ImportError, "asyncuv: asyncio.Transport is larger "
                      "than this build of asyncuv allows");
      return -1;
    }
    st->DatagramType = (PyTypeObject*) PyType_FromModuleAndSpec(
        module, &auvpy_datagram_spec, bases);
    Py_DECREF(bases);
    if (st->DatagramType == NULL)
      return -1;
  }

  st->ListenerType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &auvpy_listener_spec, NULL);
  if (st->ListenerType == NULL)
    return -1;

  st->SockOpType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &auvpy_sockop_spec, NULL);
  if (st->SockOpType == NULL)
    return -1;

  st->SockSendfileType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &auvpy_sock_sendfile_spec, NULL);
  if (st->SockSendfileType == NULL)
    return -1;

  st->ChildWatchType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &auvpy_child_watch_spec, NULL);
  if (st->ChildWatchType == NULL)
    return -1;

  if (auvpy_tls_init(module, st) < 0)
    return -1;

  st->LoopType = (PyTypeObject*) PyType_FromModuleAndSpec(module, &auvpy_loop_spec, NULL);
  if (st->LoopType == NULL)
    return -1;

  /* Type names: the public types the package re-exports (Handle,
   * TimerHandle) are asyncuv.X; every other type is asyncuv._asyncuv.X,
   * where it is made, so that __module__ and pickle find it there. */
  if (PyModule_AddType(module, st->LoopType) < 0 ||
      PyModule_AddType(module, st->HandleType) < 0 ||
      PyModule_AddType(module, st->TimerHandleType) < 0 ||
      (st->ThreadSafeHandleType != NULL &&
       PyModule_AddType(module, st->ThreadSafeHandleType) < 0) ||
      PyModule_AddType(module, st->TransportType) < 0 ||
      PyModule_AddType(module, st->DatagramType) < 0)
    return -1;

  if (auvpy_capi_add(module) < 0)
    return -1;

  base = PyUnicode_FromString(auv_version_string());
  if (base == NULL || PyModule_AddObjectRef(module, "libasyncuv_version", base) < 0) {
    Py_XDECREF(base);
    return -1;
  }
  Py_DECREF(base);
  return 0;
}


static int auvpy_traverse(PyObject* module, visitproc visit, void* arg) {
  auvpy_state* st = PyModule_GetState(module);

  Py_VISIT(st->LoopType);
  Py_VISIT(st->HandleType);
  Py_VISIT(st->TimerHandleType);
  Py_VISIT(st->ThreadSafeHandleType);
  Py_VISIT(st->aio_ThreadSafeHandle);
  Py_VISIT(st->FdWatcherType);
  Py_VISIT(st->zero);
  Py_VISIT(st->SSLSocket);
  Py_VISIT(st->SockOpType);
  Py_VISIT(st->SockSendfileType);
  Py_VISIT(st->ChildWatchType);
  Py_VISIT(st->socket_type);
  Py_VISIT(st->ListenerType);
  Py_VISIT(st->futures);
  Py_VISIT(st->futures_dict);
  Py_VISIT(st->tasks_dict);
  Py_VISIT(st->kept_Future);
  Py_VISIT(st->kept_Task);
  Py_VISIT(st->TransportSocket);
  Py_VISIT(st->BufferedProtocol);
  Py_VISIT(st->TransportType);
  Py_VISIT(st->DatagramType);
  Py_VISIT(st->Future);
  Py_VISIT(st->Task);
  Py_VISIT(st->aio_TimerHandle);
  Py_VISIT(st->aio_Handle);
  Py_VISIT(st->iscoroutine);
  Py_VISIT(st->iscoroutinefunction);
  Py_VISIT(st->format_callback_source);
  Py_VISIT(st->extract_stack);
  Py_VISIT(st->format_handle);
  Py_VISIT(st->logger);
  Py_VISIT(st->isfuture);
  Py_VISIT(st->ensure_future);
  Py_VISIT(st->get_running_loop);
  Py_VISIT(st->set_running_loop);
  Py_VISIT(st->WeakSet);
  Py_VISIT(st->format_list);
  Py_VISIT(st->get_asyncgen_hooks);
  Py_VISIT(st->set_asyncgen_hooks);
  Py_VISIT(st->get_origin_depth);
  Py_VISIT(st->set_origin_depth);
  Py_VISIT(st->set_wakeup_fd);
  Py_VISIT(st->stop_when_done);
  Py_VISIT(st->coroutines);
  return auvpy_tls_traverse(st, visit, arg);
}


static int auvpy_clear(PyObject* module) {
  auvpy_state* st = PyModule_GetState(module);

  Py_CLEAR(st->LoopType);
  Py_CLEAR(st->HandleType);
  Py_CLEAR(st->TimerHandleType);
  Py_CLEAR(st->ThreadSafeHandleType);
  Py_CLEAR(st->aio_ThreadSafeHandle);
  Py_CLEAR(st->FdWatcherType);
  Py_CLEAR(st->zero);
  Py_CLEAR(st->SSLSocket);
  Py_CLEAR(st->SockOpType);
  Py_CLEAR(st->SockSendfileType);
  Py_CLEAR(st->ChildWatchType);
  Py_CLEAR(st->socket_type);
  Py_CLEAR(st->ListenerType);
  Py_CLEAR(st->futures);
  unwatch_asyncio_dicts(st);
  Py_CLEAR(st->kept_Future);
  Py_CLEAR(st->kept_Task);
  Py_CLEAR(st->futures_dict);
  Py_CLEAR(st->tasks_dict);
  Py_CLEAR(st->TransportSocket);
  Py_CLEAR(st->BufferedProtocol);
  Py_CLEAR(st->TransportType);
  Py_CLEAR(st->DatagramType);
  Py_CLEAR(st->Future);
  Py_CLEAR(st->Task);
  Py_CLEAR(st->aio_TimerHandle);
  Py_CLEAR(st->aio_Handle);
  Py_CLEAR(st->iscoroutine);
  Py_CLEAR(st->iscoroutinefunction);
  Py_CLEAR(st->format_callback_source);
  Py_CLEAR(st->extract_stack);
  Py_CLEAR(st->format_handle);
  Py_CLEAR(st->logger);
  Py_CLEAR(st->isfuture);
  Py_CLEAR(st->ensure_future);
  Py_CLEAR(st->get_running_loop);
  Py_CLEAR(st->set_running_loop);
  Py_CLEAR(st->WeakSet);
  Py_CLEAR(st->format_list);
  Py_CLEAR(st->get_asyncgen_hooks);
  Py_CLEAR(st->set_asyncgen_hooks);
  Py_CLEAR(st->get_origin_depth);
  Py_CLEAR(st->set_origin_depth);
  Py_CLEAR(st->set_wakeup_fd);
  Py_CLEAR(st->stop_when_done);
  Py_CLEAR(st->coroutines);
  Py_CLEAR(st->str_error);
  Py_CLEAR(st->str_debug);
  Py_CLEAR(st->str_run_forever);
  Py_CLEAR(st->str_close);
  Py_CLEAR(st->str_default_exception_handler);
  Py_CLEAR(st->str_log_destroy_pending);
  Py_CLEAR(st->str_add_done_callback);
  Py_CLEAR(st->str_remove_done_callback);
  Py_CLEAR(st->str_done);
  Py_CLEAR(st->str_cancelled);
  Py_CLEAR(st->str_result);
  Py_CLEAR(st->str_get_loop);
  Py_CLEAR(st->str_stop);
  Py_CLEAR(st->str_get_context);
  Py_CLEAR(st->str_run);
  Py_CLEAR(st->str_task);
  Py_CLEAR(st->str_future);
  Py_CLEAR(st->str_context);
  Py_CLEAR(st->seen_context_key);
  Py_CLEAR(st->str_name);
  Py_CLEAR(st->str_loop);
  Py_CLEAR(st->str_Future);
  Py_CLEAR(st->str_Task);
  Py_CLEAR(st->str_handle_traceback);
  Py_CLEAR(st->str_exc_info);
  Py_CLEAR(st->str_shutdown);
  Py_CLEAR(st->str_wait);
  Py_CLEAR(st->str_add);
  Py_CLEAR(st->str_discard);
  Py_CLEAR(st->str_aclose);
  Py_CLEAR(st->str_create_task);
  Py_CLEAR(st->str_firstiter);
  Py_CLEAR(st->str_finalizer);
  Py_CLEAR(st->str_warn_on_full_buffer);
  Py_CLEAR(st->str_set_origin_tracking);
  Py_CLEAR(st->str_call_soon_threadsafe);
  Py_CLEAR(st->str_get);
  Py_CLEAR(st->str_connection_made);
  Py_CLEAR(st->str_connection_lost);
  Py_CLEAR(st->str_call_connection_lost);
  Py_CLEAR(st->str_start_reading);
  Py_CLEAR(st->str_pause_writing);
  Py_CLEAR(st->str_resume_writing);
  Py_CLEAR(st->str_eof_received);
  Py_CLEAR(st->str_getsockname);
  Py_CLEAR(st->str_getpeername);
  Py_CLEAR(st->str_attach);
  Py_CLEAR(st->str_detach);
  Py_CLEAR(st->str_data_received);
  Py_CLEAR(st->str_get_buffer);
  Py_CLEAR(st->str_buffer_updated);
  Py_CLEAR(st->str_datagram_received);
  Py_CLEAR(st->str_error_received);
  Py_CLEAR(st->str_set_result_unless_cancelled);
  Py_CLEAR(st->str_is_closing);
  Py_CLEAR(st->str_fileno);
  Py_CLEAR(st->str_cancel);
  Py_CLEAR(st->str_sendto);
  Py_CLEAR(st->str_gettimeout);
  Py_CLEAR(st->str_firstiter_hook);
  Py_CLEAR(st->str_finalizer_hook);
  Py_CLEAR(st->kw_loop);
  Py_CLEAR(st->kw_loop_name);
  Py_CLEAR(st->kw_loop_context);
  Py_CLEAR(st->kw_loop_name_context);
  Py_CLEAR(st->kw_context);
  Py_CLEAR(st->kw_debug);
  Py_CLEAR(st->str_call_exception_handler);
  Py_CLEAR(st->str_set_name);
  Py_CLEAR(st->str_message);
  Py_CLEAR(st->str_exception);
  Py_CLEAR(st->str_handle);
  Py_CLEAR(st->str_source_traceback);
  Py_CLEAR(st->str_warning);
  Py_CLEAR(st->str_set_result);
  Py_CLEAR(st->str_set_exception);
  Py_CLEAR(st->empty_tuple);
  auvpy_handle_freelist_clear(st);
  auvpy_tls_clear(st);
  return 0;
}


static void auvpy_free(void* module) {
  auvpy_clear(module);
  auvpy_tls_free(PyModule_GetState(module));
}


static PyModuleDef_Slot auvpy_slots[] = {
  {Py_mod_exec, auvpy_exec},
  {0, NULL}
};

static struct PyModuleDef auvpy_module_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "asyncuv._asyncuv",
  .m_doc = PyDoc_STR("The C core of asyncuv: an asyncio event loop on libasyncuv."),
  .m_size = sizeof(auvpy_state),
  .m_slots = auvpy_slots,
  .m_traverse = auvpy_traverse,
  .m_clear = auvpy_clear,
  .m_free = auvpy_free,
};

PyMODINIT_FUNC PyInit__asyncuv(void) {
  return PyModuleDef_Init(&auvpy_module_def);
}

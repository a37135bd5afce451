/* asyncuv._asyncuv: module state, types and initialisation (PEP 489). */
#include "asyncuv_module.h"

static struct PyModuleDef auv_module_def;


auv_state* auv__state_from_type(PyTypeObject* tp) {
  PyObject* module;

  module = PyType_GetModuleByDef(tp, &auv_module_def);
  if (module == NULL)
    return NULL;
  return PyModule_GetState(module);
}


static PyObject* import_attr(const char* modname, const char* attr) {
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


static int auv_exec(PyObject* module) {
  auv_state* st;
  PyObject* base;
  PyType_Spec timer_spec;
  size_t align;

  st = PyModule_GetState(module);

#define IMPORT(field, mod, name)                                   \
  do {                                                             \
    st->field = import_attr(mod, name);                            \
    if (st->field == NULL)                                         \
      return -1;                                                   \
  } while (0)
  IMPORT(Future, "asyncio.futures", "Future");
  IMPORT(Task, "asyncio.tasks", "Task");
  IMPORT(aio_Handle, "asyncio.events", "Handle");
  IMPORT(aio_TimerHandle, "asyncio.events", "TimerHandle");
  IMPORT(iscoroutine, "asyncio.coroutines", "iscoroutine");
  IMPORT(iscoroutinefunction, "asyncio.coroutines", "iscoroutinefunction");
  IMPORT(format_callback_source, "asyncio.format_helpers", "_format_callback_source");
  IMPORT(extract_stack, "asyncio.format_helpers", "extract_stack");
  IMPORT(format_handle, "asyncio.base_events", "_format_handle");
  IMPORT(logger, "asyncio.log", "logger");
#undef IMPORT

#define INTERN(field, text)                                        \
  do {                                                             \
    st->field = PyUnicode_InternFromString(text);                  \
    if (st->field == NULL)                                         \
      return -1;                                                   \
  } while (0)
  INTERN(str_call_exception_handler, "call_exception_handler");
  INTERN(str_set_name, "set_name");
  INTERN(str_message, "message");
  INTERN(str_exception, "exception");
  INTERN(str_handle, "handle");
  INTERN(str_source_traceback, "source_traceback");
  INTERN(str_warning, "warning");
#undef INTERN

  if ((st->kw_loop = str_tuple(1, "loop", NULL, NULL)) == NULL ||
      (st->kw_loop_name = str_tuple(2, "loop", "name", NULL)) == NULL ||
      (st->kw_loop_context = str_tuple(2, "loop", "context", NULL)) == NULL ||
      (st->kw_loop_name_context = str_tuple(3, "loop", "name", "context")) == NULL ||
      (st->kw_context = str_tuple(1, "context", NULL, NULL)) == NULL ||
      (st->empty_tuple = PyTuple_New(0)) == NULL)
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
      module, &auv__handle_spec, st->aio_Handle);
  if (st->HandleType == NULL)
    return -1;

  /* The engine timer lives at the end of a TimerHandle, pointer-aligned. */
  align = sizeof(void*) > sizeof(double) ? sizeof(void*) : sizeof(double);
  auv__timer_offset = (sizeof(TimerHandleObject) + align - 1) & ~(align - 1);
  timer_spec = auv__timer_handle_spec;
  timer_spec.basicsize = (int) (auv__timer_offset + auv_timer_size());
  st->TimerHandleType = (PyTypeObject*) PyType_FromModuleAndSpec(
      module, &timer_spec, st->aio_TimerHandle);
  if (st->TimerHandleType == NULL)
    return -1;

  st->LoopType = (PyTypeObject*) PyType_FromModuleAndSpec(module, &auv__loop_spec, NULL);
  if (st->LoopType == NULL)
    return -1;

  if (PyModule_AddType(module, st->LoopType) < 0 ||
      PyModule_AddType(module, st->HandleType) < 0 ||
      PyModule_AddType(module, st->TimerHandleType) < 0)
    return -1;

  base = PyUnicode_FromString(auv_version_string());
  if (base == NULL || PyModule_AddObject(module, "libasyncuv_version", base) < 0) {
    Py_XDECREF(base);
    return -1;
  }
  return 0;
}


static int auv_traverse(PyObject* module, visitproc visit, void* arg) {
  auv_state* st = PyModule_GetState(module);

  Py_VISIT(st->LoopType);
  Py_VISIT(st->HandleType);
  Py_VISIT(st->TimerHandleType);
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
  return 0;
}


static int auv_clear(PyObject* module) {
  auv_state* st = PyModule_GetState(module);

  Py_CLEAR(st->LoopType);
  Py_CLEAR(st->HandleType);
  Py_CLEAR(st->TimerHandleType);
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
  Py_CLEAR(st->kw_loop);
  Py_CLEAR(st->kw_loop_name);
  Py_CLEAR(st->kw_loop_context);
  Py_CLEAR(st->kw_loop_name_context);
  Py_CLEAR(st->kw_context);
  Py_CLEAR(st->str_call_exception_handler);
  Py_CLEAR(st->str_set_name);
  Py_CLEAR(st->str_message);
  Py_CLEAR(st->str_exception);
  Py_CLEAR(st->str_handle);
  Py_CLEAR(st->str_source_traceback);
  Py_CLEAR(st->str_warning);
  Py_CLEAR(st->empty_tuple);
  auv__handle_freelist_clear(st);
  return 0;
}


static void auv_free(void* module) {
  auv_clear(module);
}


static PyModuleDef_Slot auv_slots[] = {
  {Py_mod_exec, auv_exec},
  {0, NULL}
};

static struct PyModuleDef auv_module_def = {
  PyModuleDef_HEAD_INIT,
  .m_name = "asyncuv._asyncuv",
  .m_doc = PyDoc_STR("The C core of asyncuv: an asyncio event loop on libasyncuv."),
  .m_size = sizeof(auv_state),
  .m_slots = auv_slots,
  .m_traverse = auv_traverse,
  .m_clear = auv_clear,
  .m_free = auv_free,
};

PyMODINIT_FUNC PyInit__asyncuv(void) {
  return PyModuleDef_Init(&auv_module_def);
}

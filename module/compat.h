/* Differences between the Pythons asyncuv supports (3.11 to 3.14), in one
 * place: each guard is named for what changed, and the code elsewhere uses
 * the names defined here.  Included by asyncuv_module.h, after Python.h. */
#ifndef ASYNCUV_COMPAT_H
#define ASYNCUV_COMPAT_H

/* 3.14 deprecates asyncio.iscoroutinefunction() (it warns); asyncio's own
 * loop checks callbacks with coroutines._iscoroutinefunction(), which does
 * not, and so does asyncuv. */
#if PY_VERSION_HEX >= 0x030E0000
#  define AUV_ASYNCIO_ISCOROUTINEFUNCTION "_iscoroutinefunction"
#else
#  define AUV_ASYNCIO_ISCOROUTINEFUNCTION "iscoroutinefunction"
#endif

/* 3.12 has dict watchers (PyDict_AddWatcher()): a callback told of every
 * change to a watched dict. */
#if PY_VERSION_HEX >= 0x030C0000
#  define AUV_HAVE_DICT_WATCHERS 1
#else
#  define AUV_HAVE_DICT_WATCHERS 0
#endif

/* --- C API ---------------------------------------------------------------- */

/* 3.12 replaces PyErr_Fetch(), PyErr_Restore() and
 * PyErr_NormalizeException() (deprecated) with one exception object:
 * PyErr_GetRaisedException() takes the current exception, normalized,
 * its traceback attached; PyErr_SetRaisedException() raises one (NULL
 * clears).  Before 3.12 they are made of the old three. */
#if PY_VERSION_HEX < 0x030C0000
static inline PyObject* PyErr_GetRaisedException(void) {
  PyObject* type;
  PyObject* value;
  PyObject* tb;

  PyErr_Fetch(&type, &value, &tb);
  if (type == NULL)
    return NULL;
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL)
    PyException_SetTraceback(value, tb);
  Py_DECREF(type);
  Py_XDECREF(tb);
  return value;
}

static inline void PyErr_SetRaisedException(PyObject* exc) {
  if (exc == NULL) {
    PyErr_Clear();
    return;
  }
  PyErr_Restore(Py_NewRef((PyObject*) Py_TYPE(exc)), exc,
                PyException_GetTraceback(exc));
}
#endif

/* 3.12 moves the PyMemberDef type codes and flags into Python.h:
 * Py_T_BOOL, Py_T_INT, Py_T_PYSSIZET, Py_T_OBJECT_EX, Py_READONLY;
 * structmember.h's T_* and READONLY are deprecated.  3.11 has only those.
 *
 * Weak references to our own types (transports) stay a field named by a
 * __weaklistoffset__ member (Py_T_PYSSIZET, Py_READONLY) on every version,
 * as CPython's documentation allows for code that supports Pythons before
 * 3.12: Py_TPFLAGS_MANAGED_WEAKREF would add a two-pointer pre-header to
 * each transport for the one pointer it saves (+8 bytes per connection). */
#if PY_VERSION_HEX < 0x030C0000
#  include <structmember.h>
#  define Py_T_BOOL T_BOOL
#  define Py_T_INT T_INT
#  define Py_T_PYSSIZET T_PYSSIZET
#  define Py_T_OBJECT_EX T_OBJECT_EX
#  define Py_READONLY READONLY
#endif

/* 3.13 adds PyDict_GetItemRef(): a strong reference, and -1 (error), 0
 * (missing) or 1 (found).  Before, PyDict_GetItemWithError() and an
 * incref. */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyDict_GetItemRef(PyObject* dict, PyObject* key,
                                    PyObject** result) {
  *result = PyDict_GetItemWithError(dict, key);
  if (*result != NULL) {
    Py_INCREF(*result);
    return 1;
  }
  return PyErr_Occurred() ? -1 : 0;
}
#endif

/* 3.13 adds PyDict_GetItemStringRef() (PyDict_GetItemString() returns a
 * borrowed reference and hides errors) and PyObject_HasAttrWithError()
 * (Python's hasattr(): -1 for an error other than AttributeError, which
 * PyObject_HasAttr() hides).  Before, made of older calls. */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyDict_GetItemStringRef(PyObject* dict, const char* key,
                                          PyObject** result) {
  PyObject* name;
  int r;

  name = PyUnicode_FromString(key);
  if (name == NULL) {
    *result = NULL;
    return -1;
  }
  r = PyDict_GetItemRef(dict, name, result);
  Py_DECREF(name);
  return r;
}

static inline int PyObject_HasAttrWithError(PyObject* obj, PyObject* name) {
  PyObject* value;

  value = PyObject_GetAttr(obj, name);
  if (value != NULL) {
    Py_DECREF(value);
    return 1;
  }
  if (!PyErr_ExceptionMatches(PyExc_AttributeError))
    return -1;
  PyErr_Clear();
  return 0;
}
#endif


/* --- asyncio ----------------------------------------------------------------- */

/* 3.13's format_helpers._format_callback_source(func, args, *, debug=False)
 * shows the arguments only with debug=True; asyncio's Handle passes its
 * loop's debug mode.  Before, it took no debug and always showed them. */
#define AUV_FORMAT_CALLBACK_SOURCE_TAKES_DEBUG (PY_VERSION_HEX >= 0x030D0000)

/* The TypeError of a stream transport's write() given something other than
 * bytes, bytearray or memoryview: 3.14's asyncio names the three. */
#if PY_VERSION_HEX >= 0x030E0000
#  define AUV_WRITE_DATA_TYPE_ERROR \
     "data argument must be a bytes, bytearray, or memoryview object, not '%.100s'"
#else
#  define AUV_WRITE_DATA_TYPE_ERROR \
     "data argument must be a bytes-like object, not '%.100s'"
#endif

/* How loop.create_task() passes its keyword arguments on: what asyncio's
 * BaseEventLoop.create_task() does on the running interpreter (its asyncio
 * is the interpreter's, so 3.13's micro versions are told apart at run time
 * through Py_Version).
 *  - 3.11, 3.12: name= and context= only.  A task factory is called as
 *    factory(loop, coro), plus context= when it is not None; then
 *    task.set_name(name) unless name is None.
 *  - 3.13.0 to 3.13.2: the same, but set_name(name) even for None.
 *  - 3.13.4 and later 3.13: other keywords too, passed on to Task() or to
 *    the factory (which still gets no name=, and context= only when not
 *    None; then set_name(name)): gh-133745, 3.13.3's change made
 *    compatible.
 *  - 3.13.3 and 3.14: every keyword passed on as given, name= and
 *    context= included; the factory's task is returned as it is
 *    (gh-128308).
 * Without a factory it is Task(coro, loop=loop, **kwargs) throughout. */
typedef enum {
  AUV_CREATE_TASK_NAME_CONTEXT,
  AUV_CREATE_TASK_NAME_CONTEXT_SET_NAME,
  AUV_CREATE_TASK_EXTRA_KWARGS,
  AUV_CREATE_TASK_ALL_KWARGS
} auvpy_create_task_rule_t;

static inline auvpy_create_task_rule_t auvpy_create_task_rule(void) {
#if PY_VERSION_HEX >= 0x030E0000
  return AUV_CREATE_TASK_ALL_KWARGS;
#elif PY_VERSION_HEX >= 0x030D0000
  if (Py_Version >= 0x030D0400)
    return AUV_CREATE_TASK_EXTRA_KWARGS;
  if (Py_Version >= 0x030D0300)
    return AUV_CREATE_TASK_ALL_KWARGS;
  return AUV_CREATE_TASK_NAME_CONTEXT_SET_NAME;
#else
  return AUV_CREATE_TASK_NAME_CONTEXT;
#endif
}

#endif /* ASYNCUV_COMPAT_H */

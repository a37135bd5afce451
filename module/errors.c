/* The exception handler chain: where errors from callbacks, tasks and
 * futures go.  A custom handler runs in the context of the object that
 * failed; a handler that fails itself is reported by the default handler,
 * which logs to the 'asyncio' logger.  SystemExit and KeyboardInterrupt go
 * through untouched.  Also here: the exceptions made from the engine's
 * error codes (auvpy_oserror(), auvpy_sendfile_error()). */
#include "asyncuv_module.h"

#include <errno.h>


int auvpy_is_exit_exception(void) {
  return PyErr_ExceptionMatches(PyExc_SystemExit) ||
         PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}


PyObject* auvpy_take_exception(void) {
  return PyErr_GetRaisedException();
}


/* logger.<level>(*args, exc_info=True) with the current exception (which
 * is taken) as the one being handled, as asyncio logs from its except
 * clauses: tests and applications that capture the call see the same
 * arguments.  A failure of the call itself is unraisable. */
void auvpy_log_with_exc_info(auvpy_state* st, PyObject* level, PyObject* args) {
  PyObject* value;
  PyObject* saved_type;
  PyObject* saved_value;
  PyObject* saved_tb;
  PyObject* method;
  PyObject* kwargs;
  PyObject* r;

  value = auvpy_take_exception();
  PyErr_GetExcInfo(&saved_type, &saved_value, &saved_tb);
  if (value != NULL)  /* steals the three */
    PyErr_SetExcInfo(Py_NewRef((PyObject*) Py_TYPE(value)), value,
                     PyException_GetTraceback(value));
  method = PyObject_GetAttr(st->logger, level);
  kwargs = method == NULL ? NULL : Py_BuildValue("{OO}", st->str_exc_info, Py_True);
  r = kwargs == NULL ? NULL : PyObject_Call(method, args, kwargs);
  Py_XDECREF(method);
  Py_XDECREF(kwargs);
  if (r == NULL)
    PyErr_WriteUnraisable(st->logger);
  Py_XDECREF(r);
  PyErr_SetExcInfo(saved_type, saved_value, saved_tb);
}


static void log_current_error(LoopObject* self, const char* message) {
  PyObject* args;

  args = Py_BuildValue("(s)", message);
  if (args == NULL) {
    PyErr_WriteUnraisable((PyObject*) self);
    return;
  }
  auvpy_log_with_exc_info(self->state, self->state->str_error, args);
  Py_DECREF(args);
}


/* context.get(key), as asyncio reads it: any mapping with get() will do. */
static PyObject* context_get(LoopObject* self, PyObject* context, PyObject* key) {
  return PyObject_CallMethodOneArg(context, self->state->str_get, key);
}


/* Run the custom handler; -1 with an exception set if it failed.  From
 * Python 3.12 on, asyncio runs it in the context of the task, future or
 * handle that the error context names; 3.11 calls it as is.  The caller
 * holds handler: it may replace itself (set_exception_handler()) while it
 * runs. */
static int call_custom_handler(LoopObject* self, PyObject* handler, PyObject* context) {
#if PY_VERSION_HEX < 0x030C0000
  PyObject* r = PyObject_CallFunctionObjArgs(handler, self, context, NULL);
  if (r == NULL)
    return -1;
  Py_DECREF(r);
  return 0;
#else
  auvpy_state* st;
  PyObject* thing;
  PyObject* ctx;
  PyObject* run;
  PyObject* r;
  PyObject* keys[3];
  int i;

  st = self->state;
  keys[0] = st->str_task;
  keys[1] = st->str_future;
  keys[2] = st->str_handle;
  thing = NULL;
  for (i = 0; i < 3; i++) {
    thing = context_get(self, context, keys[i]);
    if (thing == NULL)
      return -1;
    if (thing != Py_None)
      break;
    Py_CLEAR(thing);
  }

  ctx = NULL;
  if (thing != NULL) {
    /* hasattr(): an error other than AttributeError propagates. */
    int has = PyObject_HasAttrWithError(thing, st->str_get_context);
    if (has > 0)
      ctx = PyObject_CallMethodNoArgs(thing, st->str_get_context);
    Py_DECREF(thing);
    if (has < 0 || (ctx == NULL && PyErr_Occurred()))
      return -1;
  }

  run = NULL;
  if (ctx != NULL && ctx != Py_None) {
    run = PyObject_GetAttr(ctx, st->str_run);
    if (run == NULL) {
      if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
        Py_DECREF(ctx);
        return -1;
      }
      PyErr_Clear();
    }
  }
  Py_XDECREF(ctx);

  if (run != NULL) {
    r = PyObject_CallFunctionObjArgs(run, handler, self, context, NULL);
    Py_DECREF(run);
  } else {
    r = PyObject_CallFunctionObjArgs(handler, self, context, NULL);
  }
  if (r == NULL)
    return -1;
  Py_DECREF(r);
  return 0;
#endif
}


PyObject* auvpy_loop_call_exception_handler(LoopObject* self, PyObject* context) {
  auvpy_state* st;
  PyObject* handler;
  PyObject* r;
  PyObject* value;
  PyObject* report;
  int failed;

  st = self->state;
  if (self->exception_handler == NULL) {
    r = PyObject_CallMethodOneArg((PyObject*) self,
                                  st->str_default_exception_handler, context);
    if (r != NULL) {
      Py_DECREF(r);
      Py_RETURN_NONE;
    }
    if (auvpy_is_exit_exception())
      return NULL;
    /* A failing default handler (a subclass's, say) still gets logged. */
    log_current_error(self, "Exception in default exception handler");
    Py_RETURN_NONE;
  }

  handler = Py_NewRef(self->exception_handler);
  failed = call_custom_handler(self, handler, context) < 0;
  Py_DECREF(handler);
  if (!failed)
    Py_RETURN_NONE;
  if (auvpy_is_exit_exception())
    return NULL;

  /* The custom handler failed: report that through the default one. */
  value = auvpy_take_exception();
  report = Py_BuildValue("{sssOsO}",
                         "message", "Unhandled error in exception handler",
                         "exception", value ? value : Py_None,
                         "context", context);
  Py_XDECREF(value);
  if (report == NULL)
    return NULL;
  r = PyObject_CallMethodOneArg((PyObject*) self,
                                st->str_default_exception_handler, report);
  Py_DECREF(report);
  if (r != NULL) {
    Py_DECREF(r);
    Py_RETURN_NONE;
  }
  if (auvpy_is_exit_exception())
    return NULL;
  log_current_error(self, "Exception in default exception handler while "
                          "handling an unexpected error in custom exception "
                          "handler");
  Py_RETURN_NONE;
}


/* "Object created at (most recent call last):\n" + the formatted stack. */
static PyObject* format_stack_value(LoopObject* self, const char* what,
                                    PyObject* stack) {
  PyObject* lines;
  PyObject* empty;
  PyObject* joined;
  PyObject* stripped;
  PyObject* res;

  lines = PyObject_CallOneArg(self->state->format_list, stack);
  if (lines == NULL)
    return NULL;
  empty = PyUnicode_FromString("");
  joined = empty != NULL ? PyUnicode_Join(empty, lines) : NULL;
  Py_XDECREF(empty);
  Py_DECREF(lines);
  if (joined == NULL)
    return NULL;
  stripped = PyObject_CallMethod(joined, "rstrip", NULL);
  Py_DECREF(joined);
  if (stripped == NULL)
    return NULL;
  res = PyUnicode_FromFormat("%s created at (most recent call last):\n%U",
                             what, stripped);
  Py_DECREF(stripped);
  return res;
}


PyObject* auvpy_loop_default_exception_handler(LoopObject* self, PyObject* context) {
  auvpy_state* st;
  PyObject* message = NULL;
  PyObject* exception = NULL;
  PyObject* exc_info = NULL;
  PyObject* keys = NULL;
  PyObject* lines = NULL;
  PyObject* text = NULL;
  PyObject* sep = NULL;
  PyObject* res = NULL;
  Py_ssize_t i;
  int truth;

  st = self->state;
  message = context_get(self, context, st->str_message);
  if (message == NULL)
    goto done;
  truth = PyObject_IsTrue(message);
  if (truth < 0)
    goto done;
  if (!truth)
    Py_SETREF(message, PyUnicode_FromString("Unhandled exception in event loop"));
  if (message == NULL)
    goto done;

  exception = context_get(self, context, st->str_exception);
  if (exception == NULL)
    goto done;
  if (exception != Py_None) {
    PyObject* tb = PyException_GetTraceback(exception);
    exc_info = PyTuple_Pack(3, (PyObject*) Py_TYPE(exception), exception,
                            tb ? tb : Py_None);
    Py_XDECREF(tb);
  } else {
    exc_info = Py_NewRef(Py_False);
  }
  if (exc_info == NULL)
    goto done;

  /* The message, then every other key in sorted order, one per line. */
  lines = PyList_New(0);
  keys = PySequence_List(context);
  if (lines == NULL || keys == NULL || PyList_Append(lines, message) < 0 ||
      PyList_Sort(keys) < 0)
    goto done;
  for (i = 0; i < PyList_GET_SIZE(keys); i++) {
    PyObject* key = PyList_GET_ITEM(keys, i);
    PyObject* value;
    PyObject* shown;
    PyObject* line;

    if (PyUnicode_Check(key) &&
        (PyUnicode_Compare(key, st->str_message) == 0 ||
         PyUnicode_Compare(key, st->str_exception) == 0))
      continue;
    value = PyObject_GetItem(context, key);
    if (value == NULL)
      goto done;
    if (PyUnicode_Check(key) && PyUnicode_Compare(key, st->str_source_traceback) == 0)
      shown = format_stack_value(self, "Object", value);
    else if (PyUnicode_Check(key) && PyUnicode_Compare(key, st->str_handle_traceback) == 0)
      shown = format_stack_value(self, "Handle", value);
    else
      shown = PyObject_Repr(value);
    Py_DECREF(value);
    if (shown == NULL)
      goto done;
    line = PyUnicode_FromFormat("%S: %U", key, shown);
    Py_DECREF(shown);
    if (line == NULL || PyList_Append(lines, line) < 0) {
      Py_XDECREF(line);
      goto done;
    }
    Py_DECREF(line);
  }

  sep = PyUnicode_FromString("\n");
  text = sep != NULL ? PyUnicode_Join(sep, lines) : NULL;
  if (text != NULL) {
    PyObject* error = PyObject_GetAttr(st->logger, st->str_error);
    PyObject* args = PyTuple_Pack(1, text);
    PyObject* kwargs = Py_BuildValue("{OO}", st->str_exc_info, exc_info);
    if (error != NULL && args != NULL && kwargs != NULL)
      res = PyObject_Call(error, args, kwargs);
    Py_XDECREF(error);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
  }

done:
  Py_XDECREF(message);
  Py_XDECREF(exception);
  Py_XDECREF(exc_info);
  Py_XDECREF(keys);
  Py_XDECREF(lines);
  Py_XDECREF(text);
  Py_XDECREF(sep);
  if (res == NULL)
    return NULL;
  Py_DECREF(res);
  Py_RETURN_NONE;
}


PyObject* auvpy_loop_set_exception_handler(LoopObject* self, PyObject* handler) {
  if (handler != Py_None && !PyCallable_Check(handler)) {
    PyErr_Format(PyExc_TypeError,
                 "A callable object or None is expected, got %R", handler);
    return NULL;
  }
  Py_XSETREF(self->exception_handler, handler == Py_None ? NULL : Py_NewRef(handler));
  Py_RETURN_NONE;
}


PyObject* auvpy_loop_get_exception_handler(LoopObject* self, PyObject* unused) {
  return Py_NewRef(self->exception_handler ? self->exception_handler : Py_None);
}


PyObject* auvpy_oserror(int err) {
  errno = -err;
  return PyErr_SetFromErrno(PyExc_OSError);
}


/* As asyncio's _sock_sendfile_native(), which its transports' sendfile
 * goes through too: a first sendfile system call that fails says the pair
 * cannot be served (a file that is not mmap-able, a socket that is gone,
 * ...), and the caller may fall back; ENOTCONN once bytes went out becomes
 * asyncio's own ConnectionError (message first, errno second, as it makes
 * it), caused by the system call's; any other error is the system call's
 * OSError. */
PyObject* auvpy_sendfile_error(int status, uint64_t sent) {
  PyObject* cause;
  PyObject* type;
  PyObject* exc;

  if (sent > 0 && status != -ENOTCONN)
    return auvpy_oserror(status);
  if (sent == 0) {
    type = auvpy_import_attr("asyncio.exceptions", "SendfileNotAvailableError");
    if (type == NULL)
      return NULL;
    PyErr_SetString(type, "os.sendfile call failed");
    Py_DECREF(type);
    return NULL;
  }
  auvpy_oserror(status);
  cause = PyErr_GetRaisedException();
  exc = PyObject_CallFunction(PyExc_ConnectionError, "si", "socket is not connected",
                              ENOTCONN);
  if (exc == NULL) {
    Py_DECREF(cause);
    return NULL;
  }
  PyException_SetCause(exc, cause);
  PyErr_SetRaisedException(exc);
  return NULL;
}

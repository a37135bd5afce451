/* The C API for other extensions: the capsule asyncuv._asyncuv._C_API,
 * described by the installed header asyncuv-python.h.
 *
 * loop_acquire() hands out the engine behind a Python loop.  A raw pointer
 * handed out must stay valid while it is held, so an acquisition is two
 * references: a strong one to the Python loop (it cannot be deallocated)
 * and one counted in engine_holders (Loop.close() does everything but free
 * the engine; the last loop_release() frees it). */
#include "asyncuv_module.h"
#include "asyncuv-python.h"


static int capi_loop_check(PyObject* obj) {
  PyObject* exc;
  auvpy_state* st;
  int r;

  if (obj == NULL)
    return 0;
  /* Never fails: keep whatever exception the caller has. */
  exc = PyErr_GetRaisedException();
  st = auvpy_state_from_type(Py_TYPE(obj));
  r = st != NULL && st->LoopType != NULL && PyObject_TypeCheck(obj, st->LoopType);
  PyErr_Clear();
  PyErr_SetRaisedException(exc);
  return r;
}


static auv_loop_t* capi_loop_acquire(PyObject* obj) {
  LoopObject* self;

  if (!capi_loop_check(obj)) {
    PyErr_Format(PyExc_TypeError, "an asyncuv loop is required, not %.200s",
                 obj == NULL ? "NULL" : Py_TYPE(obj)->tp_name);
    return NULL;
  }
  self = (LoopObject*) obj;
  if (auvpy_loop_check_closed(self) < 0)
    return NULL;
  self->engine_holders++;
  Py_INCREF(obj);
  return self->loop;
}


static void capi_loop_release(PyObject* obj) {
  LoopObject* self;

  if (!capi_loop_check(obj) || ((LoopObject*) obj)->engine_holders == 0) {
    /* A bug in the caller; say so rather than corrupt the count. */
    PyObject* exc = PyErr_GetRaisedException();

    PyErr_Format(PyExc_SystemError,
                 "asyncuv loop_release() of %.200s that was not acquired",
                 obj == NULL ? "NULL" : Py_TYPE(obj)->tp_name);
    PyErr_WriteUnraisable(obj);
    PyErr_SetRaisedException(exc);
    return;
  }
  self = (LoopObject*) obj;
  self->engine_holders--;
  if (self->engine_holders == 0 && self->closed)
    auvpy_loop_free_engine(self);
  Py_DECREF(obj);
}


static const asyncuv_capi_t capi = {
  .abi_version = ASYNCUV_CAPI_VERSION,
  .struct_size = sizeof(asyncuv_capi_t),
  .loop_check = capi_loop_check,
  .loop_acquire = capi_loop_acquire,
  .loop_release = capi_loop_release,
};


int auvpy_capi_add(PyObject* module) {
  PyObject* capsule;
  int r;

  capsule = PyCapsule_New((void*) &capi, ASYNCUV_CAPI_NAME, NULL);
  if (capsule == NULL)
    return -1;
  r = PyModule_AddObjectRef(module, "_C_API", capsule);
  Py_DECREF(capsule);
  return r;
}

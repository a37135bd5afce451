/* asyncuv's C API for other CPython extensions.
 *
 * The asyncuv Python module exports a capsule, asyncuv._asyncuv._C_API,
 * that points at an asyncuv_capi_t.  Through it an extension gets the
 * libasyncuv engine (auv_loop_t*) behind a Python asyncuv loop and then
 * calls libasyncuv directly (streams, listeners, timers, calls), with no
 * Python on its hot path.  Link the extension with libasyncuv
 * (pkg-config asyncuv); see asyncuv(7), "C API for extensions".
 *
 *   #include <asyncuv-python.h>
 *
 *   In the module's exec function (or PyInit):
 *     if (asyncuv_capi_import() < 0)
 *       return -1;                  ImportError is set
 *   Then, holding the GIL:
 *     auv_loop_t* engine = asyncuv_capi->loop_acquire(pyloop);
 *     if (engine == NULL)
 *       return NULL;                TypeError or RuntimeError is set
 *     ... auv_listener_new(engine, fd, &listener) ...
 *     asyncuv_capi->loop_release(pyloop);   once done with engine
 *
 * Compatibility: the struct only grows at its end.  ASYNCUV_CAPI_VERSION
 * changes only if a member changes meaning (never, we hope); members added
 * later come with a larger struct_size.  The import helper accepts a module
 * whose struct is at least as large as the one this header describes, so an
 * extension built against this header runs with this and any later asyncuv.
 */
#ifndef ASYNCUV_PYTHON_H
#define ASYNCUV_PYTHON_H

#include <Python.h>
#include <asyncuv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNCUV_CAPI_VERSION 1
/* The capsule's name, and where it lives: module asyncuv._asyncuv,
 * attribute _C_API. */
#define ASYNCUV_CAPI_NAME "asyncuv._asyncuv._C_API"

typedef struct {
  /* ASYNCUV_CAPI_VERSION of the module that made the struct. */
  unsigned int abi_version;
  /* sizeof(asyncuv_capi_t) in the module: members past the end of an
   * older header's struct are newer additions. */
  size_t struct_size;

  /* --- ABI version 1 (asyncuv 0.1.0) --- */

  /* 1 if obj is an asyncuv loop (asyncuv.Loop or a subclass), else 0.
   * Never fails; needs the GIL. */
  int (*loop_check)(PyObject* obj);
  /* The engine behind the asyncuv loop `loop`.  Takes a strong reference
   * to `loop` and a hold on the engine: until the matching loop_release(),
   * the Python loop stays alive (whoever else drops it) and the engine
   * stays valid even if the loop is closed (Loop.close() then frees the
   * engine at the last release).  NULL with TypeError if `loop` is not an
   * asyncuv loop, RuntimeError if it is closed.  Needs the GIL.
   *
   * The engine belongs to the Python loop: create handles, timers and
   * calls on it, on the loop's thread; do not run, stop, close it, or
   * change its data or block hooks.  Its callbacks run on the loop's
   * thread with the GIL held. */
  auv_loop_t* (*loop_acquire)(PyObject* loop);
  /* Give back one loop_acquire() of `loop` (which may be deallocated by
   * this call).  Close the handles made on the engine first: at the last
   * release of a closed loop the engine is freed.  Needs the GIL. */
  void (*loop_release)(PyObject* loop);
} asyncuv_capi_t;

/* Set by asyncuv_capi_import(), one per C file that includes this header
 * (as datetime.h's PyDateTimeAPI). */
static const asyncuv_capi_t* asyncuv_capi = NULL;

/* Import the capsule and check that it is compatible with a header of the
 * given version and struct size; returns it, or NULL with ImportError (or
 * the error of importing asyncuv) set.  asyncuv_capi_import() passes this
 * header's values; other values are for testing the check. */
static inline const asyncuv_capi_t* asyncuv_capi_load(unsigned int version,
                                                      size_t size) {
  const asyncuv_capi_t* api;

  api = (const asyncuv_capi_t*) PyCapsule_Import(ASYNCUV_CAPI_NAME, 0);
  if (api == NULL)
    return NULL;
  if (api->abi_version != version) {
    PyErr_Format(PyExc_ImportError,
                 "asyncuv C API version %u, but this extension was built "
                 "for version %u", api->abi_version, version);
    return NULL;
  }
  if (api->struct_size < size) {
    PyErr_Format(PyExc_ImportError,
                 "asyncuv C API struct has %zu bytes, but this extension "
                 "was built for %zu (a newer asyncuv): upgrade asyncuv",
                 api->struct_size, size);
    return NULL;
  }
  return api;
}

/* Import the C API into asyncuv_capi: 0, or -1 with ImportError set. */
static inline int asyncuv_capi_import(void) {
  asyncuv_capi = asyncuv_capi_load(ASYNCUV_CAPI_VERSION, sizeof(asyncuv_capi_t));
  return asyncuv_capi == NULL ? -1 : 0;
}

#ifdef __cplusplus
}
#endif

#endif /* ASYNCUV_PYTHON_H */

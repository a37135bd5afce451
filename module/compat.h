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

#endif /* ASYNCUV_COMPAT_H */

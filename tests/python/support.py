"""Helpers shared by the asyncuv twin tests (imported by conftest and tests)."""

import asyncio
import importlib
import os
import types

STANDIN_ENV = "ASYNCUV_TEST_STANDIN"

_asyncuv_module = None
_asyncuv_import_error = None


def _uvloop_standin():
    """Expose uvloop under the asyncuv API names (Loop, new_event_loop,
    EventLoopPolicy, install, run)."""
    import uvloop

    def run(main, *, debug=None):
        # uvloop < 0.18 has no run(); mirror asyncio.run() on uvloop loops.
        if asyncio._get_running_loop() is not None:
            raise RuntimeError("asyncio.run() cannot be called from a running event loop")
        with asyncio.Runner(debug=debug, loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)

    return types.SimpleNamespace(
        __name__="uvloop (stand-in for asyncuv)",
        Loop=uvloop.Loop,
        new_event_loop=uvloop.new_event_loop,
        EventLoopPolicy=uvloop.EventLoopPolicy,
        install=uvloop.install,
        run=getattr(uvloop, "run", run),
    )


def load_asyncuv():
    """Return the asyncuv module (or the configured stand-in).

    Raises ImportError naming the problem if it cannot be loaded; callers
    must let it propagate so the test errors instead of being skipped.
    """
    global _asyncuv_module, _asyncuv_import_error
    if _asyncuv_module is not None:
        return _asyncuv_module
    if _asyncuv_import_error is None:
        standin = os.environ.get(STANDIN_ENV, "")
        try:
            if standin == "uvloop":
                _asyncuv_module = _uvloop_standin()
            elif standin:
                raise ImportError(f"{STANDIN_ENV}={standin!r} is not supported (only 'uvloop')")
            else:
                _asyncuv_module = importlib.import_module("asyncuv")
            return _asyncuv_module
        except ImportError as exc:
            _asyncuv_import_error = (
                f"cannot load the asyncuv loop under test: {exc!r}. Build asyncuv, "
                f"or set {STANDIN_ENV}=uvloop to exercise the suite on uvloop."
            )
    # A fresh exception each time: re-raising one object grows its traceback.
    raise ImportError(_asyncuv_import_error)


def new_loop(kind):
    """Create a fresh, not-yet-current loop of the given kind."""
    if kind == "asyncuv":
        return load_asyncuv().new_event_loop()
    if kind == "asyncio":
        # Explicitly the stock loop, independent of any installed policy.
        return asyncio.SelectorEventLoop()
    raise ValueError(f"unknown loop kind {kind!r}")


def run_briefly(loop, steps=1):
    """Run ``steps`` full loop iterations: stop() then run_forever()."""
    for _ in range(steps):
        loop.call_soon(loop.stop)
        loop.run_forever()


def capture(func, *args, **kwargs):
    """Call ``func`` and return the exception it raised (or None).

    Used inside loop callbacks, where a raised exception would be routed to
    the exception handler instead of reaching the test.
    """
    try:
        func(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - we hand it back to the test
        return exc
    return None


def noop(*args):
    pass

"""Handle / TimerHandle objects and reference management (no leaks of
callbacks, arguments or contexts)."""

import asyncio
import contextvars
import gc
import sys
import tracemalloc
import weakref

import pytest

from support import noop, run_briefly


def my_callback_fn(*args):
    pass


class Payload:
    """Something to hang a weakref on; its bound method is a callback."""

    def method(self, *args):
        pass


class Callable:
    """A callable whose own refcount can be tracked (unlike bound methods,
    which are created afresh on every attribute access)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1


SCHEDULERS = {
    "call_soon": lambda loop, cb, *args: loop.call_soon(cb, *args),
    "call_soon_threadsafe": lambda loop, cb, *args: loop.call_soon_threadsafe(cb, *args),
    "call_later": lambda loop, cb, *args: loop.call_later(0, cb, *args),
    "call_at": lambda loop, cb, *args: loop.call_at(loop.time(), cb, *args),
}
FAR_SCHEDULERS = {
    "call_soon": lambda loop, cb, *args: loop.call_soon(cb, *args),
    "call_soon_threadsafe": lambda loop, cb, *args: loop.call_soon_threadsafe(cb, *args),
    "call_later": lambda loop, cb, *args: loop.call_later(3600, cb, *args),
    "call_at": lambda loop, cb, *args: loop.call_at(loop.time() + 3600, cb, *args),
}


class TestHandle:
    def test_call_soon_returns_asyncio_handle(self, loop):
        handle = loop.call_soon(noop)
        assert isinstance(handle, asyncio.Handle)
        assert not isinstance(handle, asyncio.TimerHandle)

    @pytest.mark.parametrize("method", ["call_later", "call_at"])
    def test_timer_methods_return_asyncio_timer_handle(self, loop, method):
        handle = FAR_SCHEDULERS[method](loop, noop)
        assert isinstance(handle, asyncio.TimerHandle)
        assert isinstance(handle, asyncio.Handle)
        handle.cancel()

    @pytest.mark.parametrize("method", sorted(FAR_SCHEDULERS))
    def test_cancel_and_cancelled(self, loop, method):
        handle = FAR_SCHEDULERS[method](loop, noop)
        assert handle.cancelled() is False
        handle.cancel()
        assert handle.cancelled() is True
        handle.cancel()  # idempotent
        assert handle.cancelled() is True

    def test_cancel_after_the_callback_ran_is_harmless(self, loop):
        calls = []
        handle = loop.call_soon(calls.append, 1)
        run_briefly(loop)
        handle.cancel()
        run_briefly(loop)
        assert calls == [1]

    @pytest.mark.parametrize("method", sorted(FAR_SCHEDULERS))
    def test_repr_contains_callback_name(self, loop, method):
        handle = FAR_SCHEDULERS[method](loop, my_callback_fn)
        assert "my_callback_fn" in repr(handle)
        handle.cancel()

    def test_repr_names_the_handle_type(self, loop):
        handle = loop.call_soon(my_callback_fn)
        timer = loop.call_later(3600, my_callback_fn)
        assert repr(handle).startswith("<Handle ")
        assert repr(timer).startswith("<TimerHandle ")
        timer.cancel()

    def test_repr_of_cancelled_handle_says_cancelled(self, loop):
        handle = loop.call_soon(my_callback_fn)
        handle.cancel()
        assert "cancelled" in repr(handle)

    @pytest.mark.parametrize("debug", [False, True])
    @pytest.mark.parametrize("method", ["call_soon", "call_later", "call_soon_threadsafe"])
    def test_repr_shows_the_arguments_as_asyncio_does(self, loop, method, debug):
        # From 3.13 on asyncio shows a callback's arguments in debug mode
        # only (they may hold secrets); before, always.
        loop.set_debug(debug)
        schedule = {"call_soon": loop.call_soon,
                    "call_later": lambda *a: loop.call_later(3600, *a),
                    "call_soon_threadsafe": loop.call_soon_threadsafe}[method]
        handle = schedule(my_callback_fn, "secret", 42)
        shown = debug or sys.version_info < (3, 13)
        expected = "my_callback_fn('secret', 42)" if shown else "my_callback_fn()"
        assert f" {expected} at " in repr(handle)
        handle.cancel()
        loop.set_debug(False)

    @pytest.mark.parametrize("debug", [False, True])
    @pytest.mark.parametrize("method", sorted(FAR_SCHEDULERS))
    def test_repr_shows_a_single_argument_as_asyncio_does(self, loop, method, debug):
        loop.set_debug(debug)
        handle = FAR_SCHEDULERS[method](loop, my_callback_fn, "secret")
        shown = debug or sys.version_info < (3, 13)
        expected = "my_callback_fn('secret')" if shown else "my_callback_fn()"
        assert f" {expected} at " in repr(handle)
        handle.cancel()
        loop.set_debug(False)

    @pytest.mark.parametrize("args", [(), ("one",), ("one", 2)])
    @pytest.mark.parametrize("method", sorted(FAR_SCHEDULERS))
    def test_args_slot_is_the_arguments_tuple(self, loop, method, args):
        # asyncio keeps them in the slot _args: a tuple, the same object at
        # every look, None once the handle is cancelled.
        handle = FAR_SCHEDULERS[method](loop, noop, *args)
        assert type(handle._args) is tuple
        assert handle._args == args
        assert handle._args is handle._args
        handle.cancel()
        assert handle._args is None

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_callback_may_read_its_handles_args_and_cancel_it(self, loop, method):
        seen = []
        handles = []

        def callback(arg):
            seen.append((arg, handles[0]._args))
            handles[0].cancel()
            seen.append((arg, handles[0]._args))

        handles.append(SCHEDULERS[method](loop, callback, Payload()))
        run_briefly(loop)
        [(arg, args), (arg2, after)] = seen
        assert type(arg) is Payload and args == (arg,) and arg2 is arg
        assert after is None

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_an_unheld_handle_releases_its_argument_after_the_run(self, loop, method):
        got = []
        payload = Payload()
        ref = weakref.ref(payload)
        SCHEDULERS[method](loop, got.append, payload)
        del payload
        run_briefly(loop)
        assert got[0] is ref()
        got.clear()
        gc.collect()
        assert ref() is None

    @pytest.mark.allow_loop_errors
    @pytest.mark.parametrize("debug", [False, True])
    def test_exception_message_shows_the_arguments_as_asyncio_does(self, loop, debug):
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        loop.set_debug(debug)

        def fail(*args):
            raise ZeroDivisionError

        loop.call_soon(fail, "secret")
        run_briefly(loop)
        loop.set_debug(False)
        shown = debug or sys.version_info < (3, 13)
        [ctx] = contexts
        assert ctx["message"].startswith(
            "Exception in callback " + ("TestHandle.test_exception_message_shows_the_"
                                        "arguments_as_asyncio_does.<locals>.fail"))
        assert ctx["message"].split(" at ")[0].endswith(
            "('secret')" if shown else "()")


def handle_context(handle):
    """The handle's context: get_context() (asyncio 3.12+, asyncuv), else
    the _context attribute that asyncio 3.11's Handle keeps it in."""
    if hasattr(handle, "get_context"):
        return handle.get_context()
    return handle._context


class TestHandleGetContext:
    """asyncuv offers Handle.get_context() (asyncio's from 3.12); on 3.11's
    stock loop the same context is read from Handle._context."""

    def test_asyncuv_handles_have_get_context(self, loop, loop_kind):
        if loop_kind == "asyncuv":
            handle = loop.call_soon(noop)
            assert handle.get_context() is handle._context
            handle.cancel()

    @pytest.mark.parametrize("method", sorted(FAR_SCHEDULERS))
    def test_returns_the_given_context(self, loop, method):
        ctx = contextvars.Context()
        handle = {
            "call_soon": lambda: loop.call_soon(noop, context=ctx),
            "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(noop, context=ctx),
            "call_later": lambda: loop.call_later(3600, noop, context=ctx),
            "call_at": lambda: loop.call_at(loop.time() + 3600, noop, context=ctx),
        }[method]()
        assert handle_context(handle) is ctx
        handle.cancel()

    def test_default_context_is_a_copy_of_the_current_one(self, loop):
        var = contextvars.ContextVar("var")
        token = var.set("value")
        try:
            handle = loop.call_soon(noop)
        finally:
            var.reset(token)
        ctx = handle_context(handle)
        assert isinstance(ctx, contextvars.Context)
        assert ctx is not contextvars.copy_context()
        assert ctx[var] == "value"


class TestReferenceRelease:
    """Callbacks, their arguments and contexts must be released once a handle
    ran, was cancelled, or its loop was closed."""

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_released_after_running_and_dropping_the_handle(self, loop, method):
        obj, arg = Payload(), Payload()
        obj_ref, arg_ref = weakref.ref(obj), weakref.ref(arg)
        handle = SCHEDULERS[method](loop, obj.method, arg)
        del obj, arg
        run_briefly(loop, steps=2)
        del handle
        gc.collect()
        assert obj_ref() is None, "callback kept alive after it ran"
        assert arg_ref() is None, "argument kept alive after the callback ran"

    @pytest.mark.parametrize("method", sorted(FAR_SCHEDULERS))
    def test_cancel_releases_callback_even_while_handle_is_held(self, loop, method):
        obj, arg = Payload(), Payload()
        obj_ref, arg_ref = weakref.ref(obj), weakref.ref(arg)
        handle = FAR_SCHEDULERS[method](loop, obj.method, arg)
        del obj, arg
        handle.cancel()
        gc.collect()
        assert obj_ref() is None, "cancelled handle still holds its callback"
        assert arg_ref() is None, "cancelled handle still holds its arguments"
        assert handle.cancelled()

    def test_close_releases_pending_callbacks(self, loop):
        obj = Payload()
        obj_ref = weakref.ref(obj)
        loop.call_soon(obj.method, obj)
        loop.call_soon_threadsafe(obj.method)
        loop.call_later(3600, obj.method, obj)
        loop.call_at(loop.time() + 3600, obj.method)
        del obj
        loop.close()
        gc.collect()
        assert obj_ref() is None, "closed loop still holds pending callbacks"

    def test_close_releases_pending_contexts(self, loop):
        ctx = contextvars.copy_context()
        base = sys.getrefcount(ctx)
        loop.call_soon(noop, context=ctx)
        loop.call_later(3600, noop, context=ctx)
        assert sys.getrefcount(ctx) > base
        loop.close()
        gc.collect()
        assert sys.getrefcount(ctx) == base

    def test_completed_task_releases_its_coroutine_arguments(self, loop):
        arg = Payload()
        arg_ref = weakref.ref(arg)

        async def use(value):
            await asyncio.sleep(0)
            return None

        loop.run_until_complete(use(arg))
        del arg
        gc.collect()
        assert arg_ref() is None


def _raise_value_error(*args):
    raise ValueError("deliberate")


class TestRefcounts:
    """Exact reference counts (sys.getrefcount works on release builds) of a
    callback, its argument and its context after many schedule/run or
    schedule/cancel cycles."""

    ROUNDS = 300

    def _assert_refcounts_restored(self, loop, cycle, *, steps=1):
        cb, arg, ctx = Callable(), object(), contextvars.copy_context()
        gc.collect()
        before = [sys.getrefcount(o) for o in (cb, arg, ctx)]
        for _ in range(self.ROUNDS):
            cycle(loop, cb, arg, ctx)
        run_briefly(loop, steps=steps)
        gc.collect()
        after = [sys.getrefcount(o) for o in (cb, arg, ctx)]
        assert after == before, "refcounts of (callback, arg, context) changed"
        return cb

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_schedule_and_run(self, loop, method):
        def cycle(loop, cb, arg, ctx):
            SCHEDULERS[method](loop, cb, arg)
            run_briefly(loop)

        cb = self._assert_refcounts_restored(loop, cycle)
        assert cb.calls == self.ROUNDS

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_schedule_with_context_and_run(self, loop, method):
        def cycle(loop, cb, arg, ctx):
            {
                "call_soon": lambda: loop.call_soon(cb, arg, context=ctx),
                "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(cb, arg, context=ctx),
                "call_later": lambda: loop.call_later(0, cb, arg, context=ctx),
                "call_at": lambda: loop.call_at(loop.time(), cb, arg, context=ctx),
            }[method]()
            run_briefly(loop)

        cb = self._assert_refcounts_restored(loop, cycle)
        assert cb.calls == self.ROUNDS

    @pytest.mark.parametrize("method", sorted(FAR_SCHEDULERS))
    def test_schedule_and_cancel(self, loop, method):
        def cycle(loop, cb, arg, ctx):
            FAR_SCHEDULERS[method](loop, cb, arg).cancel()

        cb = self._assert_refcounts_restored(loop, cycle)
        assert cb.calls == 0

    def test_schedule_and_cancel_without_running_in_between(self, loop):
        def cycle(loop, cb, arg, ctx):
            handles = [loop.call_later(3600, cb, arg, context=ctx) for _ in range(5)]
            handles.append(loop.call_soon(cb, arg, context=ctx))
            for handle in handles:
                handle.cancel()

        self._assert_refcounts_restored(loop, cycle, steps=3)

    def test_callback_raising_into_exception_handler(self, loop):
        contexts = []
        loop.set_exception_handler(lambda lp, context: contexts.append(context["message"]))

        def cycle(loop, cb, arg, ctx):
            loop.call_soon(_raise_value_error, cb, arg, context=ctx)
            run_briefly(loop)

        self._assert_refcounts_restored(loop, cycle)
        assert len(contexts) == self.ROUNDS

    def test_create_task(self, loop):
        async def coro(cb, arg):
            await asyncio.sleep(0)
            cb(arg)

        def cycle(loop, cb, arg, ctx):
            loop.create_task(coro(cb, arg), context=ctx)
            run_briefly(loop, steps=3)

        cb = self._assert_refcounts_restored(loop, cycle)
        assert cb.calls == self.ROUNDS


class TestMemoryStability:
    def test_traced_memory_does_not_grow(self, loop):
        async def coro():
            await asyncio.sleep(0)

        def one_round():
            for _ in range(500):
                loop.call_soon(noop, 1)
                loop.call_later(3600, noop, 2).cancel()
                loop.call_at(loop.time() - 1, noop)
            for _ in range(100):
                loop.create_task(coro())
            run_briefly(loop, steps=3)

        tracemalloc.start()
        try:
            for _ in range(3):  # warm up caches and free lists
                one_round()
            gc.collect()
            start, _ = tracemalloc.get_traced_memory()
            for _ in range(10):
                one_round()
            gc.collect()
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # A leak of one small object per operation would be ~1.5 MB here.
        assert end - start < 200_000, f"traced memory grew by {end - start} bytes"


class _Owner:
    """Holds the handle of its own pending callback: a reference cycle
    owner -> handle -> bound method -> owner."""

    def __init__(self, loop):
        self.handle = loop.call_soon(self.method)
        self.ran = False

    def method(self):
        self.ran = True


class TestCyclesThroughHandles:
    """The collector must find cycles that pass through handles, whatever
    state the handle is in (queued, run, dropped by close())."""

    def test_cycle_through_a_handle_that_ran(self, loop):
        owner = _Owner(loop)
        ref = weakref.ref(owner)
        run_briefly(loop)
        assert owner.ran
        del owner
        gc.collect()
        assert ref() is None, "cycle owner -> handle -> owner was not collected"

    def test_cycle_through_a_handle_dropped_by_close(self, loop_factory):
        lp = loop_factory()
        owner = _Owner(lp)
        ref = weakref.ref(owner)
        lp.close()
        del owner
        gc.collect()
        assert ref() is None, "cycle through a discarded handle leaked"

    def test_abandoned_loop_with_queued_callbacks_is_collected(self, loop_kind):
        from support import new_loop

        lp = new_loop(loop_kind)
        # Queued callbacks that refer back to the loop: loop -> handle ->
        # bound method -> loop.
        for _ in range(3):
            lp.call_soon(lp.stop)
        lp.call_later(3600, lp.stop)
        ref = weakref.ref(lp)
        with pytest.warns(ResourceWarning, match="unclosed event loop"):
            del lp
            gc.collect()
        assert ref() is None, "an unclosed loop with pending callbacks leaked"


@pytest.mark.parametrize("kind", ["call_soon", "call_later"])
def test_asyncio_slot_written_directly_is_released(loop, kind):
    # asyncio's own slot descriptors, called directly, store into a handle
    # (asyncuv shadows the attribute names, but the base class's storage is
    # there): what they store is released with the handle, and a handle
    # made from the same memory afterwards holds none of it.
    base = asyncio.TimerHandle if kind == "call_later" else asyncio.Handle
    slot = asyncio.Handle.__dict__["_repr"]
    for _ in range(3):
        payload = Payload()
        ref = weakref.ref(payload)
        if kind == "call_later":
            h = loop.call_later(3600, noop)
            h.cancel()
        else:
            h = loop.call_soon(noop)
        assert isinstance(h, base)
        slot.__set__(h, payload)
        del payload
        run_briefly(loop)
        assert ref() is not None
        del h
        gc.collect()
        assert ref() is None

"""Core scheduling and lifecycle behaviour: call_soon, timers, run/stop,
closing, threads and debug mode.  Every test runs on asyncuv and on the stock
asyncio loop (the reference)."""

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import re
import socket
import sys
import threading
import time

import pytest

from support import capture, noop, run_briefly

# Generous upper bound for waits that only guard against a hang.
HANG_GUARD = 30.0


async def coro_func():
    pass


class TestCallSoon:
    def test_runs_callbacks_in_fifo_order(self, loop):
        calls = []
        for i in range(50):
            loop.call_soon(calls.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert calls == list(range(50))

    def test_passes_positional_args(self, loop):
        got = []

        def record(*args):
            got.append(args)

        loop.call_soon(record, 1, "two", None)
        loop.call_soon(record)
        run_briefly(loop)
        assert got == [(1, "two", None), ()]

    def test_cancelled_handle_does_not_run(self, loop):
        calls = []
        loop.call_soon(calls.append, 1)
        handle = loop.call_soon(calls.append, 2)
        loop.call_soon(calls.append, 3)
        handle.cancel()
        run_briefly(loop)
        assert calls == [1, 3]

    def test_callback_can_cancel_a_later_callback_of_the_same_iteration(self, loop):
        calls = []
        handles = {}

        def first():
            calls.append("first")
            handles["second"].cancel()

        loop.call_soon(first)
        handles["second"] = loop.call_soon(calls.append, "second")
        loop.call_soon(calls.append, "third")
        run_briefly(loop)
        assert calls == ["first", "third"]

    def test_callbacks_queued_by_a_callback_run_in_the_next_iteration(self, loop):
        calls = []

        def first():
            calls.append("first")
            loop.call_soon(calls.append, "queued-by-first")

        loop.call_soon(first)
        loop.call_soon(calls.append, "second")
        loop.call_soon(loop.stop)
        loop.run_forever()
        # The iteration that ran stop() only covered what was queued when
        # it started; the callback queued during it waits for the next run.
        assert calls == ["first", "second"]
        run_briefly(loop)
        assert calls == ["first", "second", "queued-by-first"]

    def test_io_callbacks_run_after_the_calls_queued_before_the_poll(self, loop):
        """asyncio appends a poll's I/O callbacks to the ready queue, behind
        the calls already there (a task started before the data arrived is
        waiting for it when it comes)."""
        a, b = socket.socketpair()
        with a, b:
            calls = []
            b.send(b"x")
            loop.add_reader(a, lambda: calls.append(("io", a.recv(1))))
            loop.call_soon(calls.append, "first")
            loop.call_soon(loop.stop)
            try:
                loop.run_forever()
            finally:
                loop.remove_reader(a)
            assert calls == ["first", ("io", b"x")]

    def test_calls_queued_by_io_callbacks_run_in_the_next_iteration(self, loop):
        a, b = socket.socketpair()
        with a, b:
            calls = []

            def on_readable():
                calls.append(("io", a.recv(1)))
                loop.call_soon(calls.append, "queued-by-io")
                loop.call_at(loop.time() - 1, calls.append, "due-timer-by-io")

            b.send(b"x")
            loop.add_reader(a, on_readable)
            loop.call_soon(loop.stop)
            try:
                loop.run_forever()
                assert calls == [("io", b"x")]
                loop.remove_reader(a)
                run_briefly(loop)
            finally:
                loop.remove_reader(a)
            assert calls == [("io", b"x"), "queued-by-io", "due-timer-by-io"]

    def test_due_timer_started_by_a_call_waits_for_the_next_iteration(self, loop):
        calls = []

        def first():
            calls.append("first")
            loop.call_at(loop.time() - 1, calls.append, "timer")
            loop.call_soon(calls.append, "queued")

        loop.call_soon(first)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert calls == ["first"]
        run_briefly(loop)
        assert calls == ["first", "queued", "timer"]

    def test_stop_lets_already_queued_callbacks_of_the_iteration_run(self, loop):
        calls = []
        loop.call_soon(loop.stop)
        loop.call_soon(calls.append, "after-stop")
        loop.run_forever()
        assert calls == ["after-stop"]

    def test_stop_from_a_callback_defers_callbacks_it_schedules(self, loop):
        calls = []

        def stopper():
            calls.append("stopper")
            loop.stop()
            loop.call_soon(calls.append, "scheduled-after-stop")

        loop.call_soon(stopper)
        loop.call_soon(calls.append, "queued-before-stop")
        loop.run_forever()
        assert calls == ["stopper", "queued-before-stop"]
        run_briefly(loop)
        assert calls == ["stopper", "queued-before-stop", "scheduled-after-stop"]


class TestCallbackContext:
    def test_default_context_is_a_copy_taken_at_call_time(self, loop):
        var = contextvars.ContextVar("var", default="unset")
        seen = []
        token = var.set("at-call-time")
        try:
            loop.call_soon(lambda: seen.append(var.get()))
        finally:
            var.reset(token)
        var.set("changed-before-run")
        run_briefly(loop)
        assert seen == ["at-call-time"]

    def test_changes_made_by_a_callback_do_not_leak(self, loop):
        var = contextvars.ContextVar("var", default="outer")
        seen = []

        def setter():
            var.set("inner")
            seen.append(var.get())

        loop.call_soon(setter)
        loop.call_soon(lambda: seen.append(var.get()))
        run_briefly(loop)
        assert seen == ["inner", "outer"]
        assert var.get() == "outer"

    @pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at",
                                        "call_soon_threadsafe"])
    def test_runs_in_the_given_context(self, loop, method):
        var = contextvars.ContextVar("var")
        ctx = contextvars.Context()
        ctx.run(var.set, "in-ctx")
        seen = []

        def cb(tag):
            seen.append((tag, var.get("missing")))
            var.set(f"set-by-{tag}")

        schedule = {
            "call_soon": lambda *a, **kw: loop.call_soon(*a, **kw),
            "call_soon_threadsafe": lambda *a, **kw: loop.call_soon_threadsafe(*a, **kw),
            "call_later": lambda *a, **kw: loop.call_later(0, *a, **kw),
            "call_at": lambda *a, **kw: loop.call_at(loop.time(), *a, **kw),
        }[method]
        schedule(cb, "first", context=ctx)
        loop.call_soon(cb, "no-ctx")
        run_briefly(loop, steps=2)
        # The same Context object is entered, so its changes are visible
        # afterwards; the other callback ran in its own copy.
        assert ("first", "in-ctx") in seen
        assert ("no-ctx", "missing") in seen
        assert ctx[var] == "set-by-first"
        assert var.get("missing") == "missing"


class TestTimers:
    def test_fire_in_deadline_order(self, loop):
        calls = []
        base = loop.time()
        for offset in (0.03, 0.01, 0.02):
            loop.call_at(base + offset, calls.append, offset)
        loop.call_at(base + 0.04, loop.stop)
        loop.run_forever()
        assert calls == [0.01, 0.02, 0.03]

    def test_call_later_fires_in_delay_order(self, loop):
        calls = []
        for delay in (0.03, 0.0, 0.02, 0.01):
            loop.call_later(delay, calls.append, delay)
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
        assert calls == [0.0, 0.01, 0.02, 0.03]

    def test_equal_deadlines_all_fire_before_later_ones(self, loop):
        # asyncio documents the order of callbacks scheduled for exactly the
        # same time as undefined (its heap really does reorder them), so
        # only the set is asserted.
        calls = []
        when = loop.time() + 0.01
        for i in range(10):
            loop.call_at(when, calls.append, i)
        loop.call_at(when + 0.01, calls.append, "later")
        loop.call_at(when + 0.02, loop.stop)
        loop.run_forever()
        assert sorted(calls[:10]) == list(range(10))
        assert calls[10:] == ["later"]

    def test_call_soon_callbacks_run_before_due_timers_queued_later(self, loop):
        calls = []

        def first():
            calls.append("first")
            loop.call_later(0, calls.append, "timer")
            loop.call_soon(calls.append, "soon")

        loop.call_soon(first)
        loop.call_later(0.02, loop.stop)
        loop.run_forever()
        assert calls == ["first", "soon", "timer"]

    def test_call_later_when_is_loop_time_plus_delay(self, loop):
        before = loop.time()
        handle = loop.call_later(10, noop)
        after = loop.time()
        assert before + 10 - 0.01 <= handle.when() <= after + 10 + 0.01
        handle.cancel()

    def test_call_at_when_is_exactly_the_argument(self, loop):
        when = loop.time() + 12.345678
        handle = loop.call_at(when, noop)
        assert handle.when() == when
        handle.cancel()

    def test_cancelled_timer_does_not_fire(self, loop):
        calls = []
        cancelled = loop.call_later(0.01, calls.append, "cancelled")
        loop.call_later(0.02, calls.append, "kept")
        loop.call_later(0.03, loop.stop)
        cancelled.cancel()
        assert cancelled.cancelled()
        loop.run_forever()
        assert calls == ["kept"]

    def test_timer_cancelled_by_an_earlier_timer_does_not_fire(self, loop):
        calls = []
        victim = loop.call_later(0.02, calls.append, "victim")

        def canceller():
            calls.append("canceller")
            victim.cancel()

        loop.call_later(0.01, canceller)
        loop.call_later(0.03, loop.stop)
        loop.run_forever()
        assert calls == ["canceller"]

    def test_cancelling_many_timers(self, loop):
        calls = []
        handles = [loop.call_later((i % 10) / 1000, calls.append, i)
                   for i in range(2000)]
        far = [loop.call_later(3600 + i, calls.append, "far") for i in range(500)]
        kept = set(range(0, 2000, 97))
        for i, handle in enumerate(handles):
            if i not in kept:
                handle.cancel()
        for handle in far:
            handle.cancel()
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
        assert sorted(calls) == sorted(kept)
        # With every far timer cancelled nothing keeps the loop busy.
        run_briefly(loop)
        assert sorted(calls) == sorted(kept)

    def test_negative_delay_returns_timer_handle_in_the_past(self, loop):
        handle = loop.call_later(-1, noop)
        assert isinstance(handle, asyncio.TimerHandle)
        assert handle.when() < loop.time()
        handle.cancel()

    def test_negative_delay_runs_without_waiting(self, loop):
        calls = []
        loop.call_later(0.05, calls.append, "positive")
        loop.call_later(-1, calls.append, "negative")
        loop.call_later(0.06, loop.stop)
        loop.run_forever()
        assert calls == ["negative", "positive"]

    def test_call_later_delay_none_raises_type_error(self, loop):
        with pytest.raises(TypeError):
            loop.call_later(None, noop)

    def test_call_at_when_none_raises_type_error(self, loop):
        with pytest.raises(TypeError):
            loop.call_at(None, noop)

    def test_time_is_monotonic_and_close_to_time_monotonic(self, loop):
        samples = [loop.time() for _ in range(1000)]
        assert samples == sorted(samples)
        assert abs(loop.time() - time.monotonic()) < 1.0

        inside = []
        loop.call_soon(lambda: inside.append((loop.time(), time.monotonic())))
        run_briefly(loop)
        [(loop_time, mono)] = inside
        assert loop_time >= samples[-1]
        assert abs(loop_time - mono) < 1.0


SCHEDULERS = {
    "call_soon": lambda loop, cb: loop.call_soon(cb),
    "call_soon_threadsafe": lambda loop, cb: loop.call_soon_threadsafe(cb),
    "call_later": lambda loop, cb: loop.call_later(0, cb),
    "call_at": lambda loop, cb: loop.call_at(loop.time(), cb),
}


class TestCallbackValidation:
    """asyncio validates callbacks only in debug mode (its _check_callback is
    behind ``if self._debug``), so these run with debug enabled."""

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_non_callable_raises_type_error(self, loop, method):
        loop.set_debug(True)
        with pytest.raises(TypeError, match="a callable object was expected"):
            SCHEDULERS[method](loop, 42)

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_coroutine_function_raises_type_error(self, loop, method):
        loop.set_debug(True)
        with pytest.raises(TypeError, match=r"coroutines cannot be used with call_\w+\(\)"):
            SCHEDULERS[method](loop, coro_func)

    @pytest.mark.parametrize("method", sorted(SCHEDULERS))
    def test_coroutine_object_raises_type_error(self, loop, method):
        loop.set_debug(True)
        coro = coro_func()
        try:
            with pytest.raises(TypeError, match=r"coroutines cannot be used with call_\w+\(\)"):
                SCHEDULERS[method](loop, coro)
        finally:
            coro.close()

    def test_call_soon_message_names_call_soon(self, loop):
        loop.set_debug(True)
        with pytest.raises(TypeError, match=re.escape("coroutines cannot be used with call_soon()")):
            loop.call_soon(coro_func)


class TestRunForeverAndStop:
    def test_stop_before_run_forever_runs_exactly_one_iteration(self, loop):
        calls = []

        def schedules_more():
            calls.append("first-iteration")
            loop.call_soon(calls.append, "second-iteration")

        loop.stop()
        loop.call_soon(schedules_more)
        loop.run_forever()
        assert calls == ["first-iteration"]
        assert not loop.is_running()
        # The stop request was consumed: the next run behaves normally.
        run_briefly(loop)
        assert calls == ["first-iteration", "second-iteration"]

    def test_run_forever_inside_running_loop_raises(self, loop):
        errors = []

        def nested():
            errors.append(capture(loop.run_forever))
            loop.stop()

        loop.call_soon(nested)
        loop.run_forever()
        [err] = errors
        assert isinstance(err, RuntimeError)
        assert str(err) == "This event loop is already running"

    def test_run_until_complete_inside_running_loop_raises(self, loop):
        errors = []
        fut = loop.create_future()

        def nested():
            errors.append(capture(loop.run_until_complete, fut))
            loop.stop()

        loop.call_soon(nested)
        loop.run_forever()
        [err] = errors
        assert isinstance(err, RuntimeError)
        assert str(err) == "This event loop is already running"
        assert not fut.done()

    def test_running_another_loop_inside_a_running_loop_raises(self, loop, loop_factory):
        other = loop_factory()
        errors = []

        def nested():
            errors.append(capture(other.run_forever))
            loop.stop()

        loop.call_soon(nested)
        loop.run_forever()
        [err] = errors
        assert isinstance(err, RuntimeError)
        assert "another loop is running" in str(err)
        assert not other.is_running()

    def test_is_running_only_while_running(self, loop):
        seen = []
        assert not loop.is_running()
        loop.call_soon(lambda: seen.append(loop.is_running()))
        run_briefly(loop)
        assert seen == [True]
        assert not loop.is_running()

    def test_running_loop_is_set_only_while_running(self, loop):
        seen = []
        loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
        run_briefly(loop)
        assert seen == [loop]
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()


class TestRunUntilComplete:
    def test_future_result(self, loop):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 42)
        assert loop.run_until_complete(fut) == 42

    def test_already_done_future(self, loop):
        fut = loop.create_future()
        fut.set_result("done")
        assert loop.run_until_complete(fut) == "done"

    def test_coroutine_result(self, loop):
        async def main():
            await asyncio.sleep(0)
            return "coro-result"

        assert loop.run_until_complete(main()) == "coro-result"

    def test_task_result(self, loop):
        async def main():
            await asyncio.sleep(0)
            return "task-result"

        task = loop.create_task(main())
        assert loop.run_until_complete(task) == "task-result"
        assert task.done()

    def test_awaitable_object(self, loop):
        class Awaitable:
            def __await__(self):
                yield from asyncio.sleep(0).__await__()
                return "awaited"

        assert loop.run_until_complete(Awaitable()) == "awaited"

    def test_coroutine_exception_propagates(self, loop):
        async def main():
            await asyncio.sleep(0)
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            loop.run_until_complete(main())
        assert not loop.is_running()

    def test_future_exception_propagates(self, loop):
        fut = loop.create_future()
        loop.call_soon(fut.set_exception, LookupError("missing"))
        with pytest.raises(LookupError, match="missing"):
            loop.run_until_complete(fut)

    def test_cancelled_future_raises_cancelled_error(self, loop):
        fut = loop.create_future()
        loop.call_soon(fut.cancel)
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(fut)

    def test_future_from_another_loop_raises_value_error(self, loop, loop_factory):
        foreign = loop_factory().create_future()
        with pytest.raises(ValueError, match="different loop"):
            loop.run_until_complete(foreign)
        assert not loop.is_running()

    @pytest.mark.parametrize("value", [42, None, "string", [1, 2]])
    def test_non_awaitable_raises_type_error(self, loop, value):
        with pytest.raises(TypeError, match="awaitable is required"):
            loop.run_until_complete(value)

    def test_stopped_before_future_completed_raises(self, loop):
        fut = loop.create_future()
        loop.call_soon(loop.stop)
        with pytest.raises(RuntimeError) as excinfo:
            loop.run_until_complete(fut)
        assert str(excinfo.value) == "Event loop stopped before Future completed."
        assert not fut.done()

        # The abandoned future must not stop later runs when it completes.
        fut.set_result(None)

        async def several_iterations():
            for _ in range(5):
                await asyncio.sleep(0)
            return "completed"

        assert loop.run_until_complete(several_iterations()) == "completed"

    def test_stopped_before_coroutine_completed_does_not_log_pending_task(self, loop):
        never = loop.create_future()

        async def waits_forever():
            await never

        loop.call_soon(loop.stop)
        with pytest.raises(RuntimeError, match="stopped before Future completed"):
            loop.run_until_complete(waits_forever())
        # The loop_errors fixture fails the test if the abandoned task is
        # reported as 'Task was destroyed but it is pending!'.

    def test_loop_is_reusable_after_run_until_complete(self, loop):
        async def fail():
            raise ValueError

        async def succeed(value):
            await asyncio.sleep(0)
            return value

        with pytest.raises(ValueError):
            loop.run_until_complete(fail())
        assert loop.run_until_complete(succeed(1)) == 1
        assert loop.run_until_complete(succeed(2)) == 2
        run_briefly(loop)
        assert not loop.is_running()
        assert not loop.is_closed()


class TestClosedLoop:
    def test_close_is_idempotent(self, loop):
        assert not loop.is_closed()
        loop.close()
        assert loop.is_closed()
        loop.close()
        assert loop.is_closed()

    @pytest.mark.parametrize("operation", [
        "call_soon", "call_later", "call_at", "call_soon_threadsafe",
        "run_forever", "run_until_complete", "create_task",
    ])
    def test_operations_on_closed_loop_raise(self, loop, operation):
        loop.close()
        coro = coro_func()
        try:
            call = {
                "call_soon": lambda: loop.call_soon(noop),
                "call_later": lambda: loop.call_later(0, noop),
                "call_at": lambda: loop.call_at(loop.time(), noop),
                "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(noop),
                "run_forever": loop.run_forever,
                "run_until_complete": lambda: loop.run_until_complete(coro),
                "create_task": lambda: loop.create_task(coro),
            }[operation]
            with pytest.raises(RuntimeError) as excinfo:
                call()
            assert str(excinfo.value) == "Event loop is closed"
        finally:
            coro.close()

    def test_close_on_running_loop_raises(self, loop):
        errors = []

        def try_close():
            errors.append(capture(loop.close))
            errors.append(loop.is_closed())
            loop.stop()

        loop.call_soon(try_close)
        loop.run_forever()
        err, closed_inside = errors
        assert isinstance(err, RuntimeError)
        assert str(err) == "Cannot close a running event loop"
        assert not closed_inside
        assert not loop.is_closed()
        run_briefly(loop)  # still usable


class TestThreads:
    def test_call_soon_threadsafe_wakes_a_blocked_loop(self, loop):
        timed_out = []
        guard = loop.call_later(HANG_GUARD, lambda: (timed_out.append(True), loop.stop()))
        loop_ready = threading.Event()
        received = []

        def worker():
            if loop_ready.wait(HANG_GUARD):
                loop.call_soon_threadsafe(received.append, "from-thread")
                loop.call_soon_threadsafe(loop.stop)

        thread = threading.Thread(target=worker)
        loop.call_soon(loop_ready.set)
        thread.start()
        try:
            loop.run_forever()
        finally:
            thread.join(HANG_GUARD)
        guard.cancel()
        assert not timed_out, "call_soon_threadsafe did not wake the loop"
        assert received == ["from-thread"]

    def test_repeated_wakeups_from_another_thread(self, loop):
        rounds = 200
        timed_out = []
        guard = loop.call_later(HANG_GUARD, lambda: (timed_out.append(True), loop.stop()))
        turn = threading.Event()
        received = []

        def on_loop(i):
            received.append(i)
            if i == rounds - 1:
                loop.stop()
            turn.set()

        def worker():
            for i in range(rounds):
                if not turn.wait(HANG_GUARD):
                    return
                turn.clear()
                loop.call_soon_threadsafe(on_loop, i)

        thread = threading.Thread(target=worker)
        loop.call_soon(turn.set)
        thread.start()
        try:
            loop.run_forever()
        finally:
            turn.set()
            thread.join(HANG_GUARD)
        guard.cancel()
        assert not timed_out
        assert received == list(range(rounds))

    def test_call_soon_threadsafe_returns_cancellable_handle(self, loop):
        calls = []
        handle = loop.call_soon_threadsafe(calls.append, "cancelled")
        loop.call_soon_threadsafe(calls.append, "kept")
        handle.cancel()
        run_briefly(loop)
        assert calls == ["kept"]

    @pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
    def test_debug_mode_rejects_non_threadsafe_calls_from_other_threads(self, loop, method):
        loop.set_debug(True)
        results = []
        calls = []
        schedule = {
            "call_soon": lambda: loop.call_soon(calls.append, "bad"),
            "call_later": lambda: loop.call_later(0, calls.append, "bad"),
            "call_at": lambda: loop.call_at(loop.time(), calls.append, "bad"),
        }[method]

        def worker():
            results.append(capture(schedule))
            loop.call_soon_threadsafe(loop.stop)

        thread = threading.Thread(target=worker)
        loop.call_soon(thread.start)
        loop.run_forever()
        thread.join(HANG_GUARD)
        run_briefly(loop)
        [err] = results
        assert isinstance(err, RuntimeError)
        assert "Non-thread-safe operation invoked on an event loop other than the current one" in str(err)
        assert calls == []

    def test_debug_mode_allows_calls_from_other_threads_while_not_running(self, loop):
        loop.set_debug(True)
        calls = []
        thread = threading.Thread(target=lambda: calls.append(capture(loop.call_soon, calls.append, "ok")))
        thread.start()
        thread.join(HANG_GUARD)
        assert calls == [None]
        run_briefly(loop)
        assert calls == [None, "ok"]


THREADSAFE_HANDLE = getattr(asyncio.events, "_ThreadSafeHandle", None)
needs_threadsafe_handle = pytest.mark.skipif(
    THREADSAFE_HANDLE is None,
    reason="asyncio's call_soon_threadsafe() handle is thread-safe from 3.14 on")


class TestThreadSafeHandle:
    """call_soon_threadsafe()'s handle: from 3.14 on, asyncio's
    events._ThreadSafeHandle, whose cancel() and cancelled() called from
    another thread wait for a callback that has started to finish."""

    # Long enough that a cancel() that does not wait returns before the
    # callback ends; the assertions hold whatever the machine's speed.
    CALLBACK_TIME = 0.2

    def _run_with_thread(self, loop, thread_body):
        errors = []

        def body():
            try:
                thread_body()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                loop.call_soon_threadsafe(loop.stop)

        thread = threading.Thread(target=body)
        thread.start()
        loop.run_forever()
        thread.join(HANG_GUARD)
        if errors:
            raise errors[0]

    def test_handle_type(self, loop):
        handle = loop.call_soon_threadsafe(noop)
        handle.cancel()
        if THREADSAFE_HANDLE is None:
            assert isinstance(handle, asyncio.Handle)
            assert repr(handle).startswith("<Handle cancelled")
        else:
            assert isinstance(handle, THREADSAFE_HANDLE)
            assert repr(handle).startswith("<_ThreadSafeHandle cancelled")
        assert not isinstance(handle, asyncio.TimerHandle)

    @needs_threadsafe_handle
    def test_cancel_from_another_thread_waits_for_a_running_callback(self, loop):
        started, finished = threading.Event(), threading.Event()
        results = []

        def callback(arg):
            started.set()
            time.sleep(self.CALLBACK_TIME)
            results.append(arg)
            finished.set()

        def other_thread():
            handle = loop.call_soon_threadsafe(callback, "ran")
            assert started.wait(HANG_GUARD)
            handle.cancel()
            assert finished.is_set()
            assert handle.cancelled()

        self._run_with_thread(loop, other_thread)
        assert results == ["ran"]

    @needs_threadsafe_handle
    def test_cancelled_from_another_thread_waits_for_a_running_callback(self, loop):
        started, finished = threading.Event(), threading.Event()

        def callback():
            started.set()
            time.sleep(self.CALLBACK_TIME)
            finished.set()

        def other_thread():
            handle = loop.call_soon_threadsafe(callback)
            assert started.wait(HANG_GUARD)
            assert handle.cancelled() is False
            assert finished.is_set()

        self._run_with_thread(loop, other_thread)

    @needs_threadsafe_handle
    def test_callback_may_cancel_its_own_handle(self, loop):
        handle_future = concurrent.futures.Future()
        results = []

        def callback():
            handle = handle_future.result(HANG_GUARD)
            handle.cancel()              # the loop's thread holds the lock
            results.append(handle.cancelled())

        def other_thread():
            handle_future.set_result(loop.call_soon_threadsafe(callback))

        self._run_with_thread(loop, other_thread)
        run_briefly(loop)
        assert results == [True]
        assert handle_future.result().cancelled()

    def test_cancel_from_another_thread_before_the_run(self, loop):
        results = []
        gate_entered, cancelled = threading.Event(), threading.Event()

        def gate():
            # Holds the loop's thread until the other thread has cancelled.
            gate_entered.set()
            cancelled.wait(HANG_GUARD)

        def other_thread():
            assert gate_entered.wait(HANG_GUARD)
            handle = loop.call_soon_threadsafe(results.append, "ran")
            handle.cancel()
            assert handle.cancelled()
            cancelled.set()

        loop.call_soon(gate)
        self._run_with_thread(loop, other_thread)
        run_briefly(loop)
        assert results == []

    def test_handle_run_runs_the_callback_once_unless_cancelled(self, loop):
        results = []
        handle = loop.call_soon_threadsafe(results.append, "run")
        handle._run()
        handle.cancel()
        run_briefly(loop)
        assert results == ["run"]


class TestDebug:
    def test_default_debug_follows_environment(self, loop):
        expected = sys.flags.dev_mode or (
            not sys.flags.ignore_environment
            and bool(os.environ.get("PYTHONASYNCIODEBUG"))
        )
        assert loop.get_debug() == expected

    def test_set_debug(self, loop):
        loop.set_debug(True)
        assert loop.get_debug() is True
        loop.set_debug(False)
        assert loop.get_debug() is False

    def test_slow_callback_duration_attribute(self, loop):
        assert loop.slow_callback_duration == pytest.approx(0.1)
        loop.slow_callback_duration = 0.5
        assert loop.slow_callback_duration == 0.5

    @staticmethod
    def _busy(seconds):
        # The callback itself must be slow; this is the behaviour under test,
        # not a synchronisation sleep.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass

    def test_slow_callback_logged_in_debug_mode(self, loop, caplog):
        loop.set_debug(True)
        loop.slow_callback_duration = 0.005

        def slow_callback():
            self._busy(0.05)

        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.call_soon(slow_callback)
            run_briefly(loop)
        messages = [r.getMessage() for r in caplog.records
                    if r.name == "asyncio" and r.levelno == logging.WARNING]
        pattern = re.compile(r"^Executing <Handle .*slow_callback.*> took \d+\.\d{3} seconds$", re.S)
        assert any(pattern.match(m) for m in messages), messages

    def test_slow_timer_callback_logged_in_debug_mode(self, loop, caplog):
        loop.set_debug(True)
        loop.slow_callback_duration = 0.005

        def slow_timer():
            self._busy(0.05)
            loop.stop()

        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.call_later(0.001, slow_timer)
            loop.run_forever()
        messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
        pattern = re.compile(r"^Executing <TimerHandle .*slow_timer.*> took \d+\.\d{3} seconds$", re.S)
        assert any(pattern.match(m) for m in messages), messages

    def test_slow_callback_not_logged_without_debug(self, loop, caplog):
        loop.set_debug(False)
        loop.slow_callback_duration = 0.005

        def slow_callback():
            self._busy(0.05)

        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            loop.call_soon(slow_callback)
            run_briefly(loop)
        assert not [r for r in caplog.records if "took" in r.getMessage()]

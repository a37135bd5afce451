"""Exception handling: callback errors, the exception handler API, the
default handler's logging, and BaseExceptions escaping the loop."""

import asyncio
import gc
import logging
import sys

import pytest

from support import run_briefly


def failing_callback():
    raise ZeroDivisionError("boom")


class Recorder:
    """A custom exception handler that records (loop, context) pairs."""

    def __init__(self):
        self.calls = []

    def __call__(self, loop, context):
        self.calls.append((loop, context))


def asyncio_errors(caplog):
    return [r for r in caplog.records
            if r.name == "asyncio" and r.levelno >= logging.ERROR]


class TestCallbackExceptions:
    def test_error_goes_to_custom_handler_and_loop_keeps_running(self, loop):
        handler = Recorder()
        loop.set_exception_handler(handler)
        calls = []
        handle = loop.call_soon(failing_callback)
        loop.call_soon(calls.append, "after")
        run_briefly(loop)
        assert calls == ["after"]
        [(got_loop, context)] = handler.calls
        assert got_loop is loop
        assert context["message"].startswith("Exception in callback")
        assert "failing_callback" in context["message"]
        assert isinstance(context["exception"], ZeroDivisionError)
        assert str(context["exception"]) == "boom"
        assert context["handle"] is handle

    def test_timer_error_goes_to_custom_handler(self, loop):
        handler = Recorder()
        loop.set_exception_handler(handler)
        timer = loop.call_later(0, failing_callback)
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        [(_, context)] = handler.calls
        assert isinstance(context["exception"], ZeroDivisionError)
        assert context["handle"] is timer

    def test_each_failing_callback_is_reported(self, loop):
        handler = Recorder()
        loop.set_exception_handler(handler)
        for _ in range(5):
            loop.call_soon(failing_callback)
        run_briefly(loop)
        assert len(handler.calls) == 5

    def test_failing_task_reports_never_retrieved_exception(self, loop):
        handler = Recorder()
        loop.set_exception_handler(handler)

        async def fail():
            raise KeyError("lost")

        task = loop.create_task(fail())
        run_briefly(loop)
        assert task.done()
        del task
        gc.collect()
        [(_, context)] = handler.calls
        assert context["message"] == "Task exception was never retrieved"
        assert isinstance(context["exception"], KeyError)
        assert "future" in context


class TestExceptionHandlerApi:
    def test_default_is_none(self, loop):
        assert loop.get_exception_handler() is None

    def test_set_get_and_reset(self, loop):
        handler = Recorder()
        loop.set_exception_handler(handler)
        assert loop.get_exception_handler() is handler
        loop.set_exception_handler(None)
        assert loop.get_exception_handler() is None

    @pytest.mark.parametrize("bad", [42, "handler", object()])
    def test_non_callable_raises_type_error(self, loop, bad):
        with pytest.raises(TypeError, match="A callable object or None is expected"):
            loop.set_exception_handler(bad)
        assert loop.get_exception_handler() is None

    def test_call_exception_handler_passes_context_to_custom_handler(self, loop):
        handler = Recorder()
        loop.set_exception_handler(handler)
        exc = RuntimeError("direct")
        context = {"message": "custom", "exception": exc, "extra": 1}
        loop.call_exception_handler(context)
        [(got_loop, got)] = handler.calls
        assert got_loop is loop
        assert got["message"] == "custom"
        assert got["exception"] is exc
        assert got["extra"] == 1

    @pytest.mark.allow_loop_errors
    def test_custom_handler_can_defer_to_default(self, loop, caplog):
        seen = []

        def handler(lp, context):
            seen.append(context["message"])
            lp.default_exception_handler(context)

        loop.set_exception_handler(handler)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler({"message": "deferred"})
        assert seen == ["deferred"]
        assert [r.getMessage() for r in asyncio_errors(caplog)] == ["deferred"]

    def test_exception_handler_runs_while_loop_is_not_running(self, loop):
        handler = Recorder()
        loop.set_exception_handler(handler)
        loop.call_exception_handler({"message": "outside"})
        assert [c["message"] for _, c in handler.calls] == ["outside"]


@pytest.mark.allow_loop_errors
class TestDefaultExceptionHandler:
    def test_callback_error_logged_on_asyncio_logger(self, loop, caplog):
        calls = []
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_soon(failing_callback)
            loop.call_soon(calls.append, "after")
            run_briefly(loop)
        assert calls == ["after"]
        [record] = asyncio_errors(caplog)
        assert record.levelno == logging.ERROR
        assert record.getMessage().startswith("Exception in callback")
        assert "failing_callback" in record.getMessage()
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], ZeroDivisionError)

    def test_context_keys_are_logged(self, loop, caplog):
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler({"message": "something broke", "detail": "xyz"})
        [record] = asyncio_errors(caplog)
        lines = record.getMessage().splitlines()
        assert lines[0] == "something broke"
        assert "detail: 'xyz'" in lines
        assert not record.exc_info

    def test_missing_message_uses_generic_text(self, loop, caplog):
        exc = ValueError("no message")
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler({"exception": exc})
        [record] = asyncio_errors(caplog)
        assert record.getMessage().startswith("Unhandled exception in event loop")
        assert record.exc_info[1] is exc

    def test_default_exception_handler_can_be_called_directly(self, loop, caplog):
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.default_exception_handler({"message": "direct call"})
        assert [r.getMessage() for r in asyncio_errors(caplog)] == ["direct call"]

    def test_raising_custom_handler_is_logged(self, loop, caplog):
        def bad_handler(lp, context):
            raise AttributeError("handler failed")

        loop.set_exception_handler(bad_handler)
        calls = []
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_soon(failing_callback)
            loop.call_soon(calls.append, "after")
            run_briefly(loop)
        assert calls == ["after"]
        [record] = asyncio_errors(caplog)
        assert record.getMessage().startswith("Unhandled error in exception handler")
        assert isinstance(record.exc_info[1], AttributeError)

    def test_raising_custom_handler_called_directly_is_logged(self, loop, caplog):
        def bad_handler(lp, context):
            raise AttributeError("handler failed")

        loop.set_exception_handler(bad_handler)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler({"message": "original"})
        [record] = asyncio_errors(caplog)
        assert "Unhandled error in exception handler" in record.getMessage()
        assert "original" in record.getMessage()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
class TestBaseExceptionsPropagate:
    def test_from_callback_out_of_run_forever(self, loop, exc_type):
        handler = Recorder()
        loop.set_exception_handler(handler)
        calls = []
        hooks_before = sys.get_asyncgen_hooks()

        def interrupt():
            raise exc_type()

        loop.call_soon(calls.append, "before")
        loop.call_soon(interrupt)
        loop.call_soon(calls.append, "remaining")
        with pytest.raises(exc_type):
            loop.run_forever()
        assert calls == ["before"]
        assert not loop.is_running()
        assert not loop.is_closed()
        assert asyncio._get_running_loop() is None
        assert sys.get_asyncgen_hooks() == hooks_before
        assert handler.calls == []
        # The interrupted iteration's remaining callbacks run next time.
        run_briefly(loop)
        assert calls == ["before", "remaining"]

    def test_from_timer_out_of_run_forever(self, loop, exc_type):
        def interrupt():
            raise exc_type()

        loop.call_later(0, interrupt)
        with pytest.raises(exc_type):
            loop.run_forever()
        assert not loop.is_running()
        run_briefly(loop)

    def test_from_coroutine_out_of_run_until_complete(self, loop, exc_type):
        async def main():
            await asyncio.sleep(0)
            raise exc_type()

        task = loop.create_task(main())
        with pytest.raises(exc_type):
            loop.run_until_complete(task)
        assert not loop.is_running()
        assert not loop.is_closed()
        assert task.done()
        assert isinstance(task.exception(), exc_type)

        async def afterwards():
            await asyncio.sleep(0)
            return "still usable"

        assert loop.run_until_complete(afterwards()) == "still usable"

    def test_from_callback_out_of_run_until_complete(self, loop, exc_type):
        def interrupt():
            raise exc_type()

        fut = loop.create_future()
        loop.call_soon(interrupt)
        with pytest.raises(exc_type):
            loop.run_until_complete(fut)
        assert not fut.done()
        # The interrupted run must not leave its stop callback on the future.
        loop.call_soon(fut.set_result, "late")
        assert loop.run_until_complete(fut) == "late"
        run_briefly(loop)

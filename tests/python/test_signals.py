"""loop.add_signal_handler() / loop.remove_signal_handler().

Signals are sent to this process with os.kill() (or raised from another
thread); the handlers must run as ordinary callbacks on the loop.  Every
test runs on asyncuv and on the stock asyncio loop (the reference).
"""

import asyncio
import contextvars
import os
import signal
import subprocess
import sys
import threading

import pytest

from support import noop, run_briefly, run_guarded


@pytest.fixture(autouse=True)
def restore_signal_dispositions():
    """Whatever a test does, leave the dispositions (and the wakeup fd) as
    they were."""
    sigs = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT, signal.SIGCHLD,
            signal.SIGHUP, signal.SIGALRM)
    saved = {sig: signal.getsignal(sig) for sig in sigs}
    yield
    for sig, handler in saved.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def kill_self(sig):
    os.kill(os.getpid(), sig)


class Recorder:
    """Callback that records its calls and resolves a future per call."""

    def __init__(self, loop):
        self.loop = loop
        self.calls = []
        self.waiters = []

    def __call__(self, *args):
        self.calls.append((args, threading.get_ident(), asyncio.get_running_loop()))
        if self.waiters:
            waiter = self.waiters.pop(0)
            if not waiter.done():
                waiter.set_result(args)

    def next_call(self):
        fut = self.loop.create_future()
        self.waiters.append(fut)
        return fut


class TestAddSignalHandler:
    def test_handler_runs_on_the_loop_with_its_args(self, loop):
        rec = Recorder(loop)
        assert loop.add_signal_handler(signal.SIGUSR1, rec, 1, "two") is None

        async def main():
            fut = rec.next_call()
            kill_self(signal.SIGUSR1)
            return await fut

        assert run_guarded(loop, main()) == (1, "two")
        [(args, thread, running)] = rec.calls
        assert thread == threading.main_thread().ident
        assert running is loop
        assert loop.remove_signal_handler(signal.SIGUSR1) is True

    def test_handler_runs_once_per_delivery(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec)

        async def main():
            for _ in range(3):
                fut = rec.next_call()
                kill_self(signal.SIGUSR1)
                await fut

        run_guarded(loop, main())
        assert len(rec.calls) == 3
        loop.remove_signal_handler(signal.SIGUSR1)

    def test_handler_is_not_called_synchronously_by_the_signal(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec)

        async def main():
            fut = rec.next_call()
            kill_self(signal.SIGUSR1)
            # The Python-level handler has run by now; the loop's callback
            # has not: it is scheduled for a later iteration.
            assert rec.calls == []
            await fut

        run_guarded(loop, main())
        loop.remove_signal_handler(signal.SIGUSR1)

    def test_two_signals_two_handlers(self, loop):
        got = []
        done = loop.create_future()

        def handler(name):
            got.append(name)
            if len(got) == 2:
                done.set_result(None)

        loop.add_signal_handler(signal.SIGUSR1, handler, "usr1")
        loop.add_signal_handler(signal.SIGUSR2, handler, "usr2")

        async def main():
            kill_self(signal.SIGUSR1)
            kill_self(signal.SIGUSR2)
            await done

        run_guarded(loop, main())
        assert sorted(got) == ["usr1", "usr2"]
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR2) is True

    def test_replacing_a_handler(self, loop):
        first = Recorder(loop)
        second = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, first)
        loop.add_signal_handler(signal.SIGUSR1, second, "new")

        async def main():
            fut = second.next_call()
            kill_self(signal.SIGUSR1)
            await fut

        run_guarded(loop, main())
        run_briefly(loop, steps=3)
        assert first.calls == []
        assert [c[0] for c in second.calls] == [("new",)]
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False

    def test_signal_sent_while_the_loop_is_not_running(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec, "late")
        # Run the loop once so that any lazy set-up has happened.
        run_briefly(loop)
        kill_self(signal.SIGUSR1)
        assert rec.calls == []

        async def main():
            fut = rec.next_call()
            if rec.calls:
                return rec.calls[0][0]
            return await fut

        assert run_guarded(loop, main()) == ("late",)
        assert len(rec.calls) == 1
        loop.remove_signal_handler(signal.SIGUSR1)

    def test_signal_sent_before_the_loop_ever_ran(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec)
        kill_self(signal.SIGUSR1)

        async def main():
            fut = rec.next_call()
            if rec.calls:
                return
            await fut

        run_guarded(loop, main())
        assert len(rec.calls) == 1
        loop.remove_signal_handler(signal.SIGUSR1)

    def test_signal_from_another_thread_wakes_the_loop(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec)
        ready = threading.Event()

        def send():
            ready.wait()
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

        thread = threading.Thread(target=send)

        async def main():
            fut = rec.next_call()
            thread.start()
            loop.call_soon(ready.set)
            await fut

        try:
            run_guarded(loop, main())
        finally:
            ready.set()
            thread.join()
        loop.remove_signal_handler(signal.SIGUSR1)

    def test_handler_runs_in_the_context_captured_when_added(self, loop):
        var = contextvars.ContextVar("var", default="unset")
        seen = []
        done = loop.create_future()

        def handler():
            seen.append(var.get())
            done.set_result(None)

        token = var.set("at add time")
        try:
            loop.add_signal_handler(signal.SIGUSR1, handler)
        finally:
            var.reset(token)

        async def main():
            var.set("in the task")
            kill_self(signal.SIGUSR1)
            await done

        run_guarded(loop, main())
        assert seen == ["at add time"]
        loop.remove_signal_handler(signal.SIGUSR1)

    @pytest.mark.allow_loop_errors
    def test_exception_in_handler_goes_to_the_exception_handler(self, loop):
        contexts = []
        reported = loop.create_future()

        def exc_handler(lp, context):
            contexts.append(context)
            if not reported.done():
                reported.set_result(None)

        loop.set_exception_handler(exc_handler)
        boom = ZeroDivisionError("boom")

        def handler():
            raise boom

        loop.add_signal_handler(signal.SIGUSR1, handler)

        async def main():
            kill_self(signal.SIGUSR1)
            await reported

        run_guarded(loop, main())
        [context] = contexts
        assert context["exception"] is boom
        assert isinstance(context["handle"], asyncio.Handle)
        # The handler stays installed after raising.
        assert loop.remove_signal_handler(signal.SIGUSR1) is True

    def test_handler_may_remove_itself(self, loop):
        results = []
        done = loop.create_future()

        def handler():
            results.append(loop.remove_signal_handler(signal.SIGUSR1))
            done.set_result(None)

        loop.add_signal_handler(signal.SIGUSR1, handler)

        async def main():
            kill_self(signal.SIGUSR1)
            await done

        run_guarded(loop, main())
        assert results == [True]
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL

    def test_python_disposition_is_replaced_while_installed(self, loop):
        previous = []
        old = signal.signal(signal.SIGUSR1, lambda *a: previous.append(a))
        try:
            rec = Recorder(loop)
            loop.add_signal_handler(signal.SIGUSR1, rec)

            async def main():
                fut = rec.next_call()
                kill_self(signal.SIGUSR1)
                await fut

            run_guarded(loop, main())
            assert previous == []
            loop.remove_signal_handler(signal.SIGUSR1)
        finally:
            signal.signal(signal.SIGUSR1, old)

    def test_sigchld_handler_is_allowed(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGCHLD, rec, "child")

        async def main():
            fut = rec.next_call()
            proc = subprocess.Popen([sys.executable, "-c", "pass"])
            try:
                return await fut
            finally:
                assert proc.wait() == 0

        assert run_guarded(loop, main()) == ("child",)
        assert loop.remove_signal_handler(signal.SIGCHLD) is True
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL

    def test_sigint_handler(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGINT, rec, "int")

        async def main():
            fut = rec.next_call()
            kill_self(signal.SIGINT)
            return await fut

        # The handler replaces KeyboardInterrupt.
        assert run_guarded(loop, main()) == ("int",)
        assert loop.remove_signal_handler(signal.SIGINT) is True
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class TestAddSignalHandlerErrors:
    @pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
    def test_uncatchable_signals(self, loop, sig):
        with pytest.raises(RuntimeError, match=f"sig {int(sig)} cannot be caught"):
            loop.add_signal_handler(sig, noop)
        assert loop.remove_signal_handler(sig) is False

    @pytest.mark.parametrize("sig", [0, -1, signal.NSIG, 1000])
    def test_invalid_signal_number(self, loop, sig):
        with pytest.raises(ValueError, match=f"invalid signal number {sig}"):
            loop.add_signal_handler(sig, noop)
        with pytest.raises(ValueError, match=f"invalid signal number {sig}"):
            loop.remove_signal_handler(sig)

    @pytest.mark.parametrize("sig", ["SIGUSR1", 10.0, None])
    def test_signal_must_be_an_int(self, loop, sig):
        with pytest.raises(TypeError, match="sig must be an int, not"):
            loop.add_signal_handler(sig, noop)
        with pytest.raises(TypeError, match="sig must be an int, not"):
            loop.remove_signal_handler(sig)

    def test_signals_enum_member_is_accepted(self, loop):
        assert isinstance(signal.SIGUSR2, signal.Signals)
        loop.add_signal_handler(signal.SIGUSR2, noop)
        assert loop.remove_signal_handler(int(signal.SIGUSR2)) is True

    def test_coroutine_function_is_rejected(self, loop):
        async def handler():
            pass

        with pytest.raises(TypeError, match=r"coroutines cannot be used with add_signal_handler\(\)"):
            loop.add_signal_handler(signal.SIGUSR1, handler)
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        assert loop.remove_signal_handler(signal.SIGUSR1) is False

    def test_coroutine_object_is_rejected(self, loop):
        async def handler():
            pass

        coro = handler()
        try:
            with pytest.raises(TypeError, match="coroutines cannot be used"):
                loop.add_signal_handler(signal.SIGUSR1, coro)
        finally:
            coro.close()

    def test_coroutine_check_comes_before_the_signal_check(self, loop):
        async def handler():
            pass

        with pytest.raises(TypeError, match="coroutines cannot be used"):
            loop.add_signal_handler(0, handler)

    def test_closed_loop(self, loop):
        loop.close()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.add_signal_handler(signal.SIGUSR1, noop)
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        # The signal is checked before the loop.
        with pytest.raises(ValueError, match="invalid signal number"):
            loop.add_signal_handler(0, noop)
        assert loop.remove_signal_handler(signal.SIGUSR1) is False

    def test_loop_in_another_thread(self, loop_factory):
        """The stock loop fails in set_wakeup_fd() and turns its ValueError
        into RuntimeError."""
        outcome = {}

        def worker():
            lp = loop_factory()
            try:
                try:
                    lp.add_signal_handler(signal.SIGUSR1, noop)
                except BaseException as exc:  # noqa: BLE001
                    outcome["exc"] = exc
                outcome["removed"] = lp.remove_signal_handler(signal.SIGUSR1)
            finally:
                lp.close()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        exc = outcome["exc"]
        assert type(exc) is RuntimeError
        assert "main thread" in str(exc)
        assert outcome["removed"] is False
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


class TestRemoveSignalHandler:
    def test_return_values(self, loop):
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        loop.add_signal_handler(signal.SIGUSR1, noop)
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False

    def test_removal_restores_sig_dfl(self, loop):
        loop.add_signal_handler(signal.SIGUSR1, noop)
        assert signal.getsignal(signal.SIGUSR1) != signal.SIG_DFL
        loop.remove_signal_handler(signal.SIGUSR1)
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL

    def test_removal_sets_sig_dfl_even_if_something_else_was_there(self, loop):
        old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        try:
            loop.add_signal_handler(signal.SIGUSR1, noop)
            loop.remove_signal_handler(signal.SIGUSR1)
            assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        finally:
            signal.signal(signal.SIGUSR1, old)

    def test_removing_sigint_restores_default_int_handler(self, loop):
        loop.add_signal_handler(signal.SIGINT, noop)
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        assert loop.remove_signal_handler(signal.SIGINT) is True
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            kill_self(signal.SIGINT)
            # Let the Python-level handler run.
            for _ in range(1000):
                pass

    def test_removed_handler_is_not_called(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, rec)
        loop.remove_signal_handler(signal.SIGUSR1)
        # The handler is not called even though a Python-level handler of
        # our own sees the signal.
        seen = loop.create_future()
        signal.signal(signal.SIGUSR1, lambda *a: loop.call_soon(
            lambda: seen.done() or seen.set_result(None)))

        async def main():
            kill_self(signal.SIGUSR1)
            await seen
            for _ in range(5):
                await asyncio.sleep(0)

        run_guarded(loop, main())
        assert rec.calls == []

    def test_removing_one_keeps_the_other(self, loop):
        rec = Recorder(loop)
        loop.add_signal_handler(signal.SIGUSR1, noop)
        loop.add_signal_handler(signal.SIGUSR2, rec)
        assert loop.remove_signal_handler(signal.SIGUSR1) is True

        async def main():
            fut = rec.next_call()
            kill_self(signal.SIGUSR2)
            await fut

        run_guarded(loop, main())
        assert loop.remove_signal_handler(signal.SIGUSR2) is True

    def test_uncatchable_signal(self, loop):
        assert loop.remove_signal_handler(signal.SIGKILL) is False


class TestCloseRemovesHandlers:
    def test_close_restores_dispositions(self, loop):
        loop.add_signal_handler(signal.SIGUSR1, noop)
        loop.add_signal_handler(signal.SIGINT, noop)
        run_briefly(loop)
        loop.close()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        assert loop.remove_signal_handler(signal.SIGINT) is False
        # No wakeup fd is left pointing at the closed loop.
        assert signal.set_wakeup_fd(-1) == -1

    def test_new_loop_after_close_gets_signals(self, loop, loop_factory):
        loop.add_signal_handler(signal.SIGUSR1, noop)
        loop.close()
        other = loop_factory()
        rec = Recorder(other)
        other.add_signal_handler(signal.SIGUSR1, rec, "other")

        async def main():
            fut = rec.next_call()
            kill_self(signal.SIGUSR1)
            return await fut

        assert run_guarded(other, main()) == ("other",)
        other.close()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL

"""run_in_executor and the default executor."""

import asyncio
import concurrent.futures
import sys
import threading

import pytest

# Only guards against a hang; never part of an assertion about timing.
HANG_GUARD = 30.0


async def coro_func():
    pass


def fail(message):
    raise ValueError(message)


class InlineExecutor(concurrent.futures.Executor):
    """An Executor that is not a ThreadPoolExecutor."""

    def submit(self, fn, /, *args, **kwargs):
        fut = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


class TestRunInExecutor:
    def test_default_executor_runs_in_another_thread(self, loop):
        async def main():
            return await loop.run_in_executor(None, threading.get_ident)

        assert loop.run_until_complete(main()) != threading.get_ident()

    def test_passes_args_and_returns_loop_future(self, loop):
        async def main():
            fut = loop.run_in_executor(None, pow, 2, 10)
            assert isinstance(fut, asyncio.Future)
            assert fut.get_loop() is loop
            return await fut

        assert loop.run_until_complete(main()) == 1024

    def test_exception_propagates(self, loop):
        async def main():
            await loop.run_in_executor(None, fail, "from worker")

        with pytest.raises(ValueError, match="from worker"):
            loop.run_until_complete(main())

    def test_custom_executor(self, loop):
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="custom-pool") as executor:
            async def main():
                return await loop.run_in_executor(
                    executor, lambda: threading.current_thread().name)

            assert loop.run_until_complete(main()).startswith("custom-pool")

    def test_jobs_run_concurrently(self, loop):
        barrier = threading.Barrier(2, timeout=HANG_GUARD)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
            async def main():
                return await asyncio.gather(
                    loop.run_in_executor(executor, barrier.wait),
                    loop.run_in_executor(executor, barrier.wait),
                )

            assert sorted(loop.run_until_complete(main())) == [0, 1]

    def test_non_threadpool_executor_can_be_passed_explicitly(self, loop):
        async def main():
            return await loop.run_in_executor(InlineExecutor(), pow, 3, 2)

        assert loop.run_until_complete(main()) == 9

    def test_coroutine_function_raises_type_error_in_debug_mode(self, loop):
        # asyncio only validates the callable in debug mode.
        loop.set_debug(True)
        with pytest.raises(TypeError, match=r"coroutines cannot be used with run_in_executor\(\)"):
            loop.run_in_executor(None, coro_func)

    def test_closed_loop_raises(self, loop):
        loop.close()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.run_in_executor(None, pow, 2, 2)


class TestDefaultExecutor:
    def test_set_default_executor(self, loop):
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="my-default")
        loop.set_default_executor(executor)

        async def main():
            return await loop.run_in_executor(
                None, lambda: threading.current_thread().name)

        try:
            assert loop.run_until_complete(main()).startswith("my-default")
        finally:
            loop.close()
        # close() shuts the default executor down (without waiting).
        with pytest.raises(RuntimeError):
            executor.submit(pow, 2, 2)
        executor.shutdown(wait=True)

    def test_set_default_executor_rejects_non_threadpool_executor(self, loop):
        # Python 3.11 behaviour: a TypeError (3.8-3.10 only warned).
        with pytest.raises(TypeError, match="ThreadPoolExecutor"):
            loop.set_default_executor(InlineExecutor())

    def test_shutdown_default_executor_joins_worker_threads(self, loop):
        async def main():
            worker = await loop.run_in_executor(None, threading.current_thread)
            await loop.shutdown_default_executor()
            return worker

        worker = loop.run_until_complete(main())
        assert worker is not threading.current_thread()
        assert not worker.is_alive()

    def test_shutdown_default_executor_without_executor(self, loop):
        loop.run_until_complete(loop.shutdown_default_executor())

    def test_run_in_default_executor_after_shutdown_raises(self, loop):
        loop.run_until_complete(loop.shutdown_default_executor())
        with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
            loop.run_in_executor(None, pow, 2, 2)

    def test_explicit_executor_still_usable_after_default_shutdown(self, loop):
        loop.run_until_complete(loop.shutdown_default_executor())
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
            async def main():
                return await loop.run_in_executor(executor, pow, 2, 3)

            assert loop.run_until_complete(main()) == 8

    def test_run_in_default_executor_after_close_raises(self, loop):
        loop.close()
        with pytest.raises(RuntimeError):
            loop.run_in_executor(None, pow, 2, 2)

    @pytest.mark.skipif(sys.version_info < (3, 12),
                        reason="timeout= arrived in Python 3.12")
    def test_shutdown_default_executor_timeout_leaves_threads_with_warning(
            self, loop, loop_kind):
        if loop_kind == "asyncio" and sys.version_info < (3, 12, 2):
            pytest.skip("3.12.0-3.12.1's loop waited for the threads whatever "
                        "the timeout (gh-111358, fixed in 3.12.2)")
        release = threading.Event()

        async def main():
            started = loop.run_in_executor(None, release.wait, HANG_GUARD)
            worker = await loop.run_in_executor(None, threading.current_thread)
            with pytest.warns(RuntimeWarning, match="within 0.01 seconds"):
                await loop.shutdown_default_executor(timeout=0.01)
            return started, worker

        try:
            started, worker = loop.run_until_complete(main())
            # The blocked worker is left running: shutdown returned without it.
            assert not started.done()
        finally:
            release.set()
        worker.join(HANG_GUARD)
        assert not worker.is_alive()

    @pytest.mark.skipif(sys.version_info < (3, 12),
                        reason="timeout= arrived in Python 3.12")
    def test_shutdown_default_executor_timeout_not_reached(self, loop):
        async def main():
            worker = await loop.run_in_executor(None, threading.current_thread)
            await loop.shutdown_default_executor(timeout=HANG_GUARD)
            return worker

        worker = loop.run_until_complete(main())
        assert not worker.is_alive()

    @pytest.mark.skipif(sys.version_info >= (3, 12),
                        reason="Python 3.12 added timeout=")
    def test_shutdown_default_executor_takes_no_timeout_on_311(self, loop):
        with pytest.raises(TypeError):
            loop.shutdown_default_executor(1.0)

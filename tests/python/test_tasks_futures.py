"""Tasks, futures, the task factory and async generator lifecycle."""

import asyncio
import contextvars
import gc
import sys

import pytest

from support import run_briefly


async def return_value(value):
    await asyncio.sleep(0)
    return value


class TestCreateTask:
    def test_returns_asyncio_task_bound_to_loop(self, loop):
        task = loop.create_task(return_value("result"))
        assert isinstance(task, asyncio.Task)
        assert task.get_loop() is loop
        assert not task.done()
        assert loop.run_until_complete(task) == "result"
        assert task.result() == "result"

    def test_task_starts_on_next_iteration(self, loop):
        started = []

        async def record():
            started.append(True)

        task = loop.create_task(record())
        assert started == []
        run_briefly(loop)
        assert started == [True]
        assert task.done()

    def test_name(self, loop):
        named = loop.create_task(return_value(1), name="worker")
        unnamed = loop.create_task(return_value(2))
        assert named.get_name() == "worker"
        assert unnamed.get_name().startswith("Task-")
        loop.run_until_complete(asyncio.gather(named, unnamed))

    def test_context(self, loop):
        var = contextvars.ContextVar("var")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "task-ctx")

        async def read_and_set():
            seen = var.get("missing")
            await asyncio.sleep(0)
            var.set("changed-by-task")
            return seen

        task = loop.create_task(read_and_set(), context=ctx)
        assert loop.run_until_complete(task) == "task-ctx"
        assert ctx[var] == "changed-by-task"
        assert var.get("missing") == "missing"

    def test_default_context_is_copied(self, loop):
        var = contextvars.ContextVar("var", default="outer")

        async def set_var():
            var.set("inner")
            await asyncio.sleep(0)
            return var.get()

        assert loop.run_until_complete(set_var()) == "inner"
        assert var.get() == "outer"

    def test_current_task_and_all_tasks(self, loop):
        blocker = loop.create_future()

        async def wait():
            await blocker

        async def main():
            me = asyncio.current_task()
            other = asyncio.ensure_future(wait())
            await asyncio.sleep(0)
            everything = asyncio.all_tasks()
            blocker.set_result(None)
            await other
            return me, other, everything

        main_task = loop.create_task(main())
        me, other, everything = loop.run_until_complete(main_task)
        assert me is main_task
        assert everything == {main_task, other}
        assert asyncio.all_tasks(loop) == set()

    def test_cancel(self, loop):
        blocker = loop.create_future()

        async def wait():
            await blocker

        task = loop.create_task(wait())
        run_briefly(loop)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        assert task.cancelled()
        assert blocker.cancelled()


class TestTaskFactory:
    def test_default_is_none(self, loop):
        assert loop.get_task_factory() is None

    def test_factory_is_used_and_receives_context_only_when_given(self, loop):
        calls = []

        def factory(lp, coro, **kwargs):
            calls.append((lp, kwargs))
            return asyncio.Task(coro, loop=lp, **kwargs)

        loop.set_task_factory(factory)
        assert loop.get_task_factory() is factory

        ctx = contextvars.copy_context()
        plain = loop.create_task(return_value(1))
        with_ctx = loop.create_task(return_value(2), context=ctx)
        named = loop.create_task(return_value(3), name="named-by-loop")

        results = loop.run_until_complete(asyncio.gather(plain, with_ctx, named))
        assert results == [1, 2, 3]
        assert calls == [(loop, {}), (loop, {"context": ctx}), (loop, {})]
        assert named.get_name() == "named-by-loop"

    def test_run_until_complete_uses_factory_for_coroutines(self, loop):
        created = []

        def factory(lp, coro, **kwargs):
            task = asyncio.Task(coro, loop=lp, **kwargs)
            created.append(task)
            return task

        loop.set_task_factory(factory)
        assert loop.run_until_complete(return_value("via-factory")) == "via-factory"
        assert len(created) == 1 and created[0].done()

    def test_reset_to_default(self, loop):
        loop.set_task_factory(lambda lp, coro, **kw: asyncio.Task(coro, loop=lp, **kw))
        loop.set_task_factory(None)
        assert loop.get_task_factory() is None
        assert isinstance(loop.create_task(return_value(None)), asyncio.Task)
        run_briefly(loop, steps=2)

    @pytest.mark.parametrize("bad", [42, "factory", object()])
    def test_non_callable_raises_type_error(self, loop, bad):
        with pytest.raises(TypeError, match="task factory must be a callable or None"):
            loop.set_task_factory(bad)
        assert loop.get_task_factory() is None


class TestFutures:
    def test_create_future_returns_asyncio_future_bound_to_loop(self, loop):
        fut = loop.create_future()
        assert isinstance(fut, asyncio.Future)
        assert fut.get_loop() is loop
        assert not fut.done()
        fut.cancel()

    def test_done_callbacks_are_scheduled_not_called_inline(self, loop):
        fut = loop.create_future()
        calls = []
        fut.add_done_callback(lambda f: calls.append(f.result()))
        fut.set_result("value")
        assert calls == []
        run_briefly(loop)
        assert calls == ["value"]

    def test_done_callback_context(self, loop):
        var = contextvars.ContextVar("var")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "cb-ctx")
        seen = []
        fut = loop.create_future()
        fut.add_done_callback(lambda f: seen.append(var.get("missing")), context=ctx)
        fut.set_result(None)
        run_briefly(loop)
        assert seen == ["cb-ctx"]

    def test_await_future_resolved_from_callback(self, loop):
        fut = loop.create_future()

        async def main():
            loop.call_soon(fut.set_result, "resolved")
            return await fut

        assert loop.run_until_complete(main()) == "resolved"

    def test_sleep_and_wait_for_timeout(self, loop):
        never = loop.create_future()

        async def main():
            await asyncio.sleep(0.001)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(never, 0.01)
            return never.cancelled()

        assert loop.run_until_complete(main()) is True

    def test_sleep_result(self, loop):
        async def main():
            return await asyncio.sleep(0.001, result="slept")

        assert loop.run_until_complete(main()) == "slept"


class TestAsyncGenerators:
    def test_hooks_installed_only_while_running(self, loop):
        before = sys.get_asyncgen_hooks()

        async def main():
            return sys.get_asyncgen_hooks()

        during = loop.run_until_complete(main())
        assert during.firstiter is not None
        assert during.finalizer is not None
        assert during != before
        assert sys.get_asyncgen_hooks() == before

    def test_shutdown_asyncgens_closes_suspended_generators(self, loop):
        events = []

        async def agen(name):
            try:
                yield 1
                yield 2
            finally:
                await asyncio.sleep(0)  # aclose() runs on the loop
                events.append(f"finalized {name}")

        alive = []

        async def main():
            for name in ("a", "b"):
                gen = agen(name)
                alive.append(gen)
                assert await gen.__anext__() == 1

        loop.run_until_complete(main())
        assert events == []
        loop.run_until_complete(loop.shutdown_asyncgens())
        assert sorted(events) == ["finalized a", "finalized b"]

    def test_shutdown_asyncgens_without_generators(self, loop):
        loop.run_until_complete(loop.shutdown_asyncgens())

    def test_shutdown_asyncgens_reports_errors_to_handler(self, loop):
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        async def broken():
            try:
                yield 1
            finally:
                raise ValueError("cannot close")

        alive = []

        async def main():
            gen = broken()
            alive.append(gen)
            await gen.__anext__()

        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
        [ctx] = contexts
        assert "an error occurred during closing of asynchronous generator" in ctx["message"]
        assert isinstance(ctx["exception"], ValueError)
        assert ctx["asyncgen"] is alive[0]

    def test_generator_dropped_while_running_is_finalized_on_the_loop(self, loop):
        finalized = loop.create_future()

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                finalized.set_result(asyncio.get_running_loop())

        async def main():
            gen = agen()
            await gen.__anext__()
            del gen
            gc.collect()
            return await finalized

        assert loop.run_until_complete(main()) is loop

    def test_first_iteration_after_shutdown_warns(self, loop):
        loop.run_until_complete(loop.shutdown_asyncgens())

        async def agen():
            yield 1

        async def main():
            gen = agen()
            with pytest.warns(ResourceWarning, match="shutdown_asyncgens"):
                await gen.__anext__()
            await gen.aclose()

        loop.run_until_complete(main())

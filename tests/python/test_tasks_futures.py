"""Tasks, futures, the task factory and async generator lifecycle."""

import asyncio
import contextvars
import gc
import sys

import pytest

from support import run_briefly

# How loop.create_task() hands its keywords on, by Python version (asyncio's
# BaseEventLoop.create_task()): "name_context" (3.11, 3.12),
# "set_name_always" (3.13.0-3.13.2), "extra" (3.13.4+: other keywords too),
# "all" (3.13.3 and 3.14: everything as given, to the factory as well).
if sys.version_info >= (3, 14) or sys.version_info[:3] == (3, 13, 3):
    CREATE_TASK_RULE = "all"
elif sys.version_info >= (3, 13, 4):
    CREATE_TASK_RULE = "extra"
elif sys.version_info >= (3, 13):
    CREATE_TASK_RULE = "set_name_always"
else:
    CREATE_TASK_RULE = "name_context"


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

    def test_factory_is_used_and_receives_keywords_as_asyncio_passes_them(self, loop):
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
        both = loop.create_task(return_value(4), name="both", context=ctx)
        explicit_none = loop.create_task(return_value(5), name=None, context=None)

        results = loop.run_until_complete(
            asyncio.gather(plain, with_ctx, named, both, explicit_none))
        assert results == [1, 2, 3, 4, 5]
        if CREATE_TASK_RULE == "all":
            # 3.13.3, 3.14: every keyword as given; no set_name() after.
            assert calls == [(loop, {}), (loop, {"context": ctx}),
                             (loop, {"name": "named-by-loop"}),
                             (loop, {"name": "both", "context": ctx}),
                             (loop, {"name": None, "context": None})]
        else:
            # Before: no name=, context= only when not None, then set_name().
            assert calls == [(loop, {}), (loop, {"context": ctx}), (loop, {}),
                             (loop, {"context": ctx}), (loop, {})]
        assert named.get_name() == "named-by-loop"
        assert both.get_name() == "both"
        # 3.13.0 to 3.13.2 and 3.13.4+ call set_name(name) even for None.
        none_named = CREATE_TASK_RULE in ("set_name_always", "extra")
        assert (plain.get_name() == "None") is none_named

    def test_other_keywords(self, loop):
        async def main():
            factory_kwargs = []

            def factory(lp, coro, **kwargs):
                factory_kwargs.append(kwargs)
                return asyncio.Task(coro, loop=lp, **kwargs)

            # Without a factory they go to Task(), which knows eager_start
            # (from 3.12 on).
            if CREATE_TASK_RULE in ("name_context", "set_name_always"):
                coro = return_value(1)
                with pytest.raises(TypeError, match="eager_start"):
                    loop.create_task(coro, eager_start=False)
                coro.close()
            else:
                task = loop.create_task(return_value(1), eager_start=False)
                assert await task == 1
            loop.set_task_factory(factory)
            try:
                if CREATE_TASK_RULE in ("name_context", "set_name_always"):
                    coro = return_value(2)
                    with pytest.raises(TypeError, match="eager_start"):
                        loop.create_task(coro, eager_start=False)
                    coro.close()
                    assert factory_kwargs == []
                else:
                    task = loop.create_task(return_value(2), eager_start=False,
                                            name="n")
                    assert await task == 2
                    assert task.get_name() == "n"
                    expected = {"eager_start": False}
                    if CREATE_TASK_RULE == "all":
                        expected["name"] = "n"
                    assert factory_kwargs == [expected]
            finally:
                loop.set_task_factory(None)

        loop.run_until_complete(main())

    def test_loop_keyword_is_refused(self, loop):
        coro = return_value(1)
        with pytest.raises(TypeError):
            loop.create_task(coro, loop=loop)
        coro.close()

    @pytest.mark.skipif(sys.version_info < (3, 14),
                        reason="create_task(eager_start=) from 3.14 on")
    def test_eager_start(self, loop):
        events = []

        async def child():
            events.append("child started")
            await asyncio.sleep(0)
            events.append("child resumed")
            return "child"

        async def main():
            task = loop.create_task(child(), eager_start=True, name="eager")
            events.append("create_task returned")
            # An eager task is the current task while it runs eagerly, and
            # asyncio's task list has it.
            assert task in asyncio.all_tasks()
            assert await task == "child"
            lazy = loop.create_task(child(), eager_start=False)
            events.append("lazy created")
            await lazy
            return task.get_name()

        assert loop.run_until_complete(main()) == "eager"
        assert events == ["child started", "create_task returned",
                          "child resumed", "lazy created", "child started",
                          "child resumed"]

    def test_task_and_future_classes_are_looked_up_at_each_call(self, loop, monkeypatch):
        # As asyncio's loop: tasks.Task and futures.Future at call time
        # (CPython's tests swap in the pure-Python classes).
        class MyTask(asyncio.tasks._PyTask):
            pass

        class MyFuture(asyncio.futures._PyFuture):
            pass

        monkeypatch.setattr(asyncio.tasks, "Task", MyTask)
        monkeypatch.setattr(asyncio.futures, "Future", MyFuture)
        task = loop.create_task(return_value(1))
        fut = loop.create_future()
        assert type(task) is MyTask
        assert type(fut) is MyFuture
        fut.cancel()
        assert loop.run_until_complete(task) == 1

    def test_a_class_swapped_between_calls_is_used_at_the_next(self, loop, monkeypatch):
        # Whatever asyncuv keeps between calls follows the modules'
        # attributes: set, restored, set through the dict, deleted.
        class MyTask(asyncio.tasks._PyTask):
            pass

        class MyFuture(asyncio.futures._PyFuture):
            pass

        tasks = []

        def kinds():
            tasks.append(loop.create_task(return_value(1)))
            fut = loop.create_future()
            fut.cancel()
            return type(tasks[-1]), type(fut)

        original = (asyncio.tasks.Task, asyncio.futures.Future)
        assert kinds() == original
        assert kinds() == original
        monkeypatch.setattr(asyncio.tasks, "Task", MyTask)
        monkeypatch.setattr(asyncio.futures, "Future", MyFuture)
        assert kinds() == (MyTask, MyFuture)
        assert kinds() == (MyTask, MyFuture)
        monkeypatch.undo()
        assert kinds() == original
        vars(asyncio.futures).update(Future=MyFuture)
        try:
            assert kinds() == (original[0], MyFuture)
        finally:
            vars(asyncio.futures).update(Future=original[1])
        assert kinds() == original
        monkeypatch.delattr(asyncio.futures, "Future")
        with pytest.raises(AttributeError, match="has no attribute 'Future'"):
            loop.create_future()
        monkeypatch.undo()
        assert kinds() == original
        assert loop.run_until_complete(asyncio.gather(*tasks)) == [1] * len(tasks)

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

    def test_create_future_is_bound_to_its_loop_wherever_it_is_called(
            self, loop, loop_factory):
        """From inside the loop, and from a callback of another running
        loop of the same kind: the future belongs to the loop asked."""
        other = loop_factory()
        got = {}

        async def inside():
            got["inside"] = loop.create_future()

        def from_other():
            got["from other"] = loop.create_future()

        loop.run_until_complete(inside())
        other.call_soon(from_other)
        other.call_soon(other.stop)
        other.run_forever()
        assert got["inside"].get_loop() is loop
        assert got["from other"].get_loop() is loop

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

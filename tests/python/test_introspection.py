"""asyncio's task introspection on the loop (Python 3.14): the call graph of
tasks (asyncio.capture_call_graph(), format_call_graph(),
print_call_graph()) and the external tools that read a running process's
tasks from its memory (python -m asyncio ps / pstree PID).

Both work for a loop that runs asyncio's C Task and sets the running loop
through asyncio's own hook (events._set_running_loop): tasks are listed in
the interpreter's per-thread task list when they are made, and the running
task is the thread's."""

import asyncio
import io
import os
import re
import subprocess
import sys
import textwrap

import pytest

from support import NET_HANG_GUARD, load_asyncuv

pytestmark = pytest.mark.skipif(
    not hasattr(asyncio, "capture_call_graph"),
    reason="asyncio's call-graph introspection is new in 3.14")


async def _leaf(event, graphs):
    graphs.append(asyncio.capture_call_graph())
    await event.wait()


async def _worker(event, graphs):
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_leaf(event, graphs), name="leaf-1")
        tg.create_task(_leaf(event, graphs), name="leaf-2")


def _names(graph):
    """(task name, function names of its stack, awaited_by) of a graph."""
    return (graph.future.get_name(),
            [entry.frame.f_code.co_name for entry in graph.call_stack],
            [_names(parent) for parent in graph.awaited_by])


class TestCallGraph:
    def test_capture_call_graph_of_the_current_task(self, loop):
        graphs = []

        async def main():
            event = asyncio.Event()
            worker = asyncio.create_task(_worker(event, graphs), name="worker")
            while len(graphs) < 2:
                await asyncio.sleep(0)
            event.set()
            await worker

        loop.run_until_complete(main())
        worker_graph = ("worker", ["_aexit", "__aexit__", "_worker"], [])
        assert [_names(g) for g in graphs] == [
            ("leaf-1", ["_leaf"], [worker_graph]),
            ("leaf-2", ["_leaf"], [worker_graph]),
        ]

    def test_print_call_graph_of_another_task(self, loop):
        async def main():
            event = asyncio.Event()
            worker = asyncio.create_task(_worker(event, []), name="worker")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            leaves = [t for t in asyncio.all_tasks()
                      if t.get_name().startswith("leaf")]
            buf = io.StringIO()
            asyncio.print_call_graph(sorted(leaves, key=asyncio.Task.get_name)[0],
                                     file=buf)
            event.set()
            await worker
            return buf.getvalue()

        text = loop.run_until_complete(main())
        lines = [re.sub(r"id=0x[0-9a-f]+", "id=ID",
                        re.sub(r"File '[^']*', line \d+, ", "", line))
                 for line in text.splitlines()]
        assert lines == [
            "* Task(name='leaf-1', id=ID)",
            "  + Call stack:",
            "  |   in async Event.wait()",
            "  |   in async _leaf()",
            "  + Awaited by:",
            "    * Task(name='worker', id=ID)",
            "      + Call stack:",
            "      |   in async TaskGroup._aexit()",
            "      |   in async TaskGroup.__aexit__()",
            "      |   in async _worker()",
        ]


# --- python -m asyncio ps / pstree PID ---------------------------------------------

_CHILD = """
import asyncio, sys, time
sys.path.insert(0, {tests_dir!r})

async def leaf(event):
    await event.wait()

async def worker(event):
    async with asyncio.TaskGroup() as tg:
        tg.create_task(leaf(event), name="leaf-1")
        tg.create_task(leaf(event), name="leaf-2")

async def blocking():
    # The running task while the tools look: it blocks the loop's thread.
    print("ready", flush=True)
    sys.stdin.readline()

async def main():
    event = asyncio.Event()
    task = asyncio.create_task(worker(event), name="worker")
    await asyncio.sleep(0.01)
    await asyncio.create_task(blocking(), name="blocking")
    event.set()
    await task

if {kind!r} == "asyncuv":
    import asyncuv
    asyncuv.run(main())
else:
    asyncio.run(main())
"""


def _inspect(kind):
    """Start a child with tasks on a loop of this kind; return what
    python -m asyncio ps and pstree print about it."""
    if kind == "asyncuv":
        load_asyncuv()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(
            tests_dir=os.path.dirname(os.path.abspath(__file__)), kind=kind)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline() == "ready\n"
        outputs = []
        for command in ("ps", "pstree"):
            tool = subprocess.run(
                [sys.executable, "-m", "asyncio", command, str(child.pid)],
                capture_output=True, text=True, timeout=NET_HANG_GUARD)
            if tool.returncode != 0 and "ermission" in tool.stdout + tool.stderr:
                pytest.skip("this machine does not let a process read "
                            "another's memory (ptrace)")
            assert tool.returncode == 0, tool.stderr
            outputs.append(tool.stdout)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(NET_HANG_GUARD) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    return outputs


def test_ps_and_pstree_list_the_loops_tasks(loop_kind):
    ps, pstree = _inspect(loop_kind)
    rows = {}
    for line in ps.splitlines()[2:]:
        # tid, task id, name, coroutine stack, awaiter chain, awaiter name, id
        fields = re.split(r"\s{2,}", line.strip())
        rows[fields[2]] = fields[3:]
    assert sorted(rows) == ["Task-1", "blocking", "leaf-1", "leaf-2", "worker"]
    assert rows["leaf-1"][:3] == [
        "Event.wait -> leaf", "TaskGroup._aexit -> TaskGroup.__aexit__ -> worker",
        "worker"]
    assert rows["blocking"][0] == "blocking"
    assert rows["worker"][0] == "TaskGroup._aexit -> TaskGroup.__aexit__ -> worker"
    tree = [re.sub(r" \S+:\d+$", "", line.strip(" │├└─"))
            for line in pstree.splitlines()]
    assert tree == textwrap.dedent("""\
        (T) Task-1
        main
        (T) blocking
        blocking
        (T) worker
        worker
        TaskGroup.__aexit__
        TaskGroup._aexit
        (T) leaf-1
        leaf
        Event.wait
        (T) leaf-2
        leaf
        Event.wait""").splitlines()

"""After os.fork() the child can create and run a fresh loop of the same
kind.  The child reports through its exit status (0 = every check passed;
its traceback goes to the captured stderr); the parent waits for it.  Every
test runs on asyncuv and on the stock asyncio loop (the reference)."""

import asyncio
import os
import signal
import socket
import sys
import traceback

import pytest

from support import NET_HANG_GUARD, new_loop, run_guarded

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


def fork_and_run(child_main):
    """Fork; in the child run child_main() and _exit with 0 if it returned,
    1 if it raised.  Returns the child's pid."""
    pid = os.fork()
    if pid == 0:  # child
        status = 2
        try:
            signal.alarm(int(NET_HANG_GUARD))  # a hung child dies of SIGALRM
            child_main()
            status = 0
        except BaseException:  # noqa: BLE001 - reported through the status
            traceback.print_exc()
            status = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)
    return pid


def wait_child(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


async def small_workload(loop):
    """A task with a sleep and a socketpair round trip on ``loop``."""
    assert asyncio.get_running_loop() is loop
    await asyncio.sleep(0.01)
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        await loop.sock_sendall(a, b"ping")
        assert await loop.sock_recv(b, 100) == b"ping"
        await loop.sock_sendall(b, b"pong")
        assert await loop.sock_recv(a, 100) == b"pong"
    task = asyncio.ensure_future(asyncio.sleep(0, "done"))
    assert await task == "done"
    return "ok"


def child_runs_a_new_loop(loop_kind):
    def child_main():
        asyncio.set_event_loop(None)
        child_loop = new_loop(loop_kind)
        try:
            assert child_loop.run_until_complete(
                asyncio.wait_for(small_workload(child_loop), NET_HANG_GUARD)) == "ok"
        finally:
            child_loop.close()
    return child_main


def test_child_runs_a_new_loop(loop, loop_kind):
    # The parent's loop has been used before the fork.
    assert run_guarded(loop, small_workload(loop)) == "ok"
    pid = fork_and_run(child_runs_a_new_loop(loop_kind))
    assert wait_child(pid) == 0
    # And the parent's loop still works.
    assert run_guarded(loop, small_workload(loop)) == "ok"


def test_fork_from_inside_a_running_loop(loop, loop_kind):
    """The child does not inherit a 'running loop': it can run its own."""
    async def main():
        return fork_and_run(child_runs_a_new_loop(loop_kind))

    pid = run_guarded(loop, main())
    assert wait_child(pid) == 0


def test_child_loop_is_the_same_kind(loop, loop_kind):
    parent_type = type(loop)

    def child_main():
        child_loop = new_loop(loop_kind)
        try:
            assert type(child_loop) is parent_type
        finally:
            child_loop.close()

    assert wait_child(fork_and_run(child_main)) == 0


def test_child_signal_handlers_go_to_the_child_loop(loop, loop_kind):
    """The parent has a signal handler (and so a wakeup fd) installed; the
    child's own loop gets the child's signals."""
    parent_calls = []
    loop.add_signal_handler(signal.SIGUSR1, parent_calls.append, "parent")
    try:
        def child_main():
            child_loop = new_loop(loop_kind)
            try:
                got = child_loop.create_future()
                child_loop.add_signal_handler(signal.SIGUSR1, got.set_result, "child")

                async def run():
                    os.kill(os.getpid(), signal.SIGUSR1)
                    return await got

                assert child_loop.run_until_complete(
                    asyncio.wait_for(run(), NET_HANG_GUARD)) == "child"
                assert child_loop.remove_signal_handler(signal.SIGUSR1) is True
            finally:
                child_loop.close()

        async def main():
            return fork_and_run(child_main)

        pid = run_guarded(loop, main())
        assert wait_child(pid) == 0
        assert parent_calls == []

        async def check_parent():
            got = loop.create_future()
            loop.add_signal_handler(signal.SIGUSR1, got.set_result, "parent")
            os.kill(os.getpid(), signal.SIGUSR1)
            return await got

        assert run_guarded(loop, check_parent()) == "parent"
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


def test_child_can_run_a_subprocess(loop_kind, loop_factory):
    def child_main():
        child_loop = new_loop(loop_kind)
        asyncio.set_event_loop(child_loop)
        try:
            async def run():
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", "print('grandchild')",
                    stdout=asyncio.subprocess.PIPE)
                out, _ = await proc.communicate()
                assert out.strip() == b"grandchild"
                assert proc.returncode == 0

            child_loop.run_until_complete(asyncio.wait_for(run(), NET_HANG_GUARD))
        finally:
            asyncio.set_event_loop(None)
            child_loop.close()

    loop_factory()  # loads the module under test before forking
    assert wait_child(fork_and_run(child_main)) == 0


def test_several_children(loop, loop_kind):
    pids = [fork_and_run(child_runs_a_new_loop(loop_kind)) for _ in range(4)]
    assert [wait_child(pid) for pid in pids] == [0, 0, 0, 0]

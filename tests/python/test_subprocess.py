"""Child processes: loop.subprocess_exec() / loop.subprocess_shell() with a
SubprocessProtocol, and asyncio.create_subprocess_exec() / _shell() with
asyncio.subprocess.Process.  The children are this Python interpreter (or
/bin/sh, true, grep).  Every test runs on asyncuv and on the stock asyncio
loop (the reference; on 3.11 it watches children with the policy's
ThreadedChildWatcher)."""

import asyncio
import fcntl
import gc
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading

import pytest

from support import NET_HANG_GUARD, Waker, _set_once, run_guarded

PIPE = asyncio.subprocess.PIPE
DEVNULL = asyncio.subprocess.DEVNULL
STDOUT = asyncio.subprocess.STDOUT

TRUE = shutil.which("true") or "/bin/true"

# From 3.14.7 on (gh-119710) wait() returns once the process has exited,
# even while a pipe stays open; before, it waited for the pipes too, and
# for ever if one never closed.
WAIT_RETURNS_AT_EXIT = sys.version_info >= (3, 14, 7)


def py(code, *args):
    """argv running ``code`` in a fresh interpreter."""
    return [sys.executable, "-c", code, *args]


ECHO = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
SLEEP = "import time; time.sleep(60)"
# Prints 'ready' once it is safe to signal it, then sleeps.
READY_THEN_SLEEP = (
    "import sys, time; sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(60)")


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


class SubprocessRecorder(Waker, asyncio.SubprocessProtocol):
    """Records callbacks in ``events`` (consecutive pipe_data_received for
    one fd are recorded once as ('data', fd)); the received bytes are in
    ``data[fd]``.  Futures: made, exited (result: the returncode seen in
    process_exited), lost, paused, resumed; ``pipe_lost[fd]``."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.events = []
        self.data = {1: bytearray(), 2: bytearray()}
        self.made = loop.create_future()
        self.exited = loop.create_future()
        self.lost = loop.create_future()
        self.paused = loop.create_future()
        self.resumed = loop.create_future()
        self.pipe_lost = {fd: loop.create_future() for fd in (0, 1, 2)}

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))
        _set_once(self.made, transport)

    def pipe_data_received(self, fd, data):
        if self.events[-1] != ("data", fd):
            self.events.append(("data", fd))
        self.data[fd] += data
        self._wake()

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))
        _set_once(self.pipe_lost[fd], exc)
        self._wake()

    def process_exited(self):
        returncode = self.transport.get_returncode()
        self.events.append(("exited", returncode))
        _set_once(self.exited, returncode)

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        _set_once(self.lost, exc)
        self._wake()

    def pause_writing(self):
        self.events.append(("pause",))
        _set_once(self.paused, None)

    def resume_writing(self):
        self.events.append(("resume",))
        _set_once(self.resumed, None)

    async def read_at_least(self, fd, nbytes):
        await self._until(lambda: len(self.data[fd]) >= nbytes or self.pipe_lost[fd].done())
        return bytes(self.data[fd])


def check_protocol_order(events, pipes=(0, 1, 2)):
    """The invariants asyncio guarantees: connection_made first,
    connection_lost(None) last and once, process_exited once before it,
    one pipe_connection_lost(fd, None) per pipe and no data for a pipe
    after it."""
    assert events[0] == ("made",)
    assert events[-1] == ("lost", None)
    kinds = [e[0] for e in events]
    assert kinds.count("made") == 1
    assert kinds.count("lost") == 1
    assert kinds.count("exited") == 1
    lost_pipes = [e[1] for e in events if e[0] == "pipe_lost"]
    assert sorted(lost_pipes) == sorted(pipes)
    for e in events:
        if e[0] == "pipe_lost":
            assert e[2] is None
    for fd in pipes:
        closed_at = events.index(("pipe_lost", fd, None))
        assert ("data", fd) not in events[closed_at:]


class Children:
    """Starts children on ``loop`` and, at teardown, kills and waits for
    any that a failing test left behind."""

    def __init__(self, loop):
        self.loop = loop
        self.started = []

    async def start(self, argv, **kwargs):
        """loop.subprocess_exec() with a SubprocessRecorder."""
        tr, proto = await self.loop.subprocess_exec(
            lambda: SubprocessRecorder(self.loop), *argv, **kwargs)
        self.started.append((tr, proto))
        return tr, proto

    async def shell(self, cmd, **kwargs):
        """loop.subprocess_shell() with a SubprocessRecorder."""
        tr, proto = await self.loop.subprocess_shell(
            lambda: SubprocessRecorder(self.loop), cmd, **kwargs)
        self.started.append((tr, proto))
        return tr, proto

    async def exec(self, *argv, **kwargs):
        """asyncio.create_subprocess_exec()."""
        proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
        self.started.append(proc)
        return proc

    async def shell_proc(self, cmd, **kwargs):
        """asyncio.create_subprocess_shell()."""
        proc = await asyncio.create_subprocess_shell(cmd, **kwargs)
        self.started.append(proc)
        return proc

    def cleanup(self):
        waits = []
        started, self.started = self.started, []
        for item in started:
            if isinstance(item, asyncio.subprocess.Process):
                if item.returncode is None:
                    try:
                        item.kill()
                    except ProcessLookupError:
                        pass
                    waits.append(item.wait())
            else:
                tr, proto = item
                tr.close()
                if not proto.lost.done():
                    waits.append(proto.lost)
        if waits and not self.loop.is_closed():
            self.loop.run_until_complete(asyncio.wait_for(
                asyncio.gather(*waits, return_exceptions=True), NET_HANG_GUARD))


@pytest.fixture
def children(loop):
    helper = Children(loop)
    yield helper
    helper.cleanup()


class TestSubprocessProtocol:
    def test_transport_methods_and_callback_order(self, loop, children):
        code = ("import sys; sys.stdout.write('out'); sys.stdout.flush();"
                "sys.stderr.write('err'); sys.stderr.flush(); sys.stdin.read(); sys.exit(3)")

        async def main():
            tr, proto = await children.start(py(code))
            assert isinstance(tr, asyncio.SubprocessTransport)
            assert proto.transport is tr
            assert proto.events == [("made",)]
            pid = tr.get_pid()
            assert isinstance(pid, int) and pid > 0
            assert tr.get_returncode() is None
            assert tr.is_closing() is False
            assert isinstance(tr.get_pipe_transport(0), asyncio.WriteTransport)
            assert isinstance(tr.get_pipe_transport(1), asyncio.ReadTransport)
            assert isinstance(tr.get_pipe_transport(2), asyncio.ReadTransport)
            assert tr.get_pipe_transport(3) is None
            assert tr.get_protocol() is proto
            assert await proto.read_at_least(1, 3) == b"out"
            assert await proto.read_at_least(2, 3) == b"err"
            tr.get_pipe_transport(0).close()
            assert await proto.lost is None
            assert tr.get_returncode() == 3
            assert tr.get_pid() == pid
            check_protocol_order(proto.events)
            assert ("exited", 3) in proto.events
            tr.close()
            assert tr.is_closing() is True

        run_guarded(loop, main())

    def test_stdin_to_stdout_through_the_pipe_transports(self, loop, children):
        async def main():
            tr, proto = await children.start(py(ECHO))
            stdin = tr.get_pipe_transport(0)
            stdin.write(b"first ")
            stdin.write(b"second")
            stdin.write_eof()
            assert await proto.lost is None
            assert bytes(proto.data[1]) == b"first second"
            assert proto.data[2] == b""
            assert tr.get_returncode() == 0
            check_protocol_order(proto.events)
            tr.close()

        run_guarded(loop, main())

    def test_connection_lost_waits_for_the_pipes(self, loop, children):
        """The child exits while a grandchild still holds its stdin and
        stdout: process_exited() comes, connection_lost() only once the
        pipes are closed too."""
        grandchild = "import sys; sys.stdin.read(); sys.stdout.write('late')"
        code = f"import subprocess, sys; subprocess.Popen({py(grandchild)!r})"

        async def main():
            tr, proto = await children.start(py(code), stderr=DEVNULL)
            assert await proto.exited == 0
            assert tr.get_returncode() == 0
            for _ in range(10):
                await asyncio.sleep(0)
            assert not proto.lost.done()
            assert ("pipe_lost", 1, None) not in proto.events
            # The child is gone but the transport is not: kill() does not
            # raise yet.
            tr.kill()
            tr.get_pipe_transport(0).close()
            assert await proto.lost is None
            assert bytes(proto.data[1]) == b"late"
            check_protocol_order(proto.events, pipes=(0, 1))
            kinds = [e[0] for e in proto.events]
            assert kinds.index("exited") < kinds.index("pipe_lost")
            # Once connection_lost() was called, signalling raises.
            with pytest.raises(ProcessLookupError):
                tr.kill()
            with pytest.raises(ProcessLookupError):
                tr.send_signal(signal.SIGTERM)
            with pytest.raises(ProcessLookupError):
                tr.terminate()
            tr.close()

        run_guarded(loop, main())

    def test_pipes_closed_before_the_child_exits(self, loop, children):
        code = "import os, sys; os.close(1); os.close(2); sys.stdin.read(); sys.exit(5)"

        async def main():
            tr, proto = await children.start(py(code))
            await proto.pipe_lost[1]
            await proto.pipe_lost[2]
            for _ in range(10):
                await asyncio.sleep(0)
            assert not proto.exited.done()
            assert tr.get_returncode() is None
            tr.get_pipe_transport(0).close()
            assert await proto.lost is None
            assert tr.get_returncode() == 5
            check_protocol_order(proto.events)
            assert proto.events[-2] == ("exited", 5)
            tr.close()

        run_guarded(loop, main())

    def test_close_kills_a_running_child(self, loop, children):
        async def main():
            tr, proto = await children.start(py(READY_THEN_SLEEP))
            assert await proto.read_at_least(1, 6) == b"ready\n"
            tr.close()
            assert tr.is_closing() is True
            assert await proto.lost is None
            assert tr.get_returncode() == -signal.SIGKILL
            check_protocol_order(proto.events)
            tr.close()  # again: harmless

        run_guarded(loop, main())

    def test_close_after_exit_keeps_the_returncode(self, loop, children):
        async def main():
            tr, proto = await children.start(py("import sys; sys.exit(4)"))
            await proto.lost
            tr.close()
            assert tr.get_returncode() == 4

        run_guarded(loop, main())

    @pytest.mark.parametrize("method, signum", [
        ("terminate", signal.SIGTERM),
        ("kill", signal.SIGKILL),
        ("send_signal", signal.SIGUSR1),
    ])
    def test_signalling_methods(self, loop, children, method, signum):
        async def main():
            tr, proto = await children.start(py(READY_THEN_SLEEP))
            assert await proto.read_at_least(1, 6) == b"ready\n"
            if method == "send_signal":
                tr.send_signal(signum)
            else:
                getattr(tr, method)()
            assert await proto.exited == -signum
            await proto.lost
            tr.close()

        run_guarded(loop, main())

    def test_stdin_flow_control(self, loop, children):
        """Writes to the child's stdin pause the protocol at the high water
        mark (pause_writing/resume_writing reach the SubprocessProtocol)."""
        go_r, go_w = os.pipe()
        code = ("import os, sys; os.read(int(sys.argv[1]), 1);"
                "print(len(sys.stdin.buffer.read()))")

        async def main():
            try:
                tr, proto = await children.start(py(code, str(go_r)), pass_fds=(go_r,))
            finally:
                os.close(go_r)
            try:
                stdin = tr.get_pipe_transport(0)
                total = 0
                while not proto.paused.done():
                    assert total < 64 * 1024 * 1024, "pause_writing() never called"
                    stdin.write(pattern(256 * 1024, total // 1024))
                    total += 256 * 1024
                assert stdin.get_write_buffer_size() > 0
                os.write(go_w, b"g")
                await proto.resumed
                stdin.close()
                assert await proto.lost is None
                assert int(proto.data[1]) == total
                kinds = [e[0] for e in proto.events]
                assert kinds.count("pause") == kinds.count("resume") >= 1
            finally:
                tr.close()

        try:
            run_guarded(loop, main())
        finally:
            os.close(go_w)

    def test_subprocess_shell(self, loop, children):
        async def main():
            tr, proto = await children.shell(
                "echo $((6 * 7)); echo oops >&2; exit 9")
            assert await proto.lost is None
            assert bytes(proto.data[1]) == b"42\n"
            assert bytes(proto.data[2]) == b"oops\n"
            assert tr.get_returncode() == 9
            check_protocol_order(proto.events)
            tr.close()

        run_guarded(loop, main())

    def test_subprocess_shell_bytes_command(self, loop, children):
        async def main():
            tr, proto = await children.shell(
                b"printf bytes")
            await proto.lost
            assert bytes(proto.data[1]) == b"bytes"
            tr.close()

        run_guarded(loop, main())

    def test_no_pipes(self, loop, children):
        async def main():
            tr, proto = await children.start([TRUE], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
            assert await proto.lost is None
            assert proto.events == [("made",), ("exited", 0), ("lost", None)]
            for fd in (0, 1, 2):
                assert tr.get_pipe_transport(fd) is None
            tr.close()

        run_guarded(loop, main())

    def test_unclosed_transport_warns(self, loop_kind, loop_factory, loop_errors):
        lp = loop_factory()
        asyncio.set_event_loop(lp)
        try:
            async def main():
                tr, proto = await lp.subprocess_exec(
                    lambda: SubprocessRecorder(lp), TRUE,
                    stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
                await proto.lost

            with pytest.warns(ResourceWarning, match="unclosed"):
                run_guarded(lp, main())
                gc.collect()
        finally:
            asyncio.set_event_loop(None)


class TestStdio:
    def test_pipes(self, loop, children):
        code = "import sys; d = sys.stdin.read(); print(d.upper()); print(d[::-1], file=sys.stderr)"

        async def main():
            proc = await children.exec(
                *py(code), stdin=PIPE, stdout=PIPE, stderr=PIPE)
            assert isinstance(proc, asyncio.subprocess.Process)
            assert isinstance(proc.stdin, asyncio.StreamWriter)
            assert isinstance(proc.stdout, asyncio.StreamReader)
            assert isinstance(proc.stderr, asyncio.StreamReader)
            out, err = await proc.communicate(b"abc")
            assert (out, err) == (b"ABC\n", b"cba\n")
            assert proc.returncode == 0

        run_guarded(loop, main())

    def test_high_level_defaults_inherit(self, loop, children):
        async def main():
            proc = await children.exec(TRUE)
            assert proc.stdin is None and proc.stdout is None and proc.stderr is None
            assert await proc.communicate() == (None, None)
            assert proc.returncode == 0

        run_guarded(loop, main())

    def test_devnull(self, loop, children):
        code = "import sys; print('lost'); print(repr(sys.stdin.read()), file=sys.stderr)"

        async def main():
            proc = await children.exec(
                *py(code), stdin=DEVNULL, stdout=DEVNULL, stderr=PIPE)
            assert proc.stdin is None and proc.stdout is None
            out, err = await proc.communicate()
            assert out is None
            assert err == b"''\n"

        run_guarded(loop, main())

    def test_stderr_to_stdout(self, loop, children):
        code = ("import sys; sys.stdout.write('a'); sys.stdout.flush();"
                "sys.stderr.write('b'); sys.stderr.flush(); sys.stdout.write('c')")

        async def main():
            proc = await children.exec(*py(code), stdout=PIPE, stderr=STDOUT)
            assert proc.stderr is None
            assert await proc.communicate() == (b"abc", None)

        run_guarded(loop, main())

    def test_file_objects(self, loop, children, tmp_path):
        (tmp_path / "in").write_bytes(b"from a file")

        async def main():
            with open(tmp_path / "in", "rb") as fin, open(tmp_path / "out", "wb") as fout, \
                    open(tmp_path / "err", "wb") as ferr:
                proc = await children.exec(
                    *py(ECHO + "; sys.stderr.write('to err')"),
                    stdin=fin, stdout=fout, stderr=ferr)
                assert await proc.wait() == 0
            assert (tmp_path / "out").read_bytes() == b"from a file"
            assert (tmp_path / "err").read_bytes() == b"to err"

        run_guarded(loop, main())

    def test_file_descriptors(self, loop, children, tmp_path):
        (tmp_path / "in").write_bytes(b"via fds")
        fin = os.open(tmp_path / "in", os.O_RDONLY)
        fout = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            async def main():
                proc = await children.exec(
                    *py(ECHO), stdin=fin, stdout=fout, stderr=DEVNULL)
                assert await proc.wait() == 0

            run_guarded(loop, main())
            # Still ours, still open.
            os.fstat(fin)
            os.fstat(fout)
        finally:
            os.close(fin)
            os.close(fout)
        assert (tmp_path / "out").read_bytes() == b"via fds"

    def test_child_stdio_are_pipes(self, loop, children):
        code = ("import os, stat, sys; print(*(stat.S_ISFIFO(os.fstat(fd).st_mode) "
                "for fd in (0, 1, 2)))")

        async def main():
            proc = await children.exec(
                *py(code), stdin=PIPE, stdout=PIPE, stderr=PIPE)
            out, err = await proc.communicate()
            assert out == b"True True True\n", err

        run_guarded(loop, main())

    def test_child_can_open_dev_stdin_and_dev_stdout(self, loop, children):
        """Only works if the child's stdio are pipes (not sockets)."""
        code = ("data = open('/dev/stdin', 'rb').read();"
                "open('/dev/stdout', 'wb').write(data[::-1])")

        async def main():
            proc = await children.exec(
                *py(code), stdin=PIPE, stdout=PIPE, stderr=PIPE)
            out, err = await proc.communicate(b"reversed")
            assert (out, err, proc.returncode) == (b"desrever", b"", 0)

        run_guarded(loop, main())

    def test_communicate_large_input_and_output(self, loop, children):
        payload = pattern(6 * 1024 * 1024 + 5)

        async def main():
            proc = await children.exec(
                *py(ECHO), stdin=PIPE, stdout=PIPE, stderr=PIPE)
            out, err = await proc.communicate(payload)
            assert len(out) == len(payload)
            assert out == payload
            assert err == b""
            assert proc.returncode == 0

        run_guarded(loop, main())

    def test_only_a_bulk_transfer_grows_the_pipes(self, loop, loop_kind, children):
        # asyncuv gives a child's stdin pipe a 1 MiB buffer once a transfer
        # fills it; a pipe that carries little keeps its size, so that many
        # small children do not spend the user's pipe budget.  The child's
        # stdout keeps its size (see test_wait_after_kill_without_reading).
        # asyncio never resizes.
        probe_r, probe_w = os.pipe()
        try:
            default = fcntl.fcntl(probe_w, fcntl.F_GETPIPE_SZ)
            try:
                grown = fcntl.fcntl(probe_w, fcntl.F_SETPIPE_SZ, 1 << 20)
            except OSError:
                grown = default  # over this machine's limits
        finally:
            os.close(probe_r)
            os.close(probe_w)
        if loop_kind == "asyncio":
            grown = default
        code = ("import os\n"
                "while True:\n"
                "    data = os.read(0, 1 << 16)\n"
                "    if not data:\n"
                "        break\n"
                "    os.write(1, data)\n")
        payload = pattern(4 * 1024 * 1024)

        def sizes(proc):
            popen = proc._transport.get_extra_info("subprocess")
            return [fcntl.fcntl(f.fileno(), fcntl.F_GETPIPE_SZ)
                    for f in (popen.stdin, popen.stdout)]

        async def main():
            proc = await children.exec(*py(code), stdin=PIPE, stdout=PIPE)
            proc.stdin.write(b"small")
            await proc.stdin.drain()
            assert await proc.stdout.readexactly(5) == b"small"
            assert sizes(proc) == [default, default]

            async def feed():
                proc.stdin.write(payload)
                await proc.stdin.drain()

            feeder = asyncio.ensure_future(feed())
            assert await proc.stdout.readexactly(len(payload)) == payload
            await feeder
            assert sizes(proc) == [grown, default]
            proc.stdin.close()
            assert await proc.wait() == 0

        run_guarded(loop, main())

    @pytest.mark.skipif(sys.version_info >= (3, 14, 7),
                        reason="wait() returns at exit from 3.14.7 on, pipes or not")
    def test_wait_after_kill_without_reading(self, loop, children):
        # A child writes without end; the parent reads a while, stops the
        # child (so that it writes no more), kills it and waits without
        # reading.  asyncio's wait() returns: what is left in the pipe (64
        # KiB at most) is less than the stream reader takes before it
        # pauses, so the pipe reaches EOF.  asyncuv had grown the pipe to
        # 1 MiB during the transfer: the reader paused with the pipe still
        # holding data, and wait() never returned.
        code = ("import os\n"
                "data = b'x' * 65536\n"
                "while True:\n"
                "    os.write(1, data)\n")

        async def main():
            proc = await children.exec(*py(code), stdout=PIPE)
            got = 0
            while got < 8 * 1024 * 1024:
                got += len(await proc.stdout.read(1 << 20))
            # The reader's buffer is empty now; the child writes no more
            # once stopped (waitid() says when, and reaps nothing).
            os.kill(proc.pid, signal.SIGSTOP)
            os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WNOWAIT)
            proc.kill()
            assert await asyncio.wait_for(proc.wait(), 20) == -signal.SIGKILL

        run_guarded(loop, main())

    def test_large_stdout_and_stderr_are_drained_together(self, loop, children):
        code = ("import sys\n"
                "for i in range(64):\n"
                "    sys.stdout.buffer.write(b'o' * 65536); sys.stdout.flush()\n"
                "    sys.stderr.buffer.write(b'e' * 65536); sys.stderr.flush()\n")

        async def main():
            proc = await children.exec(*py(code), stdout=PIPE, stderr=PIPE)
            out, err = await proc.communicate()
            assert out == b"o" * (64 * 65536)
            assert err == b"e" * (64 * 65536)

        run_guarded(loop, main())

    def test_streams_line_by_line(self, loop, children):
        code = "import sys\nfor line in sys.stdin:\n    print(line.strip()[::-1], flush=True)"

        async def main():
            proc = await children.exec(*py(code), stdin=PIPE, stdout=PIPE)
            for word in (b"abc", b"hello", b"xyz"):
                proc.stdin.write(word + b"\n")
                await proc.stdin.drain()
                assert await proc.stdout.readline() == word[::-1] + b"\n"
            proc.stdin.close()
            assert await proc.stdout.read() == b""
            assert await proc.wait() == 0

        run_guarded(loop, main())

    # Stock 3.11 also logs "Future exception was never retrieved" for the
    # BrokenPipeError left in the stdin stream's closed-future.
    @pytest.mark.allow_loop_errors
    def test_child_that_does_not_read_its_input(self, loop, children):
        """communicate() copes with the child closing stdin unread."""
        code = "import os, sys; os.close(0); sys.stdout.write('ok')"

        async def main():
            proc = await children.exec(*py(code), stdin=PIPE, stdout=PIPE)
            out, _ = await proc.communicate(pattern(4 * 1024 * 1024))
            assert out == b"ok"
            assert proc.returncode == 0

        run_guarded(loop, main())


class TestPopenOptions:
    def test_cwd(self, loop, children, tmp_path):
        async def main():
            for cwd in (str(tmp_path), tmp_path, os.fsencode(tmp_path)):
                proc = await children.exec(
                    *py("import os; print(os.getcwd())"), stdout=PIPE, cwd=cwd)
                out, _ = await proc.communicate()
                assert out.decode().strip() == os.path.realpath(tmp_path)

        run_guarded(loop, main())

    def test_env(self, loop, children):
        code = "import os; print(sorted(k for k in os.environ if k != 'LC_CTYPE'), os.environ['FOO'])"

        async def main():
            proc = await children.exec(
                *py(code), stdout=PIPE, env={"FOO": "bar baz"})
            out, _ = await proc.communicate()
            assert out == b"['FOO'] bar baz\n"

        run_guarded(loop, main())

    def test_shell_env_and_cwd(self, loop, children, tmp_path):
        async def main():
            proc = await children.shell_proc(
                "echo \"$GREETING\"; pwd", stdout=PIPE, cwd=tmp_path,
                env={"GREETING": "hi", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            out, _ = await proc.communicate()
            assert out.decode().splitlines() == ["hi", os.path.realpath(tmp_path)]

        run_guarded(loop, main())

    def test_pass_fds(self, loop, children):
        r, w = os.pipe()
        try:
            async def main():
                proc = await children.exec(
                    *py("import os, sys; os.write(int(sys.argv[1]), b'inherited')", str(w)),
                    pass_fds=(w,))
                assert await proc.wait() == 0

            run_guarded(loop, main())
            assert os.read(r, 100) == b"inherited"
        finally:
            os.close(r)
            os.close(w)

    @pytest.mark.parametrize("close_fds, visible", [(True, False), (False, True)])
    def test_close_fds(self, loop, children, close_fds, visible):
        r, w = os.pipe()
        os.set_inheritable(w, True)
        code = ("import os, sys\n"
                "try:\n    os.fstat(int(sys.argv[1])); print(True)\n"
                "except OSError:\n    print(False)")
        try:
            async def main():
                proc = await children.exec(
                    *py(code, str(w)), stdout=PIPE, close_fds=close_fds)
                out, _ = await proc.communicate()
                assert out.strip() == str(visible).encode()

            run_guarded(loop, main())
        finally:
            os.close(r)
            os.close(w)

    def test_non_inheritable_fds_are_not_inherited(self, loop, children):
        r, w = os.pipe()
        assert not os.get_inheritable(w)
        code = ("import os, sys\n"
                "try:\n    os.fstat(int(sys.argv[1])); print(True)\n"
                "except OSError:\n    print(False)")
        try:
            async def main():
                proc = await children.exec(
                    *py(code, str(w)), stdout=PIPE, close_fds=False)
                out, _ = await proc.communicate()
                assert out.strip() == b"False"

            run_guarded(loop, main())
        finally:
            os.close(r)
            os.close(w)

    @pytest.mark.parametrize("new_session", [True, False])
    def test_start_new_session(self, loop, children, new_session):
        async def main():
            proc = await children.exec(
                *py("import os; print(os.getsid(0), os.getpgid(0))"),
                stdout=PIPE, start_new_session=new_session)
            out, _ = await proc.communicate()
            sid, pgid = map(int, out.split())
            if new_session:
                assert sid == proc.pid
                assert pgid == proc.pid
                assert sid != os.getsid(0)
            else:
                assert sid == os.getsid(0)
                assert pgid == os.getpgid(0)

        run_guarded(loop, main())

    def test_process_group(self, loop, children):
        async def main():
            proc = await children.exec(
                *py("import os; print(os.getpgid(0))"), stdout=PIPE, process_group=0)
            out, _ = await proc.communicate()
            assert int(out) == proc.pid

        run_guarded(loop, main())

    @pytest.mark.parametrize("restore, ignored", [(True, False), (False, True)])
    def test_restore_signals(self, loop, children, restore, ignored):
        """Python ignores SIGPIPE; restore_signals=True (the default) resets
        it in the child.  grep reads the child's own ignored-signal mask."""
        grep = shutil.which("grep") or "/bin/grep"
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN

        async def main():
            proc = await children.exec(
                grep, "^SigIgn:", "/proc/self/status", stdout=PIPE,
                restore_signals=restore)
            out, _ = await proc.communicate()
            mask = int(out.split()[1], 16)
            assert bool(mask & (1 << (signal.SIGPIPE - 1))) is ignored

        run_guarded(loop, main())

    def test_preexec_fn(self, loop, children):
        async def main():
            proc = await children.exec(
                *py("import os; print(oct(os.umask(0)))"), stdout=PIPE,
                preexec_fn=lambda: os.umask(0o027))
            out, _ = await proc.communicate()
            assert out.strip() == b"0o27"

        run_guarded(loop, main())

    def test_preexec_fn_that_raises(self, loop, children):
        def fail():
            raise ZeroDivisionError("in the child")

        with pytest.raises(subprocess.SubprocessError, match="Exception occurred in preexec_fn"):
            run_guarded(loop, asyncio.create_subprocess_exec(TRUE, preexec_fn=fail))

    def test_executable_and_argv0(self, loop, children):
        async def main():
            proc = await children.exec(
                "renamed", "-c", "import sys; print(sys.argv[0], sys.orig_argv[0])",
                executable=sys.executable, stdout=PIPE)
            out, _ = await proc.communicate()
            assert out.split() == [b"-c", b"renamed"]

        run_guarded(loop, main())


class TestReturncode:
    @pytest.mark.parametrize("code", [0, 1, 3, 255])
    def test_exit_codes(self, loop, children, code):
        async def main():
            proc = await children.exec(*py(f"import sys; sys.exit({code})"))
            assert proc.returncode is None
            assert await proc.wait() == code
            assert proc.returncode == code

        run_guarded(loop, main())

    @pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1])
    def test_killed_by_a_signal(self, loop, children, signum):
        async def main():
            proc = await children.exec(
                *py(f"import os; os.kill(os.getpid(), {int(signum)})"))
            assert await proc.wait() == -signum

        run_guarded(loop, main())

    def test_shell_exit_code(self, loop, children):
        async def main():
            proc = await children.shell_proc("exit 42")
            assert await proc.wait() == 42

        run_guarded(loop, main())

    @pytest.mark.parametrize("method, signum", [
        ("terminate", signal.SIGTERM),
        ("kill", signal.SIGKILL),
    ])
    def test_terminate_and_kill(self, loop, children, method, signum):
        async def main():
            proc = await children.exec(*py(SLEEP))
            getattr(proc, method)()
            assert await proc.wait() == -signum

        run_guarded(loop, main())

    def test_send_signal(self, loop, children):
        # SIGUSR1 is blocked until sigwait(): with a handler and
        # signal.pause(), a signal that came between the print and pause()
        # was handled and pause() then waited for ever.
        code = ("import signal, sys\n"
                "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
                "print('ready', flush=True)\n"
                "signal.sigwait({signal.SIGUSR1})\n"
                "sys.exit(17)")

        async def main():
            proc = await children.exec(*py(code), stdout=PIPE)
            assert await proc.stdout.readline() == b"ready\n"
            proc.send_signal(signal.SIGUSR1)
            assert await proc.wait() == 17

        run_guarded(loop, main())

    def test_wait_after_exit_and_concurrent_waits(self, loop, children):
        async def main():
            proc = await children.exec(*py("import sys; sys.exit(6)"))
            results = await asyncio.gather(proc.wait(), proc.wait(), proc.wait())
            assert results == [6, 6, 6]
            assert await proc.wait() == 6
            assert await proc.communicate() == (None, None)

        run_guarded(loop, main())

    def test_signalling_after_wait_raises_process_lookup_error(self, loop, children):
        async def main():
            proc = await children.exec(TRUE)
            assert await proc.wait() == 0
            for signal_it in (proc.kill, proc.terminate,
                              lambda: proc.send_signal(signal.SIGTERM)):
                if WAIT_RETURNS_AT_EXIT:
                    # 3.14.7+: wait() may return before connection_lost(),
                    # and signalling a process known to have exited does
                    # nothing (gh-127049); after it, ProcessLookupError.
                    try:
                        signal_it()
                    except ProcessLookupError:
                        pass
                else:
                    with pytest.raises(ProcessLookupError):
                        signal_it()
            assert proc.returncode == 0

        run_guarded(loop, main())

    def test_signalling_from_process_exited_does_nothing(self, loop, children):
        # In process_exited() the loop has reaped the child and the
        # transport still holds it: send_signal(), terminate() and kill()
        # send nothing and raise nothing (3.11/3.12: Popen.send_signal()
        # polls and skips the child; 3.13: os.kill() and ProcessLookupError
        # ignored; 3.14.7+: skipped because the returncode is known).
        outcomes = []

        class Signaller(SubprocessRecorder):
            def process_exited(self):
                for signal_it in (lambda: self.transport.send_signal(signal.SIGTERM),
                                  self.transport.terminate, self.transport.kill):
                    try:
                        outcomes.append(signal_it())
                    except Exception as exc:  # recorded, asserted below
                        outcomes.append(exc)
                super().process_exited()

        async def main():
            tr, proto = await loop.subprocess_exec(
                lambda: Signaller(loop), *py("import sys; sys.exit(5)"),
                stdin=None, stdout=None, stderr=None)
            children.started.append((tr, proto))
            assert await proto.exited == 5
            assert outcomes == [None, None, None]
            await proto.lost
            assert tr.get_returncode() == 5
            tr.close()

        run_guarded(loop, main())

    def test_signal_to_an_exited_child_not_yet_reaped(self, loop_kind, loop, children):
        # The child has exited but the loop has not reaped it yet (no
        # iteration in between): send_signal() must not reap it behind the
        # loop's back, or the loop reports returncode 255 (CPython's
        # test_subprocess_send_signal_race, made deterministic).
        if loop_kind == "asyncio" and sys.version_info < (3, 13):
            # Measured: 3.12's pidfd watcher then reports 255 ("exit status
            # already read"), 3.11's watcher thread has reaped the child
            # before waitid() (ChildProcessError).  asyncuv signals with
            # os.kill() on every version, as 3.13 does: the bug fix
            # (gh-87744) was not backported.
            pytest.skip("before 3.13 asyncio signals through Popen.send_signal(), "
                        "whose poll() reaps the child behind its watcher "
                        "(gh-87744, fixed in 3.13)")

        # The child exits when told to, with SIGUSR2 (blocked until then).
        code = ("import signal, sys\n"
                "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})\n"
                "print('ready', flush=True)\n"
                "signal.sigwait({signal.SIGUSR2})\n")

        async def main():
            proc = await children.exec(*py(code), stdout=PIPE)
            assert await proc.stdout.readline() == b"ready\n"
            # From here the loop does not run until wait(): the child exits,
            # and waitid() waits for that and leaves it a zombie.
            os.kill(proc.pid, signal.SIGUSR2)
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            proc.send_signal(signal.SIGUSR1)
            assert await proc.wait() == 0

        run_guarded(loop, main())

    def test_cancelled_wait_leaves_the_process_waitable(self, loop, children):
        async def main():
            proc = await children.exec(*py(SLEEP))
            waiter = asyncio.ensure_future(proc.wait())
            await asyncio.sleep(0)
            waiter.cancel()
            await asyncio.wait([waiter])
            assert waiter.cancelled()
            proc.kill()
            assert await proc.wait() == -signal.SIGKILL

        run_guarded(loop, main())

    def test_many_concurrent_children(self, loop, children):
        async def main():
            procs = [await children.exec(
                *py(f"import sys; sys.exit({i})")) for i in range(20)]
            assert await asyncio.gather(*(p.wait() for p in procs)) == list(range(20))

        run_guarded(loop, main())


class TestWaitAtExit:
    @pytest.mark.skipif(not WAIT_RETURNS_AT_EXIT,
                        reason="wait() waits for the pipes before 3.14.7")
    def test_wait_returns_while_a_grandchild_holds_the_pipes(self, loop, children):
        # The grandchild inherits stdin and stdout, says ready, and exits
        # when its stdin reaches EOF.
        code = ("import subprocess, sys\n"
                "subprocess.run([sys.executable, '-c', \"import sys; "
                "sys.stdout.write('ready'); sys.stdout.flush(); "
                "sys.stdin.read()\"])\n")

        async def main():
            proc = await children.exec(*py(code), stdin=PIPE, stdout=PIPE)
            wait = asyncio.ensure_future(proc.wait())
            assert await proc.stdout.readexactly(5) == b"ready"
            proc.kill()
            assert await wait == -signal.SIGKILL
            # The pipes are still open: closing stdin ends the grandchild.
            proc.stdin.close()
            assert await proc.stdout.read() == b""

        run_guarded(loop, main())

    @pytest.mark.skipif(not WAIT_RETURNS_AT_EXIT,
                        reason="the child is never waited for before 3.14.7")
    @pytest.mark.parametrize("method", ["connect_read_pipe", "connect_write_pipe"])
    def test_cancelled_pipe_connection_fails_the_creation(self, loop, monkeypatch, method):
        async def cancelled(*args, **kwargs):
            raise asyncio.CancelledError

        async def main():
            monkeypatch.setattr(loop, method, cancelled)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.create_subprocess_exec(
                    *py(SLEEP), stdin=PIPE, stdout=PIPE, stderr=PIPE)

        run_guarded(loop, main())


class TestBadArguments:
    @pytest.mark.parametrize("kwargs, message", [
        ({"text": True}, "text must be False"),
        ({"universal_newlines": True}, "universal_newlines must be False"),
        ({"encoding": "utf-8"}, "encoding must be None"),
        ({"errors": "strict"}, "errors must be None"),
        ({"bufsize": 1}, "bufsize must be 0"),
        ({"bufsize": -1}, "bufsize must be 0"),
    ])
    @pytest.mark.parametrize("api", ["subprocess_exec", "subprocess_shell",
                                     "create_subprocess_exec", "create_subprocess_shell"])
    def test_text_mode_and_buffering_are_rejected(self, loop, api, kwargs, message):
        if api.startswith("create_"):
            coro = getattr(asyncio, api)(TRUE, **kwargs)
        else:
            coro = getattr(loop, api)(asyncio.SubprocessProtocol, TRUE, **kwargs)
        with pytest.raises(ValueError, match=f"^{message}$"):
            run_guarded(loop, coro)

    def test_text_false_and_defaults_are_accepted(self, loop):
        async def main():
            proc = await asyncio.create_subprocess_exec(
                TRUE, text=False, universal_newlines=False, encoding=None, errors=None,
                bufsize=0)
            assert await proc.wait() == 0

        run_guarded(loop, main())

    def test_shell_true_to_exec(self, loop):
        with pytest.raises(ValueError, match="^shell must be False$"):
            run_guarded(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, TRUE, shell=True))
        with pytest.raises(ValueError, match="^shell must be False$"):
            run_guarded(loop, asyncio.create_subprocess_exec(TRUE, shell=True))

    def test_shell_false_to_shell(self, loop):
        with pytest.raises(ValueError, match="^shell must be True$"):
            run_guarded(loop, loop.subprocess_shell(asyncio.SubprocessProtocol, "true", shell=False))

    @pytest.mark.parametrize("cmd", [["true"], ("true",), 42, None])
    def test_shell_command_must_be_a_string(self, loop, cmd):
        with pytest.raises(ValueError, match="^cmd must be a string$"):
            run_guarded(loop, loop.subprocess_shell(asyncio.SubprocessProtocol, cmd))
        with pytest.raises(ValueError, match="^cmd must be a string$"):
            run_guarded(loop, asyncio.create_subprocess_shell(cmd))

    @pytest.mark.parametrize("program", [42, None, [sys.executable]])
    def test_exec_program_of_the_wrong_type(self, loop, program):
        with pytest.raises(TypeError, match="expected str, bytes or os.PathLike object"):
            run_guarded(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, program))

    def test_protocol_factory_not_called_on_bad_arguments(self, loop):
        calls = []

        def factory():
            calls.append(1)
            return asyncio.SubprocessProtocol()

        with pytest.raises(ValueError):
            run_guarded(loop, loop.subprocess_exec(factory, TRUE, text=True))
        assert calls == []

    def test_missing_program(self, loop, tmp_path):
        with pytest.raises(FileNotFoundError):
            run_guarded(loop, asyncio.create_subprocess_exec(str(tmp_path / "no-such-program")))
        with pytest.raises(FileNotFoundError):
            run_guarded(loop, loop.subprocess_exec(
                asyncio.SubprocessProtocol, "no-such-program-on-the-path-" + tmp_path.name))

    def test_not_executable(self, loop, tmp_path):
        path = tmp_path / "script"
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        with pytest.raises(PermissionError):
            run_guarded(loop, asyncio.create_subprocess_exec(str(path)))

    def test_missing_cwd(self, loop, tmp_path):
        with pytest.raises(FileNotFoundError):
            run_guarded(loop, asyncio.create_subprocess_exec(TRUE, cwd=tmp_path / "missing"))

    def test_failed_spawn_leaks_nothing(self, loop, tmp_path):
        async def main():
            for _ in range(20):
                with pytest.raises(FileNotFoundError):
                    await asyncio.create_subprocess_exec(
                        str(tmp_path / "missing"), stdin=PIPE, stdout=PIPE, stderr=PIPE)

        run_guarded(loop, main())  # warm up
        gc.collect()
        before = sorted(os.listdir("/proc/self/fd"))
        run_guarded(loop, main())
        gc.collect()
        assert sorted(os.listdir("/proc/self/fd")) == before


def wait_exited_unreaped(pid):
    """Block until child ``pid`` has exited, leaving it for its owner to reap."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


class TestResources:
    def test_no_fd_leak_after_50_children(self, loop):
        async def spawn(n):
            for _ in range(n):
                proc = await asyncio.create_subprocess_exec(
                    TRUE, stdin=PIPE, stdout=PIPE, stderr=PIPE)
                assert await proc.communicate() == (b"", b"")

        run_guarded(loop, spawn(1))  # warm up (child watcher, executor, ...)
        gc.collect()
        before = sorted(os.listdir("/proc/self/fd"))
        run_guarded(loop, spawn(50))
        gc.collect()
        assert sorted(os.listdir("/proc/self/fd")) == before

    def test_no_zombies(self, loop):
        async def main():
            procs = []
            for i in range(10):
                procs.append(await asyncio.create_subprocess_exec(
                    *py(f"import sys; sys.exit({i % 3})"), stdout=DEVNULL))
            for proc in procs:
                await proc.wait()
            return [p.pid for p in procs]

        pids = run_guarded(loop, main())
        loop.close()
        for pid in pids:
            # Reaped already: not our child any more (a zombie would be).
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def test_other_children_keep_their_exit_status(self, loop):
        """A child the loop did not start must not be reaped by it."""
        other = subprocess.Popen(py("import sys; sys.exit(7)"))
        try:
            wait_exited_unreaped(other.pid)

            async def main():
                for _ in range(5):
                    proc = await asyncio.create_subprocess_exec(
                        *py("pass"), stdout=DEVNULL)
                    assert await proc.wait() == 0

            run_guarded(loop, main())
            # It was a zombie all along: a waitpid(-1) reaper would have taken it.
            assert other.wait(timeout=NET_HANG_GUARD) == 7
        finally:
            if other.returncode is None:
                other.kill()
                other.wait()

    def test_other_children_are_not_reaped_while_running(self, loop):
        other = subprocess.Popen(py("import sys; sys.stdin.read(); sys.exit(8)"),
                                 stdin=subprocess.PIPE)
        try:
            async def main():
                proc = await asyncio.create_subprocess_exec(*py("pass"))
                assert await proc.wait() == 0
                other.stdin.close()
                await loop.run_in_executor(None, wait_exited_unreaped, other.pid)
                # It is a zombie now; run more children.
                proc = await asyncio.create_subprocess_exec(*py("pass"))
                assert await proc.wait() == 0

            run_guarded(loop, main())
            assert other.wait(timeout=NET_HANG_GUARD) == 8
        finally:
            if other.returncode is None:
                other.kill()
                other.wait()

    def test_loop_in_a_non_main_thread(self, loop_factory):
        result = {}

        def worker():
            lp = loop_factory()
            asyncio.set_event_loop(lp)
            try:
                async def main():
                    proc = await asyncio.create_subprocess_exec(
                        *py("import sys; print('from a thread'); sys.exit(2)"), stdout=PIPE)
                    out, _ = await proc.communicate()
                    return out, proc.returncode

                result["value"] = lp.run_until_complete(asyncio.wait_for(main(), NET_HANG_GUARD))
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                result["exc"] = exc
            finally:
                asyncio.set_event_loop(None)
                lp.close()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        if "exc" in result:
            raise result["exc"]
        assert result["value"] == (b"from a thread\n", 2)

    def test_two_loops_in_two_threads(self, loop_factory):
        results = []
        lock = threading.Lock()

        def worker(n):
            lp = loop_factory()
            try:
                async def main():
                    procs = [await asyncio.create_subprocess_exec(
                        *py(f"import sys; sys.exit({n * 10 + i})")) for i in range(5)]
                    return [await p.wait() for p in procs]

                value = lp.run_until_complete(asyncio.wait_for(main(), NET_HANG_GUARD))
            except BaseException as exc:  # noqa: BLE001
                value = exc
            finally:
                lp.close()
            with lock:
                results.append((n, value))

        threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [(1, [10, 11, 12, 13, 14]), (2, [20, 21, 22, 23, 24])]


class TestPolicyChildWatcher:
    """asyncuv's policy child watcher serves children the loop did not
    start, through the running loop's engine child watch."""

    def test_foreign_child_exit_is_reported(self, asyncuv):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher = asyncuv.EventLoopPolicy().get_child_watcher()
        loop = asyncuv.new_event_loop()

        async def main():
            proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
            done = loop.create_future()
            watcher.add_child_handler(
                proc.pid, lambda pid, rc, tag: done.set_result((pid, rc, tag)), "t")
            assert await done == (proc.pid, 3, "t")
            # Reaped by the watch: the pid is gone.
            with pytest.raises(ChildProcessError):
                os.waitpid(proc.pid, os.WNOHANG)
            proc.returncode = 3  # tell Popen, which did not reap it

        try:
            run_guarded(loop, main())
        finally:
            loop.close()

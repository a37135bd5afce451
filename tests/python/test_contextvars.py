"""The contextvars context of protocol factories and protocol callbacks.

asyncio runs them in (copies of) the context that was current when the
connection was asked for, or when the server started serving: its readers
and writers are handles made at that moment, and a server handles each
connection in a task.  Request ids, structured logging and tracing rely on
it.  Each test runs on both loops and asserts what asyncio does.
"""

import asyncio
import contextvars
import os
import socket
import ssl
import sys

import pytest

from support import run_guarded
from test_sendfile import ssl_contexts  # noqa: F401 (a fixture)

var = contextvars.ContextVar("var", default="unset")


class Recorder:
    """Protocol callbacks record var.get() under their name."""

    def __init__(self, loop, seen, label):
        self.loop = loop
        self.seen = seen
        self.label = label
        self.transport = None
        self.lost = loop.create_future()
        self.got_data = loop.create_future()
        self.note("factory")

    def note(self, what):
        self.seen.setdefault(self.label, {}).setdefault(what, var.get())

    def connection_made(self, transport):
        self.transport = transport
        self.note("made")

    def data_received(self, data):
        self.note("data")
        if not self.got_data.done():
            self.got_data.set_result(data)

    def eof_received(self):
        self.note("eof")

    def pause_writing(self):
        self.note("pause_writing")

    def resume_writing(self):
        self.note("resume_writing")

    def connection_lost(self, exc):
        self.note("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class Stream(Recorder, asyncio.Protocol):
    pass


class Buffered(Recorder, asyncio.BufferedProtocol):
    def get_buffer(self, hint):
        self.note("get_buffer")
        self.buf = bytearray(100)
        return self.buf

    def buffer_updated(self, n):
        self.data_received(bytes(self.buf[:n]))


ALL = ("factory", "made", "data", "eof", "lost")


def _unix_path(tmp_path):
    return str(tmp_path / "s")


@pytest.mark.parametrize("family", ["tcp", "unix"])
@pytest.mark.parametrize("how", ["create_server", "start_serving", "serve_forever"])
def test_server_protocols_run_in_the_serving_context(loop, tmp_path, how, family):
    seen = {}
    count = [0]

    def factory():
        count[0] += 1
        label = f"conn{count[0]}"
        proto = Stream(loop, seen, label)
        protos[label] = proto
        # A task per connection in asyncio: what the factory sets stays
        # with this connection.
        var.set(f"set by factory {count[0]}")
        return proto

    protos = {}

    async def main():
        var.set("creating")
        start = how == "create_server"
        if family == "tcp":
            server = await loop.create_server(factory, "127.0.0.1", 0,
                                              start_serving=start)
            addr = server.sockets[0].getsockname()
        else:
            addr = _unix_path(tmp_path)
            server = await loop.create_unix_server(factory, addr,
                                                   start_serving=start)
        var.set("serving")
        forever = None
        if how == "start_serving":
            await server.start_serving()
        elif how == "serve_forever":
            forever = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
        var.set("after")
        fam = socket.AF_INET if family == "tcp" else socket.AF_UNIX
        for n in (1, 2):
            with socket.socket(fam) as c:
                c.setblocking(False)
                await loop.sock_connect(c, addr)
                await loop.sock_sendall(c, b"x")
                while f"conn{n}" not in protos:
                    await asyncio.sleep(0.001)
                await protos[f"conn{n}"].got_data
                c.shutdown(socket.SHUT_WR)
                await protos[f"conn{n}"].lost
        server.close()
        if forever is not None:
            forever.cancel()
            await asyncio.gather(forever, return_exceptions=True)
        await server.wait_closed()

    run_guarded(loop, main())
    expected = "creating" if how == "create_server" else "serving"
    for n in (1, 2):
        assert seen[f"conn{n}"] == {
            "factory": expected, "made": f"set by factory {n}",
            "data": f"set by factory {n}", "eof": f"set by factory {n}",
            "lost": f"set by factory {n}"}


@pytest.mark.parametrize("how", ["create_connection", "create_unix_connection",
                                 "connect_accepted_socket"])
@pytest.mark.parametrize("kind", [Stream, Buffered])
def test_connection_protocols_run_in_the_requesting_context(loop, tmp_path, how, kind):
    seen = {}

    async def main():
        if how == "create_connection":
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            addr = listener.getsockname()
        elif how == "create_unix_connection":
            listener = socket.socket(socket.AF_UNIX)
            addr = _unix_path(tmp_path)
            listener.bind(addr)
            listener.listen()
        else:
            listener = None
            ours, peer = socket.socketpair()
        var.set("requested")
        factory = lambda: kind(loop, seen, "c")  # noqa: E731
        if how == "create_connection":
            tr, proto = await loop.create_connection(factory, *addr)
        elif how == "create_unix_connection":
            tr, proto = await loop.create_unix_connection(factory, addr)
        else:
            tr, proto = await loop.connect_accepted_socket(factory, ours)
        var.set("after")
        if listener is not None:
            peer, _ = listener.accept()
            listener.close()
        peer.sendall(b"x")
        await proto.got_data
        peer.shutdown(socket.SHUT_WR)
        await proto.lost
        peer.close()

    run_guarded(loop, main())
    expected = dict.fromkeys(ALL, "requested")
    if kind is Buffered:
        expected["get_buffer"] = "requested"
    assert seen["c"] == expected


def test_resume_reading_takes_the_callers_context(loop):
    # asyncio makes its reader anew in resume_reading(): later reads run in
    # the context of whoever resumed.
    seen = {}

    async def main():
        ours, peer = socket.socketpair()
        var.set("made")
        tr, proto = await loop.connect_accepted_socket(
            lambda: Stream(loop, seen, "c"), ours)
        tr.pause_reading()
        contextvars.copy_context().run(lambda: (var.set("resumer"),
                                                tr.resume_reading()))
        peer.sendall(b"x")
        await proto.got_data
        tr.close()
        await proto.lost
        peer.close()

    run_guarded(loop, main())
    assert seen["c"]["data"] == "resumer"


def test_resume_writing_runs_in_the_blocked_writers_context(loop):
    # The writer callback is made by the write() that found the queue
    # empty and could not send everything: resume_writing() runs in its
    # context (a write that adds to a queue makes none).
    seen = {}

    async def main():
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        var.set("made")
        tr, proto = await loop.connect_accepted_socket(
            lambda: Stream(loop, seen, "c"), ours)
        tr.set_write_buffer_limits(high=1)
        big = b"x" * (4 * 1024 * 1024)
        contextvars.copy_context().run(lambda: (var.set("writer"), tr.write(big)))
        contextvars.copy_context().run(lambda: (var.set("second"), tr.write(b"y")))
        got = 0
        while got < len(big) + 1:
            got += len(await loop.sock_recv(peer, 1 << 20))
        tr.close()
        await proto.lost
        peer.close()

    run_guarded(loop, main())
    assert seen["c"]["pause_writing"] == "writer"
    assert seen["c"]["resume_writing"] == "writer"


class Datagram(Recorder, asyncio.DatagramProtocol):
    def datagram_received(self, data, addr):
        self.data_received(data)

    def error_received(self, exc):
        self.note("error")


@pytest.mark.parametrize("how", ["local_addr", "sock"])
def test_datagram_protocol_runs_in_the_requesting_context(loop, how):
    seen = {}

    async def main():
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        var.set("requested")
        factory = lambda: Datagram(loop, seen, "d")  # noqa: E731
        if how == "local_addr":
            tr, proto = await loop.create_datagram_endpoint(
                factory, local_addr=("127.0.0.1", 0))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            tr, proto = await loop.create_datagram_endpoint(factory, sock=s)
        var.set("after")
        peer.sendto(b"x", tr.get_extra_info("sockname"))
        await proto.got_data
        tr.close()
        await proto.lost
        peer.close()

    run_guarded(loop, main())
    # close() queues connection_lost() in its caller's context.
    assert seen["d"] == {"factory": "requested", "made": "requested",
                         "data": "requested", "lost": "after"}


class Sub(asyncio.SubprocessProtocol):
    def __init__(self, loop, seen):
        self.seen = seen
        self.done = loop.create_future()
        seen["factory"] = var.get()

    def connection_made(self, transport):
        self.seen["made"] = var.get()

    def pipe_data_received(self, fd, data):
        self.seen["pipe_data"] = var.get()

    def process_exited(self):
        self.seen["exited"] = var.get()

    def connection_lost(self, exc):
        self.seen["lost"] = var.get()
        self.done.set_result(None)


def test_subprocess_protocol_contexts(loop):
    seen = {}

    async def main():
        var.set("requested")
        tr, proto = await loop.subprocess_exec(
            lambda: Sub(loop, seen), sys.executable, "-c", "print(1)",
            stdin=None)
        var.set("after")
        await proto.done
        tr.close()

    run_guarded(loop, main())
    # 3.11's child watcher waits in a thread (a new thread's empty context);
    # 3.12's and later poll a pidfd with a reader made with the transport.
    exit_context = "requested" if sys.version_info >= (3, 12) else "unset"
    # connection_lost() is queued by the last of the exit and the pipes'
    # ends, in that one's context.
    lost = seen.pop("lost")
    assert lost in (exit_context, "requested")
    assert seen == {"factory": "requested", "made": "requested",
                    "pipe_data": "requested", "exited": exit_context}


def test_read_pipe_protocol_runs_in_the_requesting_context(loop):
    seen = {}

    async def main():
        r, w = os.pipe()
        var.set("requested")
        tr, proto = await loop.connect_read_pipe(lambda: Stream(loop, seen, "p"),
                                                 open(r, "rb", 0))
        var.set("after")
        os.write(w, b"x")
        await proto.got_data
        os.close(w)
        await proto.lost

    run_guarded(loop, main())
    assert seen["p"] == dict.fromkeys(ALL, "requested")


def test_start_tls_protocol_runs_in_the_upgrading_context(loop, ssl_contexts):  # noqa: F811
    server_ctx, client_ctx = ssl_contexts
    seen = {}

    async def main():
        ours, theirs = socket.socketpair()
        var.set("plain")
        tr, proto = await loop.connect_accepted_socket(
            lambda: Stream(loop, seen, "plain"), ours)
        # The other end upgrades on its own loop-less thread.

        def serve():
            with server_ctx.wrap_socket(theirs, server_side=True) as s:
                s.sendall(s.recv(10).upper())
                s.unwrap()

        served = loop.run_in_executor(None, serve)
        var.set("upgrading")
        tls = await loop.start_tls(tr, proto, client_ctx)
        var.set("after")
        tls.write(b"ping")
        await proto.got_data
        tls.close()
        await proto.lost
        await served
        theirs.close()

    run_guarded(loop, main())
    assert seen["plain"]["factory"] == "plain"
    assert seen["plain"]["made"] == "plain"
    assert seen["plain"]["data"] == "upgrading"

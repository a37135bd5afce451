"""Helpers shared by the asyncuv twin tests (imported by conftest and tests)."""

import asyncio
import importlib
import os
import sys
import types

STANDIN_ENV = "ASYNCUV_TEST_STANDIN"

_asyncuv_module = None
_asyncuv_import_error = None


def _uvloop_standin():
    """Expose uvloop under the asyncuv API names (Loop, new_event_loop,
    EventLoopPolicy, install, run)."""
    import uvloop

    def run(main, *, debug=None):
        # uvloop < 0.18 has no run(); mirror asyncio.run() on uvloop loops.
        if asyncio._get_running_loop() is not None:
            raise RuntimeError("asyncio.run() cannot be called from a running event loop")
        with asyncio.Runner(debug=debug, loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)

    return types.SimpleNamespace(
        __name__="uvloop (stand-in for asyncuv)",
        Loop=uvloop.Loop,
        new_event_loop=uvloop.new_event_loop,
        EventLoopPolicy=uvloop.EventLoopPolicy,
        install=uvloop.install,
        run=getattr(uvloop, "run", run),
    )


def load_asyncuv():
    """Return the asyncuv module (or the configured stand-in).

    Raises ImportError naming the problem if it cannot be loaded; callers
    must let it propagate so the test errors instead of being skipped.
    """
    global _asyncuv_module, _asyncuv_import_error
    if _asyncuv_module is not None:
        return _asyncuv_module
    if _asyncuv_import_error is None:
        standin = os.environ.get(STANDIN_ENV, "")
        try:
            if standin == "uvloop":
                _asyncuv_module = _uvloop_standin()
            elif standin:
                raise ImportError(f"{STANDIN_ENV}={standin!r} is not supported (only 'uvloop')")
            else:
                _asyncuv_module = importlib.import_module("asyncuv")
            return _asyncuv_module
        except ImportError as exc:
            _asyncuv_import_error = (
                f"cannot load the asyncuv loop under test: {exc!r}. Build asyncuv, "
                f"or set {STANDIN_ENV}=uvloop to exercise the suite on uvloop."
            )
    # A fresh exception each time: re-raising one object grows its traceback.
    raise ImportError(_asyncuv_import_error)


def new_loop(kind):
    """Create a fresh, not-yet-current loop of the given kind."""
    if kind == "asyncuv":
        return load_asyncuv().new_event_loop()
    if kind == "asyncio":
        # Explicitly the stock loop, independent of any installed policy.
        return asyncio.SelectorEventLoop()
    raise ValueError(f"unknown loop kind {kind!r}")


def run_briefly(loop, steps=1):
    """Run ``steps`` full loop iterations: stop() then run_forever()."""
    for _ in range(steps):
        loop.call_soon(loop.stop)
        loop.run_forever()


def capture(func, *args, **kwargs):
    """Call ``func`` and return the exception it raised (or None).

    Used inside loop callbacks, where a raised exception would be routed to
    the exception handler instead of reaching the test.
    """
    try:
        func(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - we hand it back to the test
        return exc
    return None


def noop(*args):
    pass


# ---------------------------------------------------------------------------
# Networking helpers shared by test_tcp, test_unix, test_server,
# test_sock_methods, test_fd_watchers, test_streams_api and test_dns.
# Loopback only: 127.0.0.1, ::1 and Unix sockets in tmp_path.

import contextlib  # noqa: E402
import socket  # noqa: E402

# Only guards against a hang; never part of an assertion about timing.
NET_HANG_GUARD = 30.0


def run_guarded(loop, coro, timeout=NET_HANG_GUARD):
    """loop.run_until_complete(coro), failing instead of hanging forever."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def _set_once(fut, value):
    if not fut.done():
        fut.set_result(value)


class Waker:
    """For recording protocols: a coroutine waits with ``await
    self._until(condition)`` while callbacks that may make the condition
    true call ``self._wake()``.  Needs ``self.loop``."""

    _waiter = None

    def _wake(self):
        if self._waiter is not None:
            _set_once(self._waiter, None)

    async def _until(self, condition):
        while not condition():
            self._waiter = self.loop.create_future()
            await self._waiter


class RecordingProtocol(Waker, asyncio.Protocol):
    """A Protocol that records its callbacks in ``events`` (consecutive
    data_received calls are recorded once as 'data') and exposes futures to
    await them: made, eof, lost (result: connection_lost's argument),
    paused, resumed."""

    def __init__(self, loop, *, eof_result=None):
        self.loop = loop
        self.eof_result = eof_result
        self.transport = None
        self.events = []
        self.data = bytearray()
        self.lost_calls = []
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.paused = loop.create_future()
        self.resumed = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        _set_once(self.made, transport)

    def data_received(self, data):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self._wake()

    def eof_received(self):
        self.events.append("eof")
        _set_once(self.eof, None)
        self._wake()
        return self.eof_result

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost_calls.append(exc)
        _set_once(self.lost, exc)
        self._wake()

    def pause_writing(self):
        self.events.append("pause")
        _set_once(self.paused, None)

    def resume_writing(self):
        self.events.append("resume")
        _set_once(self.resumed, None)

    async def read_at_least(self, nbytes):
        """Wait until ``nbytes`` arrived (or EOF / connection lost)."""
        await self._until(lambda: len(self.data) >= nbytes or self.eof.done()
                          or self.lost.done())
        return bytes(self.data)


async def close_transports(*protocols):
    """close() each protocol's transport and wait for connection_lost."""
    for proto in protocols:
        if proto.transport is not None:
            proto.transport.close()
    for proto in protocols:
        if proto.transport is not None:
            await proto.lost


@contextlib.asynccontextmanager
async def connected_pair(loop, family="tcp", path=None,
                         client_protocol=None, server_protocol=None):
    """A server (loop.create_server / create_unix_server) with one client
    connection (loop.create_connection / create_unix_connection).

    Yields (client_proto, server_proto); both are RecordingProtocols unless
    factories are given (their protocols must still offer ``transport`` and
    ``lost`` as RecordingProtocol does).  On exit both transports are
    closed, connection_lost is awaited and the server is closed."""
    server_protos = []
    accepted = loop.create_future()

    def server_factory():
        proto = (server_protocol or RecordingProtocol)(loop)
        server_protos.append(proto)
        _set_once(accepted, proto)
        return proto

    def client_factory():
        return (client_protocol or RecordingProtocol)(loop)

    if family == "tcp":
        server = await loop.create_server(server_factory, "127.0.0.1", 0)
    else:
        server = await loop.create_unix_server(server_factory, path)
    try:
        if family == "tcp":
            port = server.sockets[0].getsockname()[1]
            _, client = await loop.create_connection(client_factory, "127.0.0.1", port)
        else:
            _, client = await loop.create_unix_connection(client_factory, path)
        try:
            peer = await accepted
            await peer.made
            yield client, peer
        finally:
            await close_transports(client, *server_protos)
    finally:
        server.close()
        await server.wait_closed()


@contextlib.contextmanager
def tcp_listener(host="127.0.0.1", family=socket.AF_INET):
    """A plain (blocking) listening socket on a loopback port."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        sock.listen(16)
        yield sock


@contextlib.contextmanager
def refusing_port():
    """A 127.0.0.1 port that refuses connections: it is bound (so nobody
    else takes it) but not listening.  Yields the port number."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def spin(iterations=5):
    """Let the running loop go round a few times (polling I/O each time)."""
    for _ in range(iterations):
        await asyncio.sleep(0)


async def assert_pending(task, iterations=5):
    """Check that ``task`` is still waiting after a few loop iterations.  If
    it finished, its own exception (if any) is raised so that it is the one
    reported (and never reported again as 'never retrieved')."""
    await spin(iterations)
    if task.done():
        task.result()
        raise AssertionError(f"{task!r} finished; it should still be waiting")


async def assert_cancelled(task):
    """Wait for ``task`` to finish and check that it ended cancelled.  (A
    ``pytest.raises(CancelledError)`` around ``await task`` would also
    swallow a cancellation of the test coroutine itself.)"""
    await asyncio.wait([task])
    assert task.cancelled(), f"{task!r} was not cancelled"


# create_datagram_endpoint(sock=) with a stream socket: the message.
DATAGRAM_SOCKET_EXPECTED = (
    "A datagram socket was expected, got" if sys.version_info >= (3, 13)
    else "A UDP Socket was expected, got")


def bind_error_message(address, err):
    """asyncio's message for a failed bind of a server or local address:
    the strerror until 3.12, str() of the OSError from 3.13 on."""
    detail = os.strerror(err)
    if sys.version_info >= (3, 13):
        detail = str(OSError(err, detail))
    return (f"error while attempting to bind on address {address!r}: "
            f"{detail.lower()}")

"""asyncuv's C API for other extensions (asyncuv-python.h, the capsule
asyncuv._asyncuv._C_API), through the test extension tests/ext/_nativeecho.c:
a TCP echo server in C on the engine behind an asyncuv loop.

asyncuv only (stock asyncio has no such API).  make check builds the
extension and puts tests/ext/.libs on PYTHONPATH; by hand:

    PYTHONPATH=build/python:tests/ext/.libs LD_LIBRARY_PATH=lib/.libs \\
        /usr/bin/python3 -m pytest tests/python/test_capi.py
"""

import asyncio
import gc
import importlib
import socket
import weakref

import pytest

from support import run_briefly, run_guarded

pytestmark = pytest.mark.asyncuv


@pytest.fixture
def native(asyncuv):
    try:
        return importlib.import_module("_nativeecho")
    except ImportError as exc:
        pytest.fail(f"the test extension _nativeecho is not importable ({exc}); "
                    "build it with make check (tests/ext/.libs on PYTHONPATH)",
                    pytrace=False)


@pytest.fixture
def aloop(asyncuv):
    lp = asyncuv.new_event_loop()
    yield lp
    if not lp.is_closed():
        lp.close()


def listening_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False  # close once the echo is written


async def echo_client(port, payload):
    """Send payload, half-close, return everything read until EOF (reading
    while writing, so that a large payload cannot deadlock)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send():
        writer.write(payload)
        await writer.drain()
        writer.write_eof()

    _, got = await asyncio.gather(send(), reader.read())
    writer.close()
    await writer.wait_closed()
    return got


def start_native(native, loop):
    """A native echo server on loop; returns (server, port)."""
    with listening_socket() as sock:
        server = native.serve(loop, sock)  # it keeps a dup of the socket
        return server, sock.getsockname()[1]


class TestCapsule:
    def test_named_capsule_in_the_module(self, asyncuv):
        from asyncuv import _asyncuv

        assert type(_asyncuv._C_API).__name__ == "PyCapsule"
        assert '"asyncuv._asyncuv._C_API"' in repr(_asyncuv._C_API)

    def test_header_import_accepts_this_module(self, native):
        assert native.CAPI_VERSION == 1
        native._load_capi(native.CAPI_VERSION, native.CAPI_STRUCT_SIZE)

    def test_header_import_accepts_an_older_smaller_struct(self, native):
        # An extension built against an older header knows fewer members.
        native._load_capi(native.CAPI_VERSION, native.CAPI_STRUCT_SIZE - 8)

    def test_header_import_refuses_another_abi_version(self, native):
        with pytest.raises(ImportError, match="C API version 1, but .* version 2"):
            native._load_capi(native.CAPI_VERSION + 1, native.CAPI_STRUCT_SIZE)

    def test_header_import_refuses_a_struct_smaller_than_the_header(self, native):
        # An extension built against a newer header needs members this
        # module lacks.
        with pytest.raises(ImportError, match="newer asyncuv"):
            native._load_capi(native.CAPI_VERSION, native.CAPI_STRUCT_SIZE + 8)


class TestLoopCheckAndAcquire:
    def test_loop_check(self, native, asyncuv, aloop):
        class MyLoop(asyncuv.Loop):
            pass

        sub = MyLoop()
        stock = asyncio.SelectorEventLoop()
        try:
            assert native.is_loop(aloop)
            assert native.is_loop(sub)
            assert not native.is_loop(stock)
            assert not native.is_loop(object())
            assert not native.is_loop(asyncuv.Loop)  # the class, not a loop
        finally:
            sub.close()
            stock.close()

    @pytest.mark.parametrize("obj", [None, 42, "loop", object()])
    def test_acquire_refuses_other_objects(self, native, obj):
        with pytest.raises(TypeError, match="asyncuv loop"):
            native.hold(obj)

    def test_acquire_refuses_the_stock_loop(self, native):
        stock = asyncio.SelectorEventLoop()
        try:
            with pytest.raises(TypeError, match="asyncuv loop"):
                native.hold(stock)
            with listening_socket() as sock, pytest.raises(TypeError):
                native.serve(stock, sock)
        finally:
            stock.close()

    def test_acquire_refuses_a_closed_loop(self, native, aloop):
        aloop.close()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            native.hold(aloop)
        with listening_socket() as sock, pytest.raises(RuntimeError):
            native.serve(aloop, sock)
        assert aloop._engine_holders == 0

    def test_holds_are_counted(self, native, aloop):
        first = native.hold(aloop)
        second = native.hold(aloop)
        assert aloop._engine_holders == 2
        first.release()
        first.release()  # the holder releases once
        assert aloop._engine_holders == 1
        del second  # deallocation releases
        assert aloop._engine_holders == 0


class TestKeepAlive:
    def test_a_hold_keeps_the_python_loop_alive(self, native, asyncuv):
        loop = asyncuv.new_event_loop()
        ref = weakref.ref(loop)
        holder = native.hold(loop)
        del loop
        gc.collect()
        loop = ref()
        assert loop is not None
        # And usable: run a native echo on it.
        server, port = start_native(native, loop)
        assert run_guarded(loop, echo_client(port, b"still here")) == b"still here"
        server.close()
        loop.close()
        del loop
        gc.collect()
        assert ref() is not None  # still held
        holder.release()
        gc.collect()
        assert ref() is None

    def test_a_server_alone_keeps_its_loop(self, native, asyncuv):
        loop = asyncuv.new_event_loop()
        ref = weakref.ref(loop)
        server, port = start_native(native, loop)
        del loop
        gc.collect()
        loop = ref()
        assert run_guarded(loop, echo_client(port, b"ping")) == b"ping"
        loop.close()
        del loop
        gc.collect()
        assert ref() is not None
        server.close()
        gc.collect()
        assert ref() is None


class TestClose:
    def test_close_while_held_leaves_the_engine_to_the_last_release(self, native, aloop):
        server, port = start_native(native, aloop)
        assert run_guarded(aloop, echo_client(port, b"before close")) == b"before close"
        aloop.close()  # does not fail while an extension holds the engine
        assert aloop.is_closed()
        assert aloop._engine_holders == 1
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            native.hold(aloop)
        server.close()  # closes its handles, then releases: engine freed
        assert aloop._engine_holders == 0
        aloop.close()  # idempotent

    def test_runner_closes_a_loop_a_native_server_still_holds(self, native, asyncuv):
        async def main():
            loop = asyncio.get_running_loop()
            server, port = start_native(native, loop)
            assert await echo_client(port, b"x" * 1000) == b"x" * 1000
            return loop, server

        with asyncio.Runner(loop_factory=asyncuv.new_event_loop) as runner:
            loop, server = runner.run(main())
        assert loop.is_closed()
        server.close()
        assert loop._engine_holders == 0

    def test_close_drops_an_extensions_queued_calls_safely(self, native, aloop):
        holder = native.hold(aloop)
        before = native.calls_run()
        holder.call_soon()
        run_briefly(aloop)
        assert native.calls_run() == before + 1
        # Queued next to asyncuv handles when the loop closes: dropped, and
        # not taken for one of asyncuv's handles.
        holder.call_soon()
        aloop.call_soon(lambda: None)
        holder.call_soon()
        aloop.close()
        assert native.calls_run() == before + 1
        holder.release()
        assert aloop._engine_holders == 0


class TestNativeAndPythonEcho:
    def test_both_servers_on_one_loop_at_once(self, native, aloop):
        """A C echo server (libasyncuv streams, no Python per message) and
        an asyncio.Protocol echo server share one asyncuv loop; clients of
        both run concurrently, one of each with 4 MiB (flow control)."""

        async def main():
            python_server = await aloop.create_server(EchoProtocol, "127.0.0.1", 0)
            python_port = python_server.sockets[0].getsockname()[1]
            native_server, native_port = start_native(native, aloop)
            try:
                jobs = []
                for i in range(16):
                    for port in (python_port, native_port):
                        payload = f"{port}:{i}:".encode() * (50 * (i + 1))
                        jobs.append((port, payload))
                big = bytes(range(256)) * 16384
                jobs += [(python_port, big), (native_port, big)]
                echoes = await asyncio.gather(
                    *(echo_client(port, payload) for port, payload in jobs))
                for (port, payload), echo in zip(jobs, echoes):
                    assert echo == payload, f"wrong echo from port {port}"
                assert native_server.accepted == 17
            finally:
                native_server.close()
                python_server.close()
                await python_server.wait_closed()

        run_guarded(aloop, main())
        assert aloop._engine_holders == 0

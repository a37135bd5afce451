"""The asyncio API that arrived after Python 3.11, on asyncuv and on the stock
loop of the running Python.  Each test names the version that brought what it
checks; on older versions it checks that the old behaviour holds instead, or
is skipped when the API does not exist there.  (Other post-3.11 items live
beside their subject: shutdown_default_executor(timeout=) in test_executor,
zero-length datagrams in test_udp and test_datagram_sendfile, bind error
messages in test_server and test_tcp.)"""

import asyncio
import contextvars
import errno
import os
import socket
import sys

import pytest

from support import (
    RecordingProtocol,
    assert_pending,
    close_transports,
    load_asyncuv,
    refusing_port,
    run_guarded,
)

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)
needs_312 = pytest.mark.skipif(not PY312, reason="new in Python 3.12")
needs_313 = pytest.mark.skipif(not PY313, reason="new in Python 3.13")

# Cancelling serve_forever() closes the clients where the running asyncio
# does so (gh-123720: 3.14, and some 3.13 releases): asked of asyncio itself.
SERVE_FOREVER_CLOSES_CLIENTS = PY313 and (
    "close_clients" in asyncio.base_events.Server.serve_forever.__code__.co_names)

var = contextvars.ContextVar("var", default="unset")


def factory_of(kind):
    if kind == "asyncuv":
        return load_asyncuv().new_event_loop
    return asyncio.SelectorEventLoop


class AcceptRecorder(RecordingProtocol):
    """A server-side RecordingProtocol that reports itself when made."""

    def __init__(self, loop, accepted):
        super().__init__(loop)
        self._accepted = accepted

    def connection_made(self, transport):
        super().connection_made(transport)
        self._accepted.put_nowait(self)


async def server_with_client(loop):
    """A TCP server and one connected client: (server, client, peer)."""
    accepted = asyncio.Queue()
    server = await loop.create_server(
        lambda: AcceptRecorder(loop, accepted), "127.0.0.1", 0)
    _, client = await loop.create_connection(
        lambda: RecordingProtocol(loop), *server.sockets[0].getsockname())
    peer = await accepted.get()
    return server, client, peer


# --- 3.12 -------------------------------------------------------------------

class TestLoopFactory:
    @needs_312
    def test_asyncio_run_with_loop_factory(self, loop_kind):
        factory = factory_of(loop_kind)

        async def main():
            loop = asyncio.get_running_loop()
            # The default executor is joined at the end with a timeout (3.12).
            await loop.run_in_executor(None, pow, 2, 2)
            return loop

        loop = asyncio.run(main(), loop_factory=factory)
        assert loop.is_closed()
        if loop_kind == "asyncuv":
            assert isinstance(loop, load_asyncuv().Loop)

    def test_runner_with_loop_factory(self, loop_kind):
        factory = factory_of(loop_kind)

        async def current():
            await asyncio.get_running_loop().run_in_executor(None, pow, 2, 2)
            return asyncio.get_running_loop()

        with asyncio.Runner(loop_factory=factory) as runner:
            first = runner.run(current())
            assert runner.run(current()) is first is runner.get_loop()
        assert first.is_closed()

    def test_asyncuv_run(self, asyncuv):
        async def main():
            await asyncio.get_running_loop().run_in_executor(None, pow, 2, 2)
            return type(asyncio.get_running_loop())

        assert asyncuv.run(main()) is asyncuv.Loop


class TestCreateConnectionAllErrors:
    @needs_312
    def test_all_errors_raises_a_group_of_every_address_tried(self, loop, monkeypatch):
        with refusing_port() as port1, refusing_port() as port2:
            infos = [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", port1)),
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", port2)),
            ]

            async def getaddrinfo(*args, **kwargs):
                return infos

            monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
            with pytest.raises(ExceptionGroup) as info:
                run_guarded(loop, loop.create_connection(
                    asyncio.Protocol, "two.example", 80, all_errors=True))
            group = info.value
            assert group.message == "create_connection failed"
            assert [type(e) for e in group.exceptions] == [ConnectionRefusedError] * 2
            assert [e.errno for e in group.exceptions] == [errno.ECONNREFUSED] * 2

    @needs_312
    def test_all_errors_with_one_address(self, loop):
        with refusing_port() as port:
            with pytest.raises(ExceptionGroup) as info:
                run_guarded(loop, loop.create_connection(
                    asyncio.Protocol, "127.0.0.1", port, all_errors=True))
        [exc] = info.value.exceptions
        assert isinstance(exc, ConnectionRefusedError)

    def test_without_all_errors_the_error_itself(self, loop):
        with refusing_port() as port:
            with pytest.raises(ConnectionRefusedError):
                run_guarded(loop, loop.create_connection(
                    asyncio.Protocol, "127.0.0.1", port))


class TestEagerTasks:
    @needs_312
    def test_eager_task_factory_runs_the_coroutine_at_once(self, loop):
        order = []

        async def child():
            order.append("child started")
            await asyncio.sleep(0)
            order.append("child resumed")
            return "child"

        async def at_once():
            return "done"

        async def main():
            task = asyncio.create_task(child())
            order.append("created")
            done_already = asyncio.create_task(at_once())
            assert done_already.done() and done_already.result() == "done"
            assert await task == "child"

        loop.set_task_factory(asyncio.eager_task_factory)
        run_guarded(loop, main())
        assert order == ["child started", "created", "child resumed"]

    @needs_312
    def test_create_eager_task_factory_with_a_task_class(self, loop):
        made = []

        class MyTask(asyncio.Task):
            def __init__(self, *args, **kwargs):
                made.append(kwargs.get("eager_start"))
                super().__init__(*args, **kwargs)

        async def value():
            return 42

        async def main():
            return await asyncio.create_task(value(), name="answer")

        loop.set_task_factory(asyncio.create_eager_task_factory(MyTask))
        assert run_guarded(loop, main()) == 42
        assert made and all(made)

    @needs_312
    def test_eager_task_keeps_its_context(self, loop):
        ctx = contextvars.copy_context()
        ctx.run(var.set, "given")

        async def read():
            return var.get()

        async def main():
            return await asyncio.create_task(read(), context=ctx)

        loop.set_task_factory(asyncio.eager_task_factory)
        assert run_guarded(loop, main()) == "given"


class TestExceptionHandlerContext:
    def test_custom_handler_runs_in_the_handles_context(self, loop):
        """From 3.12 the custom handler runs in the context of the handle
        (task, future) that failed; 3.11 calls it in the loop's own."""
        seen = []
        loop.set_exception_handler(lambda lp, context: seen.append(var.get()))
        ctx = contextvars.copy_context()
        ctx.run(var.set, "handle's")

        def boom():
            raise ValueError("boom")

        loop.call_soon(boom, context=ctx)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert seen == (["handle's"] if PY312 else ["unset"])

    def test_custom_handler_runs_in_the_tasks_context(self, loop):
        seen = []
        loop.set_exception_handler(lambda lp, context: seen.append(var.get()))

        async def failing():
            var.set("task's")
            raise ValueError("never retrieved")

        async def main():
            task = asyncio.ensure_future(failing())
            await asyncio.wait([task])
            return task

        run_guarded(loop, main())
        # The task, never retrieved, reports when it is collected.
        import gc
        gc.collect()
        assert seen == (["task's"] if PY312 else ["unset"])


# --- 3.12: Server.wait_closed() waits for the connections ---------------------

class TestServerWaitClosed:
    def test_wait_closed_after_close_waits_for_connections(self, loop):
        """3.11 returns at once once close() was called; 3.12 waits until the
        connections are gone too."""
        async def main():
            server, client, peer = await server_with_client(loop)
            server.close()
            waiter = asyncio.ensure_future(server.wait_closed())
            if PY312:
                await assert_pending(waiter)
                await close_transports(client, peer)
                await waiter
            else:
                await waiter
                await close_transports(client, peer)

        run_guarded(loop, main())

    def test_wait_closed_on_an_open_server_without_connections(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            waiter = asyncio.ensure_future(server.wait_closed())
            await assert_pending(waiter)
            server.close()
            await waiter

        run_guarded(loop, main())


# --- 3.13 -------------------------------------------------------------------

class TestServerCloseClients:
    def test_close_clients_exists_from_313(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            try:
                return (hasattr(server, "close_clients"),
                        hasattr(server, "abort_clients"))
            finally:
                server.close()
                await server.wait_closed()

        assert run_guarded(loop, main()) == (PY313, PY313)

    @needs_313
    def test_close_clients_closes_accepted_connections(self, loop):
        async def main():
            server, client, peer = await server_with_client(loop)
            peer.transport.write(b"last words")
            server.close()
            server.close_clients()
            assert peer.transport.is_closing()
            # close() flushes: the client gets the data, then EOF.
            assert await client.read_at_least(10) == b"last words"
            await client.eof
            assert await peer.lost is None
            await close_transports(client)
            await server.wait_closed()

        run_guarded(loop, main())

    @needs_313
    def test_abort_clients_drops_pending_data(self, loop):
        async def main():
            server, client, peer = await server_with_client(loop)
            server.close()
            server.abort_clients()
            assert await peer.lost is None
            await client.lost
            await server.wait_closed()

        run_guarded(loop, main())

    @needs_313
    def test_close_clients_only_touches_live_connections(self, loop):
        async def main():
            server, client, peer = await server_with_client(loop)
            await close_transports(client, peer)
            server.close_clients()  # nothing left: no error
            server.abort_clients()
            server.close()
            await server.wait_closed()

        run_guarded(loop, main())

    @needs_313
    def test_cancelling_serve_forever_with_a_connected_client(self, loop):
        """Cancelling serve_forever() stops accepting; from gh-123720 (3.14,
        some 3.13 releases) it also closes the clients, before that it waits
        for them to go."""
        async def main():
            server, client, peer = await server_with_client(loop)
            task = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
            task.cancel()
            if SERVE_FOREVER_CLOSES_CLIENTS:
                await client.eof
                assert await peer.lost is None
            else:
                await assert_pending(task)
                client.transport.write(b"still there")
                assert await peer.read_at_least(11) == b"still there"
                await close_transports(client, peer)
            await asyncio.wait([task])
            assert task.cancelled()
            assert not server.is_serving()
            await close_transports(client)

        run_guarded(loop, main())


class TestKeepAlive:
    @needs_313
    @pytest.mark.parametrize("keep_alive", [True, False, None])
    def test_keep_alive_on_accepted_connections(self, loop, keep_alive):
        async def main():
            accepted = asyncio.Queue()
            server = await loop.create_server(
                lambda: AcceptRecorder(loop, accepted), "127.0.0.1", 0,
                keep_alive=keep_alive)
            try:
                listening = server.sockets[0].getsockopt(
                    socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                _, client = await loop.create_connection(
                    lambda: RecordingProtocol(loop),
                    *server.sockets[0].getsockname())
                peer = await accepted.get()
                sock = peer.transport.get_extra_info("socket")
                accepted_opt = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                await close_transports(client, peer)
                return bool(listening), bool(accepted_opt)
            finally:
                server.close()
                await server.wait_closed()

        assert run_guarded(loop, main()) == (bool(keep_alive), bool(keep_alive))


class TestUnixServerCleanupSocket:
    def test_socket_file_removed_on_close_from_313(self, loop, tmp_path):
        path = str(tmp_path / "s.sock")

        async def main():
            server = await loop.create_unix_server(asyncio.Protocol, path)
            assert os.path.exists(path)
            server.close()
            await server.wait_closed()

        run_guarded(loop, main())
        assert os.path.exists(path) is (not PY313)

    @needs_313
    def test_cleanup_socket_false_keeps_the_file(self, loop, tmp_path):
        path = str(tmp_path / "s.sock")

        async def main():
            server = await loop.create_unix_server(asyncio.Protocol, path,
                                                   cleanup_socket=False)
            server.close()
            await server.wait_closed()

        run_guarded(loop, main())
        assert os.path.exists(path)

    @needs_313
    def test_a_path_taken_over_is_left_alone(self, loop, tmp_path):
        path = str(tmp_path / "s.sock")

        async def main():
            server = await loop.create_unix_server(asyncio.Protocol, path)
            os.unlink(path)
            with socket.socket(socket.AF_UNIX) as other:
                other.bind(path)  # another socket, another inode
                server.close()
                await server.wait_closed()
                assert os.path.exists(path)

        run_guarded(loop, main())

    @needs_313
    def test_sock_argument_is_cleaned_up_too(self, loop, tmp_path):
        path = str(tmp_path / "s.sock")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)

        async def main():
            server = await loop.create_unix_server(asyncio.Protocol, sock=sock)
            server.close()
            await server.wait_closed()

        run_guarded(loop, main())
        assert not os.path.exists(path)

    @needs_313
    def test_abstract_socket_needs_no_cleanup(self, loop):
        name = f"\0asyncuv-test-{os.getpid()}-{id(loop)}"

        async def main():
            server = await loop.create_unix_server(asyncio.Protocol, name)
            server.close()
            await server.wait_closed()

        run_guarded(loop, main())


class TestDatagramSocketKinds:
    def test_seqpacket_socket(self, loop):
        """create_datagram_endpoint(sock=) takes any non-stream socket from
        3.13 on (only SOCK_DGRAM before)."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, sock=a)
            tr.close()
            await asyncio.sleep(0)

        with a, b:
            if PY313:
                run_guarded(loop, main())
            else:
                with pytest.raises(ValueError, match="A UDP Socket was expected"):
                    run_guarded(loop, main())

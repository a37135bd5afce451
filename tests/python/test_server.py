"""loop.create_server(), the Server object it returns, and
loop.connect_accepted_socket().  Loopback only.  Every test runs on asyncuv
and on the stock asyncio loop (the reference)."""

import asyncio
import contextlib
import errno
import re
import socket

import pytest

from support import (
    bind_error_message,
    NET_HANG_GUARD,
    RecordingProtocol,
    assert_cancelled,
    assert_pending,
    close_transports,
    ipv6_loopback_available,
    run_guarded,
    tcp_listener,
)


def factory_for(loop, created):
    def factory():
        proto = RecordingProtocol(loop)
        created.append(proto)
        return proto
    return factory


async def connect(loop, sockname):
    """A client connection (RecordingProtocol) to sockname."""
    _, proto = await loop.create_connection(
        lambda: RecordingProtocol(loop), *sockname[:2])
    return proto


async def wait_for_count(loop, created, count):
    """Wait until the server factory created ``count`` protocols that saw
    connection_made()."""
    while len(created) < count:
        await asyncio.sleep(0)
    for proto in created:
        await proto.made


@contextlib.asynccontextmanager
async def serving_forever(server):
    """Run server.serve_forever() in a task; on exit make sure that the task
    is finished and the server closed, even if the test failed."""
    task = asyncio.get_running_loop().create_task(server.serve_forever())
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
        server.close()
        await server.wait_closed()


def recv_until_eof(conn):
    conn.settimeout(NET_HANG_GUARD)
    chunks = []
    while True:
        data = conn.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class TestCreateServer:
    def test_returns_a_serving_server(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            try:
                assert isinstance(server, asyncio.AbstractServer)
                assert server.is_serving() is True
                assert server.get_loop() is loop
                sockets = server.sockets
                assert isinstance(sockets, tuple)
                assert len(sockets) == 1
                sock = sockets[0]
                assert sock.family == socket.AF_INET
                assert sock.type == socket.SOCK_STREAM
                host, port = sock.getsockname()
                assert host == "127.0.0.1"
                assert port != 0
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_protocol_factory_is_called_for_each_connection(self, loop):
        created = []

        async def main():
            server = await loop.create_server(factory_for(loop, created), "127.0.0.1", 0)
            try:
                sockname = server.sockets[0].getsockname()
                first = await connect(loop, sockname)
                second = await connect(loop, sockname)
                await wait_for_count(loop, created, 2)
                assert len(created) == 2
                server_peers = {p.transport.get_extra_info("peername") for p in created}
                client_names = {c.transport.get_extra_info("sockname") for c in (first, second)}
                assert server_peers == client_names
                for proto in created:
                    assert proto.transport.get_extra_info("sockname") == sockname
                created[0].transport.write(b"x")
                created[1].transport.write(b"y")
                got = {await first.read_at_least(1), await second.read_at_least(1)}
                assert got == {b"x", b"y"}
                await close_transports(first, second, *created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_host_list_binds_every_host(self, loop):
        if not ipv6_loopback_available():
            pytest.skip("IPv6 loopback (::1) is not available")
        created = []

        async def main():
            server = await loop.create_server(
                factory_for(loop, created), ["127.0.0.1", "::1"], 0)
            try:
                assert len(server.sockets) == 2
                by_family = {s.family: s.getsockname() for s in server.sockets}
                assert set(by_family) == {socket.AF_INET, socket.AF_INET6}
                assert by_family[socket.AF_INET][0] == "127.0.0.1"
                assert by_family[socket.AF_INET6][0] == "::1"
                clients = [await connect(loop, name) for name in by_family.values()]
                await wait_for_count(loop, created, 2)
                await close_transports(*clients, *created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_host_listed_twice_is_bound_once(self, loop):
        async def main():
            server = await loop.create_server(
                asyncio.Protocol, ["127.0.0.1", "127.0.0.1"], 0)
            try:
                assert len(server.sockets) == 1
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_host_name_binds_every_resolved_address(self, loop):
        expected = {
            (family, sockaddr[0])
            for family, _, _, _, sockaddr in socket.getaddrinfo(
                "localhost", 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        }

        async def main():
            server = await loop.create_server(asyncio.Protocol, "localhost", 0)
            try:
                bound = {(s.family, s.getsockname()[0]) for s in server.sockets}
                assert bound == expected
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_ipv6_sockets_are_v6only(self, loop):
        if not ipv6_loopback_available():
            pytest.skip("IPv6 loopback (::1) is not available")

        async def main():
            server = await loop.create_server(asyncio.Protocol, "::1", 0)
            try:
                [sock] = server.sockets
                assert sock.family == socket.AF_INET6
                assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) != 0
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    @pytest.mark.parametrize("reuse_address, expected", [(None, True), (True, True), (False, False)])
    def test_reuse_address(self, loop, reuse_address, expected):
        async def main():
            server = await loop.create_server(
                asyncio.Protocol, "127.0.0.1", 0, reuse_address=reuse_address)
            try:
                [sock] = server.sockets
                value = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
                assert bool(value) is expected
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_reuse_port_lets_two_servers_share_a_port(self, loop):
        async def main():
            first = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, reuse_port=True)
            try:
                [sock] = first.sockets
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
                port = sock.getsockname()[1]
                second = await loop.create_server(
                    asyncio.Protocol, "127.0.0.1", port, reuse_port=True)
                try:
                    assert second.sockets[0].getsockname() == ("127.0.0.1", port)
                finally:
                    second.close()
                    await second.wait_closed()
            finally:
                first.close()
                await first.wait_closed()

        run_guarded(loop, main())

    def test_reuse_port_false_is_not_set(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, reuse_port=False)
            try:
                [sock] = server.sockets
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_address_in_use(self, loop):
        with tcp_listener() as listener:
            address = listener.getsockname()
            with pytest.raises(OSError) as info:
                run_guarded(loop, loop.create_server(asyncio.Protocol, *address))
        assert info.value.errno == errno.EADDRINUSE
        assert bind_error_message(address, errno.EADDRINUSE) in str(info.value)

    def test_backlog(self, loop):
        created = []

        async def main():
            server = await loop.create_server(
                factory_for(loop, created), "127.0.0.1", 0, backlog=1)
            try:
                client = await connect(loop, server.sockets[0].getsockname())
                await wait_for_count(loop, created, 1)
                await close_transports(client, *created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_sock_a_bound_socket(self, loop):
        created = []
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            address = sock.getsockname()

            async def main():
                server = await loop.create_server(factory_for(loop, created), sock=sock)
                try:
                    assert server.is_serving()
                    assert len(server.sockets) == 1
                    assert server.sockets[0].getsockname() == address
                    client = await connect(loop, address)
                    await wait_for_count(loop, created, 1)
                    await close_transports(client, *created)
                finally:
                    server.close()
                    await server.wait_closed()

            run_guarded(loop, main())

    def test_sock_must_be_a_stream_socket(self, loop):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                run_guarded(loop, loop.create_server(asyncio.Protocol, sock=sock))

    @pytest.mark.parametrize("host, port", [("127.0.0.1", None), (None, 0), ("127.0.0.1", 0)])
    def test_sock_together_with_host_or_port(self, loop, host, port):
        with socket.socket() as sock:
            with pytest.raises(ValueError,
                               match="host/port and sock can not be specified at the same time"):
                run_guarded(loop, loop.create_server(asyncio.Protocol, host, port, sock=sock))

    def test_neither_host_nor_sock(self, loop):
        with pytest.raises(ValueError, match="Neither host/port nor sock were specified"):
            run_guarded(loop, loop.create_server(asyncio.Protocol))

    @pytest.mark.parametrize("ssl", [True, False])
    def test_ssl_must_not_be_a_bool(self, loop, ssl):
        with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
            run_guarded(loop, loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=ssl))

    @pytest.mark.parametrize("option", ["ssl_handshake_timeout", "ssl_shutdown_timeout"])
    def test_ssl_timeouts_without_ssl(self, loop, option):
        with pytest.raises(ValueError, match=f"{option} is only meaningful with ssl"):
            run_guarded(loop, loop.create_server(
                asyncio.Protocol, "127.0.0.1", 0, **{option: 1.0}))

    def test_closed_loop_raises(self, loop, loop_factory):
        loop.close()
        other = loop_factory()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            run_guarded(other, loop.create_server(asyncio.Protocol, "localhost", 0))


class TestServing:
    def test_start_serving_false(self, loop):
        created = []

        async def main():
            server = await loop.create_server(
                factory_for(loop, created), "127.0.0.1", 0, start_serving=False)
            try:
                assert server.is_serving() is False
                [sock] = server.sockets
                address = sock.getsockname()
                assert address[1] != 0
                # Not listening yet: connections are refused.
                with pytest.raises(ConnectionRefusedError):
                    await loop.create_connection(asyncio.Protocol, *address)
                await server.start_serving()
                assert server.is_serving() is True
                await server.start_serving()  # a second call is harmless
                client = await connect(loop, address)
                await wait_for_count(loop, created, 1)
                await close_transports(client, *created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_serve_forever_until_cancelled(self, loop):
        created = []

        async def main():
            server = await loop.create_server(
                factory_for(loop, created), "127.0.0.1", 0, start_serving=False)
            address = server.sockets[0].getsockname()
            async with serving_forever(server) as task:
                await asyncio.sleep(0)
                assert server.is_serving() is True
                client = await connect(loop, address)
                await wait_for_count(loop, created, 1)
                await close_transports(client, *created)
                await assert_pending(task)
                task.cancel()
                await assert_cancelled(task)
                # Cancelling serve_forever() closes the server.
                assert server.is_serving() is False
                assert server.sockets == ()
                with pytest.raises(ConnectionRefusedError):
                    await loop.create_connection(asyncio.Protocol, *address)

        run_guarded(loop, main())

    def test_close_ends_serve_forever_with_cancelled_error(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            async with serving_forever(server) as task:
                await asyncio.sleep(0)
                server.close()
                await assert_cancelled(task)

        run_guarded(loop, main())

    def test_serve_forever_twice_raises(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            async with serving_forever(server) as task:
                await asyncio.sleep(0)
                with pytest.raises(RuntimeError,
                                   match=re.escape("is already being awaited on serve_forever()")):
                    await server.serve_forever()
                await assert_pending(task)
                task.cancel()
                await assert_cancelled(task)

        run_guarded(loop, main())

    def test_serve_forever_on_a_closed_server_raises(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            server.close()
            await server.wait_closed()
            with pytest.raises(RuntimeError, match="is closed"):
                await server.serve_forever()

        run_guarded(loop, main())

    def test_close_stops_accepting(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            address = server.sockets[0].getsockname()
            server.close()
            assert server.is_serving() is False
            assert server.sockets == ()
            server.close()  # idempotent
            await server.wait_closed()
            await server.wait_closed()  # again: returns at once
            with pytest.raises(ConnectionRefusedError):
                await loop.create_connection(asyncio.Protocol, *address)

        run_guarded(loop, main())

    def test_close_keeps_existing_connections_open(self, loop):
        created = []

        async def main():
            server = await loop.create_server(factory_for(loop, created), "127.0.0.1", 0)
            client = await connect(loop, server.sockets[0].getsockname())
            await wait_for_count(loop, created, 1)
            [peer] = created
            server.close()
            client.transport.write(b"still")
            assert await peer.read_at_least(5) == b"still"
            peer.transport.write(b"open")
            assert await client.read_at_least(4) == b"open"
            assert not peer.transport.is_closing()
            await close_transports(client, peer)
            await server.wait_closed()

        run_guarded(loop, main())

    def test_wait_closed_started_before_close_waits_for_connections(self, loop):
        created = []

        async def main():
            server = await loop.create_server(factory_for(loop, created), "127.0.0.1", 0)
            client = await connect(loop, server.sockets[0].getsockname())
            await wait_for_count(loop, created, 1)
            waiter = loop.create_task(server.wait_closed())
            await asyncio.sleep(0)
            server.close()
            await assert_pending(waiter)
            await close_transports(client, *created)
            await waiter

        run_guarded(loop, main())

    def test_async_with_closes_the_server(self, loop):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            async with server as entered:
                assert entered is server
                assert server.is_serving()
            assert server.is_serving() is False
            assert server.sockets == ()

        run_guarded(loop, main())


class TestConnectAcceptedSocket:
    def test_wraps_an_accepted_socket(self, loop):
        with tcp_listener() as listener, socket.create_connection(listener.getsockname()) as client:
            conn, _ = listener.accept()

            async def main():
                tr, pr = await loop.connect_accepted_socket(lambda: RecordingProtocol(loop), conn)
                try:
                    assert pr.transport is tr
                    assert pr.events == ["made"]
                    assert tr.get_extra_info("peername") == client.getsockname()
                    assert tr.get_extra_info("sockname") == listener.getsockname()
                    client.sendall(b"hello")
                    assert await pr.read_at_least(5) == b"hello"
                    tr.write(b"world")
                finally:
                    tr.close()
                assert await pr.lost is None
                assert await loop.run_in_executor(None, recv_until_eof, client) == b"world"
                assert isinstance(tr, asyncio.Transport)

            try:
                run_guarded(loop, main())
            finally:
                conn.close()

    def test_unix_socketpair(self, loop):
        a, b = socket.socketpair()
        with a, b:
            async def main():
                tr, pr = await loop.connect_accepted_socket(lambda: RecordingProtocol(loop), a)
                b.sendall(b"ping")
                assert await pr.read_at_least(4) == b"ping"
                b.close()
                await pr.eof
                assert await pr.lost is None

            run_guarded(loop, main())

    def test_sock_must_be_a_stream_socket(self, loop):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                run_guarded(loop, loop.connect_accepted_socket(asyncio.Protocol, sock))

    @pytest.mark.parametrize("option", ["ssl_handshake_timeout", "ssl_shutdown_timeout"])
    def test_ssl_timeouts_without_ssl(self, loop, option):
        a, b = socket.socketpair()
        with a, b:
            with pytest.raises(ValueError, match=f"{option} is only meaningful with ssl"):
                run_guarded(loop, loop.connect_accepted_socket(
                    asyncio.Protocol, a, **{option: 1.0}))

"""Unix domain stream sockets: loop.create_unix_server(),
loop.create_unix_connection() and their transports.  Sockets live in
tmp_path (or the Linux abstract namespace).  Every test runs on asyncuv and
on the stock asyncio loop (the reference)."""

import asyncio
import errno
import gc
import os
import pathlib
import re
import socket
import stat
import sys
import uuid

import pytest

from support import (
    NET_HANG_GUARD,
    RecordingProtocol,
    close_transports,
    connected_pair,
    new_loop,
    run_guarded,
)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the abstract namespace is Linux-only")


def recording_factory(loop, created=None):
    def factory():
        proto = RecordingProtocol(loop)
        if created is not None:
            created.append(proto)
        return proto
    return factory


async def wait_for_count(created, count):
    while len(created) < count:
        await asyncio.sleep(0)
    for proto in created:
        await proto.made


def stale_socket_file(path):
    """Leave a socket file behind, as a crashed server would."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(os.fspath(path))
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


async def echo_check(loop, server, address, created):
    """Connect to address, exchange data with the server side, close."""
    tr, client = await loop.create_unix_connection(recording_factory(loop), address)
    try:
        await wait_for_count(created, 1)
        tr.write(b"ping")
        assert await created[0].read_at_least(4) == b"ping"
        created[0].transport.write(b"pong")
        assert await client.read_at_least(4) == b"pong"
    finally:
        await close_transports(client, *created)


class TestCreateUnixServer:
    @pytest.mark.parametrize("kind", ["str", "pathlib", "bytes"])
    def test_path_kinds(self, loop, tmp_path, kind):
        path = tmp_path / "server.sock"
        address = {"str": str(path), "pathlib": path, "bytes": os.fsencode(path)}[kind]
        created = []

        async def main():
            server = await loop.create_unix_server(recording_factory(loop, created), address)
            try:
                assert server.is_serving()
                assert isinstance(server.sockets, tuple)
                [sock] = server.sockets
                assert sock.family == socket.AF_UNIX
                assert sock.type == socket.SOCK_STREAM
                assert sock.getsockname() == str(path)
                assert stat.S_ISSOCK(os.stat(path).st_mode)
                await echo_check(loop, server, address, created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    @linux_only
    def test_abstract_namespace(self, loop, tmp_path):
        name = f"\0asyncuv-test-{uuid.uuid4().hex}"
        created = []

        async def main():
            server = await loop.create_unix_server(recording_factory(loop, created), name)
            try:
                [sock] = server.sockets
                # Python reports abstract addresses as bytes.
                assert sock.getsockname() == name.encode()
                await echo_check(loop, server, name, created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())
        assert list(tmp_path.iterdir()) == []

    def test_stale_socket_file_is_replaced(self, loop, tmp_path):
        path = tmp_path / "stale.sock"
        stale_socket_file(path)
        created = []

        async def main():
            server = await loop.create_unix_server(recording_factory(loop, created), str(path))
            try:
                await echo_check(loop, server, str(path), created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_existing_path_that_is_not_a_socket(self, loop, tmp_path):
        path = tmp_path / "regular-file"
        path.write_bytes(b"keep me")
        with pytest.raises(OSError) as info:
            run_guarded(loop, loop.create_unix_server(asyncio.Protocol, str(path)))
        assert info.value.errno == errno.EADDRINUSE
        assert re.search(re.escape(f"Address {str(path)!r} is already in use"), str(info.value))
        assert path.read_bytes() == b"keep me"

    def test_sock_a_bound_unix_socket(self, loop, tmp_path):
        path = str(tmp_path / "bound.sock")
        created = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(path)

            async def main():
                server = await loop.create_unix_server(recording_factory(loop, created), sock=sock)
                try:
                    assert server.sockets[0].getsockname() == path
                    await echo_check(loop, server, path, created)
                finally:
                    server.close()
                    await server.wait_closed()

            run_guarded(loop, main())

    @pytest.mark.parametrize("family, type_", [
        (socket.AF_INET, socket.SOCK_STREAM),
        (socket.AF_UNIX, socket.SOCK_DGRAM),
    ])
    def test_sock_must_be_a_unix_stream_socket(self, loop, family, type_):
        with socket.socket(family, type_) as sock:
            with pytest.raises(ValueError, match="A UNIX Domain Stream Socket was expected"):
                run_guarded(loop, loop.create_unix_server(asyncio.Protocol, sock=sock))

    def test_path_and_sock(self, loop, tmp_path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            with pytest.raises(ValueError, match="path and sock can not be specified at the same time"):
                run_guarded(loop, loop.create_unix_server(
                    asyncio.Protocol, str(tmp_path / "x.sock"), sock=sock))

    def test_neither_path_nor_sock(self, loop):
        with pytest.raises(ValueError, match="path was not specified, and no sock specified"):
            run_guarded(loop, loop.create_unix_server(asyncio.Protocol))

    def test_ssl_must_not_be_a_bool(self, loop, tmp_path):
        with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
            run_guarded(loop, loop.create_unix_server(
                asyncio.Protocol, str(tmp_path / "x.sock"), ssl=True))

    def test_start_serving_false(self, loop, tmp_path):
        path = str(tmp_path / "later.sock")
        created = []

        async def main():
            server = await loop.create_unix_server(
                recording_factory(loop, created), path, start_serving=False)
            try:
                assert server.is_serving() is False
                await server.start_serving()
                assert server.is_serving() is True
                await echo_check(loop, server, path, created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_closed_server_no_longer_accepts(self, loop, tmp_path):
        path = str(tmp_path / "closed.sock")

        async def main():
            server = await loop.create_unix_server(asyncio.Protocol, path)
            server.close()
            await server.wait_closed()
            assert server.sockets == ()
            with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
                await loop.create_unix_connection(asyncio.Protocol, path)

        run_guarded(loop, main())


class TestCreateUnixConnection:
    def test_get_extra_info(self, loop, tmp_path):
        path = str(tmp_path / "info.sock")

        async def main():
            async with connected_pair(loop, "unix", path) as (client, peer):
                ctr, ptr = client.transport, peer.transport
                assert ctr.get_extra_info("peername") == path
                assert ctr.get_extra_info("sockname") == ""
                assert ptr.get_extra_info("sockname") == path
                assert ptr.get_extra_info("peername") == ""
                sock = ctr.get_extra_info("socket")
                assert sock.family == socket.AF_UNIX
                assert sock.type == socket.SOCK_STREAM
                assert sock.fileno() >= 0
                assert ctr.get_extra_info("no-such-key", 42) == 42

        run_guarded(loop, main())

    def test_transport_is_an_asyncio_transport(self, loop, tmp_path):
        async def main():
            async with connected_pair(loop, "unix", str(tmp_path / "t.sock")) as (client, peer):
                assert isinstance(client.transport, asyncio.Transport)
                assert isinstance(peer.transport, asyncio.Transport)

        run_guarded(loop, main())

    def test_data_both_ways_and_half_close(self, loop, tmp_path):
        def keep_open(lp):
            return RecordingProtocol(lp, eof_result=True)

        async def main():
            async with connected_pair(loop, "unix", str(tmp_path / "h.sock"),
                                      server_protocol=keep_open) as (client, peer):
                assert client.transport.can_write_eof() is True
                client.transport.write(b"question")
                client.transport.write_eof()
                await peer.eof
                assert peer.data == b"question"
                peer.transport.write(b"answer")
                peer.transport.close()
                await client.lost
                assert client.data == b"answer"
                assert client.events == ["made", "data", "eof", "lost"]
                assert client.lost_calls == [None]

        run_guarded(loop, main())

    def test_flow_control(self, loop, tmp_path):
        async def main():
            async with connected_pair(loop, "unix", str(tmp_path / "f.sock")) as (client, peer):
                tr = client.transport
                peer.transport.pause_reading()
                chunks = []
                while not client.paused.done():
                    assert len(chunks) < 1024, "pause_writing() never called"
                    chunks.append(pattern(64 * 1024, len(chunks)))
                    tr.write(chunks[-1])
                assert tr.get_write_buffer_size() > tr.get_write_buffer_limits()[1]
                peer.transport.resume_reading()
                await client.resumed
                payload = b"".join(chunks)
                assert await peer.read_at_least(len(payload)) == payload

        run_guarded(loop, main())

    def test_sock_a_connected_unix_socket(self, loop, tmp_path):
        path = str(tmp_path / "sock.sock")
        created = []

        async def main():
            server = await loop.create_unix_server(recording_factory(loop, created), path)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(path)
                    tr, client = await loop.create_unix_connection(
                        recording_factory(loop), sock=sock)
                    await wait_for_count(created, 1)
                    assert tr.get_extra_info("peername") == path
                    tr.write(b"over sock=")
                    assert await created[0].read_at_least(10) == b"over sock="
                    await close_transports(client, *created)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_sock_a_socketpair_end(self, loop):
        a, b = socket.socketpair()
        with a, b:
            async def main():
                tr, client = await loop.create_unix_connection(recording_factory(loop), sock=a)
                b.sendall(b"from the pair")
                assert await client.read_at_least(13) == b"from the pair"
                tr.close()
                await client.lost
                b.settimeout(NET_HANG_GUARD)
                assert b.recv(10) == b""

            run_guarded(loop, main())

    @pytest.mark.parametrize("family, type_", [
        (socket.AF_INET, socket.SOCK_STREAM),
        (socket.AF_UNIX, socket.SOCK_DGRAM),
    ])
    def test_sock_must_be_a_unix_stream_socket(self, loop, family, type_):
        with socket.socket(family, type_) as sock:
            with pytest.raises(ValueError, match="A UNIX Domain Stream Socket was expected"):
                run_guarded(loop, loop.create_unix_connection(asyncio.Protocol, sock=sock))

    def test_path_and_sock(self, loop, tmp_path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            with pytest.raises(ValueError, match="path and sock can not be specified at the same time"):
                run_guarded(loop, loop.create_unix_connection(
                    asyncio.Protocol, str(tmp_path / "x.sock"), sock=sock))

    def test_neither_path_nor_sock(self, loop):
        with pytest.raises(ValueError, match="no path and sock were specified"):
            run_guarded(loop, loop.create_unix_connection(asyncio.Protocol))

    def test_server_hostname_without_ssl(self, loop, tmp_path):
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            run_guarded(loop, loop.create_unix_connection(
                asyncio.Protocol, str(tmp_path / "x.sock"), server_hostname="localhost"))

    @pytest.mark.parametrize("option", ["ssl_handshake_timeout", "ssl_shutdown_timeout"])
    def test_ssl_timeouts_without_ssl(self, loop, tmp_path, option):
        with pytest.raises(ValueError, match=f"{option} is only meaningful with ssl"):
            run_guarded(loop, loop.create_unix_connection(
                asyncio.Protocol, str(tmp_path / "x.sock"), **{option: 1.0}))

    def test_missing_path(self, loop, tmp_path):
        with pytest.raises(FileNotFoundError):
            run_guarded(loop, loop.create_unix_connection(
                asyncio.Protocol, str(tmp_path / "missing.sock")))

    def test_socket_file_without_a_listener(self, loop, tmp_path):
        path = tmp_path / "stale.sock"
        stale_socket_file(path)
        with pytest.raises(ConnectionRefusedError):
            run_guarded(loop, loop.create_unix_connection(asyncio.Protocol, str(path)))

    def test_pathlib_path(self, loop, tmp_path):
        path = tmp_path / "pathlib.sock"

        async def main():
            async with connected_pair(loop, "unix", path) as (client, peer):
                assert isinstance(path, pathlib.Path)
                client.transport.write(b"p")
                assert await peer.read_at_least(1) == b"p"
                assert client.transport.get_extra_info("peername") == str(path)

        run_guarded(loop, main())


class TestResourceWarning:
    """This test uses a loop of its own, so that it can be dropped too."""

    def test_unclosed_unix_transport_warns_when_collected(self, loop_kind, loop_factory, loop_errors):
        a, b = socket.socketpair()
        with a, b:
            lp = new_loop(loop_kind)

            async def main(lp):
                await lp.create_unix_connection(recording_factory(lp), sock=a)

            try:
                run_guarded(lp, main(lp))
            except BaseException:
                lp.close()
                raise
            with pytest.warns(ResourceWarning, match="unclosed"):
                lp.close()
                del lp
                gc.collect()

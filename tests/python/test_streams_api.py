"""asyncio's high-level streams (open_connection, start_server,
open_unix_connection, start_unix_server) on top of the loop's transports.
Loopback only.  Every test runs on asyncuv and on the stock asyncio loop
(the reference)."""

import asyncio
import socket
import sys

import pytest

from support import assert_pending, refusing_port, run_guarded
from test_sendfile import ssl_contexts  # noqa: F401 - a fixture


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


async def close_writer(writer):
    writer.close()
    await writer.wait_closed()


async def upper_echo(reader, writer):
    """Echo lines upper-cased until EOF."""
    try:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
    finally:
        await close_writer(writer)


async def tcp_server(handler, **kwargs):
    server = await asyncio.start_server(handler, "127.0.0.1", 0, **kwargs)
    return server, server.sockets[0].getsockname()


class TestTcpStreams:
    def test_echo(self, loop):
        async def main():
            server, (host, port) = await tcp_server(upper_echo)
            async with server:
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    assert isinstance(reader, asyncio.StreamReader)
                    assert isinstance(writer, asyncio.StreamWriter)
                    writer.write(b"hello\n")
                    await writer.drain()
                    assert await reader.readline() == b"HELLO\n"
                    writer.writelines([b"two ", b"parts\n"])
                    assert await reader.readline() == b"TWO PARTS\n"
                    assert writer.can_write_eof()
                    writer.write_eof()
                    # The server echoes nothing more and closes.
                    assert await reader.read() == b""
                    assert reader.at_eof()
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_writer_extra_info_and_transport(self, loop):
        async def main():
            server_names = []

            async def handler(reader, writer):
                server_names.append((writer.get_extra_info("sockname"),
                                     writer.get_extra_info("peername")))
                await close_writer(writer)

            server, address = await tcp_server(handler)
            async with server:
                reader, writer = await asyncio.open_connection(*address)
                try:
                    assert writer.get_extra_info("peername") == address
                    sockname = writer.get_extra_info("sockname")
                    assert isinstance(writer.transport, asyncio.Transport)
                    assert writer.get_extra_info("socket").family == socket.AF_INET
                    assert await reader.read() == b""
                    assert server_names == [(address, sockname)]
                finally:
                    await close_writer(writer)
                assert writer.is_closing()

        run_guarded(loop, main())

    def test_readexactly_and_incomplete_read_error(self, loop):
        async def handler(reader, writer):
            writer.write(b"0123456789partial")
            await close_writer(writer)

        async def main():
            server, address = await tcp_server(handler)
            async with server:
                reader, writer = await asyncio.open_connection(*address)
                try:
                    assert await reader.readexactly(10) == b"0123456789"
                    with pytest.raises(asyncio.IncompleteReadError) as info:
                        await reader.readexactly(100)
                    assert info.value.partial == b"partial"
                    assert info.value.expected == 100
                    assert isinstance(info.value, EOFError)
                    assert reader.at_eof()
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_readline_readuntil_and_read_at_eof(self, loop):
        async def handler(reader, writer):
            writer.write(b"line one\nrecord\r\nrest of it\nno newline")
            await close_writer(writer)

        async def main():
            server, address = await tcp_server(handler)
            async with server:
                reader, writer = await asyncio.open_connection(*address)
                try:
                    assert await reader.readline() == b"line one\n"
                    assert await reader.readuntil(b"\r\n") == b"record\r\n"
                    assert await reader.read(4) == b"rest"
                    assert await reader.readline() == b" of it\n"
                    # At EOF readline() returns the partial line, then b"".
                    assert await reader.readline() == b"no newline"
                    assert await reader.readline() == b""
                    assert await reader.read() == b""
                    with pytest.raises(asyncio.IncompleteReadError) as info:
                        await reader.readuntil(b"\n")
                    assert info.value.partial == b""
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_limit_is_passed_to_the_reader(self, loop):
        async def handler(reader, writer):
            writer.write(b"x" * 100 + b"\n")
            await close_writer(writer)

        async def main():
            server, address = await tcp_server(handler)
            async with server:
                reader, writer = await asyncio.open_connection(*address, limit=10)
                try:
                    with pytest.raises(ValueError, match="limit"):
                        await reader.readline()
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_drain_waits_for_the_peer_to_read(self, loop):
        payload = pattern(16 * 1024 * 1024, seed=1)

        async def main():
            start_reading = loop.create_future()
            received = loop.create_future()

            async def handler(reader, writer):
                try:
                    await start_reading
                    received.set_result(await reader.readexactly(len(payload)))
                finally:
                    await close_writer(writer)

            server, address = await tcp_server(handler)
            async with server:
                reader, writer = await asyncio.open_connection(*address)
                try:
                    writer.write(payload)
                    transport = writer.transport
                    low, high = transport.get_write_buffer_limits()
                    # More than the kernel accepted is buffered: writing is paused.
                    assert transport.get_write_buffer_size() > high
                    drain = loop.create_task(writer.drain())
                    await assert_pending(drain)
                    start_reading.set_result(None)
                    await drain
                    assert transport.get_write_buffer_size() <= low
                    assert await received == payload
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_many_concurrent_clients(self, loop):
        async def main():
            server, address = await tcp_server(upper_echo)

            async def client(i):
                reader, writer = await asyncio.open_connection(*address)
                try:
                    writer.write(f"client {i}\n".encode())
                    await writer.drain()
                    return await reader.readline()
                finally:
                    await close_writer(writer)

            async with server:
                replies = await asyncio.gather(*(client(i) for i in range(20)))
            assert replies == [f"CLIENT {i}\n".encode() for i in range(20)]

        run_guarded(loop, main())

    def test_open_connection_refused(self, loop):
        with refusing_port() as port:
            with pytest.raises(ConnectionRefusedError):
                run_guarded(loop, asyncio.open_connection("127.0.0.1", port))

    def test_start_server_serve_forever_and_cancel(self, loop):
        async def main():
            server, address = await tcp_server(upper_echo, start_serving=False)
            assert not server.is_serving()
            task = loop.create_task(server.serve_forever())
            try:
                while not server.is_serving():
                    await asyncio.sleep(0)
                reader, writer = await asyncio.open_connection(*address)
                try:
                    writer.write(b"forever\n")
                    assert await reader.readline() == b"FOREVER\n"
                finally:
                    await close_writer(writer)
            finally:
                task.cancel()
                await asyncio.wait([task])
            assert task.cancelled()
            assert not server.is_serving()

        run_guarded(loop, main())


class TestStartTls:
    def test_upgrade_both_ends(self, loop, ssl_contexts):
        server_ctx, client_ctx = ssl_contexts

        async def handler(reader, writer):
            assert await reader.readline() == b"starttls\n"
            writer.write(b"go\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            writer.write((await reader.readline()).upper())
            await writer.drain()
            await close_writer(writer)

        async def main():
            server, addr = await tcp_server(handler)
            async with server:
                reader, writer = await asyncio.open_connection(*addr)
                writer.write(b"starttls\n")
                assert await reader.readline() == b"go\n"
                await writer.start_tls(client_ctx)
                assert writer.get_extra_info("ssl_object") is not None
                writer.write(b"ping\n")
                assert await reader.readline() == b"PING\n"
                await close_writer(writer)

        run_guarded(loop, main())

    @pytest.mark.skipif(sys.version_info < (3, 14, 4),
                        reason="the reader's buffer stays in the reader before 3.14.4")
    def test_server_side_takes_what_the_reader_buffered(self, loop, ssl_contexts):
        # The client starts TLS at once: its ClientHello is in the server's
        # reader when the server calls start_tls() (gh-142352).
        server_ctx, client_ctx = ssl_contexts
        errors = []

        async def handler(reader, writer):
            await reader._wait_for_data("test")
            assert reader._buffer
            await writer.start_tls(server_ctx)
            writer.write((await reader.readline()).upper())
            await writer.drain()
            await close_writer(writer)

        async def main():
            loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
            server, addr = await tcp_server(handler)
            async with server:
                reader, writer = await asyncio.open_connection(*addr)
                await writer.start_tls(client_ctx)
                writer.write(b"ping\n")
                assert await reader.readline() == b"PING\n"
                await close_writer(writer)

        run_guarded(loop, main())
        assert errors == []


class TestUnixStreams:
    def test_echo(self, loop, tmp_path):
        path = str(tmp_path / "streams.sock")

        async def main():
            server = await asyncio.start_unix_server(upper_echo, path)
            async with server:
                assert server.sockets[0].getsockname() == path
                reader, writer = await asyncio.open_unix_connection(path)
                try:
                    assert writer.get_extra_info("peername") == path
                    writer.write(b"unix\n")
                    await writer.drain()
                    assert await reader.readline() == b"UNIX\n"
                    writer.write_eof()
                    assert await reader.read() == b""
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_open_unix_connection_sock(self, loop, tmp_path):
        path = str(tmp_path / "sock.sock")

        async def main():
            server = await asyncio.start_unix_server(upper_echo, path)
            async with server:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(path)
                except BaseException:
                    sock.close()
                    raise
                reader, writer = await asyncio.open_unix_connection(sock=sock)
                try:
                    writer.write(b"via sock\n")
                    assert await reader.readline() == b"VIA SOCK\n"
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_incomplete_read(self, loop, tmp_path):
        path = str(tmp_path / "short.sock")

        async def handler(reader, writer):
            writer.write(b"short")
            await close_writer(writer)

        async def main():
            server = await asyncio.start_unix_server(handler, path)
            async with server:
                reader, writer = await asyncio.open_unix_connection(path)
                try:
                    with pytest.raises(asyncio.IncompleteReadError) as info:
                        await reader.readexactly(6)
                    assert info.value.partial == b"short"
                finally:
                    await close_writer(writer)

        run_guarded(loop, main())

    def test_missing_path(self, loop, tmp_path):
        with pytest.raises(FileNotFoundError):
            run_guarded(loop, asyncio.open_unix_connection(str(tmp_path / "missing.sock")))

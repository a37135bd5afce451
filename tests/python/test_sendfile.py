"""loop.sendfile() over TCP (and TLS) transports, and loop.sock_sendfile()
on stream sockets.  Files live in tmp_path.  Every test runs on asyncuv and
on the stock asyncio loop (the reference)."""

import asyncio
import io
import os
import socket
import ssl
import sys

import pytest

from support import (
    RecordingProtocol,
    assert_cancelled,
    assert_pending,
    close_transports,
    connected_pair,
    run_guarded,
    spin,
)

# From 3.14.6 on (gh-150107) asyncio seeks the file to the offset first, 0
# included, and leaves the position after what was sent even when nothing
# was; before, only a non-zero offset was sought, and a transfer that sent
# nothing left the position alone.
ALWAYS_SEEK = sys.version_info >= (3, 14, 6)

# A throw-away self-signed EC key and certificate for CN=localhost; the
# client does not verify it.
KEY_AND_CERT = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLgDsfwHietck4NK1
OZFDPEbjADSR9b9rP/+1F/cFPuShRANCAAQrzCvammfq6jk602UuSSTjzttBS1b7
tomuMfqQfo8AhBuRmvFHIXz6tHHrzpmIpAv5y3ijNGQ/f/tJDm9cevJE
-----END PRIVATE KEY-----
-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUeOHskvHmPliEnAYv3RL8dzVawRswCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMTE1NTcxOVoYDzIxMjYxMDI4
MTU1NzE5WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQrzCvammfq6jk602UuSSTjzttBS1b7tomuMfqQfo8AhBuRmvFHIXz6
tHHrzpmIpAv5y3ijNGQ/f/tJDm9cevJEo1MwUTAdBgNVHQ4EFgQUMGp9KPV9i8qf
6PP/Tb7Yk8ubWhMwHwYDVR0jBBgwFoAUMGp9KPV9i8qf6PP/Tb7Yk8ubWhMwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA1bNf5yjuC9WvG72m6ElT
hk8ThyVE66zYoCaoH7BuBD8CIBcOp3rICFj+/9H3Oxy6/8KsSpjJDxSqOPARSpn/
cv+B
-----END CERTIFICATE-----
"""

# Kernel socket buffers used where a test needs the transfer to block.
SMALL_BUFFER = 32 * 1024


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def data_file(tmp_path):
    """A factory: data_file(content) -> path of a file holding it."""
    counter = [0]

    def make(content):
        counter[0] += 1
        path = tmp_path / f"data{counter[0]}.bin"
        path.write_bytes(content)
        return path

    return make


@pytest.fixture
def ssl_contexts(tmp_path):
    path = tmp_path / "keycert.pem"
    path.write_text(KEY_AND_CERT)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(path)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return server, client


async def small_buffer_pair(loop):
    """Like connected_pair() but with small kernel buffers on both ends, so
    that a paused reader really stops the sender.  Returns (client, peer,
    server)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = loop.create_future()

    def server_factory():
        proto = RecordingProtocol(loop)
        if not accepted.done():
            accepted.set_result(proto)
        return proto

    server = await loop.create_server(server_factory, sock=listener)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    sock.setblocking(False)
    await loop.sock_connect(sock, listener.getsockname())
    _, client = await loop.create_connection(lambda: RecordingProtocol(loop), sock=sock)
    peer = await accepted
    await peer.made
    return client, peer, server


class TestLoopSendfile:
    def test_whole_file(self, loop, data_file):
        content = pattern(300 * 1024 + 7)
        path = data_file(content)

        async def main():
            async with connected_pair(loop) as (client, peer):
                with open(path, "rb") as f:
                    sent = await loop.sendfile(client.transport, f)
                    assert sent == len(content)
                    assert f.tell() == len(content)
                assert await peer.read_at_least(len(content)) == content
                assert client.transport.is_closing() is False

        run_guarded(loop, main())

    @pytest.mark.parametrize("offset, count", [
        (0, 1), (1000, 5000), (1000, None), (0, 10 ** 9), (299_999, 100),
    ])
    def test_offset_and_count(self, loop, data_file, offset, count):
        content = pattern(300_000)
        path = data_file(content)
        expected = content[offset:offset + count if count else None]

        async def main():
            async with connected_pair(loop) as (client, peer):
                with open(path, "rb") as f:
                    f.seek(12345)  # ignored: offset is explicit
                    sent = await loop.sendfile(client.transport, f, offset, count)
                    assert sent == len(expected)
                    assert f.tell() == offset + len(expected)
                client.transport.write(b"|end")
                data = await peer.read_at_least(len(expected) + 4)
                assert data == expected + b"|end"

        run_guarded(loop, main())

    def test_offset_past_the_end_sends_nothing(self, loop, data_file):
        path = data_file(b"short")

        async def main():
            async with connected_pair(loop) as (client, peer):
                with open(path, "rb") as f:
                    assert await loop.sendfile(client.transport, f, 100) == 0
                    assert f.tell() == (100 if ALWAYS_SEEK else 0)
                client.transport.write(b"only this")
                assert await peer.read_at_least(9) == b"only this"

        run_guarded(loop, main())

    def test_empty_file(self, loop, data_file):
        path = data_file(b"")

        async def main():
            async with connected_pair(loop) as (client, peer):
                with open(path, "rb") as f:
                    assert await loop.sendfile(client.transport, f) == 0
                    assert f.tell() == 0
                client.transport.write(b"after")
                assert await peer.read_at_least(5) == b"after"

        run_guarded(loop, main())

    def test_data_written_before_and_after_keeps_its_order(self, loop, data_file):
        content = pattern(200 * 1024, 1)
        path = data_file(content)
        before = pattern(1024 * 1024, 2)

        async def main():
            client, peer, server = await small_buffer_pair(loop)
            try:
                tr = client.transport
                peer.transport.pause_reading()
                tr.write(b"<pre>")
                tr.write(before)  # more than the kernel takes while paused
                assert tr.get_write_buffer_size() > 0
                with open(path, "rb") as f:
                    task = asyncio.ensure_future(loop.sendfile(tr, f))
                    await assert_pending(task)
                    peer.transport.resume_reading()
                    assert await task == len(content)
                tr.write(b"<post>")
                expected = b"<pre>" + before + content + b"<post>"
                assert await peer.read_at_least(len(expected)) == expected
            finally:
                await close_transports(client, peer)
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_large_file_with_a_slow_reader(self, loop, data_file):
        content = pattern(8 * 1024 * 1024, 3)
        path = data_file(content)

        async def main():
            client, peer, server = await small_buffer_pair(loop)
            try:
                peer.transport.pause_reading()
                with open(path, "rb") as f:
                    task = asyncio.ensure_future(loop.sendfile(client.transport, f))
                    await assert_pending(task, 20)
                    # Read in small steps, pausing in between.
                    while not task.done():
                        peer.transport.resume_reading()
                        await peer.read_at_least(len(peer.data) + 1)
                        peer.transport.pause_reading()
                        await spin(2)
                    peer.transport.resume_reading()
                    assert await task == len(content)
                    assert f.tell() == len(content)
                assert await peer.read_at_least(len(content)) == content
            finally:
                await close_transports(client, peer)
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_reading_resumes_afterwards(self, loop, data_file):
        path = data_file(b"file")

        async def main():
            async with connected_pair(loop) as (client, peer):
                with open(path, "rb") as f:
                    await loop.sendfile(client.transport, f)
                assert client.transport.is_reading() is True
                peer.transport.write(b"answer")
                assert await client.read_at_least(6) == b"answer"

        run_guarded(loop, main())

    def test_paused_reading_stays_paused(self, loop, data_file):
        path = data_file(b"file")

        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.pause_reading()
                with open(path, "rb") as f:
                    await loop.sendfile(client.transport, f)
                assert client.transport.is_reading() is False
                peer.transport.write(b"held")
                await spin()
                assert client.data == b""
                client.transport.resume_reading()
                assert await client.read_at_least(4) == b"held"

        run_guarded(loop, main())

    def test_not_a_regular_file_falls_back(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                buf = io.BytesIO(b"in memory")
                assert await loop.sendfile(client.transport, buf) == 9
                assert buf.tell() == 9
                assert await peer.read_at_least(9) == b"in memory"

        run_guarded(loop, main())

    def test_not_a_regular_file_is_sent_from_offset_zero(self, loop):
        # Where the file already is does not matter from 3.14.6 on; before,
        # an offset of 0 sent from the file's current position.
        async def main():
            async with connected_pair(loop) as (client, peer):
                buf = io.BytesIO(b"skipped|in memory")
                buf.seek(8)
                expected = b"skipped|in memory" if ALWAYS_SEEK else b"in memory"
                assert await loop.sendfile(client.transport, buf) == len(expected)
                assert buf.tell() == (17 if ALWAYS_SEEK else 9)
                assert await peer.read_at_least(len(expected)) == expected

        run_guarded(loop, main())

    def test_not_a_regular_file_without_fallback(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                with pytest.raises(asyncio.SendfileNotAvailableError, match="not a regular file"):
                    await loop.sendfile(client.transport, io.BytesIO(b"x"), fallback=False)
                assert client.transport.is_closing() is False
                assert client.transport.is_reading() is True
                client.transport.write(b"usable")
                assert await peer.read_at_least(6) == b"usable"

        run_guarded(loop, main())

    def test_text_file_is_rejected(self, loop, data_file):
        path = data_file(b"text")

        async def main():
            async with connected_pair(loop) as (client, peer):
                with open(path, "r") as f:
                    with pytest.raises(ValueError, match="file should be opened in binary mode"):
                        await loop.sendfile(client.transport, f)
                assert client.transport.is_closing() is False
                assert client.transport.is_reading() is True
                client.transport.write(b"usable")
                assert await peer.read_at_least(6) == b"usable"

        run_guarded(loop, main())

    @pytest.mark.parametrize("kwargs, exc_type, message", [
        ({"count": 0}, ValueError, r"count must be a positive integer \(got 0\)"),
        ({"count": -1}, ValueError, r"count must be a positive integer \(got -1\)"),
        ({"count": "1"}, TypeError, r"count must be a positive integer \(got '1'\)"),
        ({"offset": -1}, ValueError, r"offset must be a non-negative integer \(got -1\)"),
        ({"offset": 1.0}, TypeError, r"offset must be a non-negative integer \(got 1.0\)"),
    ])
    def test_invalid_offset_or_count(self, loop, data_file, kwargs, exc_type, message):
        path = data_file(b"data")

        async def main():
            async with connected_pair(loop) as (client, peer):
                with open(path, "rb") as f:
                    with pytest.raises(exc_type, match=message):
                        await loop.sendfile(client.transport, f, **kwargs)
                    assert f.tell() == 0

        run_guarded(loop, main())

    def test_closing_transport(self, loop, data_file):
        path = data_file(b"data")

        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.close()
                with open(path, "rb") as f:
                    with pytest.raises(RuntimeError, match="^Transport is closing$"):
                        await loop.sendfile(client.transport, f)
                    assert f.tell() == 0

        run_guarded(loop, main())

    def test_transport_without_sendfile_support(self, loop, data_file):
        path = data_file(b"data")
        r, w = os.pipe()

        async def main():
            with open(r, "rb", buffering=0) as rf:
                tr, proto = await loop.connect_write_pipe(
                    lambda: RecordingProtocol(loop), open(w, "wb", buffering=0))
                try:
                    with open(path, "rb") as f:
                        with pytest.raises(RuntimeError, match="sendfile is not supported for transport"):
                            await loop.sendfile(tr, f)
                finally:
                    tr.close()
                    await proto.lost

        run_guarded(loop, main())

    def test_tls_transport_uses_the_fallback(self, loop, data_file, ssl_contexts):
        content = pattern(500 * 1024, 4)
        path = data_file(content)
        server_ctx, client_ctx = ssl_contexts

        async def main():
            peer = RecordingProtocol(loop)
            server = await loop.create_server(lambda: peer, "127.0.0.1", 0, ssl=server_ctx)
            try:
                tr, client = await loop.create_connection(
                    lambda: RecordingProtocol(loop), *server.sockets[0].getsockname(),
                    ssl=client_ctx)
                try:
                    with open(path, "rb") as f:
                        assert await loop.sendfile(tr, f, 1000, 400_000) == 400_000
                        assert f.tell() == 401_000
                    assert await peer.read_at_least(400_000) == content[1000:401_000]
                finally:
                    await close_transports(client, peer)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_tls_transport_without_fallback(self, loop, data_file, ssl_contexts):
        """A TLS transport cannot use the syscall; with fallback=False the
        stock loop raises RuntimeError (not SendfileNotAvailableError)."""
        path = data_file(b"data")
        server_ctx, client_ctx = ssl_contexts

        async def main():
            peer = RecordingProtocol(loop)
            server = await loop.create_server(lambda: peer, "127.0.0.1", 0, ssl=server_ctx)
            try:
                tr, client = await loop.create_connection(
                    lambda: RecordingProtocol(loop), *server.sockets[0].getsockname(),
                    ssl=client_ctx)
                try:
                    with open(path, "rb") as f:
                        with pytest.raises(RuntimeError) as info:
                            await loop.sendfile(tr, f, fallback=False)
                        assert not isinstance(info.value, asyncio.SendfileNotAvailableError)
                        assert str(info.value).startswith(
                            "fallback is disabled and native sendfile is not supported "
                            "for transport")
                        assert f.tell() == 0
                    tr.write(b"still usable")
                    assert await peer.read_at_least(12) == b"still usable"
                finally:
                    await close_transports(client, peer)
            finally:
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())


@pytest.fixture(params=["tcp", "unix"])
def stream_pair(request):
    """A connected, non-blocking stream socket pair (sender, receiver)."""
    if request.param == "unix":
        a, b = socket.socketpair()
    else:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            a = socket.create_connection(listener.getsockname())
            b, _ = listener.accept()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


async def sock_read_exactly(loop, sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, min(size - len(data), 1024 * 1024))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


class TestSockSendfile:
    def test_whole_file(self, loop, data_file, stream_pair):
        a, b = stream_pair
        content = pattern(4 * 1024 * 1024 + 3, 5)
        path = data_file(content)

        async def main():
            reader = asyncio.ensure_future(sock_read_exactly(loop, b, len(content)))
            try:
                with open(path, "rb") as f:
                    assert await loop.sock_sendfile(a, f) == len(content)
                    assert f.tell() == len(content)
                assert await reader == content
            finally:
                reader.cancel()

        run_guarded(loop, main())

    @pytest.mark.parametrize("offset, count", [(10, 100), (10, None), (0, 10 ** 9)])
    def test_offset_and_count(self, loop, data_file, stream_pair, offset, count):
        a, b = stream_pair
        content = pattern(100_000, 6)
        path = data_file(content)
        expected = content[offset:offset + count if count else None]

        async def main():
            reader = asyncio.ensure_future(sock_read_exactly(loop, b, len(expected) + 4))
            try:
                with open(path, "rb") as f:
                    sent = await loop.sock_sendfile(a, f, offset, count)
                    assert sent == len(expected)
                    assert f.tell() == offset + len(expected)
                await loop.sock_sendall(a, b"|end")
                assert await reader == expected + b"|end"
            finally:
                reader.cancel()

        run_guarded(loop, main())

    def test_empty_file(self, loop, data_file, stream_pair):
        a, b = stream_pair
        path = data_file(b"")

        async def main():
            with open(path, "rb") as f:
                assert await loop.sock_sendfile(a, f) == 0
                assert f.tell() == 0
            await loop.sock_sendall(a, b"x")
            assert await sock_read_exactly(loop, b, 1) == b"x"

        run_guarded(loop, main())

    def test_not_a_regular_file(self, loop, stream_pair):
        a, b = stream_pair

        async def main():
            with pytest.raises(asyncio.SendfileNotAvailableError, match="not a regular file"):
                await loop.sock_sendfile(a, io.BytesIO(b"memory"), fallback=False)
            buf = io.BytesIO(b"memory")
            assert await loop.sock_sendfile(a, buf, 1, 4) == 4
            assert buf.tell() == 5
            assert await sock_read_exactly(loop, b, 4) == b"emor"

        run_guarded(loop, main())

    def test_offset_past_the_end_sends_nothing(self, loop, data_file, stream_pair):
        a, b = stream_pair
        path = data_file(b"short")

        async def main():
            with open(path, "rb") as f:
                f.seek(2)
                assert await loop.sock_sendfile(a, f, 100) == 0
                assert f.tell() == (100 if ALWAYS_SEEK else 2)
            await loop.sock_sendall(a, b"x")
            assert await sock_read_exactly(loop, b, 1) == b"x"

        run_guarded(loop, main())

    def test_blocking_socket_is_rejected_in_debug_mode(self, loop, data_file):
        path = data_file(b"data")
        loop.set_debug(True)
        a, b = socket.socketpair()
        with a, b, open(path, "rb") as f:
            with pytest.raises(ValueError, match="the socket must be non-blocking"):
                run_guarded(loop, loop.sock_sendfile(a, f))

    def test_datagram_socket_is_rejected(self, loop, data_file):
        path = data_file(b"data")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, open(path, "rb") as f:
            sock.setblocking(False)
            with pytest.raises(ValueError, match="only SOCK_STREAM type sockets are supported"):
                run_guarded(loop, loop.sock_sendfile(sock, f))

    def test_text_file_is_rejected(self, loop, data_file, stream_pair):
        a, b = stream_pair
        path = data_file(b"data")
        with open(path, "r") as f:
            with pytest.raises(ValueError, match="file should be opened in binary mode"):
                run_guarded(loop, loop.sock_sendfile(a, f))

    def test_ssl_socket_is_rejected(self, loop, data_file, ssl_contexts):
        path = data_file(b"data")
        _, client_ctx = ssl_contexts
        with client_ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False) as sock, \
                open(path, "rb") as f:
            sock.setblocking(False)
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                run_guarded(loop, loop.sock_sendfile(sock, f))

    @pytest.mark.parametrize("kwargs, exc_type, message", [
        ({"count": 0}, ValueError, r"count must be a positive integer \(got 0\)"),
        ({"count": 1.5}, TypeError, r"count must be a positive integer \(got 1.5\)"),
        ({"offset": -5}, ValueError, r"offset must be a non-negative integer \(got -5\)"),
        ({"offset": "0"}, TypeError, r"offset must be a non-negative integer \(got '0'\)"),
    ])
    def test_invalid_offset_or_count(self, loop, data_file, stream_pair, kwargs, exc_type, message):
        a, b = stream_pair
        path = data_file(b"data")
        with open(path, "rb") as f:
            with pytest.raises(exc_type, match=message):
                run_guarded(loop, loop.sock_sendfile(a, f, **kwargs))

    def test_peer_closed(self, loop, data_file):
        content = pattern(1024 * 1024, 7)
        path = data_file(content)
        a, b = socket.socketpair()
        a.setblocking(False)
        with a, open(path, "rb") as f:
            b.close()
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                run_guarded(loop, loop.sock_sendfile(a, f))

    def test_cancelled_transfer_leaves_the_socket_usable(self, loop, data_file):
        content = pattern(8 * 1024 * 1024, 8)
        path = data_file(content)
        marker = b"<marker>"
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b, open(path, "rb") as f:
            async def main():
                task = asyncio.ensure_future(loop.sock_sendfile(a, f))
                await assert_pending(task)
                task.cancel()
                await assert_cancelled(task)
                sender = asyncio.ensure_future(loop.sock_sendall(a, marker))
                received = bytearray()
                while not received.endswith(marker):
                    chunk = await loop.sock_recv(b, 1024 * 1024)
                    assert chunk
                    received += chunk
                await sender
                body = bytes(received[:-len(marker)])
                assert body == content[:len(body)]

            run_guarded(loop, main())

    def test_cancelled_transfer_leaves_the_file_position(self, loop, data_file):
        # asyncio's cancellation callback only stops watching the socket:
        # the file stays where the caller left it, not after what was sent.
        content = pattern(8 * 1024 * 1024, 9)
        path = data_file(content)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b, open(path, "rb") as f:
            async def main():
                f.seek(7)
                task = asyncio.ensure_future(loop.sock_sendfile(a, f, 100))
                await assert_pending(task)
                task.cancel()
                await assert_cancelled(task)
                assert f.tell() == 7
                # What went out is the file from the offset on.
                received = await loop.sock_recv(b, 65536)
                assert received == content[100:100 + len(received)]

            run_guarded(loop, main())

    def test_peer_gone_midway(self, loop, data_file):
        # Once bytes went out, sendfile(2)'s error is raised as it is (no
        # fallback), and the file is left after what was sent.
        content = pattern(8 * 1024 * 1024, 10)
        path = data_file(content)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, open(path, "rb") as f:
            async def main():
                task = asyncio.ensure_future(loop.sock_sendfile(a, f))
                received = await sock_read_exactly(loop, b, 100_000)
                assert received == content[:100_000]
                b.close()
                with pytest.raises((BrokenPipeError, ConnectionResetError)):
                    await task
                assert 100_000 <= f.tell() < len(content)

            try:
                run_guarded(loop, main())
            finally:
                b.close()

    def test_peer_gone_before_without_fallback(self, loop, data_file):
        # A first sendfile(2) that fails says sendfile is not available.
        path = data_file(pattern(1000, 11))
        a, b = socket.socketpair()
        a.setblocking(False)
        b.close()
        with a, open(path, "rb") as f:
            with pytest.raises(asyncio.SendfileNotAvailableError,
                               match="os.sendfile call failed"):
                run_guarded(loop, loop.sock_sendfile(a, f, fallback=False))
            assert f.tell() == 0

    def test_count_on_an_empty_file(self, loop, data_file, stream_pair):
        a, b = stream_pair
        path = data_file(b"")

        async def main():
            with open(path, "rb") as f:
                assert await loop.sock_sendfile(a, f, 0, 5) == 0
                assert f.tell() == 0
            await loop.sock_sendall(a, b"x")
            assert await sock_read_exactly(loop, b, 1) == b"x"

        run_guarded(loop, main())

    def test_blocking_socket_keeps_its_mode(self, loop, data_file):
        # Out of debug mode a blocking socket is not refused, and asyncio
        # leaves its blocking mode alone.
        content = pattern(10_000, 12)
        path = data_file(content)
        loop.set_debug(False)
        a, b = socket.socketpair()
        with a, b, open(path, "rb") as f:
            assert run_guarded(loop, loop.sock_sendfile(a, f, 10)) == len(content) - 10
            assert f.tell() == len(content)
            assert os.get_blocking(a.fileno())
            data = b""
            while len(data) < len(content) - 10:
                data += b.recv(65536)
            assert data == content[10:]

    def test_loop_closed_with_a_transfer_running(self, loop, data_file):
        # close() forgets the transfer, as asyncio's selector forgets its
        # writer: no error, the task stays pending, the file unmoved.
        content = pattern(8 * 1024 * 1024, 13)
        path = data_file(content)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b, open(path, "rb") as f:
            async def start():
                task = asyncio.ensure_future(loop.sock_sendfile(a, f))
                await assert_pending(task)
                return task

            task = run_guarded(loop, start())
            loop.close()
            assert not task.done()
            task._log_destroy_pending = False
            assert f.tell() == 0
            assert not os.get_blocking(a.fileno())

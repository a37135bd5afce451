"""The loop's low-level socket coroutines: sock_recv, sock_recv_into,
sock_sendall, sock_connect, sock_accept, sock_recvfrom, sock_recvfrom_into
and sock_sendto.  Loopback only.  Every test runs on asyncuv and on the
stock asyncio loop (the reference)."""

import contextlib
import errno
import socket

import pytest

from support import (
    assert_cancelled,
    assert_pending,
    refusing_port,
    run_guarded,
    tcp_listener,
)

SMALL_BUFFER = 8192


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


@contextlib.contextmanager
def stream_pair(kind, small_buffers=False):
    """Two connected, non-blocking stream sockets ('unix' socketpair or a
    'tcp' connection on 127.0.0.1)."""
    if kind == "unix":
        a, b = socket.socketpair()
        if small_buffers:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    else:
        with socket.socket() as listener:
            if small_buffers:
                # Set before connecting so that TCP autotuning is off.
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            a = socket.socket()
            if small_buffers:
                a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
            a.connect(listener.getsockname())
            b, _ = listener.accept()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        yield a, b


@contextlib.contextmanager
def udp_pair():
    """Two non-blocking UDP sockets bound to 127.0.0.1."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.setblocking(False)
        b.setblocking(False)
        yield a, b


PAIR_KINDS = ["unix", "tcp"]


class TestSockRecv:
    @pytest.mark.parametrize("kind", PAIR_KINDS)
    def test_returns_data_already_available(self, loop, kind):
        with stream_pair(kind) as (a, b):
            async def main():
                b.sendall(b"ready")
                data = b""
                while len(data) < 5:
                    data += await loop.sock_recv(a, 100)
                assert data == b"ready"

            run_guarded(loop, main())

    @pytest.mark.parametrize("kind", PAIR_KINDS)
    def test_waits_for_data(self, loop, kind):
        with stream_pair(kind) as (a, b):
            async def main():
                task = loop.create_task(loop.sock_recv(a, 100))
                await assert_pending(task)
                b.sendall(b"late")
                assert await task == b"late"

            run_guarded(loop, main())

    def test_returns_at_most_nbytes(self, loop):
        with stream_pair("unix") as (a, b):
            async def main():
                b.sendall(b"0123456789")
                assert await loop.sock_recv(a, 4) == b"0123"
                assert await loop.sock_recv(a, 100) == b"456789"

            run_guarded(loop, main())

    @pytest.mark.parametrize("kind", PAIR_KINDS)
    def test_returns_empty_bytes_at_eof(self, loop, kind):
        with stream_pair(kind) as (a, b):
            async def main():
                task = loop.create_task(loop.sock_recv(a, 100))
                await assert_pending(task)
                b.shutdown(socket.SHUT_WR)
                assert await task == b""
                assert await loop.sock_recv(a, 100) == b""

            run_guarded(loop, main())

    def test_cancelled_recv_leaves_the_loop_consistent(self, loop):
        with stream_pair("unix") as (a, b):
            async def main():
                task = loop.create_task(loop.sock_recv(a, 100))
                await assert_pending(task)
                task.cancel()
                await assert_cancelled(task)
                # The cancelled call consumed nothing; a new one works.
                b.sendall(b"after cancel")
                assert await loop.sock_recv(a, 100) == b"after cancel"
                pending = loop.create_task(loop.sock_recv(a, 100))
                await assert_pending(pending)
                b.sendall(b"again")
                assert await pending == b"again"

            run_guarded(loop, main())

    def test_result_type_is_bytes(self, loop):
        with stream_pair("unix") as (a, b):
            async def main():
                b.sendall(b"x")
                assert type(await loop.sock_recv(a, 1)) is bytes

            run_guarded(loop, main())


class TestSockRecvInto:
    @pytest.mark.parametrize("kind", PAIR_KINDS)
    def test_fills_the_buffer(self, loop, kind):
        with stream_pair(kind) as (a, b):
            async def main():
                buf = bytearray(16)
                task = loop.create_task(loop.sock_recv_into(a, buf))
                await assert_pending(task)
                b.sendall(b"into")
                nbytes = await task
                assert nbytes == 4
                assert buf[:4] == b"into"
                assert buf[4:] == bytes(12)

            run_guarded(loop, main())

    def test_memoryview_target_and_limit(self, loop):
        with stream_pair("unix") as (a, b):
            async def main():
                buf = bytearray(b"." * 10)
                b.sendall(b"abcdefgh")
                nbytes = await loop.sock_recv_into(a, memoryview(buf)[2:5])
                assert nbytes == 3
                assert buf == b"..abc....."
                rest = bytearray(10)
                assert await loop.sock_recv_into(a, rest) == 5
                assert rest[:5] == b"defgh"

            run_guarded(loop, main())

    def test_returns_zero_at_eof(self, loop):
        with stream_pair("unix") as (a, b):
            async def main():
                b.shutdown(socket.SHUT_WR)
                assert await loop.sock_recv_into(a, bytearray(4)) == 0

            run_guarded(loop, main())


class TestSockSendall:
    @pytest.mark.parametrize("kind", PAIR_KINDS)
    def test_large_payload_to_a_slow_reader(self, loop, kind):
        payload = pattern(8 * 1024 * 1024, seed=5)

        with stream_pair(kind, small_buffers=True) as (a, b):
            async def main():
                send = loop.create_task(loop.sock_sendall(a, payload))
                # The payload cannot fit in the socket buffers: sendall waits.
                await assert_pending(send)
                received = bytearray()
                while len(received) < len(payload):
                    chunk = await loop.sock_recv(b, 65536)
                    assert chunk, "unexpected EOF"
                    received += chunk
                assert await send is None
                assert received == payload

            run_guarded(loop, main())

    @pytest.mark.parametrize("data", [b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview")])
    def test_bytes_like_objects(self, loop, data):
        with stream_pair("unix") as (a, b):
            async def main():
                assert await loop.sock_sendall(a, data) is None
                expected = bytes(data)
                got = b""
                while len(got) < len(expected):
                    got += await loop.sock_recv(b, 100)
                assert got == expected

            run_guarded(loop, main())

    def test_empty_payload(self, loop):
        with stream_pair("unix") as (a, b):
            async def main():
                assert await loop.sock_sendall(a, b"") is None

            run_guarded(loop, main())

    def test_concurrent_recv_and_sendall_on_one_socket(self, loop):
        payload = pattern(4 * 1024 * 1024, seed=9)

        with stream_pair("unix", small_buffers=True) as (a, b):
            async def main():
                # A reader and a writer waiting on the same fd at once.
                recv = loop.create_task(loop.sock_recv(a, 100))
                send = loop.create_task(loop.sock_sendall(a, payload))
                await assert_pending(recv)
                await assert_pending(send)
                b.send(b"reply")
                assert await recv == b"reply"
                received = bytearray()
                while len(received) < len(payload):
                    received += await loop.sock_recv(b, 65536)
                assert await send is None
                assert received == payload

            run_guarded(loop, main())


class TestSockConnect:
    def test_connects_to_a_listener(self, loop):
        with tcp_listener() as listener, socket.socket() as sock:
            sock.setblocking(False)

            async def main():
                assert await loop.sock_connect(sock, listener.getsockname()) is None
                assert sock.getpeername() == listener.getsockname()
                conn, addr = listener.accept()
                conn.close()
                assert addr == sock.getsockname()

            run_guarded(loop, main())

    def test_resolves_a_host_name(self, loop):
        with tcp_listener() as listener, socket.socket(socket.AF_INET) as sock:
            sock.setblocking(False)

            async def main():
                await loop.sock_connect(sock, ("localhost", listener.getsockname()[1]))
                assert sock.getpeername() == listener.getsockname()
                listener.accept()[0].close()

            run_guarded(loop, main())

    def test_connection_refused(self, loop):
        with refusing_port() as port, socket.socket() as sock:
            sock.setblocking(False)
            with pytest.raises(ConnectionRefusedError) as info:
                run_guarded(loop, loop.sock_connect(sock, ("127.0.0.1", port)))
            assert info.value.errno == errno.ECONNREFUSED

    def test_unix_path(self, loop, tmp_path):
        path = str(tmp_path / "listener.sock")
        with socket.socket(socket.AF_UNIX) as listener, socket.socket(socket.AF_UNIX) as sock:
            listener.bind(path)
            listener.listen(1)
            sock.setblocking(False)

            async def main():
                assert await loop.sock_connect(sock, path) is None
                assert sock.getpeername() == path
                listener.accept()[0].close()

            run_guarded(loop, main())

    def test_unix_missing_path(self, loop, tmp_path):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.setblocking(False)
            with pytest.raises(FileNotFoundError):
                run_guarded(loop, loop.sock_connect(sock, str(tmp_path / "missing.sock")))

    def test_connected_socket_carries_data(self, loop):
        with tcp_listener() as listener, socket.socket() as sock:
            sock.setblocking(False)

            async def main():
                await loop.sock_connect(sock, listener.getsockname())
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(b"hello")
                    data = b""
                    while len(data) < 5:
                        data += await loop.sock_recv(sock, 100)
                    assert data == b"hello"

            run_guarded(loop, main())


class TestSockAccept:
    def test_returns_a_non_blocking_connection_and_its_address(self, loop):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.setblocking(False)

            async def main():
                task = loop.create_task(loop.sock_accept(listener))
                await assert_pending(task)
                with socket.create_connection(listener.getsockname()) as client:
                    conn, address = await task
                    with conn:
                        assert isinstance(conn, socket.socket)
                        assert conn.gettimeout() == 0
                        assert address == client.getsockname()
                        assert conn.getpeername() == client.getsockname()
                        client.sendall(b"hi")
                        data = b""
                        while len(data) < 2:
                            data += await loop.sock_recv(conn, 10)
                        assert data == b"hi"

            run_guarded(loop, main())

    def test_connection_already_waiting(self, loop):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.setblocking(False)
            with socket.create_connection(listener.getsockname()) as client:
                async def main():
                    conn, address = await loop.sock_accept(listener)
                    conn.close()
                    assert address == client.getsockname()

                run_guarded(loop, main())

    def test_cancelled_accept_leaves_the_loop_consistent(self, loop):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.setblocking(False)

            async def main():
                task = loop.create_task(loop.sock_accept(listener))
                await assert_pending(task)
                task.cancel()
                await assert_cancelled(task)
                with socket.create_connection(listener.getsockname()) as client:
                    conn, address = await loop.sock_accept(listener)
                    conn.close()
                    assert address == client.getsockname()

            run_guarded(loop, main())

    def test_unix_listener(self, loop, tmp_path):
        path = str(tmp_path / "accept.sock")
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path)
            listener.listen(1)
            listener.setblocking(False)

            async def main():
                task = loop.create_task(loop.sock_accept(listener))
                await assert_pending(task)
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(path)
                    conn, address = await task
                    conn.close()
                    assert conn.family == socket.AF_UNIX
                    assert address == ""

            run_guarded(loop, main())


class TestDatagram:
    def test_sendto_and_recvfrom(self, loop):
        with udp_pair() as (a, b):
            async def main():
                task = loop.create_task(loop.sock_recvfrom(b, 100))
                await assert_pending(task)
                assert await loop.sock_sendto(a, b"datagram", b.getsockname()) == 8
                data, address = await task
                assert data == b"datagram"
                assert address == a.getsockname()

            run_guarded(loop, main())

    def test_recvfrom_truncates_to_bufsize(self, loop):
        with udp_pair() as (a, b):
            async def main():
                await loop.sock_sendto(a, b"0123456789", b.getsockname())
                data, address = await loop.sock_recvfrom(b, 4)
                assert data == b"0123"
                assert address == a.getsockname()

            run_guarded(loop, main())

    def test_datagram_boundaries_are_kept(self, loop):
        with udp_pair() as (a, b):
            async def main():
                for message in (b"one", b"two", b"three"):
                    await loop.sock_sendto(a, message, b.getsockname())
                got = [(await loop.sock_recvfrom(b, 100))[0] for _ in range(3)]
                assert got == [b"one", b"two", b"three"]

            run_guarded(loop, main())

    def test_recvfrom_into(self, loop):
        with udp_pair() as (a, b):
            async def main():
                buf = bytearray(16)
                task = loop.create_task(loop.sock_recvfrom_into(b, buf))
                await assert_pending(task)
                await loop.sock_sendto(a, b"into", b.getsockname())
                nbytes, address = await task
                assert nbytes == 4
                assert buf[:4] == b"into"
                assert address == a.getsockname()

            run_guarded(loop, main())

    def test_recvfrom_into_with_nbytes(self, loop):
        with udp_pair() as (a, b):
            async def main():
                buf = bytearray(16)
                await loop.sock_sendto(a, b"0123456789", b.getsockname())
                nbytes, address = await loop.sock_recvfrom_into(b, buf, 4)
                assert nbytes == 4
                assert buf[:4] == b"0123"
                assert buf[4:] == bytes(12)
                assert address == a.getsockname()

            run_guarded(loop, main())

    def test_sendto_bytes_like(self, loop):
        with udp_pair() as (a, b):
            async def main():
                assert await loop.sock_sendto(a, memoryview(b"view"), b.getsockname()) == 4
                assert await loop.sock_sendto(a, bytearray(b"array"), b.getsockname()) == 5
                assert (await loop.sock_recvfrom(b, 100))[0] == b"view"
                assert (await loop.sock_recvfrom(b, 100))[0] == b"array"

            run_guarded(loop, main())

    def test_cancelled_recvfrom_leaves_the_loop_consistent(self, loop):
        with udp_pair() as (a, b):
            async def main():
                task = loop.create_task(loop.sock_recvfrom(b, 100))
                await assert_pending(task)
                task.cancel()
                await assert_cancelled(task)
                await loop.sock_sendto(a, b"kept", b.getsockname())
                assert (await loop.sock_recvfrom(b, 100))[0] == b"kept"

            run_guarded(loop, main())


BLOCKING_CALLS = {
    "sock_recv": lambda loop, sock, addr: loop.sock_recv(sock, 1),
    "sock_recv_into": lambda loop, sock, addr: loop.sock_recv_into(sock, bytearray(1)),
    "sock_recvfrom": lambda loop, sock, addr: loop.sock_recvfrom(sock, 1),
    "sock_recvfrom_into": lambda loop, sock, addr: loop.sock_recvfrom_into(sock, bytearray(1)),
    "sock_sendall": lambda loop, sock, addr: loop.sock_sendall(sock, b"x"),
    "sock_sendto": lambda loop, sock, addr: loop.sock_sendto(sock, b"x", addr),
    "sock_connect": lambda loop, sock, addr: loop.sock_connect(sock, addr),
    "sock_accept": lambda loop, sock, addr: loop.sock_accept(sock),
}


class TestBlockingSocketRejected:
    """asyncio checks for blocking sockets in debug mode only."""

    @pytest.mark.parametrize("method", sorted(BLOCKING_CALLS))
    def test_blocking_socket_raises_value_error_in_debug_mode(self, loop, method):
        loop.set_debug(True)
        kind = socket.SOCK_DGRAM if "from" in method or "sendto" in method else socket.SOCK_STREAM
        with refusing_port() as port, socket.socket(socket.AF_INET, kind) as sock:
            assert sock.gettimeout() is None  # blocking
            with pytest.raises(ValueError, match="the socket must be non-blocking"):
                run_guarded(loop, BLOCKING_CALLS[method](loop, sock, ("127.0.0.1", port)))

"""loop.create_datagram_endpoint() and datagram transports: UDP over
127.0.0.1 and ::1, and AF_UNIX datagram sockets in tmp_path.  Every test
runs on asyncuv and on the stock asyncio loop (the reference)."""

import asyncio
import errno
import gc
import os
import socket
import stat
import sys

import pytest

from support import DATAGRAM_SOCKET_EXPECTED, Waker, _set_once, ipv6_loopback_available, run_guarded, spin

needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(), reason="this host cannot bind ::1")


class DatagramRecorder(Waker, asyncio.DatagramProtocol):
    """Records callbacks in ``events``; futures: made, lost, error; await
    ``receive(n)`` for the first n datagrams (data, addr)."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.events = []
        self.datagrams = []
        self.errors = []
        self.lost_calls = []
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.error = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        _set_once(self.made, transport)

    def datagram_received(self, data, addr):
        if not self.events or self.events[-1] != "datagram":
            self.events.append("datagram")
        self.datagrams.append((data, addr))
        self._wake()

    def error_received(self, exc):
        self.events.append("error")
        self.errors.append(exc)
        _set_once(self.error, exc)
        self._wake()

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost_calls.append(exc)
        _set_once(self.lost, exc)
        self._wake()

    async def receive(self, count):
        await self._until(lambda: len(self.datagrams) >= count or self.lost.done())
        return self.datagrams[:count]


class Echo(DatagramRecorder):
    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.transport.sendto(data, addr)


def recorder(loop, cls=DatagramRecorder):
    return lambda: cls(loop)


async def close_all(*protos):
    for proto in protos:
        if proto.transport is not None and not proto.lost.done():
            proto.transport.close()
    for proto in protos:
        if proto.transport is not None:
            await proto.lost


def free_udp_port(host="127.0.0.1", family=socket.AF_INET):
    """A port that nothing is bound to (bound once, then released)."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture
def udp_peer():
    """A plain non-blocking UDP socket on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock


async def recv_from(loop, sock, size=65536):
    return await loop.sock_recvfrom(sock, size)


class TestCreateDatagramEndpoint:
    def test_local_addr(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            try:
                # (The stock transport is not an asyncio.DatagramTransport.)
                assert isinstance(tr, asyncio.BaseTransport)
                assert isinstance(proto, DatagramRecorder)
                assert proto.events == ["made"]
                assert proto.transport is tr
                host, port = tr.get_extra_info("sockname")
                assert host == "127.0.0.1" and port > 0
                assert tr.get_extra_info("peername") is None
                sock = tr.get_extra_info("socket")
                assert sock.family == socket.AF_INET
                assert sock.type == socket.SOCK_DGRAM
                assert sock.getsockname() == (host, port)
                assert tr.get_extra_info("no-such-key", 42) == 42
                udp_peer.sendto(b"hello", (host, port))
                [(data, addr)] = await proto.receive(1)
                assert data == b"hello"
                assert addr == udp_peer.getsockname()
                tr.sendto(b"reply", addr)
                assert await recv_from(loop, udp_peer) == (b"reply", (host, port))
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_remote_addr_connects(self, loop, udp_peer):
        async def main():
            peer_addr = udp_peer.getsockname()
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=peer_addr)
            try:
                assert tr.get_extra_info("peername") == peer_addr
                sockname = tr.get_extra_info("sockname")
                assert sockname[0] == "127.0.0.1" and sockname[1] > 0
                tr.sendto(b"no address")
                tr.sendto(b"same address", peer_addr)
                assert await recv_from(loop, udp_peer) == (b"no address", sockname)
                assert await recv_from(loop, udp_peer) == (b"same address", sockname)
                udp_peer.sendto(b"back", sockname)
                assert await proto.receive(1) == [(b"back", peer_addr)]
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_connected_endpoint_ignores_other_senders(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                    stranger.bind(("127.0.0.1", 0))
                    stranger.sendto(b"filtered by the kernel", tr.get_extra_info("sockname"))
                    udp_peer.sendto(b"from the peer", tr.get_extra_info("sockname"))
                    assert await proto.receive(1) == [(b"from the peer", udp_peer.getsockname())]
                    await spin()
                    assert len(proto.datagrams) == 1
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_local_and_remote_addr(self, loop, udp_peer):
        async def main():
            port = free_udp_port()
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", port),
                remote_addr=udp_peer.getsockname())
            try:
                assert tr.get_extra_info("sockname") == ("127.0.0.1", port)
                assert tr.get_extra_info("peername") == udp_peer.getsockname()
                tr.sendto(b"both")
                assert await recv_from(loop, udp_peer) == (b"both", ("127.0.0.1", port))
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_host_names_are_resolved(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("localhost", 0),
                remote_addr=("localhost", udp_peer.getsockname()[1]),
                family=socket.AF_INET)
            try:
                assert tr.get_extra_info("peername") == udp_peer.getsockname()
                tr.sendto(b"by name")
                data, _ = await recv_from(loop, udp_peer)
                assert data == b"by name"
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_family_proto_and_flags(self, loop):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0), family=socket.AF_INET,
                proto=socket.IPPROTO_UDP, flags=socket.AI_PASSIVE)
            try:
                sock = tr.get_extra_info("socket")
                assert sock.family == socket.AF_INET
                assert sock.proto == socket.IPPROTO_UDP
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_family_only_gives_an_unbound_socket(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), family=socket.AF_INET)
            try:
                assert tr.get_extra_info("sockname") == ("0.0.0.0", 0)
                assert tr.get_extra_info("peername") is None
                tr.sendto(b"autobind", udp_peer.getsockname())
                data, addr = await recv_from(loop, udp_peer)
                assert data == b"autobind"
                assert addr[1] != 0
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_family_that_does_not_match_the_address(self, loop):
        with pytest.raises(socket.gaierror):
            run_guarded(loop, loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0), family=socket.AF_INET6))

    def test_reuse_port(self, loop):
        async def main():
            tr1, p1 = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0), reuse_port=True)
            try:
                addr = tr1.get_extra_info("sockname")
                tr2, p2 = await loop.create_datagram_endpoint(
                    recorder(loop), local_addr=addr, reuse_port=True)
                try:
                    assert tr2.get_extra_info("sockname") == addr
                    for tr in (tr1, tr2):
                        sock = tr.get_extra_info("socket")
                        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
                finally:
                    await close_all(p2)
            finally:
                await close_all(p1)

        run_guarded(loop, main())

    def test_address_in_use_without_reuse_port(self, loop):
        async def main():
            tr1, p1 = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            try:
                with pytest.raises(OSError) as info:
                    await loop.create_datagram_endpoint(
                        recorder(loop), local_addr=tr1.get_extra_info("sockname"))
                assert info.value.errno == errno.EADDRINUSE
            finally:
                await close_all(p1)

        run_guarded(loop, main())

    def test_allow_broadcast(self, loop, udp_peer):
        """With allow_broadcast the socket is not connected: remote_addr only
        becomes the default (and only) destination."""
        async def main():
            peer_addr = udp_peer.getsockname()
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0), remote_addr=peer_addr,
                allow_broadcast=True)
            try:
                sock = tr.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) != 0
                assert tr.get_extra_info("peername") is None
                tr.sendto(b"to the default")
                data, addr = await recv_from(loop, udp_peer)
                assert data == b"to the default"
                assert addr == tr.get_extra_info("sockname")
                with pytest.raises(ValueError, match="Invalid address"):
                    tr.sendto(b"elsewhere", ("127.0.0.1", 9))
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_broadcast_not_set_by_default(self, loop):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            try:
                sock = tr.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_sock(self, loop, udp_peer):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", 0))
            addr = sock.getsockname()

            async def main():
                tr, proto = await loop.create_datagram_endpoint(recorder(loop), sock=sock)
                assert sock.getblocking() is False
                assert tr.get_extra_info("sockname") == addr
                assert tr.get_extra_info("socket").fileno() == sock.fileno()
                udp_peer.sendto(b"via sock", addr)
                assert await proto.receive(1) == [(b"via sock", udp_peer.getsockname())]
                await close_all(proto)
                # The transport closed the socket it was given.
                assert sock.fileno() == -1

            run_guarded(loop, main())
        finally:
            sock.close()

    def test_sock_connected(self, loop, udp_peer):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect(udp_peer.getsockname())

            async def main():
                tr, proto = await loop.create_datagram_endpoint(recorder(loop), sock=sock)
                try:
                    assert tr.get_extra_info("peername") == udp_peer.getsockname()
                    tr.sendto(b"connected sock")
                    data, _ = await recv_from(loop, udp_peer)
                    assert data == b"connected sock"
                finally:
                    await close_all(proto)

            run_guarded(loop, main())
        finally:
            sock.close()

    @pytest.mark.parametrize("kwargs, shown", [
        ({"local_addr": ("127.0.0.1", 0)}, "local_addr=('127.0.0.1', 0)"),
        ({"remote_addr": ("127.0.0.1", 9)}, "remote_addr=('127.0.0.1', 9)"),
        ({"family": socket.AF_INET}, f"family={int(socket.AF_INET)}"),
        ({"proto": socket.IPPROTO_UDP}, "proto=17"),
        ({"flags": socket.AI_PASSIVE}, f"flags={int(socket.AI_PASSIVE)}"),
        ({"reuse_port": True}, "reuse_port=True"),
        ({"allow_broadcast": True}, "allow_broadcast=True"),
    ])
    def test_sock_with_other_arguments(self, loop, kwargs, shown):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(ValueError) as info:
                run_guarded(loop, loop.create_datagram_endpoint(
                    recorder(loop), sock=sock, **kwargs))
            assert str(info.value) == (
                "socket modifier keyword arguments can not be used when sock "
                f"is specified. ({shown})")
            assert sock.fileno() != -1

    @pytest.mark.parametrize("family, type_", [
        (socket.AF_INET, socket.SOCK_STREAM),
        (socket.AF_UNIX, socket.SOCK_STREAM),
    ])
    def test_sock_must_be_a_datagram_socket(self, loop, family, type_):
        with socket.socket(family, type_) as sock:
            with pytest.raises(ValueError, match=DATAGRAM_SOCKET_EXPECTED):
                run_guarded(loop, loop.create_datagram_endpoint(recorder(loop), sock=sock))
            assert sock.fileno() != -1

    def test_no_address_and_no_family(self, loop):
        with pytest.raises(ValueError, match="unexpected address family"):
            run_guarded(loop, loop.create_datagram_endpoint(recorder(loop)))

    @pytest.mark.parametrize("kwargs", [
        {"local_addr": "127.0.0.1"},
        {"local_addr": ("127.0.0.1",)},
        {"remote_addr": ("127.0.0.1", 9, 0)},
        {"remote_addr": ["127.0.0.1", 9]},
    ])
    def test_address_must_be_a_2_tuple(self, loop, kwargs):
        with pytest.raises(TypeError, match="2-tuple is expected"):
            run_guarded(loop, loop.create_datagram_endpoint(recorder(loop), **kwargs))

    def test_reuse_address_is_not_accepted(self, loop):
        """Python 3.11 removed the parameter (it was unsafe for UDP)."""
        with pytest.raises(TypeError, match="reuse_address"):
            run_guarded(loop, loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0), reuse_address=True))

    def test_bind_failure_is_raised(self, loop):
        with pytest.raises(OSError) as info:
            # TEST-NET-1: not an address of this host.
            run_guarded(loop, loop.create_datagram_endpoint(
                recorder(loop), local_addr=("192.0.2.1", 0)))
        assert info.value.errno == errno.EADDRNOTAVAIL

    def test_factory_is_not_called_on_failure(self, loop):
        calls = []

        def factory():
            calls.append(1)
            return DatagramRecorder(loop)

        with pytest.raises(OSError):
            run_guarded(loop, loop.create_datagram_endpoint(
                factory, local_addr=("192.0.2.1", 0)))
        assert calls == []


@needs_ipv6
class TestIPv6:
    def test_round_trip_on_loopback(self, loop):
        async def main():
            server_tr, server = await loop.create_datagram_endpoint(
                recorder(loop, Echo), local_addr=("::1", 0))
            try:
                addr = server_tr.get_extra_info("sockname")
                assert addr[0] == "::1" and len(addr) == 4
                assert server_tr.get_extra_info("socket").family == socket.AF_INET6
                tr, client = await loop.create_datagram_endpoint(
                    recorder(loop), remote_addr=("::1", addr[1]))
                try:
                    assert tr.get_extra_info("peername")[:2] == ("::1", addr[1])
                    tr.sendto(b"six")
                    [(data, from_addr)] = await client.receive(1)
                    assert data == b"six"
                    assert from_addr[:2] == ("::1", addr[1])
                    [(data, client_addr)] = server.datagrams
                    assert client_addr[:2] == tr.get_extra_info("sockname")[:2]
                finally:
                    await close_all(client)
            finally:
                await close_all(server)

        run_guarded(loop, main())


class TestUnixDatagram:
    def test_round_trip(self, loop, tmp_path):
        server_path = str(tmp_path / "server.sock")
        client_path = str(tmp_path / "client.sock")

        async def main():
            server_tr, server = await loop.create_datagram_endpoint(
                recorder(loop, Echo), local_addr=server_path, family=socket.AF_UNIX)
            try:
                assert server_tr.get_extra_info("sockname") == server_path
                assert stat.S_ISSOCK(os.stat(server_path).st_mode)
                tr, client = await loop.create_datagram_endpoint(
                    recorder(loop), local_addr=client_path, remote_addr=server_path,
                    family=socket.AF_UNIX)
                try:
                    assert tr.get_extra_info("peername") == server_path
                    assert tr.get_extra_info("sockname") == client_path
                    sock = tr.get_extra_info("socket")
                    assert sock.family == socket.AF_UNIX
                    assert sock.type == socket.SOCK_DGRAM
                    tr.sendto(b"unix one")
                    tr.sendto(b"unix two")
                    assert await client.receive(2) == [
                        (b"unix one", server_path), (b"unix two", server_path)]
                    assert server.datagrams == [
                        (b"unix one", client_path), (b"unix two", client_path)]
                finally:
                    await close_all(client)
            finally:
                await close_all(server)

        run_guarded(loop, main())

    def test_stale_socket_file_is_replaced(self, loop, tmp_path):
        path = str(tmp_path / "stale.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
            old.bind(path)

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=path, family=socket.AF_UNIX)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                    sender.sendto(b"fresh", path)
                assert (await proto.receive(1))[0][0] == b"fresh"
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_address_must_be_a_string(self, loop, tmp_path):
        with pytest.raises(TypeError, match="string is expected"):
            run_guarded(loop, loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0), family=socket.AF_UNIX))

    def test_existing_regular_file_is_not_removed(self, loop, tmp_path):
        path = tmp_path / "regular"
        path.write_bytes(b"keep")
        with pytest.raises(OSError) as info:
            run_guarded(loop, loop.create_datagram_endpoint(
                recorder(loop), local_addr=str(path), family=socket.AF_UNIX))
        assert info.value.errno == errno.EADDRINUSE
        assert path.read_bytes() == b"keep"


class TestDatagramTransport:
    def test_sendto_accepts_bytes_like_objects(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            try:
                tr.sendto(b"bytes")
                tr.sendto(bytearray(b"bytearray"))
                tr.sendto(memoryview(b"memoryview"))
                got = [(await recv_from(loop, udp_peer))[0] for _ in range(3)]
                assert got == [b"bytes", b"bytearray", b"memoryview"]
                assert tr.get_write_buffer_size() == 0
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    @pytest.mark.parametrize("data, name", [("text", "str"), (42, "int"), (None, "NoneType")])
    def test_sendto_rejects_other_types(self, loop, udp_peer, data, name):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            try:
                with pytest.raises(
                        TypeError,
                        match=f"data argument must be a bytes-like object, not '{name}'"):
                    tr.sendto(data)
                assert proto.events == ["made"]
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_sendto_other_address_on_a_connected_endpoint(self, loop, udp_peer):
        async def main():
            peer_addr = udp_peer.getsockname()
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=peer_addr)
            try:
                with pytest.raises(ValueError) as info:
                    tr.sendto(b"x", ("127.0.0.1", peer_addr[1] + 1 if peer_addr[1] < 65535 else 1))
                assert str(info.value) == f"Invalid address: must be None or {peer_addr}"
                assert proto.events == ["made"]
                assert tr.is_closing() is False
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_empty_datagram_is_received(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            try:
                udp_peer.sendto(b"", tr.get_extra_info("sockname"))
                assert await proto.receive(1) == [(b"", udp_peer.getsockname())]
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_sending_an_empty_datagram(self, loop, udp_peer):
        """asyncio drops empty payloads in sendto() until 3.12 and sends a
        zero-length datagram from 3.13 on."""
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            me = tr.get_extra_info("sockname")
            try:
                tr.sendto(b"")
                tr.sendto(b"after")
                if sys.version_info >= (3, 13):
                    assert await recv_from(loop, udp_peer) == (b"", me)
                assert await recv_from(loop, udp_peer) == (b"after", me)
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_sending_an_empty_datagram_to_an_address(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            me = tr.get_extra_info("sockname")
            try:
                tr.sendto(b"", udp_peer.getsockname())
                tr.sendto(memoryview(b""), udp_peer.getsockname())
                tr.sendto(b"after", udp_peer.getsockname())
                if sys.version_info >= (3, 13):
                    assert await recv_from(loop, udp_peer) == (b"", me)
                    assert await recv_from(loop, udp_peer) == (b"", me)
                assert await recv_from(loop, udp_peer) == (b"after", me)
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_large_datagram(self, loop, udp_peer):
        payload = bytes(range(256)) * 255  # 65280 bytes, under the IPv4 limit

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            try:
                udp_peer.sendto(payload, tr.get_extra_info("sockname"))
                [(data, addr)] = await proto.receive(1)
                assert data == payload
                tr.sendto(data, addr)
                assert await recv_from(loop, udp_peer) == (payload, tr.get_extra_info("sockname"))
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_too_large_datagram_goes_to_error_received(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            try:
                tr.sendto(b"x" * 70000)
                # Reported synchronously; the transport stays usable.
                assert proto.events == ["made", "error"]
                [exc] = proto.errors
                assert isinstance(exc, OSError)
                assert exc.errno == errno.EMSGSIZE
                assert tr.is_closing() is False
                tr.sendto(b"still open")
                assert (await recv_from(loop, udp_peer))[0] == b"still open"
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    def test_invalid_destination_goes_to_error_received(self, loop):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            try:
                tr.sendto(b"x", ("127.0.0.1", 0))
                assert proto.events == ["made", "error"]
                assert proto.errors[0].errno == errno.EINVAL
                assert tr.is_closing() is False
            finally:
                await close_all(proto)

        run_guarded(loop, main())

    @pytest.mark.allow_loop_errors
    def test_sendto_without_address_on_an_unconnected_endpoint(self, loop):
        """The socket's TypeError is a fatal error: it reaches the exception
        handler and closes the transport with it."""
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            tr.sendto(b"where to?")
            exc = await proto.lost
            assert isinstance(exc, TypeError)
            assert proto.events == ["made", "lost"]
            [context] = contexts
            assert context["exception"] is exc
            assert context["transport"] is tr
            assert context["protocol"] is proto

        run_guarded(loop, main())

    def test_many_datagrams_round_trip(self, loop):
        count, window = 600, 30

        async def main():
            server_tr, server = await loop.create_datagram_endpoint(
                recorder(loop, Echo), local_addr=("127.0.0.1", 0))
            try:
                tr, client = await loop.create_datagram_endpoint(
                    recorder(loop), remote_addr=server_tr.get_extra_info("sockname"))
                try:
                    sent = []
                    for start in range(0, count, window):
                        for i in range(start, start + window):
                            payload = f"datagram {i}".encode() * (1 + i % 7)
                            sent.append(payload)
                            tr.sendto(payload)
                        await client.receive(start + window)
                    assert [d for d, _ in client.datagrams] == sent
                    assert [d for d, _ in server.datagrams] == sent
                finally:
                    await close_all(client)
            finally:
                await close_all(server)

        run_guarded(loop, main())

    def test_icmp_port_unreachable_on_a_connected_endpoint(self, loop):
        port = free_udp_port()

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=("127.0.0.1", port))
            try:
                tr.sendto(b"anybody?")
                exc = await proto.error
                assert isinstance(exc, ConnectionRefusedError)
                assert exc.errno == errno.ECONNREFUSED
                # Not fatal.
                assert tr.is_closing() is False
                assert not proto.lost.done()
            finally:
                await close_all(proto)
            assert proto.events[0] == "made"
            assert proto.events[-1] == "lost"
            assert set(proto.events[1:-1]) == {"error"}

        run_guarded(loop, main())

    def test_close(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            sock = tr.get_extra_info("socket")
            assert tr.is_closing() is False
            tr.close()
            assert tr.is_closing() is True
            assert proto.events == ["made"]  # connection_lost comes later
            tr.close()
            assert await proto.lost is None
            await spin()
            assert proto.events == ["made", "lost"]
            assert proto.lost_calls == [None]
            assert sock.fileno() == -1

        run_guarded(loop, main())

    def test_abort(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            tr.abort()
            assert tr.is_closing() is True
            assert proto.events == ["made"]
            assert await proto.lost is None
            await spin()
            assert proto.events == ["made", "lost"]

        run_guarded(loop, main())

    def test_nothing_is_received_after_close(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            addr = tr.get_extra_info("sockname")
            tr.close()
            udp_peer.sendto(b"too late", addr)
            await proto.lost
            await spin()
            assert proto.datagrams == []
            assert proto.events == ["made", "lost"]

        run_guarded(loop, main())

    def test_sendto_after_close_on_a_connected_endpoint_is_dropped(self, loop, udp_peer):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop), remote_addr=udp_peer.getsockname())
            tr.sendto(b"before")
            tr.close()
            tr.sendto(b"after close")
            await proto.lost
            tr.sendto(b"after connection_lost")
            assert await recv_from(loop, udp_peer) == (b"before", tr.get_extra_info("sockname"))
            await spin()
            with pytest.raises(BlockingIOError):
                udp_peer.recvfrom(100)
            assert proto.events == ["made", "lost"]

        run_guarded(loop, main())

    def test_set_protocol(self, loop, udp_peer):
        async def main():
            tr, first = await loop.create_datagram_endpoint(
                recorder(loop), local_addr=("127.0.0.1", 0))
            second = DatagramRecorder(loop)
            second.transport = tr
            tr.set_protocol(second)
            assert tr.get_protocol() is second
            udp_peer.sendto(b"to the second", tr.get_extra_info("sockname"))
            assert (await second.receive(1))[0][0] == b"to the second"
            assert first.datagrams == []
            tr.close()
            assert await second.lost is None
            assert first.events == ["made"]

        run_guarded(loop, main())

    @pytest.mark.allow_loop_errors
    def test_exception_in_datagram_received_is_reported(self, loop, udp_peer):
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        boom = ZeroDivisionError("boom")

        class Raising(DatagramRecorder):
            def datagram_received(self, data, addr):
                super().datagram_received(data, addr)
                if data == b"raise":
                    raise boom

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                recorder(loop, Raising), local_addr=("127.0.0.1", 0))
            try:
                udp_peer.sendto(b"raise", tr.get_extra_info("sockname"))
                await proto.receive(1)
                # The transport survives and keeps receiving.
                udp_peer.sendto(b"next", tr.get_extra_info("sockname"))
                assert (await proto.receive(2))[1][0] == b"next"
                assert tr.is_closing() is False
            finally:
                await close_all(proto)
            assert [ctx["exception"] for ctx in contexts] == [boom]

        run_guarded(loop, main())


class TestEndpointAndLoop:
    """What the loop knows of an endpoint's socket."""

    def test_fd_of_an_open_endpoint_is_refused_to_add_reader(self, loop):
        async def main():
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            fd = transport.get_extra_info("socket").fileno()
            for method in (loop.add_reader, loop.add_writer):
                with pytest.raises(RuntimeError, match="is used by transport"):
                    method(fd, lambda: None)
            for method in (loop.remove_reader, loop.remove_writer):
                with pytest.raises(RuntimeError, match="is used by transport"):
                    method(fd)
            transport.close()
            await spin()

        run_guarded(loop, main())

    def test_close_after_the_loop_closed_raises(self, loop_factory):
        # asyncio: close() cannot schedule connection_lost() on a closed
        # loop and says so; the transport is closing all the same.
        lp = loop_factory()
        transport, _ = lp.run_until_complete(lp.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)))
        sock = transport.get_extra_info("socket")
        lp.close()
        transport.sendto(b"dropped", ("127.0.0.1", 9))
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            transport.close()
        assert transport.is_closing()
        transport.abort()
        os.fstat(sock.fileno())  # the socket is still open
        with pytest.warns(ResourceWarning, match="unclosed transport"):
            del transport, sock
            gc.collect()

    def test_loop_closes_with_an_endpoint_left_open(self, loop_factory):
        lp = loop_factory()
        transport, _ = lp.run_until_complete(lp.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)))
        lp.close()
        assert lp.is_closed()
        with pytest.warns(ResourceWarning, match="unclosed transport"):
            del transport
            gc.collect()


# --- sock= on a connected AF_UNIX datagram socket pair --------------------------------

class _Collect(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.got = loop.create_future()
        self.errors = []
        self.lost = loop.create_future()

    def datagram_received(self, data, addr):
        _set_once(self.got, (data, addr))

    def error_received(self, exc):
        self.errors.append(type(exc).__name__)

    def connection_lost(self, exc):
        _set_once(self.lost, exc)


@pytest.mark.parametrize("names", ["unnamed", "paths", "abstract"])
@pytest.mark.allow_loop_errors
def test_sock_on_a_connected_unix_datagram_pair(loop, tmp_path, names):
    # Reported as a hang: an endpoint on one end of a connected AF_UNIX
    # SOCK_DGRAM pair exchanged nothing.  Both loops receive; both send to
    # a named peer.  An unnamed peer (socketpair()) has the peer name '',
    # which asyncio takes for "not connected": sendto(data) calls
    # sock.sendto(data, None) (a fatal TypeError) and sendto(data, '')
    # gets EINVAL; asyncuv does the same.
    async def main():
        if names == "unnamed":
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        else:
            a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            if names == "paths":
                pa, pb = str(tmp_path / "a"), str(tmp_path / "b")
            else:
                pa = f"\0asyncuv-test-a-{os.getpid()}"
                pb = f"\0asyncuv-test-b-{os.getpid()}"
            a.bind(pa)
            b.bind(pb)
            a.connect(pb)
            b.connect(pa)
        tr, proto = await loop.create_datagram_endpoint(lambda: _Collect(loop), sock=a)
        try:
            b.send(b"to a")
            data, addr = await proto.got
            assert data == b"to a"
            assert addr == (None if names == "unnamed" else b.getsockname())
            b.settimeout(10)
            if names == "unnamed":
                tr.sendto(b"x", "")
                for _ in range(1000):
                    if proto.errors:
                        break
                    await asyncio.sleep(0.001)
                assert proto.errors == ["OSError"]
                tr.sendto(b"x")
                assert isinstance(await proto.lost, TypeError)
            else:
                tr.sendto(b"to b")
                assert b.recv(10) == b"to b"
        finally:
            tr.close()
            b.close()

    run_guarded(loop, main())

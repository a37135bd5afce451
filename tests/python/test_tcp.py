"""TCP: loop.create_connection() and the stream transports it returns
(Protocol and BufferedProtocol based).  Loopback only.  Every test runs on
asyncuv and on the stock asyncio loop (the reference)."""

import asyncio
import contextlib
import errno
import gc
import logging
import re
import socket
import struct
import sys
import warnings
import weakref

import pytest

from support import (
    bind_error_message,
    NET_HANG_GUARD,
    RecordingProtocol,
    Waker,
    connected_pair,
    ipv6_loopback_available,
    refusing_port,
    run_guarded,
    new_loop,
    tcp_listener,
)


def pattern(size, seed=0):
    """size bytes whose content depends on the position (order matters)."""
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


def recv_until_eof(conn):
    """Blocking read of everything up to EOF (run it in an executor)."""
    conn.settimeout(NET_HANG_GUARD)
    chunks = []
    while True:
        data = conn.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def recv_exactly(conn, nbytes):
    """Blocking read of exactly nbytes (run it in an executor)."""
    conn.settimeout(NET_HANG_GUARD)
    data = b""
    while len(data) < nbytes:
        chunk = conn.recv(nbytes - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recording_factory(loop, created=None, **kwargs):
    def factory():
        proto = RecordingProtocol(loop, **kwargs)
        if created is not None:
            created.append(proto)
        return proto
    return factory


@contextlib.contextmanager
def loopback_target(host):
    """Resolve ``host`` like create_connection() does, listen on the LAST
    address and keep the other addresses bound but not listening (they
    refuse), all on one port.  Yields (port, listener, addresses)."""
    for _ in range(20):
        infos = socket.getaddrinfo(host, 1, type=socket.SOCK_STREAM)
        addresses = [(family, sockaddr[0]) for family, _, _, _, sockaddr in infos]
        with contextlib.ExitStack() as stack:
            family, addr = addresses[-1]
            listener = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            listener.settimeout(NET_HANG_GUARD)
            listener.bind((addr, 0))
            listener.listen(16)
            port = listener.getsockname()[1]
            try:
                for family, addr in addresses[:-1]:
                    refuser = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
                    refuser.bind((addr, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue  # that port is taken on another address; retry
                raise
            yield port, listener, addresses
            return
    raise RuntimeError("could not find a port free on every loopback address")


class TestCreateConnection:
    def test_returns_connected_transport_and_the_factory_protocol(self, loop):
        created = []
        with tcp_listener() as listener:
            host, port = listener.getsockname()

            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop, created), host, port)
                conn, addr = listener.accept()
                try:
                    assert created == [pr]
                    # connection_made() ran before create_connection returned.
                    assert pr.transport is tr
                    assert pr.events == ["made"]
                    assert tr.get_protocol() is pr
                    assert tr.get_extra_info("peername") == (host, port)
                    assert tr.get_extra_info("sockname") == addr
                finally:
                    tr.close()
                    conn.close()
                assert await pr.lost is None
                assert isinstance(tr, asyncio.Transport)

            run_guarded(loop, main())

    def test_data_round_trip_with_a_plain_socket_peer(self, loop):
        with tcp_listener() as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname())
                conn, _ = listener.accept()
                with conn:
                    tr.write(b"hello")
                    assert await loop.run_in_executor(None, recv_exactly, conn, 5) == b"hello"
                    conn.sendall(b"world")
                    assert await pr.read_at_least(5) == b"world"
                    tr.close()
                    assert await loop.run_in_executor(None, recv_until_eof, conn) == b""
                    await pr.lost

            run_guarded(loop, main())

    def test_host_name_is_resolved(self, loop):
        # 'localhost' goes through getaddrinfo; whatever it resolves to, only
        # the last address listens and the others refuse.
        with loopback_target("localhost") as (port, listener, addresses):
            async def main():
                tr, pr = await loop.create_connection(recording_factory(loop), "localhost", port)
                conn, addr = listener.accept()
                conn.close()
                assert tr.get_extra_info("peername")[:2] == listener.getsockname()[:2]
                assert tr.get_extra_info("sockname")[:2] == addr[:2]
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    @pytest.mark.parametrize("happy_eyeballs_delay, interleave",
                             [(None, None), (0.25, None), (0.25, 1), (None, 2)])
    def test_every_resolved_address_is_tried(self, loop, happy_eyeballs_delay, interleave):
        # host=None with a port resolves (no AI_PASSIVE) to the loopback
        # addresses, e.g. ::1 then 127.0.0.1: the first refuses, the last
        # listens, so create_connection must move on to it.
        if len(socket.getaddrinfo(None, 1, type=socket.SOCK_STREAM)) < 2:
            pytest.skip("needs both IPv4 and IPv6 loopback (getaddrinfo(None, port))")
        with loopback_target(None) as (port, listener, addresses):
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), None, port,
                    happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave)
                conn, _ = listener.accept()
                conn.close()
                assert tr.get_extra_info("peername")[:2] == listener.getsockname()[:2]
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    @pytest.mark.parametrize("happy_eyeballs_delay, interleave",
                             [(0.25, None), (0.25, 1), (None, 1), (0, 2)])
    def test_happy_eyeballs_options_are_accepted(self, loop, happy_eyeballs_delay, interleave):
        with tcp_listener() as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname(),
                    happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave)
                listener.accept()[0].close()
                assert tr.get_extra_info("peername") == listener.getsockname()
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    def test_all_addresses_refusing_raises_combined_oserror(self, loop):
        # asyncio: several errors with different messages are combined in a
        # plain OSError (not ConnectionRefusedError).
        if len(socket.getaddrinfo(None, 1, type=socket.SOCK_STREAM)) < 2:
            pytest.skip("needs both IPv4 and IPv6 loopback (getaddrinfo(None, port))")
        with loopback_target(None) as (port, listener, addresses):
            listener.close()  # now every address refuses
            with pytest.raises(OSError) as info:
                run_guarded(loop, loop.create_connection(asyncio.Protocol, None, port))
        assert type(info.value) is OSError
        assert str(info.value).startswith("Multiple exceptions: ")

    def test_connection_refused(self, loop):
        with refusing_port() as port:
            with pytest.raises(ConnectionRefusedError) as info:
                run_guarded(loop, loop.create_connection(asyncio.Protocol, "127.0.0.1", port))
        assert isinstance(info.value, OSError)
        assert info.value.errno == errno.ECONNREFUSED

    def test_loop_is_usable_after_a_refused_connection(self, loop):
        with refusing_port() as port, tcp_listener() as listener:
            async def main():
                with pytest.raises(ConnectionRefusedError):
                    await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname())
                listener.accept()[0].close()
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    def test_local_addr_with_port_0(self, loop):
        with tcp_listener() as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname(),
                    local_addr=("127.0.0.1", 0))
                conn, addr = listener.accept()
                conn.close()
                sockname = tr.get_extra_info("sockname")
                assert sockname[0] == "127.0.0.1"
                assert sockname[1] != 0
                assert sockname == addr
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    def test_local_addr_with_explicit_port(self, loop):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local_port = probe.getsockname()[1]
        with tcp_listener() as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname(),
                    local_addr=("127.0.0.1", local_port))
                conn, addr = listener.accept()
                conn.close()
                assert addr == ("127.0.0.1", local_port)
                assert tr.get_extra_info("sockname") == ("127.0.0.1", local_port)
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    def test_local_addr_in_use(self, loop):
        with tcp_listener() as listener, refusing_port() as port:
            local = listener.getsockname()
            with pytest.raises(OSError) as info:
                run_guarded(loop, loop.create_connection(
                    asyncio.Protocol, "127.0.0.1", port, local_addr=local))
        assert info.value.errno == errno.EADDRINUSE
        assert bind_error_message(local, errno.EADDRINUSE) in str(info.value)

    def test_sock_an_already_connected_socket(self, loop):
        with tcp_listener() as listener, socket.create_connection(listener.getsockname()) as sock:
            conn, _ = listener.accept()
            with conn:
                async def main():
                    tr, pr = await loop.create_connection(recording_factory(loop), sock=sock)
                    assert pr.transport is tr
                    assert tr.get_extra_info("peername") == listener.getsockname()
                    assert tr.get_extra_info("sockname") == conn.getpeername()
                    tr.write(b"via sock=")
                    conn.sendall(b"reply")
                    assert await pr.read_at_least(5) == b"reply"
                    # The transport owns the socket: close() closes the connection.
                    tr.close()
                    await pr.lost
                    assert await loop.run_in_executor(None, recv_until_eof, conn) == b"via sock="

                run_guarded(loop, main())

    def test_sock_must_be_a_stream_socket(self, loop):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                run_guarded(loop, loop.create_connection(asyncio.Protocol, sock=sock))

    @pytest.mark.parametrize("host, port", [("127.0.0.1", None), (None, 1), ("127.0.0.1", 1)])
    def test_sock_together_with_host_or_port(self, loop, host, port):
        with socket.socket() as sock:
            with pytest.raises(ValueError,
                               match="host/port and sock can not be specified at the same time"):
                run_guarded(loop, loop.create_connection(asyncio.Protocol, host, port, sock=sock))

    def test_neither_host_nor_sock(self, loop):
        with pytest.raises(ValueError,
                           match="host and port was not specified and no sock specified"):
            run_guarded(loop, loop.create_connection(asyncio.Protocol))

    def test_family_proto_and_flags(self, loop):
        with tcp_listener() as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname(),
                    family=socket.AF_INET, proto=socket.IPPROTO_TCP,
                    flags=socket.AI_NUMERICHOST)
                listener.accept()[0].close()
                sock = tr.get_extra_info("socket")
                assert sock.family == socket.AF_INET
                assert sock.type == socket.SOCK_STREAM
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    def test_family_that_does_not_match_the_host(self, loop):
        # AI_NUMERICHOST: no name service is consulted.
        with pytest.raises(socket.gaierror):
            run_guarded(loop, loop.create_connection(
                asyncio.Protocol, "127.0.0.1", 1,
                family=socket.AF_INET6, flags=socket.AI_NUMERICHOST))

    def test_ipv6_loopback(self, loop):
        if not ipv6_loopback_available():
            pytest.skip("IPv6 loopback (::1) is not available")
        with tcp_listener("::1", socket.AF_INET6) as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), "::1", listener.getsockname()[1])
                conn, addr = listener.accept()
                conn.close()
                assert tr.get_extra_info("socket").family == socket.AF_INET6
                assert tr.get_extra_info("peername")[:2] == ("::1", listener.getsockname()[1])
                tr.close()
                await pr.lost

            run_guarded(loop, main())

    def test_ssl_none_is_a_plain_connection(self, loop):
        with tcp_listener() as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname(), ssl=None)
                conn, _ = listener.accept()
                with conn:
                    tr.write(b"plain")
                    assert await loop.run_in_executor(None, recv_exactly, conn, 5) == b"plain"
                    tr.close()
                    await pr.lost

            run_guarded(loop, main())

    def test_server_hostname_without_ssl(self, loop):
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            run_guarded(loop, loop.create_connection(
                asyncio.Protocol, "127.0.0.1", 1, server_hostname="localhost"))

    def test_ssl_handshake_timeout_without_ssl(self, loop):
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            run_guarded(loop, loop.create_connection(
                asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1.0))

    def test_ssl_shutdown_timeout_without_ssl(self, loop):
        with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
            run_guarded(loop, loop.create_connection(
                asyncio.Protocol, "127.0.0.1", 1, ssl_shutdown_timeout=1.0))


class TestTransportBasics:
    def test_transport_types(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                for tr in (client.transport, peer.transport):
                    assert isinstance(tr, asyncio.Transport)
                    assert isinstance(tr, asyncio.ReadTransport)
                    assert isinstance(tr, asyncio.WriteTransport)
                    assert isinstance(tr, asyncio.BaseTransport)

        run_guarded(loop, main())

    def test_write_and_writelines_accept_bytes_like_objects(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                tr = client.transport
                tr.write(b"a")
                tr.write(bytearray(b"b"))
                tr.write(memoryview(b"xcx")[1:2])
                tr.writelines([b"d", bytearray(b"e"), memoryview(b"f")])
                tr.writelines(iter([b"g", b"h"]))
                assert await peer.read_at_least(8) == b"abcdefgh"

        run_guarded(loop, main())

    def test_write_rejects_str(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                # 3.14's asyncio names the types it takes.
                message = ("bytes, bytearray, or memoryview object, not 'str'"
                           if sys.version_info >= (3, 14) else
                           "bytes-like object, not 'str'")
                with pytest.raises(TypeError, match=message):
                    client.transport.write("text")

        run_guarded(loop, main())

    def test_empty_write_is_a_no_op(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.write(b"")
                assert client.transport.get_write_buffer_size() == 0
                client.transport.write(b"after")
                assert await peer.read_at_least(5) == b"after"

        run_guarded(loop, main())

    def test_both_directions(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.write(b"request")
                assert await peer.read_at_least(7) == b"request"
                peer.transport.write(b"response")
                assert await client.read_at_least(8) == b"response"

        run_guarded(loop, main())

    def test_get_extra_info(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                tr = client.transport
                sockname = tr.get_extra_info("sockname")
                peername = tr.get_extra_info("peername")
                assert sockname[0] == "127.0.0.1" and sockname[1] != 0
                assert peername == peer.transport.get_extra_info("sockname")
                assert sockname == peer.transport.get_extra_info("peername")
                sock = tr.get_extra_info("socket")
                assert sock.fileno() >= 0
                assert sock.family == socket.AF_INET
                assert sock.type == socket.SOCK_STREAM
                assert sock.getsockname() == sockname
                assert sock.getpeername() == peername
                assert tr.get_extra_info("no-such-key") is None
                assert tr.get_extra_info("no-such-key", "default") == "default"

        run_guarded(loop, main())

    def test_names_of_many_accepted_connections(self, loop):
        # Every accepted transport reports the listener's address as its
        # 'sockname' and its own client's address as 'peername', also after
        # the connection is gone; the loop's other transports do not mix up.
        accepted = []
        all_accepted = loop.create_future()

        def factory():
            proto = RecordingProtocol(loop)
            accepted.append(proto)
            if len(accepted) == 5:
                all_accepted.set_result(None)
            return proto

        async def main():
            server = await loop.create_server(factory, "127.0.0.1", 0)
            listen_name = server.sockets[0].getsockname()
            clients = []
            try:
                for _ in range(5):
                    tr, _ = await loop.create_connection(
                        lambda: RecordingProtocol(loop), *listen_name)
                    clients.append(tr)
                await all_accepted
                for proto in accepted:
                    await proto.made
                by_peer = {p.transport.get_extra_info("peername"): p for p in accepted}
                assert sorted(by_peer) == sorted(
                    tr.get_extra_info("sockname") for tr in clients)
                for tr in clients:
                    assert tr.get_extra_info("peername") == listen_name
                    proto = by_peer[tr.get_extra_info("sockname")]
                    assert proto.transport.get_extra_info("sockname") == listen_name
                    tr.close()
                for proto in accepted:
                    await proto.lost
                for tr in clients:
                    proto = by_peer[tr.get_extra_info("sockname")]
                    assert proto.transport.get_extra_info("sockname") == listen_name
                    assert proto.transport.get_extra_info("peername") == \
                        tr.get_extra_info("sockname")
            finally:
                for tr in clients:
                    tr.close()
                server.close()
                await server.wait_closed()

        run_guarded(loop, main())

    def test_nodelay_is_set(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                for tr in (client.transport, peer.transport):
                    sock = tr.get_extra_info("socket")
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

        run_guarded(loop, main())

    def test_get_protocol_and_set_protocol(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                tr = client.transport
                assert tr.get_protocol() is client
                peer.transport.write(b"first")
                assert await client.read_at_least(5) == b"first"

                replacement = RecordingProtocol(loop)
                tr.set_protocol(replacement)
                assert tr.get_protocol() is replacement
                peer.transport.write(b"second")
                assert await replacement.read_at_least(6) == b"second"
                assert client.data == b"first"
                # set_protocol() does not call connection_made().
                assert replacement.events == ["data"]

                tr.close()
                assert await replacement.lost is None
                assert not client.lost.done()
                client.lost.set_result(None)  # for connected_pair's cleanup

        run_guarded(loop, main())


class TestClose:
    def test_close_calls_connection_lost_none_exactly_once(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                tr = client.transport
                assert tr.is_closing() is False
                tr.close()
                assert tr.is_closing() is True
                tr.close()  # idempotent
                assert await client.lost is None
                await peer.lost
                for _ in range(5):
                    await asyncio.sleep(0)
                assert client.lost_calls == [None]
                assert client.events == ["made", "lost"]
                # The peer saw a clean EOF.
                assert peer.events == ["made", "eof", "lost"]
                assert peer.lost_calls == [None]
                assert tr.is_closing() is True

        run_guarded(loop, main())

    def test_connection_lost_is_not_called_synchronously_by_close(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.close()
                assert client.lost_calls == []
                await client.lost

        run_guarded(loop, main())

    def test_data_written_before_close_is_delivered(self, loop):
        payload = pattern(8 * 1024 * 1024)

        async def main():
            async with connected_pair(loop) as (client, peer):
                peer.transport.pause_reading()
                client.transport.write(payload)
                client.transport.close()
                assert client.transport.is_closing()
                peer.transport.resume_reading()
                await peer.eof
                assert peer.data == payload
                assert await client.lost is None
                assert client.lost_calls == [None]

        run_guarded(loop, main())

    def test_write_after_close_is_ignored_and_logged_after_five_writes(self, loop, caplog):
        async def main():
            async with connected_pair(loop) as (client, peer):
                tr = client.transport
                tr.write(b"before")
                tr.close()
                with caplog.at_level(logging.WARNING, logger="asyncio"):
                    for _ in range(4):
                        tr.write(b"ignored")
                    assert [r for r in caplog.records if r.name == "asyncio"] == []
                    tr.write(b"ignored")
                    warnings = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
                    assert warnings == ["socket.send() raised exception."]
                await client.lost
                await peer.eof
                assert peer.data == b"before"

        run_guarded(loop, main())

    def test_abort_calls_connection_lost_once_and_discards_the_buffer(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                peer.transport.pause_reading()
                tr = client.transport
                chunk = pattern(1024 * 1024)
                while tr.get_write_buffer_size() == 0:
                    tr.write(chunk)
                tr.abort()
                assert tr.is_closing() is True
                assert tr.get_write_buffer_size() == 0
                # asyncio passes None to connection_lost() for abort().
                assert await client.lost is None
                peer.transport.resume_reading()
                await peer.lost
                for _ in range(5):
                    await asyncio.sleep(0)
                assert client.lost_calls == [None]
                assert "eof" not in client.events

        run_guarded(loop, main())

    def test_reset_by_peer_reports_connection_reset_error(self, loop):
        with tcp_listener() as listener:
            async def main():
                tr, pr = await loop.create_connection(
                    recording_factory(loop), *listener.getsockname())
                conn, _ = listener.accept()
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # SO_LINGER 0: the close sends RST
                exc = await pr.lost
                assert isinstance(exc, ConnectionResetError)
                for _ in range(5):
                    await asyncio.sleep(0)
                assert len(pr.lost_calls) == 1
                assert "eof" not in pr.events
                assert tr.is_closing()

            run_guarded(loop, main())


class TestHalfClose:
    def test_can_write_eof(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                assert client.transport.can_write_eof() is True
                assert peer.transport.can_write_eof() is True

        run_guarded(loop, main())

    def test_eof_received_true_keeps_the_transport_half_open(self, loop):
        def keep_open(lp):
            return RecordingProtocol(lp, eof_result=True)

        async def main():
            async with connected_pair(loop, server_protocol=keep_open) as (client, peer):
                client.transport.write(b"request")
                client.transport.write_eof()
                await peer.eof
                assert peer.data == b"request"
                assert peer.transport.is_closing() is False
                # The peer can still write after it received EOF.
                peer.transport.write(b"response")
                assert await client.read_at_least(8) == b"response"
                assert not client.eof.done()
                peer.transport.close()
                await client.eof
                assert await client.lost is None
                assert client.events == ["made", "data", "eof", "lost"]
                assert peer.events == ["made", "data", "eof", "lost"]

        run_guarded(loop, main())

    @pytest.mark.parametrize("eof_result", [None, False])
    def test_eof_received_false_closes_the_transport(self, loop, eof_result):
        def closes(lp):
            return RecordingProtocol(lp, eof_result=eof_result)

        async def main():
            async with connected_pair(loop, server_protocol=closes) as (client, peer):
                client.transport.write(b"bye")
                client.transport.write_eof()
                assert await peer.lost is None
                assert peer.events == ["made", "data", "eof", "lost"]
                assert peer.transport.is_closing()
                # The peer's close reached the client as EOF.
                await client.eof
                await client.lost

        run_guarded(loop, main())

    def test_write_after_write_eof_raises(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.write_eof()
                client.transport.write_eof()  # a second call is a no-op
                with pytest.raises(RuntimeError, match=re.escape("Cannot call write() after write_eof()")):
                    client.transport.write(b"late")
                await peer.eof

        run_guarded(loop, main())

    def test_write_eof_after_buffered_data_flushes_it_first(self, loop):
        payload = pattern(4 * 1024 * 1024, seed=3)

        async def main():
            async with connected_pair(loop) as (client, peer):
                peer.transport.pause_reading()
                client.transport.write(payload)
                client.transport.write_eof()
                peer.transport.resume_reading()
                await peer.eof
                assert peer.data == payload

        run_guarded(loop, main())


class TestReading:
    def test_pause_and_resume_reading(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                tr = client.transport
                assert tr.is_reading() is True
                tr.pause_reading()
                assert tr.is_reading() is False
                tr.pause_reading()  # idempotent
                assert tr.is_reading() is False
                peer.transport.write(b"while paused")
                for _ in range(10):
                    await asyncio.sleep(0)
                assert client.data == b""
                tr.resume_reading()
                assert tr.is_reading() is True
                tr.resume_reading()  # idempotent
                assert await client.read_at_least(12) == b"while paused"

        run_guarded(loop, main())

    def test_is_reading_is_false_once_closing(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.close()
                assert client.transport.is_reading() is False
                await client.lost
                assert client.transport.is_reading() is False

        run_guarded(loop, main())

    def test_eof_is_delivered_after_the_data(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                peer.transport.write(b"last words")
                peer.transport.close()
                await client.lost
                assert client.data == b"last words"
                assert client.events == ["made", "data", "eof", "lost"]

        run_guarded(loop, main())

    def test_bulk_then_small_reads_deliver_exact_bytes_objects(self, loop):
        # Reads that fill the transport's whole read buffer, then small
        # ones: everything arrives whole, in order, as bytes objects that
        # nothing changes after they are handed out.
        chunks = []

        class Collector(RecordingProtocol):
            def data_received(self, data):
                chunks.append(data)
                super().data_received(data)

        async def main():
            bulk = pattern(3 << 20, seed=7)
            tail = [pattern(n, seed=n) for n in (1, 100, 5000, 70000, 3)]
            async with connected_pair(loop, client_protocol=Collector) as (client, peer):
                peer.transport.write(bulk)
                assert await client.read_at_least(len(bulk)) == bulk
                expected = bulk
                for piece in tail:
                    peer.transport.write(piece)
                    expected += piece
                    assert await client.read_at_least(len(expected)) == expected
                assert all(type(c) is bytes and c for c in chunks)
                assert b"".join(chunks) == expected
                # the premise: some reads were large (256 KiB on both loops)
                assert max(len(c) for c in chunks) >= 65536

        run_guarded(loop, main())

    def test_repeated_large_messages_that_do_not_fill_a_read(self, loop):
        # 200 KiB messages, one at a time: reads large enough for asyncuv's
        # bulk reads but shorter than its 256 KiB buffer.  Every delivered
        # bytes object keeps its content while later reads come in.
        chunks = []

        class Collector(RecordingProtocol):
            def data_received(self, data):
                chunks.append(data)
                super().data_received(data)

        async def main():
            async with connected_pair(loop, client_protocol=Collector) as (client, peer):
                expected = b""
                for i in range(12):
                    message = pattern(200 * 1024, seed=i)
                    peer.transport.write(message)
                    expected += message
                    assert await client.read_at_least(len(expected)) == expected
                assert all(type(c) is bytes and c for c in chunks)
                assert b"".join(chunks) == expected

        run_guarded(loop, main())


class FlowProtocol(RecordingProtocol):
    """Records the write buffer size when pause/resume_writing are called."""

    pause_size = resume_size = None

    def pause_writing(self):
        self.pause_size = self.transport.get_write_buffer_size()
        super().pause_writing()

    def resume_writing(self):
        self.resume_size = self.transport.get_write_buffer_size()
        super().resume_writing()


class TestWriteFlowControl:
    def test_default_write_buffer_limits(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                assert client.transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
                assert client.transport.get_write_buffer_size() == 0

        run_guarded(loop, main())

    @pytest.mark.parametrize("kwargs, expected", [
        (dict(high=4096), (1024, 4096)),
        (dict(low=1000), (1000, 4000)),
        (dict(high=100, low=50), (50, 100)),
        (dict(high=100, low=100), (100, 100)),
        (dict(high=0), (0, 0)),
        (dict(), (16 * 1024, 64 * 1024)),
    ])
    def test_set_write_buffer_limits(self, loop, kwargs, expected):
        async def main():
            async with connected_pair(loop) as (client, peer):
                client.transport.set_write_buffer_limits(high=12345, low=123)
                client.transport.set_write_buffer_limits(**kwargs)
                assert client.transport.get_write_buffer_limits() == expected

        run_guarded(loop, main())

    @pytest.mark.parametrize("kwargs, message", [
        (dict(high=10, low=20), "high (10) must be >= low (20) must be >= 0"),
        (dict(high=-1), "high (-1) must be >= low (-1) must be >= 0"),
        (dict(low=-1), "high (-4) must be >= low (-1) must be >= 0"),
        (dict(high=5, low=-1), "high (5) must be >= low (-1) must be >= 0"),
    ])
    def test_invalid_write_buffer_limits(self, loop, kwargs, message):
        async def main():
            async with connected_pair(loop) as (client, peer):
                with pytest.raises(ValueError, match=re.escape(message)):
                    client.transport.set_write_buffer_limits(**kwargs)
                assert client.transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)

        run_guarded(loop, main())

    def test_pause_and_resume_writing_at_the_water_marks(self, loop):
        async def main():
            async with connected_pair(loop, client_protocol=FlowProtocol) as (client, peer):
                tr = client.transport
                low, high = tr.get_write_buffer_limits()
                peer.transport.pause_reading()
                chunks = []
                seed = 0
                while not client.paused.done():
                    assert seed < 1024, "pause_writing() never called"
                    chunk = pattern(256 * 1024, seed)
                    chunks.append(chunk)
                    tr.write(chunk)
                    seed += 1
                # pause_writing() is called from within write().
                assert client.pause_size > high
                assert tr.get_write_buffer_size() > high
                assert client.events == ["made", "pause"]
                peer.transport.resume_reading()
                await client.resumed
                assert client.resume_size <= low
                assert client.events == ["made", "pause", "resume"]
                payload = b"".join(chunks)
                assert await peer.read_at_least(len(payload)) == payload
                assert tr.get_write_buffer_size() == 0

        run_guarded(loop, main())

    def test_lowering_the_limits_pauses_immediately(self, loop):
        async def main():
            async with connected_pair(loop, client_protocol=FlowProtocol) as (client, peer):
                tr = client.transport
                peer.transport.pause_reading()
                tr.set_write_buffer_limits(high=2 ** 40)
                chunks = []
                seed = 0
                while tr.get_write_buffer_size() == 0:
                    assert seed < 1024, "the kernel buffers never filled"
                    chunk = pattern(256 * 1024, seed)
                    chunks.append(chunk)
                    tr.write(chunk)
                    seed += 1
                assert client.events == ["made"]
                tr.set_write_buffer_limits(high=0)
                assert client.events == ["made", "pause"]
                peer.transport.resume_reading()
                await client.resumed
                assert client.resume_size == 0
                payload = b"".join(chunks)
                assert await peer.read_at_least(len(payload)) == payload

        run_guarded(loop, main())


class BufferedRecorder(Waker, asyncio.BufferedProtocol):
    """A BufferedProtocol with a deliberately small buffer."""

    def __init__(self, loop, size=16):
        self.loop = loop
        self.buffer = bytearray(size)
        self.transport = None
        self.events = []
        self.received = bytearray()
        self.sizehints = []
        self.updates = []
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.lost_calls = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        self.made.set_result(transport)

    def get_buffer(self, sizehint):
        self.sizehints.append(sizehint)
        self.events.append("get_buffer")
        return self.buffer

    def buffer_updated(self, nbytes):
        self.events.append("buffer_updated")
        self.updates.append(nbytes)
        self.received += self.buffer[:nbytes]
        self._wake()

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)
        self._wake()

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost_calls.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)

    async def read_at_least(self, nbytes):
        await self._until(lambda: len(self.received) >= nbytes or self.eof.done())
        return bytes(self.received)


class TestBufferedProtocol:
    def test_data_lands_in_the_protocols_buffer(self, loop):
        payload = pattern(1000, seed=7)

        async def main():
            async with connected_pair(loop, client_protocol=BufferedRecorder) as (client, peer):
                peer.transport.write(payload)
                assert await client.read_at_least(len(payload)) == payload
                assert all(0 < n <= 16 for n in client.updates)
                assert sum(client.updates) == len(payload)
                assert all(isinstance(hint, int) for hint in client.sizehints)
                # Every buffer_updated() follows a get_buffer().
                body = client.events[1:]
                for i, event in enumerate(body):
                    if event == "buffer_updated":
                        assert body[i - 1] == "get_buffer"

        run_guarded(loop, main())

    def test_eof_received_then_connection_lost(self, loop):
        async def main():
            async with connected_pair(loop, client_protocol=BufferedRecorder) as (client, peer):
                peer.transport.write(b"tail")
                peer.transport.close()
                assert await client.lost is None
                assert bytes(client.received) == b"tail"
                assert client.events[0] == "made"
                assert client.events[-2:] == ["eof", "lost"]
                assert "buffer_updated" in client.events

        run_guarded(loop, main())

    def test_server_side_buffered_protocol(self, loop):
        payload = pattern(100000, seed=11)

        async def main():
            async with connected_pair(loop, server_protocol=BufferedRecorder) as (client, peer):
                client.transport.write(payload)
                client.transport.write_eof()
                assert await peer.read_at_least(len(payload)) == payload
                await peer.eof

        run_guarded(loop, main())

    def test_switching_from_protocol_to_buffered_protocol(self, loop):
        async def main():
            async with connected_pair(loop) as (client, peer):
                peer.transport.write(b"plain")
                assert await client.read_at_least(5) == b"plain"
                buffered = BufferedRecorder(loop)
                buffered.transport = client.transport
                client.transport.set_protocol(buffered)
                peer.transport.write(b"buffered")
                assert await buffered.read_at_least(8) == b"buffered"
                client.transport.close()
                assert await buffered.lost is None
                client.lost.set_result(None)  # for connected_pair's cleanup

        run_guarded(loop, main())


class TestResourceWarning:
    """These tests use a loop of their own, so that it can be dropped too."""

    def test_unclosed_transport_warns_when_collected(self, loop_kind, loop_factory, loop_errors):
        lp = new_loop(loop_kind)
        with tcp_listener() as listener:
            async def main(lp):
                await lp.create_connection(recording_factory(lp), *listener.getsockname())
                return listener.accept()[0]

            try:
                conn = run_guarded(lp, main(lp))
            except BaseException:
                lp.close()
                raise
        with conn:
            with pytest.warns(ResourceWarning, match="unclosed"):
                lp.close()
                del lp
                gc.collect()

    def test_closing_the_loop_releases_unclosed_transports(self, loop_kind, loop_factory, loop_errors):
        lp = new_loop(loop_kind)
        with tcp_listener() as listener:
            async def main(lp):
                tr, _ = await lp.create_connection(
                    recording_factory(lp), *listener.getsockname())
                return weakref.ref(tr), listener.accept()[0]

            try:
                ref, conn = run_guarded(lp, main(lp))
            except BaseException:
                lp.close()
                raise
        conn.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            lp.close()
            gc.collect()
            released = ref() is None
            del lp
            gc.collect()
        assert released, "the closed loop still holds the unclosed transport"

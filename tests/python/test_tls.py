"""TLS: ssl= on connections and servers, start_tls(), and the TLS transport.

Every test runs on asyncuv (whose SSL protocol is C, sslproto.c) and on
the stock asyncio loop (asyncio.sslproto), which is the reference.  The
peers are either both on the loop under test, or a sans-I/O TLS peer
(``SansIOPeer``: an ssl.SSLObject over memory BIOs on a plain TCP
connection of the same loop) where a test needs to send exactly what a
misbehaving or unusual peer sends: data in the same segment as the
handshake's last flight, no close_notify, data after close_notify.
"""

import asyncio
import shutil
import socket
import ssl
import threading

import pytest

import tlsdata
from support import (NET_HANG_GUARD, RecordingProtocol, Waker, _set_once, close_transports,
                     run_guarded, spin, tcp_listener)

MiB = 1024 * 1024


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


class BufferedRecorder(Waker, asyncio.BufferedProtocol):
    """A BufferedProtocol recording as RecordingProtocol does."""

    def __init__(self, loop, size=4096):
        self.loop = loop
        self.buf = memoryview(bytearray(size))
        self.transport = None
        self.data = bytearray()
        self.events = []
        self.hints = []
        self.made = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        _set_once(self.made, transport)

    def get_buffer(self, sizehint):
        self.hints.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += self.buf[:nbytes]
        self._wake()

    def eof_received(self):
        self.events.append("eof")
        self._wake()

    def connection_lost(self, exc):
        self.events.append("lost")
        _set_once(self.lost, exc)
        self._wake()

    async def read_at_least(self, nbytes):
        await self._until(lambda: len(self.data) >= nbytes or self.lost.done())
        return bytes(self.data)


class SansIOPeer(Waker, asyncio.Protocol):
    """The other end of a TLS connection, driven by hand: an ssl.SSLObject
    over memory BIOs on a plain TCP transport of the loop."""

    def __init__(self, loop, context, server_side, hostname=None):
        self.loop = loop
        self.server_side = server_side
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing,
                                       server_side=server_side,
                                       server_hostname=hostname)
        self.transport = None
        self.data = bytearray()
        self.handshake_done = False
        self.on_handshake = None       # called once done, before flushing
        self.close_notify = False
        self.eof = False
        self.error = None
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        if not self.server_side:
            self._handshake()

    def data_received(self, data):
        self.incoming.write(data)
        if not self.handshake_done:
            self._handshake()
        if self.handshake_done:
            self._read()
        self._wake()

    def _handshake(self):
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self.flush()
            return
        except ssl.SSLError as exc:
            self.error = exc
            self.flush()
            return
        self.handshake_done = True
        if self.on_handshake is not None:
            self.on_handshake(self)
        self.flush()

    def _read(self):
        while True:
            try:
                chunk = self.sslobj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:   # close_notify after ours
                chunk = b""
            except ssl.SSLError as exc:
                self.error = exc
                break
            if not chunk:
                self.close_notify = True
                break
            self.data += chunk
        self.flush()

    def write(self, data, flush=True):
        self.sslobj.write(data)
        if flush:
            self.flush()

    def send_close_notify(self, flush=True):
        try:
            self.sslobj.unwrap()
        except ssl.SSLWantReadError:
            pass
        if flush:
            self.flush()

    def flush(self):
        out = self.outgoing.read()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def eof_received(self):
        self.eof = True
        self._wake()
        return True

    def connection_lost(self, exc):
        _set_once(self.lost, exc)
        self._wake()

    async def wait_handshake(self):
        await self._until(lambda: self.handshake_done or self.error or self.lost.done())
        assert self.handshake_done, self.error

    async def read_at_least(self, nbytes):
        await self._until(lambda: len(self.data) >= nbytes or self.close_notify
                          or self.eof or self.lost.done())
        return bytes(self.data)


async def tls_server(loop, factory, family="tcp", path=None, **kwargs):
    ctx = kwargs.pop("ssl", None) or tlsdata.server_context()
    if family == "tcp":
        return await loop.create_server(factory, "127.0.0.1", 0, ssl=ctx, **kwargs)
    return await loop.create_unix_server(factory, path, ssl=ctx, **kwargs)


async def tls_connect(loop, factory, server, family="tcp", path=None, **kwargs):
    ctx = kwargs.pop("ssl", None) or tlsdata.client_context()
    if family == "tcp":
        port = server.sockets[0].getsockname()[1]
        return await loop.create_connection(factory, "127.0.0.1", port, ssl=ctx,
                                            server_hostname="localhost", **kwargs)
    return await loop.create_unix_connection(factory, path, ssl=ctx,
                                             server_hostname="localhost", **kwargs)


def accepting(loop, factory=RecordingProtocol):
    """A server's protocol factory, calling factory(loop), and a future of the
    first protocol it made."""
    accepted = loop.create_future()

    def make():
        proto = factory(loop)
        _set_once(accepted, proto)
        return proto
    return make, accepted


class Pair:
    """A TLS server on the loop with one accepted connection."""

    def __init__(self, loop):
        self.loop = loop
        self.server = None
        self.client = None
        self.peer = None

    async def open(self, client_factory=RecordingProtocol,
                   server_factory=RecordingProtocol, family="tcp", path=None,
                   server_kwargs=None, client_kwargs=None):
        make, accepted = accepting(self.loop, server_factory)
        self.server = await tls_server(self.loop, make, family, path,
                                       **(server_kwargs or {}))
        _, self.client = await tls_connect(self.loop, lambda: client_factory(self.loop),
                                           self.server, family, path,
                                           **(client_kwargs or {}))
        self.peer = await accepted
        await self.peer.made
        return self.client, self.peer

    async def close(self):
        await close_transports(self.client, self.peer)
        await self.close_server()

    async def close_server(self):
        self.server.close()
        await self.server.wait_closed()


class PeerPair:
    """A SansIOPeer as the TLS server, on a plain TCP server of the loop,
    and a client of the loop's TLS (a RecordingProtocol) connected to it."""

    def __init__(self, loop, on_handshake=None):
        self.loop = loop
        self.on_handshake = on_handshake
        self.peers = []
        self.server = None

    def _make_peer(self):
        peer = SansIOPeer(self.loop, tlsdata.server_context(), True)
        peer.on_handshake = self.on_handshake
        self.peers.append(peer)
        return peer

    @property
    def peer(self):
        return self.peers[0]

    async def open(self, **client_kwargs):
        """Connect: the client's (transport, protocol)."""
        self.server = await self.loop.create_server(self._make_peer, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return await self.loop.create_connection(
            lambda: RecordingProtocol(self.loop), "127.0.0.1", port,
            ssl=tlsdata.client_context(), server_hostname="localhost", **client_kwargs)

    async def close(self):
        self.peer.transport.close()
        self.server.close()
        await self.server.wait_closed()


def run(loop, coro):
    return run_guarded(loop, coro)


# --- Connections and servers -----------------------------------------------------

class TestConnections:
    @pytest.mark.parametrize("family", ["tcp", "unix"])
    def test_echo_both_ways(self, loop, family, tmp_path):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open(family=family, path=str(tmp_path / "s"))
            for size in (1, 1000, 70000, MiB):
                client.transport.write(pattern(size, size))
                got = await peer.read_at_least(size)
                assert got == pattern(size, size)
                peer.data.clear()
                peer.transport.write(pattern(size, 7))
                got = await client.read_at_least(size)
                assert got == pattern(size, 7)
                client.data.clear()
            await pair.close()
            return client.events, peer.events, client.lost.result(), peer.lost.result()

        c_events, p_events, c_exc, p_exc = run(loop, main())
        # Both sides closed: each one's shutdown completes with the other's
        # close_notify, which is an EOF.
        assert c_events == p_events == ["made", "data", "eof", "lost"]
        assert c_exc is None and p_exc is None

    def test_extra_info(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            tr = client.transport
            info = {name: tr.get_extra_info(name) for name in (
                "sslcontext", "ssl_object", "peercert", "cipher", "compression",
                "peername", "sockname")}
            server_peercert = peer.transport.get_extra_info("peercert")
            socket_ = tr.get_extra_info("socket")
            missing = tr.get_extra_info("no such key", "default")
            await pair.close()
            return info, server_peercert, socket_, missing

        info, server_peercert, sock, missing = run(loop, main())
        assert isinstance(info["sslcontext"], ssl.SSLContext)
        assert isinstance(info["ssl_object"], ssl.SSLObject)
        assert info["peercert"]["subject"] == ((("commonName", "localhost"),),)
        assert info["cipher"][1] == "TLSv1.3"
        assert info["compression"] is None
        assert info["peername"][0] == "127.0.0.1"
        assert info["sockname"][0] == "127.0.0.1"
        assert sock.family == socket.AF_INET
        assert missing == "default"
        assert server_peercert is None   # the client sent no certificate

    def test_transport_api(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            tr = client.transport
            facts = {
                "is_transport": isinstance(tr, asyncio.Transport),
                "can_write_eof": tr.can_write_eof(),
                "is_reading": tr.is_reading(),
                "is_closing": tr.is_closing(),
                "protocol": tr.get_protocol() is client,
                "limits": tr.get_write_buffer_limits(),
                "read_limits": tr.get_read_buffer_limits(),
                "size": tr.get_write_buffer_size(),
                "read_size": tr.get_read_buffer_size(),
            }
            with pytest.raises(NotImplementedError):
                tr.write_eof()
            with pytest.raises(TypeError, match="data: expecting a bytes-like instance, got str"):
                tr.write("text")
            tr.write(b"")
            tr.pause_reading()
            facts["paused"] = tr.is_reading()
            tr.resume_reading()
            await pair.close()
            facts["closed_closing"] = tr.is_closing()
            facts["closed_protocol"] = tr.get_protocol()
            return facts

        facts = run(loop, main())
        assert facts == {
            "is_transport": True, "can_write_eof": False, "is_reading": True,
            "is_closing": False, "protocol": True, "limits": (131072, 524288),
            "read_limits": (65536, 262144), "size": 0, "read_size": 0, "paused": False,
            "closed_closing": True, "closed_protocol": None,
        }

    @pytest.mark.parametrize("side", ["write", "read"])
    def test_buffer_limits(self, loop, side):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            tr = client.transport
            set_limits = getattr(tr, f"set_{side}_buffer_limits")
            get_limits = getattr(tr, f"get_{side}_buffer_limits")
            results = []
            for args, kwargs in (((1000,), {}), ((), {"low": 100}), ((10, 20), {}),
                                 ((-1,), {}), ((1.5e5,), {}), ((None, None), {})):
                try:
                    set_limits(*args, **kwargs)
                    results.append(get_limits())
                except ValueError as exc:
                    results.append(str(exc))
            with pytest.raises(TypeError):
                set_limits(1, 2, 3)
            await pair.close()
            return results

        default = (131072, 524288) if side == "write" else (65536, 262144)
        assert run(loop, main()) == [
            (250, 1000), (100, 400), "high (10) must be >= low (20) must be >= 0",
            "high (-1) must be >= low (-1) must be >= 0", (37500.0, 150000.0),
            default]

    def test_ssl_protocol_attributes(self, loop):
        async def main():
            ctx = tlsdata.client_context()
            pair = Pair(loop)
            client, peer = await pair.open(client_kwargs={"ssl": ctx})
            tr = client.transport
            proto = tr._ssl_protocol
            facts = (type(proto._incoming), type(proto._outgoing),
                     proto._sslobj is tr.get_extra_info("ssl_object"),
                     proto._sslcontext is ctx, proto._app_transport is tr,
                     proto._app_protocol is client,
                     proto._transport.get_extra_info("socket") is not None)
            await pair.close()
            return facts, (proto._transport, proto._app_protocol, proto._app_transport)

        facts, after = run(loop, main())
        assert facts == (ssl.MemoryBIO, ssl.MemoryBIO, True, True, True, True, True)
        assert after == (None, None, None)      # connection_lost() dropped them

    def test_writelines_and_memoryviews(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            buf = bytearray(b"mutable")
            client.transport.writelines([b"one ", memoryview(b"two "), buf])
            buf[:] = b"changed"
            client.transport.write(memoryview(pattern(100000))[10:])
            got = await peer.read_at_least(15 + 99990)
            await pair.close()
            return got

        assert run(loop, main()) == b"one two mutable" + pattern(100000)[10:]

    def test_connect_accepted_socket(self, loop):
        async def main():
            a, b = socket.socketpair()
            server_side = loop.connect_accepted_socket(
                lambda: RecordingProtocol(loop), a, ssl=tlsdata.server_context())
            client_side = loop.create_connection(
                lambda: RecordingProtocol(loop), sock=b, ssl=tlsdata.client_context(),
                server_hostname="localhost")
            (_, server), (_, client) = await asyncio.gather(server_side, client_side)
            client.transport.write(b"ping")
            assert await server.read_at_least(4) == b"ping"
            server.transport.write(b"pong")
            assert await client.read_at_least(4) == b"pong"
            await close_transports(client, server)
            return isinstance(server.transport.get_extra_info("ssl_object"), ssl.SSLObject)

        assert run(loop, main())

    def test_buffered_protocol(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open(
                client_factory=lambda lp: BufferedRecorder(lp, 1000),
                server_factory=lambda lp: BufferedRecorder(lp, 100000))
            client.transport.write(pattern(300000))
            got = await peer.read_at_least(300000)
            peer.transport.write(pattern(50000, 3))
            back = await client.read_at_least(50000)
            await pair.close()
            return got, back

        got, back = run(loop, main())
        assert got == pattern(300000)
        assert back == pattern(50000, 3)

    def test_set_protocol_switches_kind(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            buffered = BufferedRecorder(loop, 10)
            buffered.transport = peer.transport
            buffered.made.set_result(None)
            peer.transport.set_protocol(buffered)
            assert peer.transport.get_protocol() is buffered
            client.transport.write(b"x" * 25)
            got = await buffered.read_at_least(25)
            await close_transports(client, buffered)
            await pair.close_server()
            return got

        assert run(loop, main()) == b"x" * 25

    def test_certificate_verification_error(self, loop):
        async def main():
            server = await tls_server(loop, lambda: RecordingProtocol(loop),
                                      ssl=tlsdata.server_context(untrusted=True))
            try:
                with pytest.raises(ssl.SSLCertVerificationError) as info:
                    await tls_connect(loop, lambda: RecordingProtocol(loop), server)
            finally:
                server.close()
                await server.wait_closed()
            return info.value.verify_message

        assert run(loop, main()) == "self-signed certificate"

    def test_handshake_timeout(self, loop):
        async def main():
            # A TCP server that never answers the ClientHello.
            silent = await loop.create_server(lambda: RecordingProtocol(loop),
                                              "127.0.0.1", 0)
            try:
                with pytest.raises(ConnectionAbortedError) as info:
                    await tls_connect(loop, lambda: RecordingProtocol(loop), silent,
                                      ssl_handshake_timeout=0.05)
            finally:
                silent.close()
                await silent.wait_closed()
            return str(info.value)

        assert run(loop, main()) == (
            "SSL handshake is taking longer than 0.05 seconds: aborting the connection")

    @pytest.mark.parametrize("option", ["ssl_handshake_timeout", "ssl_shutdown_timeout"])
    def test_timeouts_must_be_positive(self, loop, option):
        async def main():
            # (A socket of the caller's: asyncio leaves its own unclosed here.)
            with tcp_listener() as listener, socket.socket() as sock:
                sock.connect(listener.getsockname())
                with pytest.raises(ValueError) as info:
                    await loop.create_connection(
                        asyncio.Protocol, sock=sock, ssl=tlsdata.client_context(),
                        server_hostname="localhost", **{option: 0})
            return str(info.value)

        assert run(loop, main()) == f"{option} should be a positive number, got 0"


# --- Closing ---------------------------------------------------------------------

class TestClosing:
    def test_close_sends_close_notify(self, loop):
        async def scenario():
            pair = PeerPair(loop)
            tr, client = await pair.open()
            peer = pair.peer
            await peer.wait_handshake()
            tr.write(b"bye")
            tr.close()
            closing = tr.is_closing()
            await peer._until(lambda: peer.close_notify)
            # Answer with our close_notify: the client's shutdown completes.
            peer.send_close_notify()
            exc = await client.lost
            await peer._until(lambda: peer.eof or peer.lost.done())
            await pair.close()
            return bytes(peer.data), closing, client.events, exc

        data, closing, events, exc = run(loop, scenario())
        assert data == b"bye"
        assert closing
        # The peer's close_notify completes the shutdown: EOF, then the end.
        assert events == ["made", "eof", "lost"]
        assert exc is None

    def test_shutdown_timeout(self, loop):
        # The peer never answers our close_notify: after ssl_shutdown_timeout
        # the connection is dropped and connection_lost() gets TimeoutError
        # (asyncio.TimeoutError on 3.11 is the same class).
        async def scenario():
            pair = PeerPair(loop)
            tr, client = await pair.open(ssl_shutdown_timeout=0.05)
            peer = pair.peer
            await peer.wait_handshake()
            tr.close()
            await peer._until(lambda: peer.close_notify)
            exc = await client.lost     # no answer from the peer
            await peer._until(lambda: peer.eof or peer.lost.done())
            await pair.close()
            return client.events, exc

        events, exc = run(loop, scenario())
        assert events == ["made", "lost"]
        assert type(exc) is TimeoutError
        assert str(exc) == "SSL shutdown timed out"

    @pytest.mark.parametrize("ending", ["close_notify", "fin_only"])
    def test_peer_ends_the_connection(self, loop, ending):
        # The peer's close_notify, or a TCP FIN without one: an EOF either way.
        async def scenario():
            pair = PeerPair(loop, lambda p: p.write(b"hello", flush=False))
            tr, client = await pair.open()
            peer = pair.peer
            await client.read_at_least(5)
            if ending == "close_notify":
                peer.send_close_notify()
            else:
                peer.transport.close()
            exc = await client.lost
            if ending == "close_notify":
                # The client answered with its own close_notify.
                await peer._until(lambda: peer.close_notify)
            await pair.close()
            return bytes(client.data), client.events, exc

        data, events, exc = run(loop, scenario())
        assert data == b"hello"
        assert events == ["made", "data", "eof", "lost"]
        assert exc is None

    def test_application_data_after_close_notify(self, loop):
        async def scenario():
            errors = []
            loop.set_exception_handler(lambda lp, ctx: errors.append(
                (ctx["message"], type(ctx.get("exception")).__name__)))
            pair = PeerPair(loop)
            tr, client = await pair.open()
            peer = pair.peer
            await peer.wait_handshake()
            tr.close()                  # our close_notify goes out
            await peer._until(lambda: peer.close_notify)
            peer.write(b"too late")     # data instead of the peer's close_notify
            exc = await client.lost
            await pair.close()
            return client.events, exc, errors

        events, exc, errors = run(loop, scenario())
        assert events == ["made", "lost"]
        assert isinstance(exc, ssl.SSLError)
        assert "APPLICATION_DATA_AFTER_CLOSE_NOTIFY" in str(exc)
        assert errors == []             # an SSLError is an OSError: debug log only

    def test_abort(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            client.transport.write(b"x")
            client.transport.abort()
            closing = client.transport.is_closing()
            exc = await client.lost
            peer_exc = await peer.lost
            await pair.close_server()
            return closing, client.events, exc, type(peer_exc)

        closing, events, exc, peer_exc = run(loop, main())
        assert closing
        assert events == ["made", "lost"]
        assert exc is None

    def test_close_twice_drops_the_protocol(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            tr = client.transport
            tr.close()
            tr.close()
            outcomes = []
            # (abort() too, from 3.11.7 and 3.12.2 on: it does nothing.)
            for call in (tr.get_protocol, lambda: tr.get_extra_info("cipher"),
                         tr.is_reading, tr.is_closing):
                try:
                    outcomes.append(repr(call()))
                except AttributeError as exc:
                    outcomes.append(str(exc))
            await client.lost
            await peer.lost
            await pair.close_server()
            return outcomes

        assert run(loop, main()) == [
            "'NoneType' object has no attribute '_app_protocol'",
            "'NoneType' object has no attribute '_get_extra_info'",
            "'NoneType' object has no attribute '_app_reading_paused'",
            "True"]

    def test_write_after_close_is_dropped(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            client.transport.close()
            client.transport.write(b"dropped")
            await client.lost
            await peer.lost
            await pair.close_server()
            return bytes(peer.data)

        assert run(loop, main()) == b""


# --- Data at the edges of the handshake ---------------------------------------------

class TestHandshakeEdges:
    def test_data_in_the_handshakes_last_segment(self, loop):
        # The client's Finished and its first data arrive together: the
        # server's protocol gets the data at once, after connection_made.
        async def scenario():
            factory, accepted = accepting(loop)
            server = await tls_server(loop, factory)
            peer = SansIOPeer(loop, tlsdata.client_context(), False, "localhost")
            peer.on_handshake = lambda p: p.write(b"early data", flush=False)
            port = server.sockets[0].getsockname()[1]
            await loop.create_connection(lambda: peer, "127.0.0.1", port)
            proto = await accepted
            got = await proto.read_at_least(10)
            await peer.read_at_least(0)
            peer.transport.close()
            await proto.lost
            server.close()
            await server.wait_closed()
            return got, proto.events

        got, events = run(loop, scenario())
        assert got == b"early data"
        assert events[:2] == ["made", "data"]

    def test_server_data_with_session_tickets(self, loop):
        # TLS 1.3: the server's session tickets and its first data come in
        # one segment, right after the handshake.
        async def scenario():
            pair = PeerPair(loop, lambda p: p.write(b"welcome", flush=False))
            tr, client = await pair.open()
            got = await client.read_at_least(7)
            tr.abort()
            await client.lost
            await pair.close()
            return got, client.events[:2]

        assert run(loop, scenario()) == (b"welcome", ["made", "data"])


class KeepingSSLObject(ssl.SSLObject):
    """An SSLContext.sslobject_class that keeps every buffer its read() is
    given (the class's ``kept``, a list set per test)."""

    kept = None

    def read(self, len=1024, buffer=None):
        if buffer is not None:
            type(self).kept.append(buffer)
        return super().read(len, buffer)


class TestSSLObjectSubclass:
    # A subclass is Python code between the loop and ssl: it is called as
    # asyncio calls it, and what it keeps cannot reach what the loop reads.
    @pytest.mark.parametrize("buffered", [False, True], ids=["protocol", "buffered"])
    def test_reads_through_the_subclass(self, loop, buffered):
        async def main():
            ctx = tlsdata.client_context()
            ctx.sslobject_class = type("Keeping", (KeepingSSLObject,), {"kept": []})
            factory = (lambda lp: BufferedRecorder(lp, 5000)) if buffered else RecordingProtocol
            pair = Pair(loop)
            client, peer = await pair.open(client_factory=factory,
                                           client_kwargs={"ssl": ctx})
            sslobj = client.transport.get_extra_info("ssl_object")
            peer.transport.write(pattern(300000, 9))
            got = await client.read_at_least(300000)
            for kept in ctx.sslobject_class.kept:   # scribbled on afterwards
                view = memoryview(kept)
                view[:] = b"\xff" * len(view)
            peer.transport.write(b"more")
            more = await client.read_at_least(300004)
            await pair.close()
            return type(sslobj).__name__, got, more, ctx.sslobject_class.kept

        name, got, more, kept = run(loop, main())
        assert name == "Keeping"
        assert got == pattern(300000, 9)
        assert more == got + b"more"
        if not buffered:
            # asyncio's _do_read__copied() calls read(n): no buffer.
            assert kept == []


# --- start_tls() --------------------------------------------------------------------

class UpgradingProtocol(RecordingProtocol):
    """Plain protocol whose connection the test upgrades with start_tls()."""


class TestStartTLS:
    @pytest.mark.parametrize("buffered", [False, True])
    def test_client_and_server_upgrade(self, loop, buffered):
        async def main():
            factory, accepted = accepting(loop)
            server = await loop.create_server(factory, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            raw_client, client = await loop.create_connection(
                lambda: RecordingProtocol(loop), "127.0.0.1", port)
            plain_server = await accepted
            await plain_server.made
            # A line in clear, then both sides upgrade.
            raw_client.write(b"STARTTLS\r\n")
            await plain_server.read_at_least(10)
            new_client = BufferedRecorder(loop, 64) if buffered else RecordingProtocol(loop)
            new_server = BufferedRecorder(loop, 64) if buffered else RecordingProtocol(loop)
            server_tls, client_tls = await asyncio.gather(
                loop.start_tls(plain_server.transport, new_server,
                               tlsdata.server_context(), server_side=True),
                loop.start_tls(raw_client, new_client, tlsdata.client_context(),
                               server_hostname="localhost"))
            client_tls.write(pattern(100000))
            got = await new_server.read_at_least(100000)
            server_tls.write(b"ok")
            back = await new_client.read_at_least(2)
            facts = (isinstance(client_tls.get_extra_info("ssl_object"), ssl.SSLObject),
                     client_tls.get_protocol() is new_client,
                     raw_client.get_protocol() is not client,
                     "made" in new_client.events)
            client_tls.close()
            server_tls.close()
            await new_client._until(lambda: "lost" in new_client.events)
            await new_server._until(lambda: "lost" in new_server.events)
            server.close()
            await server.wait_closed()
            return got, back, facts

        got, back, facts = run(loop, main())
        assert got == pattern(100000)
        assert back == b"ok"
        # start_tls() makes no connection_made() call: the caller has the transport.
        assert facts == (True, True, True, False)

    def test_streams_start_tls(self, loop):
        async def main():
            async def handle(reader, writer):
                line = await reader.readline()
                # The client's ClientHello must not reach the stream's
                # buffer (before 3.14.4, start_tls() leaves it there).
                writer.write(b"go\n")
                await writer.start_tls(tlsdata.server_context())
                writer.write(line.upper())
                await writer.drain()
                data = await reader.read()
                writer.write(data[::-1])
                writer.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\n")
            assert await reader.readline() == b"go\n"
            await writer.start_tls(tlsdata.client_context(), server_hostname="localhost")
            upper = await reader.readexactly(6)
            # No write_eof on TLS: the server reads until the client closes.
            writer.write(b"abc")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return upper

        assert run(loop, main()) == b"HELLO\n"

    def test_wrong_arguments(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            outcomes = []
            for args in ((client.transport, client, None),
                         (object(), client, tlsdata.client_context())):
                try:
                    await loop.start_tls(*args)
                except TypeError as exc:
                    outcomes.append(str(exc).split(",")[0].split(" <")[0])
            await pair.close()
            return outcomes

        assert run(loop, main()) == [
            "sslcontext is expected to be an instance of ssl.SSLContext",
            "transport"]


# --- Flow control -------------------------------------------------------------------

class PausingRecorder(RecordingProtocol):
    """Pauses reading in connection_made()."""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.pause_reading()


async def _paused_pair(loop):
    """A Pair whose server side paused reading in connection_made(), with
    small kernel buffers: the sender stops soon after the reader."""
    pair = Pair(loop)
    client, peer = await pair.open(server_factory=PausingRecorder)
    for proto in (client, peer):
        sock = proto.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    return pair, client, peer


class TestFlowControl:
    def test_burst_while_paused_is_bounded_and_complete(self, loop):
        async def main():
            pair, client, peer = await _paused_pair(loop)
            client.transport.set_write_buffer_limits(high=16384)
            payload = pattern(MiB, 5)
            for i in range(0, MiB, 16384):
                client.transport.write(payload[i:i + 16384])
            await client.paused
            # The reader stops reading from the socket once its incoming
            # buffer reaches the high-water mark (256 KiB)...
            await _until_read_buffered(peer.transport, 256 * 1024)
            # ... and stays there while the sender still has data.
            await spin(20)
            held = peer.transport.get_read_buffer_size()
            delivered = len(peer.data)
            peer.transport.resume_reading()
            got = await peer.read_at_least(MiB)
            await client.resumed
            await pair.close()
            return held, delivered, got == payload

        held, delivered, complete = run(loop, main())
        assert delivered == 0
        assert 256 * 1024 <= held <= 512 * 1024
        assert complete

    def test_pause_and_resume_writing(self, loop):
        async def main():
            pair, client, peer = await _paused_pair(loop)
            tr = client.transport
            tr.set_write_buffer_limits(high=65536, low=1024)
            writes = 0
            while not client.paused.done():
                tr.write(b"z" * 8192)
                writes += 1
                if writes % 16 == 0:
                    await spin(2)
            size_when_paused = tr.get_write_buffer_size()
            paused_flag = tr._protocol_paused
            peer.transport.resume_reading()
            await client.resumed
            size_after = tr.get_write_buffer_size()
            await peer.read_at_least(writes * 8192)
            await pair.close()
            return size_when_paused, paused_flag, size_after, client.events

        paused_size, flag, after, events = run(loop, main())
        assert paused_size >= 65536
        assert flag is True
        assert after <= 1024
        assert events[:3] == ["made", "pause", "resume"]

    def test_app_pause_reading_stops_delivery(self, loop):
        async def main():
            pair = Pair(loop)
            client, peer = await pair.open()
            peer.transport.pause_reading()
            assert not peer.transport.is_reading()
            client.transport.write(b"a" * 1000)
            # The data arrives and waits in the incoming buffer.
            await _until_read_buffered(peer.transport, 1000)
            delivered = len(peer.data)
            peer.transport.resume_reading()
            got = await peer.read_at_least(1000)
            await pair.close()
            return delivered, got

        delivered, got = run(loop, main())
        assert delivered == 0
        assert got == b"a" * 1000


async def _until_read_buffered(transport, nbytes):
    """Wait until at least nbytes of ciphertext wait in the transport's
    incoming buffer: iterations of the loop, each with a poll for I/O."""
    while transport.get_read_buffer_size() < nbytes:
        await asyncio.sleep(0)


# --- Errors in the application's callbacks -------------------------------------------

class FailingProtocol(RecordingProtocol):
    def data_received(self, data):
        super().data_received(data)
        raise ZeroDivisionError("boom")


class TestCallbackErrors:
    def test_data_received_error_is_fatal(self, loop):
        async def main():
            errors = []
            loop.set_exception_handler(lambda lp, ctx: errors.append(
                (ctx["message"], type(ctx["exception"]).__name__,
                 type(ctx["protocol"]).__name__)))
            pair = Pair(loop)
            client, peer = await pair.open(server_factory=FailingProtocol)
            client.transport.write(b"x")
            exc = await peer.lost
            await client.lost
            await pair.close_server()
            return errors, type(exc).__name__

        errors, exc = run(loop, main())
        assert errors == [("Fatal error on SSL protocol", "ZeroDivisionError", "SSLProtocol")]
        assert exc == "ZeroDivisionError"


# --- Writes made inside the application's callbacks ------------------------------------

class Responder(RecordingProtocol):
    """Answers each message with what ``respond(transport, data)`` does."""

    respond = None

    def data_received(self, data):
        super().data_received(data)
        type(self).respond(self.transport, data)


class TestWritesInCallbacks:
    def run_responder(self, loop, respond, expected_len, errors=None):
        async def main():
            if errors is not None:
                loop.set_exception_handler(lambda lp, ctx: errors.append(
                    (ctx["message"], type(ctx.get("exception")).__name__)))
            responder = type("R", (Responder,), {"respond": staticmethod(respond)})
            pair = Pair(loop)
            client, peer = await pair.open(server_factory=responder)
            client.transport.write(b"go")
            got = await client.read_at_least(expected_len)
            await client._until(lambda: "lost" in client.events
                                or len(client.data) >= expected_len)
            client.transport.close()
            await client.lost
            await peer.lost
            await pair.close_server()
            return got, client.events

        return run(loop, main())

    def test_pieces_arrive_in_order(self, loop):
        pieces = [b"%05d," % i for i in range(200)] + [pattern(100000)] + [b"end"]

        def respond(transport, data):
            for piece in pieces[:100]:
                transport.write(piece)
            transport.writelines(pieces[100:200])
            transport.write(memoryview(pieces[200]))
            transport.write(bytearray(pieces[201]))

        expected = b"".join(pieces)
        got, _ = self.run_responder(loop, respond, len(expected))
        assert got == expected

    def test_write_then_close(self, loop):
        def respond(transport, data):
            transport.write(b"bye")
            transport.close()

        got, events = self.run_responder(loop, respond, 3)
        assert got == b"bye"
        assert events == ["made", "data", "eof", "lost"]

    def test_write_then_fail(self, loop):
        def respond(transport, data):
            transport.write(b"partial")
            raise ZeroDivisionError("boom")

        errors = []
        got, events = self.run_responder(loop, respond, 7, errors)
        assert got == b"partial"
        assert errors == [("Fatal error on SSL protocol", "ZeroDivisionError")]


    def test_write_then_abort(self, loop):
        def respond(transport, data):
            transport.write(b"bye")
            transport.abort()

        got, _ = self.run_responder(loop, respond, 3)
        assert got == b"bye"

    def test_reply_is_sent_before_the_run_ends(self, loop):
        """A reply written by data_received(), which also stops the loop,
        reaches the peer while the loop no longer runs (asyncio sends it at
        once; asyncuv sends output deferred to the end of the I/O step when
        the run ends)."""
        got = []

        def client(port):
            ctx = tlsdata.client_context()
            with socket.create_connection(("127.0.0.1", port), timeout=NET_HANG_GUARD) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"ping")
                    data = b""
                    while len(data) < 4:
                        chunk = s.recv(100)
                        if not chunk:
                            break
                        data += chunk
                    got.append(data)

        def respond(transport, data):
            transport.write(b"po")
            transport.write(b"ng")
            loop.stop()

        responder = type("R", (Responder,), {"respond": staticmethod(respond)})
        make, accepted = accepting(loop, responder)
        server = run(loop, tls_server(loop, make))
        thread = threading.Thread(target=client, args=(server.sockets[0].getsockname()[1],))
        thread.start()
        guard = loop.call_later(NET_HANG_GUARD, loop.stop)  # only against a hang
        loop.run_forever()
        guard.cancel()
        thread.join(NET_HANG_GUARD)   # the loop does not run meanwhile
        alive = thread.is_alive()

        async def cleanup():
            peer = await accepted
            peer.transport.abort()
            server.close()
            await server.wait_closed()

        run(loop, cleanup())
        thread.join()
        assert not alive
        assert got == [b"pong"]


class TestDebugMode:
    def test_handshake_is_logged(self, loop, caplog):
        import logging

        async def main():
            loop.set_debug(True)
            pair = Pair(loop)
            client, peer = await pair.open()
            client.transport.write(b"x")
            await peer.read_at_least(1)
            await pair.close()

        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            run(loop, main())
        messages = [r.getMessage() for r in caplog.records]
        assert sum("starts SSL handshake" in m for m in messages) == 2
        assert sum("SSL handshake took" in m for m in messages) == 2


# --- Renegotiation (TLS 1.2; OpenSSL's command-line tools as the peer) ------------------

async def _read_until(stream, marker, log):
    """Lines of an openssl tool's output until one holds marker."""
    while True:
        line = await stream.readline()
        log.append(line)
        if not line:
            raise AssertionError(f"openssl ended before {marker!r}: {log[-8:]}")
        if marker in line:
            return line


# The peer is openssl s_server (.ci/install and the matrix's chroots install
# openssl; debian/control lists it for the package's tests).
@pytest.mark.skipif(shutil.which("openssl") is None,
                    reason="needs the openssl command (s_server as the peer)")
class TestRenegotiation:
    def test_server_initiated_is_followed(self, loop):
        # openssl s_server sends a HelloRequest ("r"): the client (OpenSSL
        # under the ssl module, as the context allows) renegotiates and the
        # data keeps flowing both ways.
        async def main():
            # s_server reads the file at start, before it prints ACCEPT.
            with tlsdata.pem_file(tlsdata.SERVER_CERT + tlsdata.SERVER_KEY) as pem:
                proc = await asyncio.create_subprocess_exec(
                    "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", pem,
                    "-tls1_2", stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                log = []
                try:
                    line = await _read_until(proc.stdout, b"ACCEPT", log)
                    port = int(line.rsplit(b":", 1)[1])
                    ctx = tlsdata.client_context()
                    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                    tr, client = await loop.create_connection(
                        lambda: RecordingProtocol(loop), "127.0.0.1", port, ssl=ctx,
                        server_hostname="localhost")
                    tr.write(b"hello\n")
                    await _read_until(proc.stdout, b"hello", log)
                    proc.stdin.write(b"r\n")
                    await _read_until(proc.stdout, b"SSL_do_handshake -> 1", log)
                    proc.stdin.write(b"after\n")
                    got = await client.read_at_least(6)
                    tr.write(b"still here\n")
                    await _read_until(proc.stdout, b"still here", log)
                    tr.abort()
                    await client.lost
                    return got, tr.get_extra_info("cipher")[1]
                finally:
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
                    # The process has exited; its pipes' transports may not have
                    # seen their ends yet, and asyncio's subprocess transport
                    # would warn of being unclosed (3.14 under load).
                    proc._transport.close()

        assert run(loop, main()) == (b"after\n", "TLSv1.2")

    def test_client_initiated_is_refused(self, loop):
        # openssl s_client asks for a renegotiation ("R"): OpenSSL refuses
        # it on the server's side (no_renegotiation), the client gives up.
        async def main():
            factory, accepted = accepting(loop)
            server = await tls_server(loop, factory)
            port = server.sockets[0].getsockname()[1]
            proc = await asyncio.create_subprocess_exec(
                "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
            log = []
            try:
                await _read_until(proc.stdout, b"Verify return code", log)
                proto = await accepted
                proc.stdin.write(b"abc\n")
                await proto.read_at_least(4)
                proc.stdin.write(b"R\n")
                await _read_until(proc.stdout, b"RENEGOTIATING", log)
                await _read_until(proc.stdout, b"no renegotiation", log)
                await proc.wait()
                exc = await proto.lost
                return bytes(proto.data), proto.events, exc
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                proc._transport.close()   # as above
                server.close()
                await server.wait_closed()

        data, events, exc = run(loop, main())
        assert data == b"abc\n"
        # The client's fatal alert ends the connection: an SSLError.
        assert events == ["made", "data", "lost"]
        assert isinstance(exc, ssl.SSLError) and "HANDSHAKE_FAILURE" in str(exc)

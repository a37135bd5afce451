"""Repeated operations leave the interpreter's memory where it was.

Each test runs one operation many times on the loop and watches
sys.getallocatedblocks(): a leaked reference to any object (a transport, a
future, a bytes object, a bound method...) keeps at least one memory block
per operation alive.  The operations first run a few hundred times so that
caches and free lists (the interpreter's and the loop's) reach their steady
size; then 1,000 more may not add more than 0.02 blocks each.  Every test
runs on asyncuv and on the stock asyncio loop (the reference).
"""

import asyncio
import concurrent.futures
import gc
import socket
import sys

from support import NET_HANG_GUARD, run_guarded

WARM_UP = 300
MEASURED = 1000
BLOCKS_PER_OP = 0.02


def assert_repeat_does_not_grow(repeat):
    """repeat(n) does an operation n times."""
    repeat(WARM_UP)
    gc.collect()
    before = sys.getallocatedblocks()
    repeat(MEASURED)
    gc.collect()
    grown = sys.getallocatedblocks() - before
    assert grown < MEASURED * BLOCKS_PER_OP, (
        f"{grown} memory blocks more after {MEASURED} operations")


def assert_no_growth(loop, operation):
    """The coroutine function operation, awaited again and again.  The hang
    guard is on each operation: a thousand TLS handshakes on a loaded
    machine may take longer than the guard, without hanging."""
    async def repeat(n):
        for _ in range(n):
            await asyncio.wait_for(operation(), NET_HANG_GUARD)

    assert_repeat_does_not_grow(lambda n: loop.run_until_complete(repeat(n)))


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Client(asyncio.Protocol):
    def __init__(self, loop):
        self.done = loop.create_future()
        self.received = b""

    def data_received(self, data):
        self.received += data
        if len(self.received) == 5:
            self.done.set_result(self.received)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(ConnectionError("lost early"))


class BufferedEcho(asyncio.BufferedProtocol):
    def __init__(self):
        self.buffer = bytearray(4096)

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buffer

    def buffer_updated(self, nbytes):
        self.transport.write(bytes(self.buffer[:nbytes]))


def test_tcp_connections(loop):
    server = loop.run_until_complete(
        loop.create_server(Echo, "127.0.0.1", 0))
    address = server.sockets[0].getsockname()

    async def connect_exchange_close():
        transport, client = await loop.create_connection(
            lambda: Client(loop), *address)
        transport.write(b"hello")
        assert await client.done == b"hello"
        transport.close()

    try:
        assert_no_growth(loop, connect_exchange_close)
    finally:
        server.close()
        run_guarded(loop, server.wait_closed())


class TLSClient(Client):
    def __init__(self, loop):
        super().__init__(loop)
        self.lost = loop.create_future()

    def connection_lost(self, exc):
        super().connection_lost(exc)
        self.lost.set_result(exc)


def test_tls_handshakes(loop):
    # A TLS connection: the handshake, data both ways, close_notify both
    # ways; the SSL protocol, its transport, BIOs and SSL objects on both
    # sides, each time.
    import tlsdata
    client_ctx = tlsdata.client_context()
    server = loop.run_until_complete(
        loop.create_server(Echo, "127.0.0.1", 0, ssl=tlsdata.server_context()))
    address = server.sockets[0].getsockname()

    async def handshake_exchange_close():
        transport, client = await loop.create_connection(
            lambda: TLSClient(loop), *address, ssl=client_ctx,
            server_hostname="localhost")
        transport.write(b"hello")
        assert await client.done == b"hello"
        transport.close()
        assert await client.lost is None

    try:
        assert_no_growth(loop, handshake_exchange_close)
    finally:
        server.close()
        run_guarded(loop, server.wait_closed())


def test_buffered_protocol_connections(loop):
    async def exchange():
        a, b = socket.socketpair()
        b.setblocking(False)  # for sock_*
        with b:
            transport, _ = await loop.connect_accepted_socket(BufferedEcho, a)
            await loop.sock_sendall(b, b"hello")
            assert await loop.sock_recv(b, 5) == b"hello"
            transport.close()
            await asyncio.sleep(0)

    assert_no_growth(loop, exchange)


def test_sock_methods(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    buf = bytearray(16)

    async def round_trip():
        await loop.sock_sendall(a, b"ping")
        assert await loop.sock_recv(b, 16) == b"ping"
        await loop.sock_sendall(b, b"pong")
        assert await loop.sock_recv_into(a, buf) == 4

    with a, b:
        assert_no_growth(loop, round_trip)


def test_reader_and_writer_cycles(loop):
    a, b = socket.socketpair()

    async def cycle():
        ready = loop.create_future()
        loop.add_reader(a, ready.set_result, "r")
        b.send(b"x")
        assert await ready == "r"
        a.recv(1)
        assert loop.remove_reader(a)
        writable = loop.create_future()
        loop.add_writer(a, writable.set_result, "w")
        assert await writable == "w"
        assert loop.remove_writer(a)

    with a, b:
        assert_no_growth(loop, cycle)


def test_datagram_endpoints(loop):
    class Receiver(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = loop.create_future()

        def datagram_received(self, data, addr):
            if not self.got.done():
                self.got.set_result(data)

    async def endpoint_send_close():
        transport, receiver = await loop.create_datagram_endpoint(
            Receiver, local_addr=("127.0.0.1", 0))
        transport.sendto(b"datagram", transport.get_extra_info("sockname"))
        assert await receiver.got == b"datagram"
        transport.close()
        await asyncio.sleep(0)

    assert_no_growth(loop, endpoint_send_close)


def test_streams_server_and_client(loop):
    async def handle(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = loop.run_until_complete(
        asyncio.start_server(handle, "127.0.0.1", 0))
    address = server.sockets[0].getsockname()

    async def request():
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"line\n")
        assert await reader.readline() == b"line\n"
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()

    try:
        assert_no_growth(loop, request)
    finally:
        server.close()
        run_guarded(loop, server.wait_closed())


def test_numeric_getaddrinfo_and_executor(loop):
    # One worker: the default executor starts its threads as it sees fit,
    # and each thread's memory would count here.
    executor = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(executor)

    async def lookups():
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        assert infos[0][4] == ("127.0.0.1", 80)
        assert await loop.run_in_executor(None, abs, -3) == 3

    try:
        assert_no_growth(loop, lookups)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())


def test_run_until_complete(loop):
    # Each run installs the loop's async generator hooks and removes them.
    async def nothing():
        pass

    def runs(n):
        for _ in range(n):
            loop.run_until_complete(nothing())

    assert_repeat_does_not_grow(runs)

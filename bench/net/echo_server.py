#!/usr/bin/python3
"""Echo server for the network benchmarks, on asyncio, uvloop or asyncuv.

    /usr/bin/python3 bench/net/echo_server.py --loop uvloop --mode protocol
    LISTENING 40123

Four ways of writing the same echo server, selected by ``--mode``:

``streams``
    ``asyncio.start_server``; each connection is a coroutine doing
    ``reader.read()`` / ``writer.write()`` / ``await writer.drain()``.
``protocol``
    an ``asyncio.Protocol`` whose ``data_received`` calls
    ``transport.write(data)`` (reading pauses while the transport asks to).
``buffered``
    an ``asyncio.BufferedProtocol``: the loop reads into the buffer returned by
    ``get_buffer``, ``buffer_updated`` writes a copy of the bytes back (a copy,
    as in uvloop's own benchmark, because the buffer is reused by the next
    read while the transport may still hold what it was given).
``sockets``
    plain non-blocking sockets driven by ``loop.sock_accept``,
    ``loop.sock_recv`` (64 KiB at most) and ``loop.sock_sendall`` coroutines,
    one task per connection.

With ``--tls PEM`` (streams, protocol and buffered modes) the connections
are TLS (``ssl=`` of ``create_server()``/``start_server()``), with the
certificate and key in PEM (``tls-cert.pem`` here); ``echo_client -S``
speaks it.

The server listens on TCP (``--host``, default 127.0.0.1; ``--port``, default
0 = any free port) and, with ``--unix PATH``, on a Unix socket as well.  Once
everything listens it prints ``LISTENING <tcp port>`` on stdout (a harness
reads that line).  It runs until SIGTERM/SIGINT (default action: the
process ends at once; a Unix socket file left behind is removed by the next
start), or ``--max-seconds`` (default 900), whichever comes first.

asyncuv's network methods may not exist yet: if starting the server raises
``NotImplementedError``, the server prints ``NOTIMPLEMENTED <what>`` on stdout,
"asyncuv: network not implemented yet" on stderr, and exits with status 3
(:data:`EXIT_NOT_IMPLEMENTED`), which ``run.py`` turns into a skipped row.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import ipaddress
import os
import resource
import signal
import socket
import sys

#: Buffer size of the buffered mode, and the most the streams mode asks
#: for at once (asyncio's and uvloop's own transport read size is 256 KiB).
READ_SIZE = 256 * 1024
#: Bytes asked of sock_recv() in the sockets mode.  Below glibc's mmap
#: threshold (128 KiB) on purpose: sock_recv(n) allocates n bytes up front,
#: and a 256 KiB request costs an mmap/mremap/munmap per call.
SOCK_RECV_SIZE = 64 * 1024
#: Exit status meaning "this loop does not implement what the mode needs".
EXIT_NOT_IMPLEMENTED = 3
LOOPS = ("asyncio", "uvloop", "asyncuv")
MODES = ("streams", "protocol", "buffered", "sockets")


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """Create a fresh event loop of kind *name* (asyncio means epoll)."""
    if name == "asyncio":
        return asyncio.SelectorEventLoop()
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "asyncuv":
        import asyncuv

        return asyncuv.new_event_loop()
    raise ValueError(f"unknown loop {name!r}")


def loopback_host(value: str) -> str:
    """argparse type: a numeric loopback address (these are benchmarks of
    one machine; they never listen on a real network)."""
    try:
        if ipaddress.ip_address(value).is_loopback:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a numeric loopback address (127.x.x.x or ::1)")


def raise_nofile_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (many connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


# --------------------------------------------------------------------------
# The four servers
# --------------------------------------------------------------------------


class EchoProtocol(asyncio.Protocol):
    """Echo every chunk with ``transport.write``; honour flow control."""

    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    """Read into a per-connection buffer, write back a copy of each read."""

    __slots__ = ("transport", "buffer")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = bytearray(READ_SIZE)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        # Slicing a bytearray copies: the transport may keep what it is
        # given (uvloop queues writes until the end of the loop iteration)
        # while the next read overwrites self.buffer.
        self.transport.write(self.buffer[:nbytes])

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


async def streams_handler(reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
    """Echo one connection with the streams API until EOF."""
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def sockets_echo(loop: asyncio.AbstractEventLoop,
                       conn: socket.socket) -> None:
    """Echo one accepted socket with sock_recv/sock_sendall until EOF."""
    try:
        while data := await loop.sock_recv(conn, SOCK_RECV_SIZE):
            await loop.sock_sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


async def sockets_accept(loop: asyncio.AbstractEventLoop,
                         listener: socket.socket, tasks: set) -> None:
    """Accept forever on *listener*; one echo task per connection."""
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(sockets_echo(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def sockets_selftest(loop: asyncio.AbstractEventLoop) -> None:
    """Run sock_connect/accept/sendall/recv once, so that a loop lacking one
    of them fails at start-up (NotImplementedError) rather than later."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        lsock.setblocking(False)
        with socket.socket() as client:
            client.setblocking(False)
            await loop.sock_connect(client, lsock.getsockname())
            conn, _ = await loop.sock_accept(lsock)
            with conn:
                conn.setblocking(False)
                await loop.sock_sendall(client, b"x")
                if await loop.sock_recv(conn, 1) != b"x":
                    raise RuntimeError("sock_recv self-test returned bad data")


def make_listener(family: int, address) -> socket.socket:
    """A listening, non-blocking socket for the ``sockets`` mode."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family != socket.AF_UNIX:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def start(loop: asyncio.AbstractEventLoop, mode: str, host: str,
                port: int, unix: str | None, backlog: int,
                tls: str | None = None) -> tuple[int, list]:
    """Start the server(s) for *mode*; return (TCP port, things to keep)."""
    keep: list = []
    ctx = None
    if tls:
        import ssl

        if mode == "sockets":
            raise ValueError("--tls: not in the sockets mode")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls)
    if mode == "streams":
        srv = await asyncio.start_server(streams_handler, host, port,
                                         backlog=backlog, limit=READ_SIZE,
                                         ssl=ctx)
        keep.append(srv)
        if unix:
            keep.append(await asyncio.start_unix_server(
                streams_handler, unix, backlog=backlog, limit=READ_SIZE,
                ssl=ctx))
        return srv.sockets[0].getsockname()[1], keep
    if mode in ("protocol", "buffered"):
        factory = EchoProtocol if mode == "protocol" else EchoBufferedProtocol
        srv = await loop.create_server(factory, host, port, backlog=backlog,
                                       ssl=ctx)
        keep.append(srv)
        if unix:
            keep.append(await loop.create_unix_server(factory, unix,
                                                      backlog=backlog,
                                                      ssl=ctx))
        return srv.sockets[0].getsockname()[1], keep
    if mode == "sockets":
        await asyncio.wait_for(sockets_selftest(loop), 10)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listeners = [make_listener(family, (host, port))]
        if unix:
            listeners.append(make_listener(socket.AF_UNIX, unix))
        tasks: set = set()
        for sock in listeners:
            keep.append(loop.create_task(sockets_accept(loop, sock, tasks)))
        keep += listeners
        keep.append(tasks)
        return listeners[0].getsockname()[1], keep
    raise ValueError(f"unknown mode {mode!r}")


def main(argv: list[str] | None = None) -> int:
    """Parse the options, start the server, run until told to stop."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", choices=LOOPS, default="asyncio")
    ap.add_argument("--mode", choices=MODES, default="protocol")
    ap.add_argument("--host", default="127.0.0.1", type=loopback_host,
                    help="loopback address to listen on (default %(default)s)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix", metavar="PATH",
                    help="also listen on this Unix socket")
    ap.add_argument("--backlog", type=int, default=1024)
    ap.add_argument("--max-seconds", type=float, default=900.0,
                    help="exit after this long in any case (default 900)")
    ap.add_argument("--tls", metavar="PEM",
                    help="TLS with this certificate and key (not sockets)")
    args = ap.parse_args(argv)

    faulthandler.enable()  # a crashing loop leaves a traceback on stderr
    raise_nofile_limit()
    if args.unix and os.path.exists(args.unix):
        os.unlink(args.unix)
    loop = new_loop(args.loop)
    asyncio.set_event_loop(loop)
    loop.set_debug(False)
    # SIGTERM and SIGINT end the process at once (default action): there is
    # nothing to flush, and an exception raised by a Python-level handler
    # could land in a protocol callback, where a loop may swallow it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        port, keep = loop.run_until_complete(
            start(loop, args.mode, args.host, args.port, args.unix,
                  args.backlog, args.tls))
    except NotImplementedError as exc:
        what = str(exc) or f"{args.mode} mode"
        print(f"NOTIMPLEMENTED {what}", flush=True)
        print(f"{args.loop}: network not implemented yet ({what})",
              file=sys.stderr)
        return EXIT_NOT_IMPLEMENTED
    print(f"LISTENING {port}", flush=True)
    loop.call_later(args.max_seconds, loop.stop)
    loop.run_forever()
    # Only --max-seconds gets here.  Exit without tearing connections down
    # one by one: a benchmark server has nothing to flush.
    if args.unix and os.path.exists(args.unix):
        os.unlink(args.unix)
    os._exit(0)

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The benchmark servers' own Python work per request, with no event loop.

    /usr/bin/python3 bench/net/app_cost.py            # a table, microseconds
    /usr/bin/python3 bench/net/app_cost.py --json     # one JSON object

Every loop that runs ``echo_server.py`` or ``http_server.py`` runs their
protocol code too: ``data_received`` and ``transport.write`` for the echo
protocol, ``get_buffer`` / ``buffer_updated`` and the copy for the
BufferedProtocol, the httptools parse and its callbacks for HTTP.  This
script times that code alone: each protocol is fed one request at a time,
in a tight loop, on a transport whose ``write`` is a C function that keeps
nothing (``deque(maxlen=1).append``).  No socket, no loop, hot caches: a
lower bound for the user time any loop adds to the kernel's share.

``tls ssl-API 1KiB`` (and 64KiB) is the TLS rows' share that no loop can
avoid: a server's part of one TLS echo through the public ssl API alone
(MemoryBIO.write() of the request's record, SSLObject.read(),
SSLObject.write() of the echo, MemoryBIO.read() of its record), taken as
half of a round trip between two SSLObjects over memory BIOs.  The echo
protocol's own work (``protocol 1KiB``) comes on top.

run.py adds it to the floor server's CPU per request (epoll_floor.c, in the
same row) to give the lowest asyncuv/uvloop ratio that any loop running
these servers could reach on this machine.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time

import echo_server

#: What wrk sends for ``wrk http://127.0.0.1:PORT/`` (a typical port).
WRK_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:40123\r\n\r\n"
KIB = 1024


class NullTransport:
    """Enough of a transport for the benchmark protocols; keeps nothing."""

    def __init__(self) -> None:
        self.write = collections.deque(maxlen=1).append

    def close(self) -> None:  # pragma: no cover - never called here
        raise AssertionError("the protocol closed a keep-alive connection")

    def get_extra_info(self, name, default=None):
        return default


def per_request(step, seconds: float) -> float:
    """Seconds per call of step(), the empty loop's cost taken off; best of
    five runs of about *seconds* each."""
    t0 = time.perf_counter()
    for _ in range(1000):
        step()
    n = max(1000, int(seconds / ((time.perf_counter() - t0) / 1000)))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        t1 = time.perf_counter()
        for _ in range(n):
            pass
        t2 = time.perf_counter()
        best = min(best, (t1 - t0) - (t2 - t1))
    return best / n


def protocol_step(size: int):
    proto = echo_server.EchoProtocol()
    proto.connection_made(NullTransport())
    data = bytes(size)
    data_received = proto.data_received
    return lambda: data_received(data)


def buffered_step(size: int):
    proto = echo_server.EchoBufferedProtocol()
    proto.connection_made(NullTransport())
    get_buffer = proto.get_buffer
    buffer_updated = proto.buffer_updated

    def step() -> None:
        get_buffer(-1)
        buffer_updated(size)
    return step


def http_step():
    import http_server
    proto = http_server.HttpProtocol()
    transport = NullTransport()
    answers = collections.deque(maxlen=1)
    transport.write = answers.append
    proto.connection_made(transport)
    data_received = proto.data_received
    data_received(WRK_REQUEST)
    if answers.pop() != http_server.RESPONSE:
        raise AssertionError("http_server.py did not answer the request")
    return lambda: data_received(WRK_REQUEST)


def tls_pingpong_step(size: int):
    """One TLS echo round trip through the public ssl API only, both ends
    over memory BIOs with the benchmark's certificate: the client encrypts
    the request, the server decrypts it and encrypts the echo, the client
    decrypts that.  Each end makes one record and reads one, so the
    server's share is half of a step."""
    import os
    import ssl
    pem = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "tls-cert.pem")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pem)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    ci, co, si, so = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(ci, co, server_hostname="localhost")
    server = sctx.wrap_bio(si, so, server_side=True)
    for _ in range(10):
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        si.write(co.read())
        ci.write(so.read())
    msg = bytes(size)
    cw, cr, sw, sr = client.write, client.read, server.write, server.read
    cin, cout, sin, sout = ci.write, co.read, si.write, so.read

    def read_all(read) -> int:
        """Read size bytes (a record holds 16 KiB at most)."""
        n = len(read(size))
        while n < size:
            n += len(read(size - n))
        return n

    def step() -> None:
        cw(msg)
        sin(cout())
        n = 0
        while n < size:       # the echo of each record as it comes
            n += sw(sr(size - n))
        cin(sout())
        if read_all(cr) != size:
            raise AssertionError("the TLS echo lost data")
    # The session tickets the server sent after its handshake.
    try:
        cr(size)
    except ssl.SSLWantReadError:
        pass
    step()
    return step


def measure(seconds: float) -> dict:
    """Microseconds per request, by benchmark row kind."""
    out = {}
    for size in (1, 64):
        out[f"tls ssl-API {size}KiB"] = per_request(
            tls_pingpong_step(size * KIB), seconds) / 2
    for size in (1, 10, 100):
        out[f"protocol {size}KiB"] = per_request(protocol_step(size * KIB),
                                                  seconds)
        out[f"buffered {size}KiB"] = per_request(buffered_step(size * KIB),
                                                  seconds)
    try:
        out["http"] = per_request(http_step(), seconds)
    except ImportError:          # no python3-httptools: no http row either
        pass
    return {k: v * 1e6 for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=0.05,
                    help="length of one of the five timings of each server "
                         "(default %(default)s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = measure(args.seconds)
    if args.json:
        print(json.dumps(result))
    else:
        for key, us in result.items():
            print(f"{key:<16} {us:6.3f} us/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())

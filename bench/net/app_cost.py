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


def measure(seconds: float) -> dict:
    """Microseconds per request, by benchmark row kind."""
    out = {}
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

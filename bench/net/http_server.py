#!/usr/bin/python3
"""Minimal HTTP/1.1 keep-alive server on httptools, for wrk, per event loop.

    /usr/bin/python3 bench/net/http_server.py --loop uvloop
    LISTENING 40123
    wrk -t1 -c100 -d5s --latency http://127.0.0.1:40123/

One ``asyncio.Protocol`` per connection feeds what it receives to an
``httptools.HttpRequestParser`` (Debian: python3-httptools); every complete
request gets the same small fixed response (``200 OK``, 13-byte body).
Keep-alive follows the request (HTTP/1.1 default on; ``Connection: close``
or HTTP/1.0 without keep-alive closes after the response).  Pipelined
requests work: each one parsed is answered in order.  Anything that is not
a valid request closes the connection with ``400``.

``--body-size N`` answers with an N-byte body instead; ``--tls PEM``
serves HTTPS (``create_server(ssl=...)``) with the certificate and key in
PEM (``tls-cert.pem`` here: a self-signed one for localhost).

Same conventions as ``echo_server.py``: TCP on ``--host`` (default
127.0.0.1) and ``--port`` (0 = any free port), ``LISTENING <port>`` on stdout
once ready, SIGTERM/SIGINT or ``--max-seconds`` ends it, and exit status 3
with ``NOTIMPLEMENTED ...`` on stdout when the loop cannot start a server.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import signal
import sys

import httptools

from echo_server import (EXIT_NOT_IMPLEMENTED, LOOPS, loopback_host,
                         new_loop, raise_nofile_limit)

BODY = b"Hello, World!"


def response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"\r\n" + body)


RESPONSE = response(BODY)
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\n"
               b"Content-Length: 0\r\nConnection: close\r\n\r\n")


class HttpProtocol(asyncio.Protocol):
    """Answer every request on the connection with :data:`RESPONSE`.

    The protocol is also the parser's callback object: httptools calls
    ``on_message_complete`` once per request, from inside ``feed_data``.
    """

    __slots__ = ("transport", "parser", "close_after")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.close_after = False

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD_REQUEST)
            self.transport.close()
            return
        if self.close_after:
            self.transport.close()

    def on_message_complete(self) -> None:
        """httptools callback: a whole request has been parsed."""
        self.transport.write(RESPONSE)
        if not self.parser.should_keep_alive():
            self.close_after = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.parser = None


async def start(loop: asyncio.AbstractEventLoop, host: str, port: int,
                backlog: int, tls: str | None = None) -> asyncio.AbstractServer:
    """Start listening; return the server object."""
    ctx = None
    if tls:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls)
    return await loop.create_server(HttpProtocol, host, port, backlog=backlog,
                                    ssl=ctx)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, start the server, run until told to stop."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", choices=LOOPS, default="asyncio")
    ap.add_argument("--host", default="127.0.0.1", type=loopback_host,
                    help="loopback address to listen on (default %(default)s)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--backlog", type=int, default=1024)
    ap.add_argument("--max-seconds", type=float, default=900.0,
                    help="exit after this long in any case (default 900)")
    ap.add_argument("--body-size", type=int, default=None,
                    help="bytes of response body (default: 13, 'Hello, World!')")
    ap.add_argument("--tls", metavar="PEM",
                    help="serve HTTPS with this certificate and key")
    args = ap.parse_args(argv)
    global RESPONSE
    if args.body_size is not None:
        RESPONSE = response((BODY * (args.body_size // len(BODY) + 1))
                            [:args.body_size])

    faulthandler.enable()  # a crashing loop leaves a traceback on stderr
    raise_nofile_limit()
    loop = new_loop(args.loop)
    asyncio.set_event_loop(loop)
    loop.set_debug(False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # see echo_server.py
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        server = loop.run_until_complete(
            start(loop, args.host, args.port, args.backlog, args.tls))
    except NotImplementedError as exc:
        what = str(exc) or "create_server"
        print(f"NOTIMPLEMENTED {what}", flush=True)
        print(f"{args.loop}: network not implemented yet ({what})",
              file=sys.stderr)
        return EXIT_NOT_IMPLEMENTED
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    loop.call_later(args.max_seconds, loop.stop)
    loop.run_forever()
    os._exit(0)  # only --max-seconds gets here; nothing to tear down

if __name__ == "__main__":
    sys.exit(main())

"""The records the loop logs to the "asyncio" logger, as asyncio makes them.

Applications and test suites capture these records (caplog, assertLogs):
the level, the format string and whether an exception rides along must be
asyncio's.  Each test runs on both loops and asserts the same records.
"""

import asyncio
import logging
import os
import socket
import sys

import pytest


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def calls(self, *formats):
        """(level, format, exception type or None) of the records whose
        format string is one of formats, in order."""
        return [(r.levelname, r.msg,
                 r.exc_info[0].__name__ if r.exc_info else None)
                for r in self.records if r.msg in formats]


@pytest.fixture
def records():
    logger = logging.getLogger("asyncio")
    handler = Records()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class Boom(Exception):
    pass


@pytest.mark.allow_loop_errors
def test_default_handler_failure_logged_with_exc_info(loop, records):
    # asyncio: logger.error('Exception in default exception handler',
    # exc_info=True) from the except clause: exc_info is the failure's.
    def failing_default(context):
        raise Boom("default")

    loop.default_exception_handler = failing_default
    loop.call_exception_handler({"message": "x"})

    def failing_custom(loop_, context):
        raise Boom("custom")

    loop.set_exception_handler(failing_custom)
    loop.call_exception_handler({"message": "y"})
    loop.set_exception_handler(None)
    del loop.default_exception_handler
    assert records.calls(
        "Exception in default exception handler",
        "Exception in default exception handler while handling an unexpected "
        "error in custom exception handler") == [
        ("ERROR", "Exception in default exception handler", "Boom"),
        ("ERROR", "Exception in default exception handler while handling an "
                  "unexpected error in custom exception handler", "Boom"),
    ]
    # The record holds the (type, value, traceback) of the exception.
    first = [r for r in records.records
             if r.msg == "Exception in default exception handler"][0]
    assert str(first.exc_info[1]) == "default"
    assert first.exc_info[2] is not None


@pytest.mark.parametrize("what", ["tcp", "read_pipe"])
def test_pause_and_resume_reading_logged_in_debug(loop, records, what):
    async def main():
        if what == "tcp":
            a, b = socket.socketpair()
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            other = b
        else:
            r, w = os.pipe()
            transport, _ = await loop.connect_read_pipe(asyncio.Protocol,
                                                        open(r, "rb", 0))
            other = open(w, "wb", 0)
        try:
            transport.pause_reading()
            transport.pause_reading()  # already paused: nothing logged
            transport.resume_reading()
            loop.set_debug(False)
            transport.pause_reading()  # not in debug mode: nothing logged
            transport.resume_reading()
            loop.set_debug(True)
        finally:
            transport.close()
            await asyncio.sleep(0.01)
            other.close()

    loop.set_debug(True)
    loop.run_until_complete(main())
    assert records.calls("%r pauses reading", "%r resumes reading") == [
        ("DEBUG", "%r pauses reading", None),
        ("DEBUG", "%r resumes reading", None),
    ]


def test_fatal_os_error_logged_in_debug_with_exc_info(loop, records):
    # An OSError on a transport goes to the debug log, with the exception.
    class Proto(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.set_result(exc)

    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Proto, a)
        b.close()
        transport.write(b"x" * 100)
        exc = await asyncio.wait_for(lost, 10)
        return exc

    loop.set_debug(True)
    lost = loop.create_future()
    exc = loop.run_until_complete(main())
    assert isinstance(exc, OSError)
    calls = records.calls("%r: %s")
    assert calls == [("DEBUG", "%r: %s", type(exc).__name__)]
    rec = [r for r in records.records if r.msg == "%r: %s"][0]
    assert rec.args[1] == "Fatal write error on socket transport"


def test_connections_and_pipes_logged_in_debug(loop, records):
    accepted = []

    class Accepted(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.append(transport)

    async def main():
        server = await loop.create_server(Accepted, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        a, b = socket.socketpair()
        acc, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        r, w = os.pipe()
        rp, _ = await loop.connect_read_pipe(asyncio.Protocol, open(r, "rb", 0))
        wp, _ = await loop.connect_write_pipe(asyncio.Protocol, open(w, "wb", 0))
        await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        for _ in range(100):  # the server's side of the connection
            if records.calls("%r got a new connection from %r: %r"):
                break
            await asyncio.sleep(0.01)
        acc_socket = acc.get_extra_info("socket")
        for t in [tr, acc, rp, wp] + accepted:
            t.close()
        b.close()
        server.close()
        await server.wait_closed()
        return acc_socket

    loop.set_debug(True)
    acc_socket = loop.run_until_complete(main())
    formats = ("%r is serving", "%r connected to %s:%r: (%r, %r)",
               "%r got a new connection from %r: %r", "%r handled: (%r, %r)",
               "Read pipe %r connected: (%r, %r)",
               "Write pipe %r connected: (%r, %r)", "Get address info %s")
    got = records.calls(*formats)
    # The server's accept and the client's connection race; so does the
    # lookup of create_connection() (not logged: a numeric host is resolved
    # without getaddrinfo() by both loops).
    assert sorted(got) == sorted([
        ("INFO", "%r is serving", None),
        ("DEBUG", "%r connected to %s:%r: (%r, %r)", None),
        ("DEBUG", "%r got a new connection from %r: %r", None),
        ("DEBUG", "%r handled: (%r, %r)", None),
        ("DEBUG", "Read pipe %r connected: (%r, %r)", None),
        ("DEBUG", "Write pipe %r connected: (%r, %r)", None),
        ("DEBUG", "Get address info %s", None),
    ])
    handled = [r for r in records.records if r.msg == "%r handled: (%r, %r)"][0]
    assert handled.args[0] is acc_socket  # the transport's, not the caller's


@pytest.mark.parametrize("shell", [False, True])
def test_subprocess_start_logged_in_debug(loop, records, shell):
    class Proto(asyncio.SubprocessProtocol):
        def process_exited(self):
            proc_exit.set_result(None)

    async def main():
        if shell:
            tr, _ = await loop.subprocess_shell(Proto,
                                                "exit 0", stdin=None,
                                                stdout=None, stderr=None)
        else:
            tr, _ = await loop.subprocess_exec(Proto,
                                               sys.executable, "-c", "pass",
                                               stdin=None, stdout=None,
                                               stderr=None)
        await asyncio.wait_for(proc_exit, 30)
        tr.close()

    loop.set_debug(True)
    proc_exit = loop.create_future()
    loop.run_until_complete(main())
    start = "run shell command %r" if shell else "execute program %r"
    start = start % ("exit 0" if shell else sys.executable)
    infos = [(r.levelname, r.getMessage().split(":")[0]) for r in records.records
             if r.msg in ("%s: %r",)]
    debugs = [r.msg for r in records.records if r.msg == start]
    assert infos == [("INFO", start)]
    assert debugs == [start]

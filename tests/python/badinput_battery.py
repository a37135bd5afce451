"""The bad-input battery: every public method of the loop, its transports
and servers called with wrong types, out-of-range values, closed objects
and objects of the wrong kind.

run(loop_kind) returns {case: outcome}, outcome being "ok" or the name of
the exception's type; test_bad_input.py runs it in a child process for
asyncuv and for the stock loop (a crash fails the test, not the run) and
requires the same outcome from both.
"""

import asyncio
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import warnings

from support import new_loop


class Proto(asyncio.Protocol):
    pass


class DProto(asyncio.DatagramProtocol):
    pass


class SProto(asyncio.SubprocessProtocol):
    pass


class FileObj:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value


def noop(*args):
    pass


async def coro_noop():
    pass


def closed_socket(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.close()
    return s


class Battery:
    def __init__(self, kind):
        self.kind = kind
        self.loop = new_loop(kind)
        self.results = {}
        self.cleanup = []
        self.tmp = tempfile.mkdtemp()
        self.scratch_loops = []

    # -- running a case ---------------------------------------------------------

    def outcome(self, name, call):
        """call() is a function; a coroutine it returns is run (10 s at
        most).  Records "ok" or the exception's type name."""
        assert name not in self.results, name
        loop = self.loop
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = call()
                if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
                    if loop.is_closed():
                        if asyncio.iscoroutine(value):
                            value.close()
                        raise RuntimeError("loop closed")
                    value = loop.run_until_complete(asyncio.wait_for(value, 10))
                    if isinstance(value, tuple) and len(value) == 2 and \
                            isinstance(value[0], asyncio.BaseTransport):
                        self.cleanup.append(value[0])
                    elif isinstance(value, asyncio.AbstractServer):
                        self.cleanup.append(value)
                elif isinstance(value, asyncio.Handle):
                    value.cancel()
            self.results[name] = "ok"
            while self.scratch_loops:
                self.scratch_loops.pop().close()
        except BaseException as exc:  # noqa: B036 (KeyboardInterrupt is a bug here)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.results[name] = type(exc).__name__
            while self.scratch_loops:
                self.scratch_loops.pop().close()

    def scratch(self):
        """A loop of the same kind (debug mode too) for one call_later()
        or call_at(): what asyncio takes there (a str, nan) breaks its
        timer heap for good."""
        loop = new_loop(self.kind)
        loop.set_debug(self.loop.get_debug())
        self.scratch_loops.append(loop)
        return loop

    def run_loop(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10))

    # -- objects to call methods of ------------------------------------------------

    def stream_transport(self):
        a, b = socket.socketpair()
        self.cleanup.append(b)
        tr, _ = self.run_loop(self.loop.connect_accepted_socket(Proto, a))
        self.cleanup.append(tr)
        return tr

    def datagram_transport(self, connected=False):
        kwargs = {"local_addr": ("127.0.0.1", 0)}
        if connected:
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind(("127.0.0.1", 0))
            self.cleanup.append(peer)
            kwargs = {"remote_addr": peer.getsockname()}
        tr, _ = self.run_loop(self.loop.create_datagram_endpoint(DProto, **kwargs))
        self.cleanup.append(tr)
        return tr

    def pipes(self):
        r, w = os.pipe()
        rt, _ = self.run_loop(self.loop.connect_read_pipe(Proto, open(r, "rb", 0)))
        wt, _ = self.run_loop(self.loop.connect_write_pipe(Proto, open(w, "wb", 0)))
        self.cleanup += [rt, wt]
        return rt, wt

    def server(self):
        srv = self.run_loop(self.loop.create_server(Proto, "127.0.0.1", 0))
        self.cleanup.append(srv)
        return srv

    def subprocess_transport(self):
        tr, _ = self.run_loop(self.loop.subprocess_exec(
            SProto, sys.executable, "-c", "import sys; sys.stdin.read()",
            stdin=-1, stdout=None, stderr=None))
        self.cleanup.append(tr)
        return tr

    # -- the cases ------------------------------------------------------------------------

    def loop_cases(self, prefix):
        o, loop = self.outcome, self.loop
        p = prefix
        # Scheduling.
        o(p + "call_soon(non-callable)", lambda: loop.call_soon(1))
        o(p + "call_soon(coroutine function)", lambda: loop.call_soon(coro_noop))
        o(p + "call_soon(context=1)", lambda: loop.call_soon(noop, context=1))
        o(p + "call_soon(context=None)", lambda: loop.call_soon(noop, context=None))
        o(p + "call_soon(unknown keyword)", lambda: loop.call_soon(noop, foo=1))
        o(p + "call_later('1')", lambda: self.scratch().call_later("1", noop))
        o(p + "call_later(None)", lambda: self.scratch().call_later(None, noop))
        o(p + "call_later(nan)", lambda: self.scratch().call_later(math.nan, noop))
        o(p + "call_later(inf)", lambda: self.scratch().call_later(math.inf, noop))
        o(p + "call_later(-inf)", lambda: self.scratch().call_later(-math.inf, noop))
        o(p + "call_later(1e300)", lambda: self.scratch().call_later(1e300, noop))
        o(p + "call_later(-5)", lambda: self.scratch().call_later(-5, noop))
        o(p + "call_later(2**100)", lambda: self.scratch().call_later(2**100, noop))
        o(p + "call_later(non-callable)", lambda: self.scratch().call_later(1, 1))
        o(p + "call_at('x')", lambda: self.scratch().call_at("x", noop))
        o(p + "call_at(None)", lambda: self.scratch().call_at(None, noop))
        o(p + "call_at(complex)", lambda: self.scratch().call_at(1j, noop))
        o(p + "call_soon_threadsafe(non-callable)", lambda: loop.call_soon_threadsafe(1))
        o(p + "call_soon_threadsafe(context=1)",
          lambda: loop.call_soon_threadsafe(noop, context=1))
        # Futures and tasks.
        o(p + "create_future(1)", lambda: loop.create_future(1))
        o(p + "create_task(1)", lambda: loop.create_task(1))
        o(p + "create_task(coroutine function)", lambda: loop.create_task(coro_noop))
        o(p + "create_task(future)", lambda: loop.create_task(loop.create_future()))
        o(p + "run_until_complete(1)", lambda: loop.run_until_complete(1))
        o(p + "run_until_complete(None)", lambda: loop.run_until_complete(None))
        o(p + "run_until_complete(other loop's future)",
          lambda: loop.run_until_complete(asyncio.Future(loop=self.other_loop)))
        o(p + "set_task_factory(1)", lambda: loop.set_task_factory(1))
        o(p + "set_task_factory(None)", lambda: loop.set_task_factory(None))
        o(p + "set_exception_handler(1)", lambda: loop.set_exception_handler(1))
        o(p + "set_exception_handler(None)", lambda: loop.set_exception_handler(None))
        o(p + "call_exception_handler({})", lambda: loop.call_exception_handler({}))
        o(p + "set_debug('yes')", lambda: loop.set_debug("yes"))
        o(p + "set_debug(False)", lambda: loop.set_debug(False))
        o(p + "slow_callback_duration='x'",
          lambda: setattr(loop, "slow_callback_duration", "x"))
        o(p + "slow_callback_duration=0.1",
          lambda: setattr(loop, "slow_callback_duration", 0.1))
        # Executors.
        o(p + "run_in_executor(None, non-callable)", lambda: loop.run_in_executor(None, 1))
        o(p + "run_in_executor(None, coroutine function)",
          lambda: loop.run_in_executor(None, coro_noop))
        o(p + "run_in_executor(1, noop)", lambda: loop.run_in_executor(1, noop))
        o(p + "set_default_executor(1)", lambda: loop.set_default_executor(1))
        # File descriptors.
        for label, fd in (("-1", -1), ("'x'", "x"), ("None", None), ("1.5", 1.5),
                          ("2**40", 2**40), ("FileObj(-1)", FileObj(-1)),
                          ("FileObj('x')", FileObj("x")),
                          ("closed socket", closed_socket())):
            o(p + f"add_reader({label})", lambda fd=fd: loop.add_reader(fd, noop))
            o(p + f"add_writer({label})", lambda fd=fd: loop.add_writer(fd, noop))
            o(p + f"remove_reader({label})", lambda fd=fd: loop.remove_reader(fd))
            o(p + f"remove_writer({label})", lambda fd=fd: loop.remove_writer(fd))
        r, w = os.pipe()
        self.cleanup += [r, w]
        o(p + "add_reader(fd, non-callable)", lambda: loop.add_reader(r, 1))
        o(p + "add_writer(fd, non-callable)", lambda: loop.add_writer(w, 1))
        o(p + "add_reader(fd, coroutine function)",
          lambda: loop.add_reader(r, coro_noop))
        o(p + "remove_reader(fd)", lambda: loop.remove_reader(r))
        o(p + "remove_writer(fd)", lambda: loop.remove_writer(w))
        # Signals.
        for label, sig in (("'x'", "x"), ("None", None), ("0", 0), ("-1", -1),
                           ("NSIG", signal.NSIG), ("2**40", 2**40),
                           ("SIGKILL", signal.SIGKILL), ("SIGSTOP", signal.SIGSTOP)):
            o(p + f"add_signal_handler({label})",
              lambda sig=sig: loop.add_signal_handler(sig, noop))
            o(p + f"remove_signal_handler({label})",
              lambda sig=sig: loop.remove_signal_handler(sig))
        o(p + "add_signal_handler(SIGUSR2, non-callable)",
          lambda: loop.add_signal_handler(signal.SIGUSR2, 1))
        o(p + "add_signal_handler(SIGUSR2, coroutine function)",
          lambda: loop.add_signal_handler(signal.SIGUSR2, coro_noop))
        o(p + "add_signal_handler(SIGUSR2, coroutine)",
          lambda: loop.add_signal_handler(signal.SIGUSR2, coro_noop()))
        o(p + "remove_signal_handler(SIGUSR2)",
          lambda: loop.remove_signal_handler(signal.SIGUSR2))
        # Names.
        o(p + "getaddrinfo(1, 'x')", lambda: loop.getaddrinfo(1, "x"))
        o(p + "getaddrinfo(None, None)", lambda: loop.getaddrinfo(None, None))
        o(p + "getaddrinfo(family='x')",
          lambda: loop.getaddrinfo("127.0.0.1", 80, family="x"))
        o(p + "getnameinfo(1)", lambda: loop.getnameinfo(1))
        o(p + "getnameinfo(('127.0.0.1',))", lambda: loop.getnameinfo(("127.0.0.1",)))
        o(p + "getnameinfo(flags='x')",
          lambda: loop.getnameinfo(("127.0.0.1", 80), "x"))
        # Socket operations.
        s = socket.socket()
        s.setblocking(False)
        self.cleanup.append(s)
        blocking = socket.socket()
        self.cleanup.append(blocking)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        self.cleanup.append(udp)
        for label, sock in (("None", None), ("1", 1), ("FileObj(5)", FileObj(5)),
                            ("closed socket", closed_socket())):
            o(p + f"sock_recv({label})", lambda sock=sock: loop.sock_recv(sock, 1))
            o(p + f"sock_recv_into({label})",
              lambda sock=sock: loop.sock_recv_into(sock, bytearray(1)))
            o(p + f"sock_sendall({label})", lambda sock=sock: loop.sock_sendall(sock, b"x"))
            o(p + f"sock_connect({label})",
              lambda sock=sock: loop.sock_connect(sock, ("127.0.0.1", 1)))
            o(p + f"sock_accept({label})", lambda sock=sock: loop.sock_accept(sock))
            if hasattr(loop, "sock_recvfrom"):
                o(p + f"sock_recvfrom({label})",
                  lambda sock=sock: loop.sock_recvfrom(sock, 1))
                o(p + f"sock_sendto({label})",
                  lambda sock=sock: loop.sock_sendto(sock, b"x", ("127.0.0.1", 1)))
        o(p + "sock_recv(socket, 'x')", lambda: loop.sock_recv(s, "x"))
        o(p + "sock_recv(socket, -1)", lambda: loop.sock_recv(s, -1))
        o(p + "sock_recv_into(socket, bytes)", lambda: loop.sock_recv_into(s, b"x"))
        o(p + "sock_sendall(socket, 'str')", lambda: loop.sock_sendall(s, "str"))
        o(p + "sock_sendall(socket, 1)", lambda: loop.sock_sendall(s, 1))
        o(p + "sock_connect(socket, 'x')", lambda: loop.sock_connect(s, "x"))
        o(p + "sock_connect(socket, port -1)", lambda: loop.sock_connect(s, ("127.0.0.1", -1)))
        o(p + "sock_connect(socket, port 70000)",
          lambda: loop.sock_connect(s, ("127.0.0.1", 70000)))
        o(p + "sock_accept(unlistening)", lambda: loop.sock_accept(s))
        o(p + "sock_recv(blocking socket)", lambda: loop.sock_recv(blocking, 1))
        o(p + "sock_sendall(udp unconnected)", lambda: loop.sock_sendall(udp, b"x"))
        if hasattr(loop, "sock_recvfrom"):
            o(p + "sock_sendto(udp, 'x')", lambda: loop.sock_sendto(udp, b"x", "x"))
            o(p + "sock_recvfrom(udp, -1)", lambda: loop.sock_recvfrom(udp, -1))
            o(p + "sock_recvfrom_into(udp, bytes)",
              lambda: loop.sock_recvfrom_into(udp, b"x"))
        o(p + "sock_sendfile(socket, not a file)",
          lambda: loop.sock_sendfile(s, "not a file"))
        o(p + "sock_sendfile(udp, file)",
          lambda: loop.sock_sendfile(udp, open(os.devnull, "rb")))
        # Connections and servers.
        o(p + "create_connection()", lambda: loop.create_connection(Proto))
        o(p + "create_connection(port 'x')",
          lambda: loop.create_connection(Proto, "127.0.0.1", "x"))
        o(p + "create_connection(port -1)",
          lambda: loop.create_connection(Proto, "127.0.0.1", -1))
        o(p + "create_connection(port 70000)",
          lambda: loop.create_connection(Proto, "127.0.0.1", 70000))
        o(p + "create_connection(host 1)", lambda: loop.create_connection(Proto, 1, 80))
        o(p + "create_connection(host and sock)",
          lambda: loop.create_connection(Proto, "127.0.0.1", 80, sock=s))
        o(p + "create_connection(sock=udp)", lambda: loop.create_connection(Proto, sock=udp))
        o(p + "create_connection(sock=1)", lambda: loop.create_connection(Proto, sock=1))
        o(p + "create_connection(closed sock)",
          lambda: loop.create_connection(Proto, sock=closed_socket()))
        o(p + "create_connection(ssl=1)",
          lambda: loop.create_connection(Proto, "127.0.0.1", 1, ssl=1))
        o(p + "create_connection(server_hostname without ssl)",
          lambda: loop.create_connection(Proto, "127.0.0.1", 1, server_hostname="x"))
        o(p + "create_connection(happy_eyeballs_delay='x')",
          lambda: loop.create_connection(Proto, "127.0.0.1", 1,
                                         happy_eyeballs_delay="x"))
        o(p + "create_connection(local_addr='x')",
          lambda: loop.create_connection(Proto, "127.0.0.1", 1, local_addr="x"))
        o(p + "create_connection(factory not callable)",
          lambda: loop.create_connection(1, sock=socket.socketpair()[0]))
        o(p + "create_server(port 'x')", lambda: loop.create_server(Proto, "127.0.0.1", "x"))
        o(p + "create_server(port 70000)",
          lambda: loop.create_server(Proto, "127.0.0.1", 70000))
        o(p + "create_server(backlog 'x')",
          lambda: loop.create_server(Proto, "127.0.0.1", 0, backlog="x"))
        o(p + "create_server(sock=udp)", lambda: loop.create_server(Proto, sock=udp))
        o(p + "create_server(host and sock)",
          lambda: loop.create_server(Proto, "127.0.0.1", 0, sock=s))
        o(p + "create_server(ssl=1)", lambda: loop.create_server(Proto, "127.0.0.1", 0, ssl=1))
        o(p + "create_server(ssl_handshake_timeout without ssl)",
          lambda: loop.create_server(Proto, "127.0.0.1", 0, ssl_handshake_timeout=1))
        o(p + "create_unix_connection(path 1)",
          lambda: loop.create_unix_connection(Proto, 1))
        o(p + "create_unix_connection(missing path)",
          lambda: loop.create_unix_connection(Proto, os.path.join(self.tmp, "none")))
        o(p + "create_unix_connection(sock=tcp)",
          lambda: loop.create_unix_connection(Proto, sock=socket.socket()))
        o(p + "create_unix_connection()", lambda: loop.create_unix_connection(Proto))
        o(p + "create_unix_server(path 1)", lambda: loop.create_unix_server(Proto, 1))
        o(p + "create_unix_server(sock=tcp)",
          lambda: loop.create_unix_server(Proto, sock=socket.socket()))
        o(p + "create_unix_server(dir missing)",
          lambda: loop.create_unix_server(Proto, os.path.join(self.tmp, "no", "s")))
        o(p + "create_datagram_endpoint()", lambda: loop.create_datagram_endpoint(DProto))
        o(p + "create_datagram_endpoint(local_addr 'x')",
          lambda: loop.create_datagram_endpoint(DProto, local_addr="x"))
        o(p + "create_datagram_endpoint(local_addr port 70000)",
          lambda: loop.create_datagram_endpoint(DProto, local_addr=("127.0.0.1", 70000)))
        o(p + "create_datagram_endpoint(sock=tcp)",
          lambda: loop.create_datagram_endpoint(DProto, sock=socket.socket()))
        o(p + "create_datagram_endpoint(sock and local_addr)",
          lambda: loop.create_datagram_endpoint(
              DProto, local_addr=("127.0.0.1", 0), sock=udp))
        o(p + "create_datagram_endpoint(family 'x')",
          lambda: loop.create_datagram_endpoint(DProto, family="x"))
        o(p + "create_datagram_endpoint(reuse_port 'x')",
          lambda: loop.create_datagram_endpoint(DProto, local_addr=("127.0.0.1", 0),
                                                reuse_port="x"))
        o(p + "connect_accepted_socket(udp)",
          lambda: loop.connect_accepted_socket(Proto, udp))
        o(p + "connect_accepted_socket(1)", lambda: loop.connect_accepted_socket(Proto, 1))
        o(p + "connect_accepted_socket(closed)",
          lambda: loop.connect_accepted_socket(Proto, closed_socket()))
        # Pipes and subprocesses.
        o(p + "connect_read_pipe(1)", lambda: loop.connect_read_pipe(Proto, 1))
        o(p + "connect_read_pipe(None)", lambda: loop.connect_read_pipe(Proto, None))
        o(p + "connect_read_pipe(regular file)",
          lambda: loop.connect_read_pipe(Proto, open(__file__, "rb")))
        o(p + "connect_write_pipe(1)", lambda: loop.connect_write_pipe(Proto, 1))
        o(p + "connect_write_pipe(regular file)",
          lambda: loop.connect_write_pipe(
              Proto, open(os.path.join(self.tmp, "f"), "wb")))
        o(p + "connect_write_pipe(FileObj(-1))",
          lambda: loop.connect_write_pipe(Proto, FileObj(-1)))
        o(p + "subprocess_exec(program 1)", lambda: loop.subprocess_exec(SProto, 1))
        o(p + "subprocess_exec(missing program)",
          lambda: loop.subprocess_exec(SProto, os.path.join(self.tmp, "missing")))
        o(p + "subprocess_exec(universal_newlines)",
          lambda: loop.subprocess_exec(SProto, "true", universal_newlines=True))
        o(p + "subprocess_exec(shell=True)",
          lambda: loop.subprocess_exec(SProto, "true", shell=True))
        o(p + "subprocess_exec(bufsize=1)",
          lambda: loop.subprocess_exec(SProto, "true", bufsize=1))
        o(p + "subprocess_exec(text=True)",
          lambda: loop.subprocess_exec(SProto, "true", text=True))
        o(p + "subprocess_exec(stdout='x')",
          lambda: loop.subprocess_exec(SProto, "true", stdout="x"))
        o(p + "subprocess_shell(list)", lambda: loop.subprocess_shell(SProto, ["true"]))
        o(p + "subprocess_shell(shell=False)",
          lambda: loop.subprocess_shell(SProto, "true", shell=False))
        o(p + "subprocess_shell(encoding)",
          lambda: loop.subprocess_shell(SProto, "true", encoding="utf-8"))
        # Others.
        o(p + "sendfile(not a transport)",
          lambda: loop.sendfile(1, open(os.devnull, "rb")))
        o(p + "start_tls(not a transport)",
          lambda: loop.start_tls(1, Proto(), __import__("ssl").create_default_context()))
        o(p + "shutdown_asyncgens()", lambda: loop.shutdown_asyncgens())

    def transport_cases(self):
        o = self.outcome
        tr = self.stream_transport()
        for label, data in (("1", 1), ("'str'", "str"), ("None", None), ("[b'x']", [b"x"]),
                            ("array", __import__("array").array("b", b"x")),
                            ("b''", b""), ("bytearray", bytearray(b"x"))):
            o(f"tcp.write({label})", lambda data=data: tr.write(data))
        # asyncio takes these and then fails to send them, which closes
        # the transport (asyncuv sends them): each gets a transport.
        for label, data in (("memoryview step", memoryview(b"abcd")[::2]),
                            ("memoryview 2d", memoryview(b"abcd").cast("B", (2, 2)))):
            o(f"tcp.write({label})",
              lambda data=data: self.stream_transport().write(data))
        o("tcp.writelines(1)", lambda: tr.writelines(1))
        o("tcp.writelines([1])", lambda: tr.writelines([1]))
        o("tcp.writelines(['s'])", lambda: tr.writelines(["s"]))
        o("tcp.writelines(generator)", lambda: tr.writelines(b"x" for _ in range(2)))
        self.limit_cases("tcp", tr)
        o("tcp.get_extra_info(1)", lambda: tr.get_extra_info(1))
        o("tcp.get_extra_info([])", lambda: tr.get_extra_info([]))
        o("tcp.get_extra_info('peername', default)", lambda: tr.get_extra_info("x", 5))
        o("tcp.set_protocol(1)", lambda: tr.set_protocol(1))
        o("tcp.set_protocol(Proto())", lambda: tr.set_protocol(Proto()))
        o("tcp.pause_reading() x2", lambda: (tr.pause_reading(), tr.pause_reading()))
        o("tcp.resume_reading() x2", lambda: (tr.resume_reading(), tr.resume_reading()))
        o("tcp.is_reading()", tr.is_reading)
        o("tcp.write_eof()", tr.write_eof)
        o("tcp.write_eof() again", tr.write_eof)
        o("tcp.write() after write_eof()", lambda: tr.write(b"x"))
        o("tcp.can_write_eof()", tr.can_write_eof)
        o("tcp.close()", tr.close)
        o("tcp.close() again", tr.close)
        o("tcp.write() after close()", lambda: tr.write(b"x"))
        o("tcp.pause_reading() after close()", tr.pause_reading)
        o("tcp.resume_reading() after close()", tr.resume_reading)
        o("tcp.abort() after close()", tr.abort)
        o("tcp.set_write_buffer_limits() after close()",
          lambda: tr.set_write_buffer_limits(10))
        o("tcp.get_write_buffer_size() after close()", tr.get_write_buffer_size)
        o("tcp.is_closing() after close()", tr.is_closing)
        self.run_loop(asyncio.sleep(0.01))
        o("tcp.write() after connection_lost()", lambda: tr.write(b"x"))
        o("tcp.write_eof() after connection_lost()", tr.write_eof)
        o("tcp.get_extra_info('socket') after connection_lost()",
          lambda: tr.get_extra_info("socket"))
        tr2 = self.stream_transport()
        o("tcp.abort()", tr2.abort)
        o("tcp.abort() again", tr2.abort)
        o("tcp.close() after abort()", tr2.close)

    def limit_cases(self, p, tr):
        o = self.outcome
        for label, args, kwargs in (
                ("(-1)", (-1,), {}), ("(low=-1)", (), {"low": -1}),
                ("(high=1, low=2)", (), {"high": 1, "low": 2}),
                ("('x')", ("x",), {}), ("(None)", (None,), {}),
                ("(1.5, 0.5)", (1.5, 0.5), {}), ("(nan)", (math.nan,), {}),
                ("(inf)", (math.inf,), {}), ("(2**70)", (2**70,), {}),
                ("(high=0)", (), {"high": 0}), ("(1, 2, 3)", (1, 2, 3), {}),
                ("(bad keyword)", (), {"hi": 1})):
            o(f"{p}.set_write_buffer_limits{label}",
              lambda args=args, kwargs=kwargs: tr.set_write_buffer_limits(*args, **kwargs))
        o(f"{p}.set_write_buffer_limits()", tr.set_write_buffer_limits)

    def datagram_cases(self):
        o = self.outcome
        tr = self.datagram_transport()
        for label, args in (("(1)", (1,)), ("('s')", ("s",)), ("(None)", (None,)),
                            ("(b'x')", (b"x",)),
                            ("(b'x', 'x')", (b"x", "x")), ("(b'x', 1)", (b"x", 1)),
                            ("(b'x', port -1)", (b"x", ("127.0.0.1", -1))),
                            ("(b'x', port 70000)", (b"x", ("127.0.0.1", 70000))),
                            ("(b'x', ('bad host', 1))", (b"x", ("no such host", 1))),
                            ("(b'x', 3-tuple)", (b"x", ("127.0.0.1", 1, 2))),
                            ("(b'', addr)", (b"", ("127.0.0.1", 9)))):
            o(f"udp.sendto{label}", lambda args=args: tr.sendto(*args))
        o("udp fresh.set_protocol(1)", lambda: self.datagram_transport().set_protocol(1))
        o("udp.sendto(memoryview step, addr)",
          lambda: self.datagram_transport().sendto(memoryview(b"abcd")[::2],
                                                   ("127.0.0.1", 9)))
        self.limit_cases("udp", tr)
        o("udp.get_extra_info(1)", lambda: tr.get_extra_info(1))
        o("udp.set_protocol(1)", lambda: tr.set_protocol(1))
        o("udp.abort()", tr.abort)
        o("udp.abort() again", tr.abort)
        o("udp.close() after abort()", tr.close)
        o("udp.sendto() after abort()", lambda: tr.sendto(b"x", ("127.0.0.1", 9)))
        self.run_loop(asyncio.sleep(0.01))
        o("udp.sendto() after connection_lost()",
          lambda: tr.sendto(b"x", ("127.0.0.1", 9)))
        c = self.datagram_transport(connected=True)
        o("udp connected.sendto(b'x', other addr)",
          lambda: c.sendto(b"x", ("127.0.0.1", 9)))
        o("udp connected.sendto(b'x', None)", lambda: c.sendto(b"x", None))
        o("udp connected.close()", c.close)
        o("udp connected.close() again", c.close)
        o("udp connected.sendto() after close()", lambda: c.sendto(b"x"))

    def pipe_cases(self):
        o = self.outcome
        rt, wt = self.pipes()
        for label, data in (("1", 1), ("'s'", "s"), ("None", None), ("b''", b"")):
            o(f"write_pipe.write({label})", lambda data=data: wt.write(data))
        o("write_pipe.write(memoryview step)",
          lambda: self.pipes()[1].write(memoryview(b"abcd")[::2]))
        o("write_pipe.writelines([1])", lambda: wt.writelines([1]))
        self.limit_cases("write_pipe", wt)
        o("write_pipe.pause_reading()", wt.pause_reading if hasattr(wt, "pause_reading")
          else (lambda: wt.pause_reading()))
        o("write_pipe.can_write_eof()", wt.can_write_eof)
        o("write_pipe.write_eof()", wt.write_eof)
        o("write_pipe.write() after write_eof()", lambda: wt.write(b"x"))
        o("write_pipe.close()", wt.close)
        o("write_pipe.abort() after close()", wt.abort)
        o("read_pipe.pause_reading() x2", lambda: (rt.pause_reading(), rt.pause_reading()))
        o("read_pipe.resume_reading() x2",
          lambda: (rt.resume_reading(), rt.resume_reading()))
        o("read_pipe.set_protocol(1)", lambda: rt.set_protocol(1))
        o("read_pipe.close()", rt.close)
        o("read_pipe.pause_reading() after close()", rt.pause_reading)
        o("read_pipe.resume_reading() after close()", rt.resume_reading)
        o("read_pipe.close() again", rt.close)
        self.run_loop(asyncio.sleep(0.01))
        o("read_pipe.get_extra_info('pipe') after close()",
          lambda: rt.get_extra_info("pipe"))

    def server_cases(self):
        o = self.outcome
        srv = self.server()
        o("server.get_loop()", srv.get_loop)
        o("server.is_serving()", srv.is_serving)
        o("server.start_serving()", srv.start_serving)
        o("server.close()", srv.close)
        o("server.close() again", srv.close)
        o("server.start_serving() after close()", srv.start_serving)
        o("server.serve_forever() after close()", srv.serve_forever)
        o("server.wait_closed()", srv.wait_closed)
        o("server.sockets after close()", lambda: srv.sockets)
        o("server.__aexit__()", lambda: srv.__aexit__(None, None, None))

    def subprocess_cases(self):
        o = self.outcome
        tr = self.subprocess_transport()
        o("subprocess.get_pipe_transport(5)", lambda: tr.get_pipe_transport(5))
        o("subprocess.get_pipe_transport('x')", lambda: tr.get_pipe_transport("x"))
        o("subprocess.get_pipe_transport(1) (not a pipe)", lambda: tr.get_pipe_transport(1))
        o("subprocess.send_signal('x')", lambda: tr.send_signal("x"))
        o("subprocess.send_signal(-1)", lambda: tr.send_signal(-1))
        o("subprocess.send_signal(2**40)", lambda: tr.send_signal(2**40))
        o("subprocess.send_signal(0)", lambda: tr.send_signal(0))
        o("subprocess.get_returncode()", tr.get_returncode)
        o("subprocess.kill()", tr.kill)
        o("subprocess.wait for exit", lambda: self.wait_exit(tr))
        o("subprocess.kill() after exit", tr.kill)
        o("subprocess.terminate() after exit", tr.terminate)
        o("subprocess.send_signal(SIGUSR1) after exit",
          lambda: tr.send_signal(signal.SIGUSR1))
        o("subprocess.close()", tr.close)
        o("subprocess.close() again", tr.close)
        o("subprocess.kill() after close()", tr.kill)
        o("subprocess.get_pipe_transport(0) after close()", lambda: tr.get_pipe_transport(0))

    async def wait_exit(self, tr):
        while tr.get_returncode() is None:
            await asyncio.sleep(0.01)

    def closed_loop_cases(self):
        for item in self.cleanup:
            try:
                item.close()
            except Exception:
                pass
        self.cleanup = []
        self.run_loop(asyncio.sleep(0.05))
        self.loop.close()
        o, loop = self.outcome, self.loop
        o("closed.close()", loop.close)
        o("closed.call_soon()", lambda: loop.call_soon(noop))
        o("closed.call_later()", lambda: loop.call_later(1, noop))
        o("closed.call_soon_threadsafe()", lambda: loop.call_soon_threadsafe(noop))
        o("closed.create_future()", loop.create_future)
        o("closed.create_task()", lambda: loop.create_task(coro_noop()))
        o("closed.run_forever()", loop.run_forever)
        o("closed.run_until_complete()", lambda: loop.run_until_complete(coro_noop()))
        o("closed.stop()", loop.stop)
        o("closed.time()", loop.time)
        o("closed.is_running()", loop.is_running)
        o("closed.add_reader()", lambda: loop.add_reader(0, noop))
        o("closed.remove_reader()", lambda: loop.remove_reader(0))
        o("closed.add_signal_handler()", lambda: loop.add_signal_handler(signal.SIGUSR1, noop))
        o("closed.remove_signal_handler()", lambda: loop.remove_signal_handler(signal.SIGUSR1))
        o("closed.run_in_executor()", lambda: loop.run_in_executor(None, noop))
        o("closed.set_default_executor(None)", lambda: loop.set_default_executor(None))
        o("closed.set_exception_handler(None)", lambda: loop.set_exception_handler(None))
        o("closed.call_exception_handler()",
          lambda: loop.call_exception_handler({"message": "x"}))
        o("closed.get_debug()", loop.get_debug)
        o("closed.create_connection()",
          lambda: asyncio.ensure_future(coro_noop(), loop=loop))

    def run(self):
        self.other_loop = asyncio.new_event_loop()
        try:
            self.loop_cases("")
            self.transport_cases()
            self.datagram_cases()
            self.pipe_cases()
            self.server_cases()
            self.subprocess_cases()
            # The same loop calls in debug mode.
            self.loop.set_debug(True)
            self.loop_cases("debug.")
            self.loop.set_debug(False)
            self.closed_loop_cases()
        finally:
            self.other_loop.close()
            for item in self.cleanup:
                try:
                    if isinstance(item, int):
                        os.close(item)
                    else:
                        item.close()
                except Exception:
                    pass
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.results


def run(kind):
    return Battery(kind).run()

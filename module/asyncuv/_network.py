"""Connection set-up for asyncuv.Loop: clients, servers, sock_* and DNS.

Transports, the fd watchers and the listeners are C (asyncuv._asyncuv);
this module holds the set-up logic around them -- resolving addresses,
creating and binding sockets, trying addresses in turn, the Server object
-- which runs once per connection or server, not per message.  Semantics,
argument checks and error messages are those of CPython's asyncio.
"""

import collections.abc
import contextvars
import errno
import functools
import itertools
import os
import socket
import stat
import sys
import warnings
import weakref

from asyncio import base_events as _base_events
from asyncio import constants as _constants
from asyncio import events as _events
from asyncio import exceptions as _exceptions
from asyncio import staggered as _staggered
from asyncio import tasks as _tasks
from asyncio import trsock as _trsock
from asyncio.log import logger as _logger

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without ssl
    _ssl = None

_HAS_IPV6 = hasattr(socket, 'AF_INET6')
# asyncio.constants.ACCEPT_RETRY_DELAY: seconds before accepting again
# after running out of file descriptors or memory.
_ACCEPT_RETRY_DELAY = 1

# From 3.14.4 on (gh-142352) a server-side start_tls() hands what a
# StreamReaderProtocol's reader had buffered (the peer's ClientHello, when
# it came first) to the TLS protocol; before, it stayed in the reader.
_START_TLS_TAKES_READER_BUFFER = sys.version_info >= (3, 14, 4)

# TLS runs through asyncuv's SSL protocol in C (sslproto.c); ASYNCUV_TLS=asyncio
# in the environment chooses asyncio's own (asyncio.sslproto.SSLProtocol) on
# the same transports, for comparison.
from . import _asyncuv
_CSSLProtocol = getattr(_asyncuv, 'SSLProtocol', None)
if os.environ.get('ASYNCUV_TLS') == 'asyncio':
    _CSSLProtocol = None


def _refuse_ssl_socket(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _numeric_addrinfo(host, port, family, type_, proto, flowinfo=0, scopeid=0):
    """The getaddrinfo() entry for a host that is already an IP address,
    or None when it has to be resolved."""
    if host is None or proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return None
    protos = {socket.SOCK_STREAM: socket.IPPROTO_TCP,
              socket.SOCK_DGRAM: socket.IPPROTO_UDP}
    if type_ not in protos:
        return None
    if port is None or port == '' or port == b'':
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None  # a service name such as "http"
    if isinstance(host, bytes):
        host = host.decode('idna')
    if '%' in host:
        return None  # inet_pton() takes no IPv6 zone index
    if family == socket.AF_UNSPEC:
        candidates = [socket.AF_INET] + ([socket.AF_INET6] if _HAS_IPV6 else [])
    else:
        candidates = [family]
    for af in candidates:
        try:
            socket.inet_pton(af, host)
        except (OSError, ValueError):
            continue
        if _HAS_IPV6 and af == socket.AF_INET6:
            return af, type_, protos[type_], '', (host, port, flowinfo, scopeid)
        return af, type_, protos[type_], '', (host, port)
    return None


def _interleave(addrinfos, first_family_count=1):
    """Alternate address families (RFC 8305), first_family_count of the
    first family leading."""
    by_family = {}
    for info in addrinfos:
        by_family.setdefault(info[0], []).append(info)
    groups = list(by_family.values())
    if not groups:
        return []
    head = groups[0][:first_family_count - 1]
    groups[0] = groups[0][first_family_count - 1:]
    rest = (info for info in itertools.chain.from_iterable(
        itertools.zip_longest(*groups)) if info is not None)
    return head + list(rest)


def _bind_error_text(exc):
    return str(exc).lower() if _BIND_ERROR_STR else exc.strerror.lower()


def _close_quietly(sock):
    """Close a socket being set up: an error closing it must not replace
    the error that is being raised (as asyncio since 3.13)."""
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _remove_unix_socket_files(paths):
    """Remove the files of closed Unix servers, unless another socket has
    taken a path over since (its inode changed)."""
    for path, inode in paths.values():
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            _logger.error('Unable to clean up listening UNIX socket %r: %r',
                          path, err)


def _set_reuse_port(sock):
    if not hasattr(socket, 'SO_REUSEPORT'):
        raise ValueError('reuse_port not supported by socket module')
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError('reuse_port not supported by socket module, '
                         'SO_REUSEPORT defined but not implemented.')


# Python 3.12 made wait_closed() wait for the connections too (gh-79033),
# and the server tracks its transports rather than counting them; 3.13 added
# close_clients() and abort_clients().  Cancelling serve_forever() closes the
# clients where the running asyncio does (gh-123720: 3.14, and backported to
# some 3.13 releases): asked of asyncio's own Server, not of a version number.
_WAIT_FOR_CLIENTS = sys.version_info >= (3, 12)
# 3.13: bind errors quote str(exc), not exc.strerror; create_server() skips
# addresses whose family is not enabled (EADDRNOTAVAIL, bpo-30945).
_BIND_ERROR_STR = sys.version_info >= (3, 13)
# 3.13: a Unix server removes its socket file when it closes, by default.
_CLEANUP_SOCKET = sys.version_info >= (3, 13)
_HAS_CLOSE_CLIENTS = sys.version_info >= (3, 13)
_SERVE_FOREVER_CLOSES_CLIENTS = (
    _HAS_CLOSE_CLIENTS and
    'close_clients' in _base_events.Server.serve_forever.__code__.co_names)


class Server(_events.AbstractServer):
    """A listening server, as asyncio.Server of the running Python."""

    def __init__(self, loop, sockets, protocol_factory, ssl_context, backlog,
                 ssl_handshake_timeout, ssl_shutdown_timeout=None):
        self._loop = loop
        self._sockets = sockets
        # Weak references: an abandoned transport must still be collected
        # (and warn) as asyncio's are.
        self._clients = weakref.WeakSet()
        self._uncounted = 0
        self._waiters = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut = None
        # create_unix_server(cleanup_socket=True): {sock: (path, inode)}
        self._unix_cleanup = None

    def __repr__(self):
        return f'<{self.__class__.__name__} sockets={self.sockets!r}>'

    # The transports (module/transport.c) call these with themselves.
    # asyncio 3.11 and 3.12 take no argument and count: code written for
    # them (CPython 3.12's test_wait_closed_race) is counted the same way.
    def _attach(self, transport=None):
        assert self._sockets is not None
        if transport is None:
            self._uncounted += 1
        else:
            self._clients.add(transport)

    def _detach(self, transport=None):
        if transport is None:
            self._uncounted -= 1
        else:
            self._clients.discard(transport)
        if self._active() == 0 and self._sockets is None:
            self._wakeup()

    def _active(self):
        return len(self._clients) + self._uncounted

    def _wakeup(self):
        waiters, self._waiters = self._waiters, None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _start_serving(self):
        if self._serving:
            return
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._start_serving(self._protocol_factory, sock,
                                      self._ssl_context, self, self._backlog,
                                      self._ssl_handshake_timeout,
                                      self._ssl_shutdown_timeout)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        return tuple(_trsock.TransportSocket(s) for s in self._sockets)

    def close(self):
        if self._sockets is None:
            return
        # Before anything changes: the listeners are the loop's thread's.
        self._loop._check_thread()
        sockets, self._sockets = self._sockets, None
        for sock in sockets:
            self._loop._stop_serving(sock)
        if self._unix_cleanup:
            _remove_unix_socket_files(self._unix_cleanup)
            self._unix_cleanup = None
        self._serving = False
        fut, self._serving_forever_fut = self._serving_forever_fut, None
        if fut is not None and not fut.done():
            fut.cancel()
        if self._active() == 0:
            self._wakeup()

    if _HAS_CLOSE_CLIENTS:
        def close_clients(self):
            """Close every accepted connection (Python 3.13+)."""
            for transport in self._clients.copy():
                transport.close()

        def abort_clients(self):
            """Abort every accepted connection (Python 3.13+)."""
            for transport in self._clients.copy():
                transport.abort()

    async def start_serving(self):
        self._start_serving()
        # One iteration, so that accepting has started when this returns.
        await _tasks.sleep(0)

    async def serve_forever(self):
        if self._serving_forever_fut is not None:
            raise RuntimeError(
                f'server {self!r} is already being awaited on serve_forever()')
        if self._sockets is None:
            raise RuntimeError(f'server {self!r} is closed')
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except _exceptions.CancelledError:
            try:
                self.close()
                if _SERVE_FOREVER_CLOSES_CLIENTS:
                    self.close_clients()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed -- and, from Python 3.12 on,
        until its connections are gone too."""
        if self._waiters is None:
            return
        if not _WAIT_FOR_CLIENTS and self._sockets is None:
            return  # 3.11: returns at once once close() was called
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


class NetworkMixin:
    """The network methods of asyncuv.Loop."""

    # -- DNS -----------------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0,
                          flags=0):
        # In debug mode asyncio logs each lookup and its time.
        getaddrinfo = (self._getaddrinfo_debug if self.get_debug()
                       else socket.getaddrinfo)
        return await self.run_in_executor(
            None, getaddrinfo, host, port, family, type, proto, flags)

    _getaddrinfo_debug = _base_events.BaseEventLoop._getaddrinfo_debug

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(
            None, socket.getnameinfo, sockaddr, flags)

    async def _resolve(self, address, *, family=0, type=socket.SOCK_STREAM,
                       proto=0, flags=0):
        host, port = address[:2]
        info = _numeric_addrinfo(host, port, family, type, proto, *address[2:])
        if info is not None:
            return [info]
        return await self.getaddrinfo(host, port, family=family, type=type,
                                      proto=proto, flags=flags)

    # -- sock_* ------------------------------------------------------------

    def _check_sock(self, sock):
        _refuse_ssl_socket(sock)
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    async def _sock_io(self, sock, writing, attempt, *, first=None):
        """Run attempt() (or first(), the first time) now; while it raises
        BlockingIOError, wait for sock to be ready (readable, or writable
        when writing) and try again.  Returns attempt's result."""
        self._check_sock(sock)
        try:
            return (first or attempt)()
        except (BlockingIOError, InterruptedError):
            pass

        fut = self.create_future()
        fd = sock.fileno()

        def retry():
            if fut.done():
                return
            try:
                result = attempt()
            except (BlockingIOError, InterruptedError):
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        if writing:
            handle = self._add_writer(fd, retry)
            remove = self.remove_writer
        else:
            handle = self._add_reader(fd, retry)
            remove = self.remove_reader

        def done(_):
            # Unless someone else's reader or writer replaced ours.
            if not handle.cancelled():
                remove(fd)

        fut.add_done_callback(done)
        try:
            return await fut
        finally:
            fut = None

    # recv, recv_into and sendall are C (they carry sock_* servers); these
    # coroutines only await the future the C side returns.

    # The C halves return the result itself when the first try is enough,
    # and a future to await only when they had to wait.

    # Objects that are not sockets (NotImplemented from C) go asyncio's
    # way: their own recv()/recv_into()/send(), with its errors.

    async def sock_recv(self, sock, n):
        data = self._sock_recv(sock, n)
        if data.__class__ is bytes:
            return data
        if data is NotImplemented:
            return await self._sock_io(sock, False, lambda: sock.recv(n))
        return await data

    async def sock_recv_into(self, sock, buf):
        nbytes = self._sock_recv_into(sock, buf)
        if nbytes.__class__ is int:
            return nbytes
        if nbytes is NotImplemented:
            return await self._sock_io(sock, False, lambda: sock.recv_into(buf))
        return await nbytes

    async def sock_recvfrom(self, sock, bufsize):
        return await self._sock_io(sock, False,
                                   lambda: sock.recvfrom(bufsize))

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        nbytes = nbytes or len(buf)
        return await self._sock_io(sock, False,
                                   lambda: sock.recvfrom_into(buf, nbytes))

    async def sock_sendall(self, sock, data):
        waiter = self._sock_sendall(sock, data)
        if waiter is NotImplemented:
            return await self._sock_sendall_any(sock, data)
        if waiter is not None:
            return await waiter

    async def _sock_sendall_any(self, sock, data):
        self._check_sock(sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        view = memoryview(data)[n:]

        def send_rest():
            nonlocal view
            while view:
                view = view[sock.send(view):]

        await self._sock_io(sock, True, send_rest)

    async def sock_sendto(self, sock, data, address):
        return await self._sock_io(sock, True,
                                   lambda: sock.sendto(data, 0, address),
                                   first=lambda: sock.sendto(data, address))

    async def sock_connect(self, sock, address):
        self._check_sock(sock)
        if sock.family == socket.AF_INET or (
                _HAS_IPV6 and sock.family == socket.AF_INET6):
            infos = await self._resolve(address, family=sock.family,
                                        type=sock.type, proto=sock.proto)
            address = infos[0][4]

        def connected():
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err != 0:
                raise OSError(err, f'Connect call failed {address}')
            return None

        return await self._sock_io(sock, True, connected,
                                   first=lambda: sock.connect(address))

    async def sock_accept(self, sock):
        def accept():
            conn, address = sock.accept()
            conn.setblocking(False)
            return conn, address

        return await self._sock_io(sock, False, accept)

    # -- transports ----------------------------------------------------------

    def _ssl_protocol(self, protocol, sslcontext, waiter, server_side,
                      server_hostname, call_connection_made=True,
                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """asyncio's SSLProtocol(...): asyncuv's, in C (sslproto.c), or,
        with ASYNCUV_TLS=asyncio in the environment, asyncio's own."""
        if _CSSLProtocol is None:
            from asyncio import sslproto
            return sslproto.SSLProtocol(
                self, protocol, sslcontext, waiter, server_side,
                server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
                call_connection_made=call_connection_made)
        # The checks and defaults of asyncio's SSLProtocol.__init__().
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = _constants.SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(
                f"ssl_handshake_timeout should be a positive number, "
                f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = _constants.SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(
                f"ssl_shutdown_timeout should be a positive number, "
                f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            from asyncio import sslproto
            sslcontext = sslproto._create_transport_context(
                server_side, server_hostname)
        return _CSSLProtocol._create(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            call_connection_made, ssl_handshake_timeout, ssl_shutdown_timeout)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None,
                            *, server_side=False, server_hostname=None,
                            extra=None, server=None,
                            ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, call_connection_made=True):
        ssl_protocol = self._ssl_protocol(
            protocol, sslcontext, waiter, server_side, server_hostname,
            call_connection_made, ssl_handshake_timeout, ssl_shutdown_timeout)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra,
                                    server=server)
        return ssl_protocol._app_transport

    async def start_tls(self, transport, protocol, sslcontext, *,
                        server_side=False, server_hostname=None,
                        ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        """Upgrade a connection to TLS; return the new (TLS) transport."""
        if _ssl is None:
            raise RuntimeError('Python ssl module is not available')
        if not isinstance(sslcontext, _ssl.SSLContext):
            raise TypeError(f'sslcontext is expected to be an instance of '
                            f'ssl.SSLContext, got {sslcontext!r}')
        if not getattr(transport, '_start_tls_compatible', False):
            raise TypeError(
                f'transport {transport!r} is not supported by start_tls()')
        waiter = self.create_future()
        ssl_protocol = self._ssl_protocol(
            protocol, sslcontext, waiter, server_side, server_hostname, False,
            ssl_handshake_timeout, ssl_shutdown_timeout)
        # No data may reach the TLS protocol before its connection_made().
        transport.pause_reading()
        if server_side and _START_TLS_TAKES_READER_BUFFER:
            from asyncio.streams import StreamReaderProtocol
            if isinstance(protocol, StreamReaderProtocol):
                reader = getattr(protocol, '_stream_reader', None)
                if reader is not None and reader._buffer:
                    ssl_protocol._incoming.write(reader._buffer)
                    reader._buffer.clear()
        transport.set_protocol(ssl_protocol)
        made = self.call_soon(ssl_protocol.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return ssl_protocol._app_transport

    async def _connection_transport(self, sock, protocol_factory, ssl,
                                    server_hostname, server_side=False,
                                    ssl_handshake_timeout=None,
                                    ssl_shutdown_timeout=None):
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter = self.create_future()
        if ssl:
            sslcontext = None if isinstance(ssl, bool) else ssl
            transport = self._make_ssl_transport(
                sock, protocol, sslcontext, waiter, server_side=server_side,
                server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout)
        else:
            transport = self._make_socket_transport(sock, protocol, waiter)
        try:
            await waiter
        except:
            transport.close()
            raise
        return transport, protocol

    async def _try_connect(self, errors, addrinfo, local_infos):
        """Connect a new socket to one address; its errors go to errors."""
        mine = []
        errors.append(mine)
        family, type_, proto, _, address = addrinfo
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_infos is not None:
                for lfamily, _, _, _, laddr in local_infos:
                    if lfamily != family:
                        continue
                    try:
                        sock.bind(laddr)
                        break
                    except OSError as exc:
                        mine.append(OSError(
                            exc.errno, f'error while attempting to bind on '
                                       f'address {laddr!r}: '
                                       f'{_bind_error_text(exc)}'))
                else:
                    if mine:
                        raise mine.pop()
                    raise OSError(f"no matching local address with "
                                  f"family={family!r} found")
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            mine.append(exc)
            _close_quietly(sock)
            raise
        except:
            _close_quietly(sock)
            raise

    async def create_connection(
            self, protocol_factory, host=None, port=None, *, ssl=None,
            family=0, proto=0, flags=0, sock=None, local_addr=None,
            server_hostname=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
            interleave=None, all_errors=False):
        if server_hostname is not None and not ssl:
            raise ValueError('server_hostname is only meaningful with ssl')
        if server_hostname is None and ssl:
            if not host:
                raise ValueError('You must set server_hostname '
                                 'when using ssl without a host')
            server_hostname = host
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError(
                'ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError(
                'ssl_shutdown_timeout is only meaningful with ssl')
        if sock is not None:
            _refuse_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1

        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    'host/port and sock can not be specified at the same time')
            infos = await self._resolve((host, port), family=family,
                                        type=socket.SOCK_STREAM, proto=proto,
                                        flags=flags)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            local_infos = None
            if local_addr is not None:
                local_infos = await self._resolve(
                    local_addr, family=family, type=socket.SOCK_STREAM,
                    proto=proto, flags=flags)
                if not local_infos:
                    raise OSError('getaddrinfo() returned empty list')
            if interleave:
                infos = _interleave(infos, interleave)

            errors = []
            if happy_eyeballs_delay is None:
                for info in infos:
                    try:
                        sock = await self._try_connect(errors, info,
                                                       local_infos)
                        break
                    except OSError:
                        continue
            else:
                attempts = (functools.partial(self._try_connect, errors, info,
                                              local_infos) for info in infos)
                sock, _, _ = await _staggered.staggered_race(
                    attempts, happy_eyeballs_delay, loop=self)
            if sock is None:
                flat = [exc for sub in errors for exc in sub]
                if all_errors:  # Python 3.12
                    raise ExceptionGroup('create_connection failed', flat)
                if len(flat) == 1 or all(str(e) == str(flat[0]) for e in flat):
                    raise flat[0]
                raise OSError('Multiple exceptions: {}'.format(
                    ', '.join(str(exc) for exc in flat)))
        else:
            if sock is None:
                raise ValueError('host and port was not specified and '
                                 'no sock specified')
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f'A Stream Socket was expected, got {sock!r}')

        transport, protocol = await self._connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self.get_debug():
            _logger.debug("%r connected to %s:%r: (%r, %r)",
                          transport.get_extra_info('socket'), host, port,
                          transport, protocol)
        return transport, protocol

    async def create_unix_connection(
            self, protocol_factory, path=None, *, ssl=None, sock=None,
            server_hostname=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None):
        if ssl:
            if server_hostname is None:
                raise ValueError(
                    'you have to pass server_hostname when using ssl')
        else:
            if server_hostname is not None:
                raise ValueError('server_hostname is only meaningful with ssl')
            if ssl_handshake_timeout is not None:
                raise ValueError(
                    'ssl_handshake_timeout is only meaningful with ssl')
            if ssl_shutdown_timeout is not None:
                raise ValueError(
                    'ssl_shutdown_timeout is only meaningful with ssl')

        if path is not None:
            if sock is not None:
                raise ValueError(
                    'path and sock can not be specified at the same time')
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError('no path and sock were specified')
            if (sock.family != socket.AF_UNIX or
                    sock.type != socket.SOCK_STREAM):
                raise ValueError(
                    f'A UNIX Domain Stream Socket was expected, got {sock!r}')
            sock.setblocking(False)

        return await self._connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def connect_accepted_socket(self, protocol_factory, sock, *,
                                      ssl=None, ssl_handshake_timeout=None,
                                      ssl_shutdown_timeout=None):
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f'A Stream Socket was expected, got {sock!r}')
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError(
                'ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError(
                'ssl_shutdown_timeout is only meaningful with ssl')
        _refuse_ssl_socket(sock)
        transport, protocol = await self._connection_transport(
            sock, protocol_factory, ssl, '', server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self.get_debug():
            # The transport's socket: a TLS one replaces the old.
            _logger.debug("%r handled: (%r, %r)",
                          transport.get_extra_info('socket'), transport,
                          protocol)
        return transport, protocol

    # -- servers --------------------------------------------------------------

    def _start_serving(self, protocol_factory, sock, sslcontext=None,
                       server=None, backlog=100, ssl_handshake_timeout=None,
                       ssl_shutdown_timeout=None, context=None):
        # asyncio's accept handler is made here, in a copy of the current
        # context, and each connection is handled in a task (a copy of
        # that): the protocol factory and the protocol's callbacks see the
        # context of start_serving(), serve_forever() or create_server().
        if context is None:
            context = contextvars.copy_context()

        def on_connection(conn, error):
            if error is not None:
                self._accept_failed(error, protocol_factory, sock, sslcontext,
                                    server, backlog, ssl_handshake_timeout,
                                    ssl_shutdown_timeout, context)
                return
            context.copy().run(self._on_connection, conn, protocol_factory,
                               sslcontext, server, ssl_handshake_timeout,
                               ssl_shutdown_timeout)

        self._listen(sock, on_connection)

    def _on_connection(self, conn, protocol_factory, sslcontext, server,
                       ssl_handshake_timeout, ssl_shutdown_timeout):
        if self.get_debug():
            try:
                addr = conn.getpeername()
            except OSError:
                addr = None
            _logger.debug("%r got a new connection from %r: %r",
                          server, addr, conn)
        self._accepted(conn, protocol_factory, sslcontext, server,
                       ssl_handshake_timeout, ssl_shutdown_timeout)

    def _stop_serving(self, sock):
        self._unlisten(sock)
        sock.close()

    def _accept_failed(self, exc, *serving):
        sock = serving[1]
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                         errno.ENOMEM):
            # Out of a resource: tell, pause, try again later.
            self.call_exception_handler({
                'message': 'socket.accept() out of system resource',
                'exception': exc,
                'socket': _trsock.TransportSocket(sock),
            })
            self._unlisten(sock)
            self.call_later(_ACCEPT_RETRY_DELAY, self._start_serving, *serving)
        else:
            self.call_exception_handler({
                'message': 'Error accepting a connection',
                'exception': exc,
                'socket': _trsock.TransportSocket(sock),
            })

    def _accepted(self, conn, protocol_factory, sslcontext, server,
                  ssl_handshake_timeout, ssl_shutdown_timeout):
        protocol = transport = None
        try:
            protocol = protocol_factory()
            if sslcontext:
                waiter = self.create_future()
                transport = self._make_ssl_transport(
                    conn, protocol, sslcontext, waiter, server_side=True,
                    server=server, ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)
                self.create_task(self._await_handshake(waiter, transport,
                                                       protocol))
            else:
                transport = self._make_socket_transport(conn, protocol,
                                                        server=server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            conn.close()
            if self.get_debug():
                self._report_accept_error(exc, protocol, transport)

    async def _await_handshake(self, waiter, transport, protocol):
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport.close()
            if self.get_debug():
                self._report_accept_error(exc, protocol, transport)

    def _report_accept_error(self, exc, protocol, transport):
        context = {
            'message': 'Error on transport creation for incoming connection',
            'exception': exc,
        }
        if protocol is not None:
            context['protocol'] = protocol
        if transport is not None:
            context['transport'] = transport
        self.call_exception_handler(context)

    async def _bind_server_sockets(self, hosts, port, family, flags,
                                   reuse_address, reuse_port, keep_alive):
        lookups = [self._resolve((host, port), family=family,
                                 type=socket.SOCK_STREAM, flags=flags)
                   for host in hosts]
        results = await _tasks.gather(*lookups)
        for host, infos in zip(hosts, results):
            if not infos:
                raise OSError(f'getaddrinfo({host!r}) returned empty list')
        infos = set(itertools.chain(*results))
        sockets = []
        try:
            for af, socktype, proto, _, sa in infos:
                try:
                    sock = socket.socket(af, socktype, proto)
                except OSError:
                    if self.get_debug():
                        _logger.warning('create_server() failed to create '
                                        'socket.socket(%r, %r, %r)',
                                        af, socktype, proto, exc_info=True)
                    continue
                sockets.append(sock)
                if reuse_address:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                    True)
                # Linux 6.12.9+ refuses SO_REUSEPORT on other families.
                if reuse_port and af in (socket.AF_INET, socket.AF_INET6):
                    _set_reuse_port(sock)
                if keep_alive:  # Python 3.13; accepted sockets inherit it
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE,
                                    True)
                if (_HAS_IPV6 and af == socket.AF_INET6 and
                        hasattr(socket, 'IPPROTO_IPV6')):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                                    True)
                try:
                    sock.bind(sa)
                except OSError as err:
                    msg = ('error while attempting to bind on address %r: %s'
                           % (sa, _bind_error_text(err)))
                    if _BIND_ERROR_STR and err.errno == errno.EADDRNOTAVAIL:
                        # The family is not enabled (bpo-30945).
                        sockets.pop()
                        sock.close()
                        if self.get_debug():
                            _logger.warning(msg)
                        continue
                    raise OSError(err.errno, msg) from None
            if not sockets and _BIND_ERROR_STR:
                raise OSError('could not bind on any address out of %r'
                              % ([info[4] for info in infos],))
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return sockets

    async def create_server(
            self, protocol_factory, host=None, port=None, *,
            family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
            backlog=100, ssl=None, reuse_address=None, reuse_port=None,
            keep_alive=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None, start_serving=True):
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError(
                'ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError(
                'ssl_shutdown_timeout is only meaningful with ssl')
        if sock is not None:
            _refuse_ssl_socket(sock)

        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    'host/port and sock can not be specified at the same time')
            if reuse_address is None:
                reuse_address = os.name == 'posix'
            if host == '':
                hosts = [None]
            elif (isinstance(host, str) or
                  not isinstance(host, collections.abc.Iterable)):
                hosts = [host]
            else:
                hosts = list(host)
            sockets = await self._bind_server_sockets(
                hosts, port, family, flags, reuse_address, reuse_port,
                keep_alive)
        else:
            if sock is None:
                raise ValueError('Neither host/port nor sock were specified')
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f'A Stream Socket was expected, got {sock!r}')
            sockets = [sock]

        for s in sockets:
            s.setblocking(False)
        server = Server(self, sockets, protocol_factory, ssl, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            await _tasks.sleep(0)
        if self.get_debug():
            _logger.info("%r is serving", server)
        return server

    async def create_unix_server(
            self, protocol_factory, path=None, *, sock=None, backlog=100,
            ssl=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
            start_serving=True, cleanup_socket=_CLEANUP_SOCKET):
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError(
                'ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError(
                'ssl_shutdown_timeout is only meaningful with ssl')

        if path is not None:
            if sock is not None:
                raise ValueError(
                    'path and sock can not be specified at the same time')
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if path[0] not in (0, '\x00'):  # not the abstract namespace
                try:
                    if stat.S_ISSOCK(os.stat(path).st_mode):
                        os.remove(path)  # a stale socket file
                except FileNotFoundError:
                    pass
                except OSError as err:
                    _logger.error('Unable to check or remove stale UNIX '
                                  'socket %r: %r', path, err)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE,
                                  f'Address {path!r} is already in use'
                                  ) from None
                raise
            except:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError(
                    'path was not specified, and no sock specified')
            if (sock.family != socket.AF_UNIX or
                    sock.type != socket.SOCK_STREAM):
                raise ValueError(
                    f'A UNIX Domain Stream Socket was expected, got {sock!r}')

        cleanup = None
        if cleanup_socket:  # Python 3.13
            name = sock.getsockname()
            if name and name[0] not in (0, '\x00'):  # not abstract
                try:
                    cleanup = {sock: (name, os.stat(name).st_ino)}
                except FileNotFoundError:
                    pass

        sock.setblocking(False)
        server = Server(self, [sock], protocol_factory, ssl, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        server._unix_cleanup = cleanup
        if start_serving:
            server._start_serving()
            await _tasks.sleep(0)
        return server

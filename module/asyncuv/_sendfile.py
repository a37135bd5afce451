"""loop.sendfile() and loop.sock_sendfile() of asyncuv.Loop.

Zero-copy sendfile(2) where the kernel can, by the engine (lib/sendfile.c):
on asyncuv's own transports the request rides the engine stream's
writability (auv_stream_sendfile(), module/transport.c); on plain sockets it
watches the socket itself (auv_sendfile_start_ex(), module/sockops.c).  Elsewhere (TLS, a file
that is not a regular one) the file is read and written, as asyncio does.
"""

import io
import os
import socket
import sys

from asyncio import constants, exceptions, protocols

_FALLBACK_READ_SIZE = constants.SENDFILE_FALLBACK_READBUFFER_SIZE

# Where the file's position is left, as asyncio does.  From 3.14.6 on
# (gh-150107) sendfile() and sock_sendfile() seek a file with seek() to the
# offset first, 0 included, and sendfile(2) leaves the fd's position after
# what it sent even when it sent nothing; before, only a non-zero offset was
# sought and the position moved only if something was sent.
_ALWAYS_SEEK = sys.version_info >= (3, 14, 6)


def _check_sendfile_params(sock, file, offset, count):
    if 'b' not in getattr(file, 'mode', 'b'):
        raise ValueError('file should be opened in binary mode')
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError('only SOCK_STREAM type sockets are supported')
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f'count must be a positive integer (got {count!r})')
        if count <= 0:
            raise ValueError(f'count must be a positive integer (got {count!r})')
    if not isinstance(offset, int):
        raise TypeError(f'offset must be a non-negative integer (got {offset!r})')
    if offset < 0:
        raise ValueError(f'offset must be a non-negative integer (got {offset!r})')


def _file_size(file):
    """The size of a regular file, or SendfileNotAvailableError."""
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise exceptions.SendfileNotAvailableError('not a regular file')
    try:
        return fileno, os.fstat(fileno).st_size
    except OSError:
        raise exceptions.SendfileNotAvailableError('not a regular file')


class SendfileMixin:
    """sendfile() and sock_sendfile() for Loop."""

    async def sock_sendfile(self, sock, file, offset=0, count=None, *,
                            fallback=True):
        """Send a file over a connected non-blocking socket."""
        self._check_sock(sock)
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        fileno, size = _file_size(file)
        if not (count or size):
            return 0
        # The engine sends, as the socket becomes writable (lib/sendfile.c,
        # through module/sockops.c); its errors come as asyncio raises them,
        # a first sendfile(2) that fails as SendfileNotAvailableError.
        try:
            op = self._sock_sendfile(sock.fileno(), fileno, offset, count or 0)
        except exceptions.SendfileNotAvailableError:
            if _ALWAYS_SEEK:
                os.lseek(fileno, offset, os.SEEK_SET)
            raise
        try:
            return await op.future
        finally:
            # asyncio moves the file past what was sent when the transfer
            # ends, not when it is cancelled (its cancellation callback only
            # stops watching the socket) or abandoned (a loop closed under
            # it, the coroutine closed).
            fut = op.future
            if fut.done() and not fut.cancelled():
                sent = op.sent
                if sent > 0 or _ALWAYS_SEEK:
                    os.lseek(fileno, offset + sent, os.SEEK_SET)

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if hasattr(file, 'seek') if _ALWAYS_SEEK else offset:
            file.seek(offset)
        blocksize = (min(count, _FALLBACK_READ_SIZE) if count
                     else _FALLBACK_READ_SIZE)
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)

    async def sendfile(self, transport, file, offset=0, count=None, *,
                       fallback=True):
        """Send a file to a transport; return the number of bytes sent."""
        if transport.is_closing():
            raise RuntimeError('Transport is closing')
        mode = getattr(transport, '_sendfile_compatible',
                       constants._SendfileMode.UNSUPPORTED)
        if mode is constants._SendfileMode.UNSUPPORTED:
            raise RuntimeError(
                f'sendfile is not supported for transport {transport!r}')
        if mode is constants._SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f'fallback is disabled and native sendfile is not '
                f'supported for transport {transport!r}')
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transp, file, offset, count):
        if not hasattr(transp, '_sendfile'):
            raise exceptions.SendfileNotAvailableError(
                'sendfile syscall is not supported')
        sock = transp.get_extra_info('socket')
        _check_sendfile_params(sock, file, offset, count)
        fileno, size = _file_size(file)
        resume_reading = transp.is_reading()
        transp.pause_reading()
        await transp._make_empty_waiter()
        try:
            if not (count or size):
                return 0
            return await transp._sendfile(fileno, offset, count or 0)
        finally:
            sent = transp._sendfile_finish()
            if sent > 0 or (_ALWAYS_SEEK and (count or size)):
                os.lseek(fileno, offset + sent, os.SEEK_SET)
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()

    async def _sendfile_fallback(self, transp, file, offset, count):
        if hasattr(file, 'seek') if _ALWAYS_SEEK else offset:
            file.seek(offset)
        blocksize = min(count, 16384) if count else 16384
        buf = bytearray(blocksize)
        total_sent = 0
        proto = _FallbackProtocol(transp, self)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent
                await proto.drain()
                transp.write(view[:read])
                total_sent += read
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)
            await proto.restore()


class _FallbackProtocol(protocols.Protocol):
    """Stands in for the transport's protocol while a file is written
    through it: reading paused, writing paced by the water marks."""

    def __init__(self, transp, loop):
        self._transport = transp
        self._proto = transp.get_protocol()
        self._should_resume_reading = transp.is_reading()
        self._should_resume_writing = getattr(transp, '_protocol_paused', False)
        transp.pause_reading()
        transp.set_protocol(self)
        self._loop = loop
        self._write_ready_fut = (loop.create_future()
                                 if self._should_resume_writing else None)

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError('Connection closed by peer')
        fut = self._write_ready_fut
        if fut is not None:
            await fut

    def connection_made(self, transport):
        raise RuntimeError('Invalid state: connection should have been '
                           'established already.')

    def connection_lost(self, exc):
        if self._write_ready_fut is not None:
            if exc is None:
                self._write_ready_fut.set_exception(
                    ConnectionError('Connection is closed by peer'))
            else:
                self._write_ready_fut.set_exception(exc)
        self._proto.connection_lost(exc)

    def pause_writing(self):
        if self._write_ready_fut is None:
            self._write_ready_fut = self._loop.create_future()

    def resume_writing(self):
        if self._write_ready_fut is not None:
            self._write_ready_fut.set_result(False)
            self._write_ready_fut = None

    def data_received(self, data):
        raise RuntimeError('Invalid state: reading should be paused')

    def eof_received(self):
        raise RuntimeError('Invalid state: reading should be paused')

    async def restore(self):
        self._transport.set_protocol(self._proto)
        if self._should_resume_reading:
            self._transport.resume_reading()
        if self._write_ready_fut is not None:
            self._write_ready_fut.cancel()
        if self._should_resume_writing:
            self._proto.resume_writing()

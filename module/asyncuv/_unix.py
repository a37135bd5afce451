"""Signals, pipes and child processes of asyncuv.Loop.

The behaviour is asyncio's Unix loop's (the reference); the machinery is
asyncuv's: signal numbers arrive through the loop's wake-up socket and are
dispatched in C, pipe transports sit on the engine's fd watchers, and a
child's exit is seen through a pidfd on the loop (a thread waits only where
the kernel has no pidfd), so exit statuses of children the loop did not
start are never taken.
"""

import asyncio
import collections
import contextvars
import errno
import fcntl
import functools
import os
import signal
import stat
import subprocess
import sys
import threading
import warnings

from asyncio import coroutines, futures, protocols, transports
from asyncio.log import logger

# asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES
_CONNLOST_WRITES_LOG = 5
_HIGH_WATER = 64 * 1024
_PIPE_SIZE = 1 << 20
_PIPE_DEFAULT_SIZE = 64 * 1024  # a Linux pipe's capacity until F_SETPIPE_SZ


# wait() on a subprocess: from 3.14.7 on (gh-119710) asyncio wakes its
# waiters as soon as the process exits, even if a pipe stays open (a
# grandchild inherited it); before, at connection_lost(), after the pipes
# closed -- never, if one stays open.
_WAIT_RETURNS_AT_EXIT = sys.version_info >= (3, 14, 7)

# 3.14 deprecates asyncio.iscoroutinefunction() (it warns); asyncio's loop
# checks callbacks with coroutines._iscoroutinefunction(), which does not.
if sys.version_info >= (3, 14):
    _iscoroutinefunction = coroutines._iscoroutinefunction
else:
    _iscoroutinefunction = coroutines.iscoroutinefunction


def _sighandler_noop(signum, frame):
    """The Python-level handler: the work is done by the wake-up fd."""


class UnixMixin:
    """add/remove_signal_handler, pipes and subprocesses for Loop."""

    # --- Signals ---------------------------------------------------------

    def add_signal_handler(self, sig, callback, *args):
        """Call callback(*args) on the loop when signal sig arrives."""
        if (coroutines.iscoroutine(callback) or
                _iscoroutinefunction(callback)):
            raise TypeError('coroutines cannot be used with add_signal_handler()')
        self._check_signal(sig)
        self._check_closed()
        try:
            # Raises ValueError outside the main thread.
            signal.set_wakeup_fd(self._signal_wakeup_fd())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))

        self._signal_handlers[sig] = self._make_signal_handle(callback, args)
        try:
            # A no-op Python handler: the C-level handler writes the signal
            # number to the wake-up fd, which is what the loop reads.
            signal.signal(sig, _sighandler_noop)
            # Do not interrupt system calls with EINTR.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                self._reset_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler of sig; return True if there was one."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        if sig == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise
        if not self._signal_handlers:
            self._reset_wakeup_fd()
        return True

    def _reset_wakeup_fd(self):
        # A loop running in the main thread owns the wake-up fd until the
        # run ends (it restores the previous one then).
        if self.is_running() and threading.current_thread() is threading.main_thread():
            return
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError) as exc:
            logger.info('set_wakeup_fd(-1) failed: %s', exc)

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f'sig must be an int, not {sig!r}')
        if sig not in signal.valid_signals():
            raise ValueError(f'invalid signal number {sig}')

    def close(self):
        """Close the loop; its signal handlers are removed."""
        if self.is_running():
            raise RuntimeError('Cannot close a running event loop')
        if self._signal_handlers:
            if not sys.is_finalizing():
                for sig in list(self._signal_handlers):
                    self.remove_signal_handler(sig)
            else:
                warnings.warn(f'Closing the loop {self!r} on interpreter '
                              f'shutdown stage, skipping signal handlers '
                              f'removal', ResourceWarning, source=self)
                self._signal_handlers.clear()
        # Children still running when the loop closes are reaped when they
        # exit, by a thread of the engine's (auv_child_watch_detach()), as
        # nobody will watch them any more.
        watches = self.__dict__.pop('_child_watches', None)
        if watches and not self.is_closed():
            for watch in watches.values():
                watch.detach()
        super().close()

    # --- Pipes -------------------------------------------------------------

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Read from a pipe, FIFO, socket or character device (a pty)."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = _ReadPipeTransport(self, pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self.get_debug():
            logger.debug('Read pipe %r connected: (%r, %r)',
                         pipe.fileno(), transport, protocol)
        return transport, protocol

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Write to a pipe, FIFO, socket or character device (a pty)."""
        mode = os.fstat(pipe.fileno()).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            raise ValueError('Pipe transport is only for pipes, sockets and '
                             'character devices')
        protocol = protocol_factory()
        waiter = self.create_future()
        # A C stream transport.  The closing of the read end makes a pipe
        # or socket readable (or in error): it watches for that to learn
        # that the reader went away.  A character device gives no such sign.
        try:
            transport = self._make_write_pipe_transport(
                pipe, protocol, waiter, None, not stat.S_ISCHR(mode))
        except PermissionError:
            # epoll refuses the fd (/dev/null and other devices whose
            # writes never block).
            transport = _PyWritePipeTransport(self, pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self.get_debug():
            logger.debug('Write pipe %r connected: (%r, %r)',
                         pipe.fileno(), transport, protocol)
        return transport, protocol

    # --- Subprocesses ------------------------------------------------------

    async def subprocess_shell(self, protocol_factory, cmd, *,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=False,
                               shell=True, bufsize=0, encoding=None,
                               errors=None, text=None, **kwargs):
        """Run cmd with the shell; return (transport, protocol)."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError('cmd must be a string')
        if universal_newlines:
            raise ValueError('universal_newlines must be False')
        if not shell:
            raise ValueError('shell must be True')
        _check_popen_args(bufsize, text, encoding, errors)
        protocol = protocol_factory()
        debug_log = None
        if self.get_debug():
            # As asyncio: no arguments (they may hold secrets).
            debug_log = 'run shell command %r' % cmd
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs)
        if debug_log is not None:
            logger.info('%s: %r', debug_log, transport)
        return transport, protocol

    async def subprocess_exec(self, protocol_factory, program, *args,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=False,
                              shell=False, bufsize=0, encoding=None,
                              errors=None, text=None, **kwargs):
        """Run program with args; return (transport, protocol)."""
        if universal_newlines:
            raise ValueError('universal_newlines must be False')
        if shell:
            raise ValueError('shell must be False')
        _check_popen_args(bufsize, text, encoding, errors)
        protocol = protocol_factory()
        debug_log = None
        if self.get_debug():
            debug_log = f'execute program {program!r}'
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, (program,) + args, False, stdin, stdout, stderr,
            bufsize, **kwargs)
        if debug_log is not None:
            logger.info('%s: %r', debug_log, transport)
        return transport, protocol

    # asyncio's own, for the same debug log line.
    _log_subprocess = asyncio.BaseEventLoop._log_subprocess

    async def _make_subprocess_transport(self, protocol, args, shell, stdin,
                                         stdout, stderr, bufsize, extra=None,
                                         **kwargs):
        waiter = self.create_future()
        transport = _SubprocessTransport(self, protocol, args, shell, stdin,
                                         stdout, stderr, bufsize, waiter,
                                         extra, **kwargs)
        # The exit reaches the protocol in the context of asyncio's child
        # watcher: 3.11's waits in a thread (a new thread's empty context),
        # 3.12's and later poll a pidfd with a reader made here.
        if sys.version_info >= (3, 12):
            exit_context = contextvars.copy_context()
        else:
            exit_context = contextvars.Context()
        _watch_child(self, transport._pid,
                     functools.partial(exit_context.run,
                                       transport._process_exited))
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            # Shielded as asyncio does from 3.14.1 on (gh-103847): another
            # cancellation does not leave the child unwaited for.
            await asyncio.shield(transport._wait())
            raise
        return transport


def _check_popen_args(bufsize, text, encoding, errors):
    if bufsize != 0:
        raise ValueError('bufsize must be 0')
    if text:
        raise ValueError('text must be False')
    if encoding is not None:
        raise ValueError('encoding must be None')
    if errors is not None:
        raise ValueError('errors must be None')


# --- Child exit ---------------------------------------------------------------

# Child watchers are deprecated from 3.12 (subclassing warns) and gone in
# 3.14: there the policy has no get_child_watcher() to serve.
_WatcherBase = (asyncio.AbstractChildWatcher if sys.version_info < (3, 12)
                else object)


class ChildWatcher(_WatcherBase):
    """The child watcher of asyncuv's policy (asyncio.get_child_watcher()).

    asyncuv loops watch the children they start themselves, so nothing
    needs attaching; code that registers a child of its own here is served
    by the running loop, through the same pidfd machinery.
    """

    def __init__(self):
        self._callbacks = {}

    def add_child_handler(self, pid, callback, *args):
        loop = asyncio.get_running_loop()
        self._callbacks[pid] = (callback, args)

        def exited(returncode):
            entry = self._callbacks.pop(pid, None)
            if entry is not None:
                entry[0](pid, returncode, *entry[1])

        _watch_child(loop, pid, exited)

    def remove_child_handler(self, pid):
        return self._callbacks.pop(pid, None) is not None

    def attach_loop(self, loop):
        pass

    def close(self):
        self._callbacks.clear()

    def is_active(self):
        return True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        pass


def _watch_child(loop, pid, callback):
    """Call callback(returncode) on loop when child pid exits.

    The engine's child watch says when (a pidfd polled by the loop, or a
    thread waiting where pidfds are missing) and reaps that one pid, so no
    other child's status is ever taken.
    """
    watches = loop.__dict__.setdefault('_child_watches', {})

    def exited(returncode):
        if watches.get(pid) is watch:
            del watches[pid]
        callback(returncode)

    watch = loop._watch_child_exit(pid, exited)
    watches[pid] = watch


# --- Flow control shared by the write transports ------------------------------

class _FlowControl:
    _protocol_paused = False
    _high_water = _HIGH_WATER
    _low_water = _HIGH_WATER // 4

    def _maybe_pause_protocol(self):
        if self.get_write_buffer_size() <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                'message': 'protocol.pause_writing() failed',
                'exception': exc, 'transport': self,
                'protocol': self._protocol})

    def _maybe_resume_protocol(self):
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    'message': 'protocol.resume_writing() failed',
                    'exception': exc, 'transport': self,
                    'protocol': self._protocol})

    def get_write_buffer_limits(self):
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()


# --- Pipe transports ----------------------------------------------------------

class _PipeTransportBase:
    _fatal_message = ''

    def __init__(self, loop, pipe, protocol, extra):
        super().__init__(extra)
        self._extra['pipe'] = pipe
        self._loop = loop
        self._pipe = pipe
        self._fileno = pipe.fileno()
        self._protocol = protocol
        self._closing = False

    def _set_up(self):
        os.set_blocking(self._fileno, False)
        self._loop.call_soon(self._protocol.connection_made, self)

    def is_closing(self):
        return self._closing

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._protocol = protocol

    def __repr__(self):
        info = [self.__class__.__name__.lstrip('_')]
        if self._pipe is not None and self._closing:
            info.append('closing')
        info.append(f'fd={self._fileno}')
        info.append('open' if self._pipe is not None else 'closed')
        return '<{}>'.format(' '.join(info))

    def __del__(self, _warn=warnings.warn):
        if self._pipe is not None:
            _warn(f'unclosed transport {self!r}', ResourceWarning, source=self)
            self._pipe.close()

    def _fatal_error(self, exc, message):
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug('%r: %s', self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                'message': message, 'exception': exc,
                'transport': self, 'protocol': self._protocol})
        self._close(exc)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._pipe.close()
            self._pipe = None
            self._protocol = None
            self._loop = None


class _ReadPipeTransport(_PipeTransportBase, transports.ReadTransport):
    max_size = 256 * 1024

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(loop, pipe, protocol, extra)
        self._paused = False
        mode = os.fstat(self._fileno).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            self._pipe = None
            self._fileno = None
            self._protocol = None
            raise ValueError('Pipe transport is for pipes/sockets only.')
        self._set_up()
        self._loop.call_soon(self._start_reading)
        if waiter is not None:
            self._loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    def _start_reading(self):
        if not self._closing and not self._paused:
            self._loop.add_reader(self._fileno, self._read_ready)

    def _read_ready(self):
        try:
            data = os.read(self._fileno, self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc, 'Fatal read error on pipe transport')
            return
        if data:
            self._protocol.data_received(data)
            return
        if self._loop.get_debug():
            logger.info('%r was closed by peer', self)
        self._closing = True
        self._loop.remove_reader(self._fileno)
        self._loop.call_soon(self._protocol.eof_received)
        self._loop.call_soon(self._call_connection_lost, None)

    def pause_reading(self):
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop.remove_reader(self._fileno)
        if self._loop.get_debug():
            logger.debug('%r pauses reading', self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop.add_reader(self._fileno, self._read_ready)
        if self._loop.get_debug():
            logger.debug('%r resumes reading', self)

    def is_reading(self):
        return not self._paused and not self._closing

    def close(self):
        if not self._closing:
            self._close(None)

    def _close(self, exc):
        self._closing = True
        if self._loop is not None:
            self._loop.remove_reader(self._fileno)
            self._loop.call_soon(self._call_connection_lost, exc)


class _PyWritePipeTransport(_FlowControl, _PipeTransportBase,
                            transports.Transport):
    # A Transport, as asyncio's _UnixWritePipeTransport: its reading
    # methods raise NotImplementedError.
    """For what the loop cannot watch (/dev/null, a regular-file-like
    character device): writes that never block need no watcher."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(loop, pipe, protocol, extra)
        self._buffer = bytearray()
        self._conn_lost = 0
        mode = os.fstat(self._fileno).st_mode
        is_char = stat.S_ISCHR(mode)
        is_fifo = stat.S_ISFIFO(mode)
        is_socket = stat.S_ISSOCK(mode)
        if not (is_char or is_fifo or is_socket):
            self._pipe = None
            self._fileno = None
            self._protocol = None
            raise ValueError('Pipe transport is only for pipes, sockets and '
                             'character devices')
        self._set_up()
        # The read end's closing makes a pipe or socket readable (or in
        # error): watch for it to learn that the reader went away.
        # A character device gives no such sign.
        if is_socket or is_fifo:
            self._loop.call_soon(self._watch_peer)
        if waiter is not None:
            self._loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    def _watch_peer(self):
        if not self._closing:
            self._loop.add_reader(self._fileno, self._peer_closed)

    def get_write_buffer_size(self):
        return len(self._buffer)

    def _peer_closed(self):
        if self._loop.get_debug():
            logger.info('%r was closed by peer', self)
        if self._buffer:
            self._close(BrokenPipeError())
        else:
            self._close()

    def write(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if isinstance(data, bytearray):
            data = memoryview(data)
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._conn_lost >= _CONNLOST_WRITES_LOG:
                logger.warning('pipe closed by peer or '
                               'os.write(pipe, data) raised exception.')
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                n = os.write(self._fileno, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._conn_lost += 1
                self._fatal_error(exc, 'Fatal write error on pipe transport')
                return
            if n == len(data):
                return
            if n > 0:
                data = memoryview(data)[n:]
            self._loop.add_writer(self._fileno, self._write_ready)
        self._buffer += data
        self._maybe_pause_protocol()

    def _write_ready(self):
        try:
            n = os.write(self._fileno, self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._buffer.clear()
            self._conn_lost += 1
            self._loop.remove_writer(self._fileno)
            self._fatal_error(exc, 'Fatal write error on pipe transport')
            return
        if n == len(self._buffer):
            self._buffer.clear()
            self._loop.remove_writer(self._fileno)
            self._maybe_resume_protocol()
            if self._closing:
                self._loop.remove_reader(self._fileno)
                self._call_connection_lost(None)
            return
        if n > 0:
            del self._buffer[:n]

    def can_write_eof(self):
        return True

    def write_eof(self):
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._loop.remove_reader(self._fileno)
            self._loop.call_soon(self._call_connection_lost, None)

    def close(self):
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self):
        self._close(None)

    def _close(self, exc=None):
        self._closing = True
        if self._loop is None:
            return
        if self._buffer:
            self._loop.remove_writer(self._fileno)
        self._buffer.clear()
        self._loop.remove_reader(self._fileno)
        self._loop.call_soon(self._call_connection_lost, exc)


# --- Subprocess transport ---------------------------------------------------------

def _grow_pipe(fd):
    """Give a child's stdin pipe a 1 MiB buffer (the unprivileged maximum
    by default), as big as a socket pair's: 16 times fewer wake-ups on both
    sides for a bulk transfer.

    Only the pipes the loop writes to grow.  A pipe it reads from keeps
    asyncio's 64 KiB: what a killed child leaves in it must fit in what
    the stream reader takes before it pauses reading (2 * its limit, 128
    KiB), or the pipe never reaches EOF and wait() (which before 3.14.7
    waits for the pipes) never returns while nobody reads.

    Only a pipe that carries a bulk transfer grows, when it is first seen
    full: the pages count against the user's pipe budget
    (/proc/sys/fs/pipe-user-pages-soft), and once that is spent the kernel
    gives every new pipe of the user a two-page buffer.  Many children that
    each write a little must not spend it."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (AttributeError, OSError):
        pass  # not Linux, or over the budget: the pipe keeps its size


class _PipeProtocol(protocols.Protocol):
    """Connects one of the child's pipes to the subprocess transport."""

    def __init__(self, proc, fd):
        self.proc = proc
        self.fd = fd
        self.pipe = None
        self.disconnected = False
        self._grown = False

    def connection_made(self, transport):
        self.pipe = transport

    def __repr__(self):
        return f'<{self.__class__.__name__} fd={self.fd} pipe={self.pipe!r}>'

    def connection_lost(self, exc):
        self.disconnected = True
        self.proc._pipe_connection_lost(self.fd, exc)
        self.proc = None

    def _grow_pipe(self):
        """A bulk transfer: give the pipe 1 MiB, once."""
        if not self._grown:
            self._grown = True
            _grow_pipe(self.pipe.get_extra_info('pipe').fileno())

    def pause_writing(self):
        # The child does not keep up with a full pipe.
        self._grow_pipe()
        self.proc._protocol.pause_writing()

    def resume_writing(self):
        self.proc._protocol.resume_writing()

    def data_received(self, data):
        # Not grown (see _grow_pipe()): a killed child's leftovers must fit
        # in what the stream reader takes before it pauses.
        self.proc._pipe_data_received(self.fd, data)


class _SubprocessTransport(transports.SubprocessTransport):

    def __init__(self, loop, protocol, args, shell, stdin, stdout, stderr,
                 bufsize, waiter=None, extra=None, **kwargs):
        super().__init__(extra)
        self._closed = False
        self._protocol = protocol
        self._loop = loop
        self._proc = None
        self._pid = None
        self._returncode = None
        self._exit_waiters = set()
        self._pending_calls = collections.deque()
        self._pipes = {}
        self._finished = False
        if stdin == subprocess.PIPE:
            self._pipes[0] = None
        if stdout == subprocess.PIPE:
            self._pipes[1] = None
        if stderr == subprocess.PIPE:
            self._pipes[2] = None

        try:
            self._proc = subprocess.Popen(
                args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
                universal_newlines=False, bufsize=bufsize, **kwargs)
        except:
            self.close()
            raise
        self._pid = self._proc.pid
        self._extra['subprocess'] = self._proc
        if loop.get_debug():
            program = args if isinstance(args, (bytes, str)) else args[0]
            logger.debug('process %r created: pid %s', program, self._pid)
        loop.create_task(self._connect_pipes(waiter))

    def __repr__(self):
        info = [self.__class__.__name__.lstrip('_')]
        if self._closed:
            info.append('closed')
        if self._pid is not None:
            info.append(f'pid={self._pid}')
        if self._returncode is not None:
            info.append(f'returncode={self._returncode}')
        elif self._pid is not None:
            info.append('running')
        else:
            info.append('not started')
        for fd, name in ((0, 'stdin'), (1, 'stdout'), (2, 'stderr')):
            pipe = self._pipes.get(fd)
            if pipe is not None:
                info.append(f'{name}={pipe.pipe}')
        return '<{}>'.format(' '.join(info))

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closed

    def close(self):
        if self._closed:
            return
        # Before anything changes: the pipes are the loop's thread's.
        if self._loop is not None:
            self._loop._check_thread()
        self._closed = True
        for proto in self._pipes.values():
            if proto is None:
                continue
            proto.pipe.close()
        if (self._proc is not None and self._returncode is None and
                self._proc.poll() is None):
            if self._loop.get_debug():
                logger.warning('Close running child process: kill %r', self)
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass
            # The Popen stays referenced: _connect_pipes() may still run.

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            _warn(f'unclosed transport {self!r}', ResourceWarning, source=self)
            self.close()

    def get_pid(self):
        return self._pid

    def get_returncode(self):
        return self._returncode

    def get_pipe_transport(self, fd):
        if fd in self._pipes:
            proto = self._pipes[fd]
            return None if proto is None else proto.pipe
        return None

    def _check_proc(self):
        if self._proc is None:
            raise ProcessLookupError()

    def send_signal(self, sig):
        # os.kill() rather than Popen.send_signal(), as asyncio does from
        # 3.13 on (gh-87744), on every version: Popen's poll() could reap
        # the child before the loop's child watch, which then reported
        # returncode 255 (test_subprocess_send_signal_race).  Until the
        # loop has reaped the child its pid cannot be reused; once it has,
        # _returncode is set and nothing is sent (3.14.7's check,
        # gh-127049; Popen.send_signal() skips such a child too).
        self._check_proc()
        if self._returncode is not None:
            return
        try:
            os.kill(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    async def _connect_pipes(self, waiter):
        try:
            proc = self._proc
            loop = self._loop
            if proc.stdin is not None:
                _, pipe = await loop.connect_write_pipe(
                    lambda: _PipeProtocol(self, 0), proc.stdin)
                self._pipes[0] = pipe
            if proc.stdout is not None:
                _, pipe = await loop.connect_read_pipe(
                    lambda: _PipeProtocol(self, 1), proc.stdout)
                self._pipes[1] = pipe
            if proc.stderr is not None:
                _, pipe = await loop.connect_read_pipe(
                    lambda: _PipeProtocol(self, 2), proc.stderr)
                self._pipes[2] = pipe
            loop.call_soon(self._protocol.connection_made, self)
            for callback, data in self._pending_calls:
                loop.call_soon(callback, *data)
            self._pending_calls = None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # Close the pipes connected before the error or cancellation, and
            # the others' file objects: nothing will read them (asyncio 3.14
            # does the same).
            for proto in self._pipes.values():
                if proto is not None:
                    proto.pipe.close()
            for raw_pipe in (proc.stdin, proc.stdout, proc.stderr):
                if raw_pipe is not None:
                    raw_pipe.close()
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    def _call(self, cb, *data):
        if self._pending_calls is not None:
            self._pending_calls.append((cb, data))
        else:
            self._loop.call_soon(cb, *data)

    def _pipe_connection_lost(self, fd, exc):
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _pipe_data_received(self, fd, data):
        self._call(self._protocol.pipe_data_received, fd, data)

    def _process_exited(self, returncode):
        if self._loop is None or self._loop.is_closed():
            return
        if self._loop.get_debug():
            logger.info('%r exited with return code %r', self, returncode)
        self._returncode = returncode
        if self._proc.returncode is None:
            # Tell Popen the child is reaped, so it never waits for it.
            self._proc.returncode = returncode
        self._call(self._protocol.process_exited)
        self._try_finish()
        if _WAIT_RETURNS_AT_EXIT:
            # After _try_finish(): without pipes, connection_lost() comes
            # first, as in asyncio.
            self._wake_exit_waiters()

    async def _wait(self):
        """Wait for the child to exit; return its returncode.

        From 3.14.7 on, as asyncio, wait() returns once the child has
        exited.  Before, it also waits for the pipes to close (then
        connection_lost() has run): asyncio returns at once once the exit
        is known, but learns of it from a thread, in practice after the
        pipes closed; asyncuv learns of it at once, so waiting for the end
        keeps asyncio's order then: after wait(), the process is gone
        (signalling it raises)."""
        if self._exit_waiters is None:
            return self._returncode
        waiter = self._loop.create_future()
        self._exit_waiters.add(waiter)
        try:
            return await waiter
        finally:
            if self._exit_waiters is not None:
                self._exit_waiters.discard(waiter)

    def _wake_exit_waiters(self):
        if self._exit_waiters is None:
            return
        for waiter in self._exit_waiters:
            if not waiter.done():
                waiter.set_result(self._returncode)
        self._exit_waiters = None

    def _try_finish(self):
        if self._returncode is None:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._wake_exit_waiters()
            self._loop = None
            self._proc = None
            self._protocol = None

"""asyncuv: a fast asyncio event loop on libasyncuv (C, on libuv).

    import asyncuv
    asyncuv.run(main())          # like asyncio.run(), on an asyncuv loop
    asyncuv.install()            # make asyncio.new_event_loop() use asyncuv

Everything a callback passes through (call_soon, timers, handles, tasks and
futures creation, the loop iteration) is C, in asyncuv._asyncuv.  This file
holds the Loop class, which adds the cold paths that asyncio itself writes in
Python -- run_forever's set-up, the exception-handler chain, async generator
and executor shutdown -- with asyncio's exact semantics, plus the policy and
the run()/install() helpers.
"""

import asyncio
import concurrent.futures
import signal
import socket
import sys
import threading
import traceback
import warnings
import weakref

from asyncio import base_events as _base_events
from asyncio import constants as _constants
from asyncio import coroutines as _coroutines
from asyncio import events as _events
from asyncio import futures as _futures
from asyncio import tasks as _tasks
from asyncio.log import logger as _logger

from ._asyncuv import Handle, LoopBase as _LoopBase, TimerHandle
from ._asyncuv import libasyncuv_version

__all__ = ('Loop', 'EventLoopPolicy', 'new_event_loop', 'install', 'run',
           'Handle', 'TimerHandle')
__version__ = '0.1.0'


class Loop(_LoopBase, asyncio.AbstractEventLoop):
    """An asyncio event loop running on libasyncuv.

    Methods that a later release implements (sockets, processes, ...)
    raise NotImplementedError, as asyncio.AbstractEventLoop does.
    """

    def __init__(self):
        self._exception_handler = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._debug = _coroutines._is_debug_mode()
        self._signal_socks = None

    def __repr__(self):
        return (f'<{self.__class__.__name__} running={self.is_running()} '
                f'closed={self.is_closed()} debug={self.get_debug()}>')

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # -- running ---------------------------------------------------------

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError('Event loop is closed')

    def _check_running(self):
        if self.is_running():
            raise RuntimeError('This event loop is already running')
        if _events._get_running_loop() is not None:
            raise RuntimeError(
                'Cannot run the event loop while another loop is running')

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        old_wakeup_fd = None
        try:
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            old_wakeup_fd = self._start_signal_wakeup_fd()
            _events._set_running_loop(self)
            self._run_forever_impl()
        finally:
            _events._set_running_loop(None)
            if old_wakeup_fd is not None:
                self._stop_signal_wakeup()
                signal.set_wakeup_fd(old_wakeup_fd)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _start_signal_wakeup_fd(self):
        # libuv retries an interrupted poll, so Python's signal handlers
        # (KeyboardInterrupt) would wait for the next event: in the main
        # thread, a signal wakes the loop through the wake-up fd instead.
        if threading.current_thread() is not threading.main_thread():
            return None
        if self._signal_socks is None:
            rsock, wsock = socket.socketpair()
            rsock.setblocking(False)
            wsock.setblocking(False)
            self._signal_socks = (rsock, wsock)
        rsock, wsock = self._signal_socks
        old = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
        try:
            self._start_signal_wakeup(rsock.fileno())
        except BaseException:
            signal.set_wakeup_fd(old)
            raise
        return old

    def run_until_complete(self, future):
        """Run until the Future is done; return its result or raise."""
        self._check_closed()
        self._check_running()

        new_task = not _futures.isfuture(future)
        future = _tasks.ensure_future(future, loop=self)
        if new_task:
            # An exception is raised if the future didn't complete, so
            # there is no need to log the "destroy pending task" message.
            future._log_destroy_pending = False

        future.add_done_callback(_base_events._run_until_complete_cb)
        try:
            self.run_forever()
        except:
            if new_task and future.done() and not future.cancelled():
                # The coroutine raised a BaseException: consume it so it is
                # not logged; the caller has no access to the task.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_base_events._run_until_complete_cb)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def close(self):
        """Close the loop: drop pending callbacks, shut the executor down.

        The loop must not be running.  Idempotent and irreversible.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self._debug:
            _logger.debug("Close %r", self)
        super().close()
        if self._signal_socks is not None:
            for sock in self._signal_socks:
                sock.close()
            self._signal_socks = None
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    # -- debug -------------------------------------------------------------

    def set_debug(self, enabled):
        self._debug = enabled
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking,
                                      enabled)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth())
            sys.set_coroutine_origin_tracking_depth(
                _constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # -- errors ------------------------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, '
                            f'got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context at ERROR level on the 'asyncio' logger."""
        message = context.get('message')
        if not message:
            message = 'Unhandled exception in event loop'
        exception = context.get('exception')
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False

        log_lines = [message]
        for key in sorted(context):
            if key in {'message', 'exception'}:
                continue
            value = context[key]
            if key == 'source_traceback':
                tb = ''.join(traceback.format_list(value))
                value = 'Object created at (most recent call last):\n'
                value += tb.rstrip()
            elif key == 'handle_traceback':
                tb = ''.join(traceback.format_list(value))
                value = 'Handle created at (most recent call last):\n'
                value += tb.rstrip()
            else:
                value = repr(value)
            log_lines.append(f'{key}: {value}')
        _logger.error('\n'.join(log_lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Pass context to the exception handler (asyncio's rules)."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                # Second protection layer for unexpected errors in the
                # default implementation, as well as for subclassed event
                # loops with overloaded "default_exception_handler".
                _logger.error('Exception in default exception handler',
                              exc_info=True)
        else:
            try:
                ctx = None
                thing = context.get("task")
                if thing is None:
                    thing = context.get("future")
                if thing is None:
                    thing = context.get("handle")
                if thing is not None and hasattr(thing, "get_context"):
                    ctx = thing.get_context()
                if ctx is not None and hasattr(ctx, "run"):
                    ctx.run(self._exception_handler, self, context)
                else:
                    self._exception_handler(self, context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                # Exception in the user set custom exception handler.
                try:
                    self.default_exception_handler({
                        'message': 'Unhandled error in exception handler',
                        'exception': exc,
                        'context': context,
                    })
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException:
                    _logger.error('Exception in default exception handler '
                                  'while handling an unexpected error '
                                  'in custom exception handler',
                                  exc_info=True)

    # -- async generators --------------------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Shut down all active asynchronous generators."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing_agens = list(self._asyncgens)
        self._asyncgens.clear()
        results = await _tasks.gather(
            *[ag.aclose() for ag in closing_agens], return_exceptions=True)
        for result, agen in zip(results, closing_agens):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    'message': f'an error occurred during closing of '
                               f'asynchronous generator {agen!r}',
                    'exception': result,
                    'asyncgen': agen,
                })

    # -- executor ----------------------------------------------------------

    def _check_default_executor(self):
        if self._executor_shutdown_called:
            raise RuntimeError('Executor shutdown has been called')

    def run_in_executor(self, executor, func, *args):
        self._check_closed()
        if self._debug:
            self._check_callback(func, 'run_in_executor')
        if executor is None:
            executor = self._default_executor
            # Only check when the default executor is being used.
            self._check_default_executor()
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix='asyncio')
                self._default_executor = executor
        return _futures.wrap_future(executor.submit(func, *args), loop=self)

    def _check_callback(self, callback, method):
        if (_coroutines.iscoroutine(callback) or
                _coroutines.iscoroutinefunction(callback)):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f'a callable object was expected by {method}(), '
                            f'got {callback!r}')

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError('executor must be ThreadPoolExecutor instance')
        self._default_executor = executor

    async def shutdown_default_executor(self):
        """Schedule the shutdown of the default executor."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            await future
        finally:
            thread.join()

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(future.set_result, None)
        except Exception as ex:
            if not self.is_closed():
                self.call_soon_threadsafe(future.set_exception, ex)


def new_event_loop():
    """Return a new asyncuv event loop."""
    return Loop()


class EventLoopPolicy(_events.BaseDefaultEventLoopPolicy):
    """An asyncio event loop policy whose loops are asyncuv loops.

        asyncio.set_event_loop_policy(asyncuv.EventLoopPolicy())
    """

    def _loop_factory(self):
        return new_event_loop()


def install():
    """Make asyncuv the loop of asyncio.new_event_loop() and friends."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Run a coroutine on a new asyncuv loop, as asyncio.run() does.

    The loop is closed afterwards, after async generators and the default
    executor have been shut down.
    """
    if _events._get_running_loop() is not None:
        raise RuntimeError(
            "asyncuv.run() cannot be called from a running event loop")
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)

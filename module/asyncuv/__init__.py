"""asyncuv: a fast asyncio event loop on libasyncuv (C, on libuv).

    import asyncuv
    asyncuv.run(main())          # like asyncio.run(), on an asyncuv loop
    asyncio.run(main(), loop_factory=asyncuv.new_event_loop)   # the same

The loop is C (asyncuv._asyncuv): scheduling, running, closing, the
exception handler chain, debug mode.  This file makes it an
asyncio.AbstractEventLoop and adds what is naturally Python: the coroutine
methods that shut async generators and the default executor down, and the
executor glue of run_in_executor().
"""

import asyncio
import concurrent.futures
import sys
import threading
import warnings

from asyncio import events as _events

from ._asyncuv import Handle, LoopBase as _LoopBase, TimerHandle
from ._asyncuv import libasyncuv_version
from ._network import NetworkMixin as _NetworkMixin, Server
from ._unix import ChildWatcher as _ChildWatcher, UnixMixin as _UnixMixin
from ._unix import _iscoroutinefunction
from ._datagram import DatagramMixin as _DatagramMixin
from ._sendfile import SendfileMixin as _SendfileMixin

__all__ = ('Loop', 'EventLoopPolicy', 'new_event_loop', 'install', 'run',
           'Handle', 'TimerHandle', 'Server')
__version__ = '0.2.0'


class Loop(_UnixMixin, _LoopBase, _NetworkMixin, _DatagramMixin,
           _SendfileMixin, asyncio.AbstractEventLoop):
    """An asyncio event loop running on libasyncuv.

    Every method of asyncio.AbstractEventLoop is implemented, with the
    semantics of CPython's own loop.
    """

    async def shutdown_asyncgens(self):
        """Close every async generator that is still alive (aclose())."""
        self._asyncgens_shutdown_called = True
        agens = list(self._asyncgens)
        if not agens:
            return
        self._asyncgens.clear()
        outcomes = await asyncio.gather(*(agen.aclose() for agen in agens),
                                        return_exceptions=True)
        for agen, outcome in zip(agens, outcomes):
            if isinstance(outcome, Exception):
                self.call_exception_handler({
                    'message': 'an error occurred during closing of '
                               f'asynchronous generator {agen!r}',
                    'exception': outcome,
                    'asyncgen': agen,
                })

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in an executor; return an asyncio future."""
        self._check_closed()
        if self.get_debug():
            _refuse_coroutine_callback(func, 'run_in_executor')
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError('Executor shutdown has been called')
            executor = self._default_executor
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix='asyncio')
                self._default_executor = executor
        return asyncio.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        """Use executor for run_in_executor(None, ...)."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError('executor must be ThreadPoolExecutor instance')
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Wait for the default executor's threads to finish.

        The executor is joined from a helper thread so that the loop keeps
        running meanwhile.  With a timeout (Python 3.12+, as asyncio.Runner
        passes), threads still running after it are left behind with a
        RuntimeWarning, as asyncio does.
        """
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        done = self.create_future()

        def join_executor():
            try:
                executor.shutdown(wait=True)
            except Exception as exc:
                if not self.is_closed():
                    self.call_soon_threadsafe(_set_exception_unless_cancelled,
                                              done, exc)
            else:
                if not self.is_closed():
                    self.call_soon_threadsafe(_set_result_unless_cancelled,
                                              done, None)

        joiner = threading.Thread(target=join_executor)
        joiner.start()
        try:
            async with asyncio.timeout(timeout):
                await done
        except TimeoutError:
            warnings.warn('The executor did not finishing joining '
                          f'its threads within {timeout} seconds.',
                          RuntimeWarning, stacklevel=2)
            executor.shutdown(wait=False)
        else:
            joiner.join()

    if sys.version_info < (3, 12):
        _shutdown_default_executor = shutdown_default_executor

        async def shutdown_default_executor(self):
            """Wait for the default executor's threads to finish.

            The executor is joined from a helper thread so that the loop
            keeps running meanwhile.
            """
            await self._shutdown_default_executor()

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError('Event loop is closed')


def _set_result_unless_cancelled(future, result):
    if not future.cancelled():
        future.set_result(result)


def _set_exception_unless_cancelled(future, exc):
    if not future.cancelled():
        future.set_exception(exc)


def _refuse_coroutine_callback(func, method):
    if asyncio.iscoroutine(func) or _iscoroutinefunction(func):
        raise TypeError(f'coroutines cannot be used with {method}()')
    if not callable(func):
        raise TypeError(f'a callable object was expected by {method}(), '
                        f'got {func!r}')


def new_event_loop():
    """Return a new asyncuv event loop."""
    return Loop()


# Python 3.14 deprecates asyncio's event loop policies (to be removed in
# 3.16): the base class lost its public name, and the public policy
# functions and classes warn.  asyncuv's policy API keeps working while
# asyncio has policies, and warns where asyncio's does, in the same way.
_POLICIES_DEPRECATED = sys.version_info >= (3, 14)
if _POLICIES_DEPRECATED:
    _BasePolicy = _events._BaseDefaultEventLoopPolicy
    # The setter that does not warn: install() warns once, for its caller.
    _set_event_loop_policy = _events._set_event_loop_policy
else:
    _BasePolicy = _events.BaseDefaultEventLoopPolicy
    _set_event_loop_policy = asyncio.set_event_loop_policy


def _warn_policy_api(name):
    """Warn as asyncio's policy API does on this Python: DeprecationWarning,
    at the line that used the name (the caller of our caller)."""
    warnings.warn(f'{name!r} is deprecated, as asyncio event loop policies '
                  'are (to be removed in Python 3.16); use asyncuv.run(main()) '
                  'or asyncio.run(main(), loop_factory=asyncuv.new_event_loop)',
                  DeprecationWarning, stacklevel=3)


class _EventLoopPolicy(_BasePolicy):
    """An asyncio event loop policy whose loops are asyncuv loops.

        asyncio.set_event_loop_policy(asyncuv.EventLoopPolicy())

    Deprecated from Python 3.14 on, with asyncio's policies.
    """

    _watcher = None

    def _loop_factory(self):
        return new_event_loop()

    def get_child_watcher(self):
        """asyncuv loops watch their own children; this watcher serves code
        that asks for one (it needs no attaching)."""
        if self._watcher is None:
            self._watcher = _ChildWatcher()
        return self._watcher

    def set_child_watcher(self, watcher):
        """Accept a watcher, as asyncio's policy does; asyncuv loops keep
        watching the children they start themselves."""
        if watcher is not None and not hasattr(watcher, 'add_child_handler'):
            raise TypeError(f'a child watcher was expected, got {watcher!r}')
        self._watcher = watcher


_EventLoopPolicy.__name__ = _EventLoopPolicy.__qualname__ = 'EventLoopPolicy'

if _POLICIES_DEPRECATED:
    __all__ = tuple(name for name in __all__ if name != 'EventLoopPolicy')

    def __getattr__(name):
        # As asyncio.DefaultEventLoopPolicy: the class warns when looked up.
        if name == 'EventLoopPolicy':
            _warn_policy_api('asyncuv.EventLoopPolicy')
            return _EventLoopPolicy
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
else:
    EventLoopPolicy = _EventLoopPolicy


def install():
    """Make asyncuv the loop of asyncio.new_event_loop() and friends, by
    installing an asyncuv policy.

    Deprecated from Python 3.14 on, as asyncio.set_event_loop_policy() is:
    use asyncuv.run(main()) or asyncio.run(main(),
    loop_factory=asyncuv.new_event_loop).
    """
    if _POLICIES_DEPRECATED:
        _warn_policy_api('asyncuv.install')
    _set_event_loop_policy(_EventLoopPolicy())


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

"""Python signal handlers run promptly while the loop waits for events.

CPython's loop polls with EINTR handling that runs signal handlers (PEP 475);
a libuv-based loop must arrange the same, or Ctrl-C waits for the next
event.  Signals are sent from another thread once the loop runs, so they
arrive while it is blocked or about to block; both must work.
"""

import signal
import threading

import pytest


def _signal_main_thread_from_another(loop, signum):
    # The sender waits for an Event that a loop callback sets; it can only
    # run once the loop's thread lets go of the GIL, which it does when it
    # blocks waiting for events: the signal then arrives during that wait.
    ready = threading.Event()

    def send():
        ready.wait()
        signal.pthread_kill(threading.main_thread().ident, signum)

    thread = threading.Thread(target=send)
    thread.start()
    loop.call_soon(ready.set)
    return thread


def test_python_signal_handler_runs_while_loop_waits(loop):
    seen = []

    def handler(signum, frame):
        # Must run inside run_forever, not after a fallback timer ended it.
        seen.append(loop.is_running())
        # The stock loop resumes its poll after a handler: wake it.
        loop.call_soon_threadsafe(loop.stop)

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        thread = _signal_main_thread_from_another(loop, signal.SIGUSR1)
        safety = loop.call_later(30, loop.stop)
        loop.run_forever()
        safety.cancel()
        thread.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert seen == [True]


def test_keyboard_interrupt_ends_run_forever_and_loop_stays_usable(loop, loop_kind):
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        thread = _signal_main_thread_from_another(loop, signal.SIGINT)
        safety = loop.call_later(30, loop.stop)
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        thread.join()
        assert not loop.is_running()
        if loop_kind == "asyncuv":
            # Promptly, not when the safety timer woke the loop.  (The stock
            # loop can miss a signal that lands between its GIL release and
            # epoll_wait(), and then waits for the next event: asyncuv's
            # wake-up fd has no such window.)
            assert safety.when() > loop.time()
        safety.cancel()
    finally:
        signal.signal(signal.SIGINT, old)
    assert loop.run_until_complete(_answer()) == 42


async def _answer():
    return 42


def test_wakeup_fd_restored_after_run(loop):
    r, w = __import__("socket").socketpair()
    w.setblocking(False)
    old = signal.set_wakeup_fd(w.fileno())
    try:
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert signal.set_wakeup_fd(w.fileno()) == w.fileno()
    finally:
        signal.set_wakeup_fd(old)
        r.close()
        w.close()

"""Crashes, hangs and memory safety (issue 17): calls that crashed or hung
the interpreter, on asyncuv and on the stock asyncio loop.

A call that could crash runs in a child process (support.run_in_child), so
that a segfault fails its test instead of ending the run."""

import asyncio
import errno
import gc
import os
import socket
import sys
import threading

import pytest

from childproc import run_in_child
from support import load_asyncuv


# --- set_protocol() with a protocol that lacks its methods -------------------

# The transport kinds whose set_protocol() the test tries, and what the
# child does with each: make the transport with Proto, call
# set_protocol(bad), let the peer send, report what happened.
_SET_PROTOCOL_CHILD = """
import os, socket, tempfile

class Proto(asyncio.Protocol):
    def __init__(self):
        self.data = b""
    def connection_made(self, tr):
        self.tr = tr
    def data_received(self, data):
        self.data += data
    def datagram_received(self, data, addr):
        self.data += data
    def error_received(self, exc):
        pass
    def connection_lost(self, exc):
        pass
    def pipe_data_received(self, fd, data):
        self.data += data
    def pipe_connection_lost(self, fd, exc):
        pass
    def process_exited(self):
        pass

BAD = {"None": None, "object": object()}[sys.argv[2]]

async def main(what):
    loop = asyncio.get_running_loop()
    messages = []
    loop.set_exception_handler(lambda l, ctx: messages.append(ctx["message"]))
    proto = Proto()
    peer = tr = None
    if what == "tcp":
        listener = socket.create_server(("127.0.0.1", 0))
        tr, _ = await loop.create_connection(lambda: proto, *listener.getsockname())
        peer, _ = listener.accept()
        listener.close()
        send = lambda: peer.send(b"ping")
    elif what == "unix":
        a, peer = socket.socketpair()
        tr, _ = await loop.connect_accepted_socket(lambda: proto, a)
        send = lambda: peer.send(b"ping")
    elif what == "datagram":
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        tr, _ = await loop.create_datagram_endpoint(
            lambda: proto, remote_addr=peer.getsockname())
        send = lambda: peer.sendto(b"ping", tr.get_extra_info("sockname"))
    elif what == "read_pipe":
        rfd, wfd = os.pipe()
        tr, _ = await loop.connect_read_pipe(lambda: proto, open(rfd, "rb", 0))
        send = lambda: os.write(wfd, b"ping")
    elif what == "write_pipe":
        rfd, wfd = os.pipe()
        tr, _ = await loop.connect_write_pipe(lambda: proto, open(wfd, "wb", 0))
        send = lambda: tr.write(b"ping")
    elif what == "subprocess":
        tr, _ = await loop.subprocess_exec(
            lambda: proto, sys.executable, "-c", "print('ping')",
            stdin=None, stderr=None)
        send = lambda: None
    try:
        tr.set_protocol(BAD)
        raised = None
    except Exception as exc:
        raised = type(exc).__name__
    send()
    for _ in range(20):
        await asyncio.sleep(0.01)
        if proto.data or messages:
            break
    result = {"raised": raised, "old_got_data": proto.data == b"ping",
              "kept_old": tr.get_protocol() is proto, "messages": messages}
    tr.close()
    if peer is not None:
        peer.close()
    await asyncio.sleep(0.05)
    report(result)

loop = new_loop(LOOP_KIND)
loop.run_until_complete(main(sys.argv[1]))
loop.close()
"""


@pytest.mark.parametrize("bad", ["None", "object"])
@pytest.mark.parametrize("what", ["tcp", "unix", "datagram"])
def test_set_protocol_without_methods_then_data(loop_kind, what, bad):
    # asyncuv looks a protocol's methods up when it is set (not per call):
    # a protocol without them is refused with AttributeError, the old one
    # stays (asyncuv segfaulted at the next read: the old methods were
    # dropped first).  Deliberate difference: asyncio takes any object and
    # fails at the next read, through the exception handler.
    (result,) = run_in_child(loop_kind, _SET_PROTOCOL_CHILD.replace(
        "sys.argv[1]", repr(what)).replace("sys.argv[2]", repr(bad)))
    if loop_kind == "asyncuv":
        assert result["raised"] == "AttributeError"
        assert result["kept_old"] and result["old_got_data"]
        assert result["messages"] == []
    else:
        assert result["raised"] is None
        assert not result["kept_old"] and not result["old_got_data"]
        assert result["messages"]


@pytest.mark.parametrize("what", ["read_pipe", "write_pipe", "subprocess"])
def test_set_protocol_none_on_pipes(loop_kind, what):
    # Pipe and subprocess transports take any protocol, as asyncio's.
    (result,) = run_in_child(loop_kind, _SET_PROTOCOL_CHILD.replace(
        "sys.argv[1]", repr(what)).replace("sys.argv[2]", repr("None")))
    assert result["raised"] is None
    assert not result["kept_old"]


# --- Types that only the loop makes --------------------------------------------

def _extension_types(asyncuv):
    """Every type the C extension made: asyncuv's types whose attributes
    hold no Python function."""
    import types
    python_made = (types.FunctionType, classmethod, staticmethod, property)
    found = {}
    for obj in gc.get_objects():
        if (isinstance(obj, type) and (obj.__module__ or "").startswith("asyncuv")
                and not any(isinstance(v, python_made) for v in vars(obj).values())):
            found[obj.__name__] = obj
    return found


# Made by the loop only; LoopBase is the base of asyncuv.Loop and complete
# once made (its tp_new makes the engine).
_LOOP_MADE = {"Handle", "TimerHandle", "SocketTransport", "DatagramTransport",
              "_FdWatcher", "_Listener", "_SockOp", "_SockSendfile", "_ChildWatch",
              "SSLProtocol", "SSLTransport", "_BufferView"}
if hasattr(asyncio.events, "_ThreadSafeHandle"):   # 3.14's, for call_soon_threadsafe()
    _LOOP_MADE |= {"_ThreadSafeHandle"}


def test_extension_types_found(asyncuv):
    found = _extension_types(asyncuv)
    assert set(found) == _LOOP_MADE | {"LoopBase"}, sorted(found)


_INSTANTIATE_CHILD = """
import asyncio, gc, types
import asyncuv
python_made = (types.FunctionType, classmethod, staticmethod, property)
for tp in [o for o in gc.get_objects() if isinstance(o, type)
           and (o.__module__ or "").startswith("asyncuv")
           and not any(isinstance(v, python_made) for v in vars(o).values())]:
    if tp.__name__ == "LoopBase":
        continue
    ways = {
        "T()": lambda: tp(),
        "T.__new__(T)": lambda: tp.__new__(tp),
        "object.__new__(T)": lambda: object.__new__(tp),
    }
    for base in tp.__mro__[1:-1]:
        ways[base.__name__ + ".__new__(T)"] = lambda base=base: base.__new__(tp)
    for how, make in ways.items():
        try:
            obj = make()
        except TypeError:
            continue
        # Made after all: what would a user's call on it do?
        report([tp.__name__, how])
        for name in dir(obj):
            try:
                value = getattr(obj, name)
                if callable(value) and not isinstance(value, type):
                    value()
            except Exception:
                pass
        repr(obj)
report("done")
"""


def test_extension_types_refuse_instantiation(asyncuv):
    # DatagramTransport() used to inherit object.__new__ through its
    # asyncio base: an empty object whose close() crashed the interpreter.
    results = run_in_child("asyncuv", _INSTANTIATE_CHILD)
    assert results == ["done"], results


def test_loop_base_made_directly_is_complete(asyncuv):
    # The one type that may be made directly: LoopBase() is a loop engine
    # with everything asyncuv.Loop adds in Python missing; its own methods
    # work or raise.
    (result,) = run_in_child("asyncuv", """
        from asyncuv._asyncuv import LoopBase
        for make in (LoopBase, lambda: LoopBase.__new__(LoopBase)):
            lb = make()
            repr(lb)
            lb.call_soon(print).cancel()
            lb.call_later(10, print).cancel()
            assert not lb.is_closed()
            lb.close()
            assert lb.is_closed()
            lb.close()
        report("ok")
    """)
    assert result == "ok"


# --- File descriptors that do not exist or do not fit a C int -------------------

_EBADF = ["OSError", "[Errno 9] " + os.strerror(errno.EBADF)]
_OVERFLOW = ["OverflowError", "Python int too large to convert to C int"]

# (label, expression in the child, add_*() outcome, remove_*() outcome) on
# an open loop, as asyncio's selector loop gives them (the reference).
_FALSE = ["ok", False]


def _both(error, message):
    return [error, message], [error, message]


_FD_CASES = [
    ("2**31-1", "2**31 - 1", _EBADF, _FALSE),
    ("10**9", "10**9", _EBADF, _FALSE),
    ("65535", "65535", _EBADF, _FALSE),
    ("2**31", "2**31", _OVERFLOW, _FALSE),
    ("2**63", "2**63", _OVERFLOW, _FALSE),
    ("2**70", "2**70", _OVERFLOW, _FALSE),
    ("-1", "-1", *_both("ValueError", "Invalid file descriptor: -1")),
    ("-2**70", "-2**70", *_both("ValueError", f"Invalid file descriptor: {-2**70}")),
    ("1.5", "1.5", *_both("ValueError", "Invalid file object: 1.5")),
    ("'x'", "'x'", *_both("ValueError", "Invalid file object: 'x'")),
    ("fileno 2**31-1", "FileObj(2**31 - 1)", _EBADF, _FALSE),
    ("fileno 2**31", "FileObj(2**31)", _OVERFLOW, _FALSE),
    ("fileno -3", "FileObj(-3)", *_both("ValueError", "Invalid file descriptor: -3")),
    ("fileno '999'", "FileObj('999')", _EBADF, _FALSE),  # int('999')
    ("fileno None", "FileObj(None)", *_both("ValueError", None)),
    ("closed socket", "closed_sock", *_both("ValueError", "Invalid file descriptor: -1")),
]

_FD_CHILD = """
import os, resource, socket
# A runaway index fails with MemoryError rather than take the machine.
# Not under AddressSanitizer (--enable-sanitizers): its shadow memory is a
# reservation of terabytes of address space.
if "libasan" not in os.environ.get("LD_PRELOAD", ""):
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))

class FileObj:
    def __init__(self, value):
        self.value = value
    def fileno(self):
        return self.value

closed_sock = socket.socket()
closed_sock.close()

def outcome(call):
    try:
        return ["ok", call()]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]

def table(loop):
    rows = []
    for label, expr in CASES:
        value = eval(expr)
        for method in ("add_reader", "add_writer", "remove_reader", "remove_writer"):
            args = (value, print) if method.startswith("add") else (value,)
            rows.append([label, method, outcome(lambda: getattr(loop, method)(*args))])
    return rows

loop = new_loop(LOOP_KIND)
report(table(loop))
loop.close()
report(table(loop))
"""


def test_add_reader_bad_fds(loop_kind):
    # add_reader(2**31 - 1) hung (the watcher index grew towards the fd
    # before anything checked that the fd exists); an fd near 10**9 cost a
    # multi-GiB allocation.  asyncio: OSError(EBADF) at once; numbers that
    # do not fit a C int raise OverflowError; removing either is False.
    # On a closed loop, what is a file object but no descriptor is checked
    # after the loop: RuntimeError, or False for remove_*().
    cases = "CASES = " + repr([(label, expr) for label, expr, _, _ in _FD_CASES])
    open_rows, closed_rows = run_in_child(loop_kind, cases + _FD_CHILD)
    expected = {label: (add, remove) for label, _, add, remove in _FD_CASES}
    for label, method, got in open_rows:
        want = expected[label][0 if method.startswith("add") else 1]
        if want[1] is None:  # the message holds an address
            got = [got[0], None]
        assert got == want, (label, method)
    for label, method, got in closed_rows:
        want = expected[label][0 if method.startswith("add") else 1]
        if want[1] is None:
            got = [got[0], None]
        elif not str(want[1]).startswith("Invalid file object"):
            want = (["RuntimeError", "Event loop is closed"]
                    if method.startswith("add") else _FALSE)
        assert got == want, (label, method)


# --- sock_*() on what is not an open socket ----------------------------------------

class _FileObj:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value


class _DuckSocket:
    """Not a socket, but with the methods asyncio calls."""

    def __init__(self, sock):
        self.sock = sock

    def recv(self, n):
        return self.sock.recv(n)

    def recv_into(self, buf):
        return self.sock.recv_into(buf)

    def send(self, data):
        return self.sock.send(data)

    def fileno(self):
        return self.sock.fileno()

    def gettimeout(self):
        return 0


def _outcome(loop, coro):
    try:
        return ["ok", loop.run_until_complete(asyncio.wait_for(coro, 10))]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]


def test_sock_methods_on_bad_objects(loop):
    # asyncio calls the object's own recv()/recv_into()/send(): an object
    # that is not a socket raises AttributeError (asyncuv's C methods took
    # its fileno() and called recv(2) on it), a closed socket OSError(EBADF)
    # (asyncuv: ValueError), an immutable buffer TypeError (BufferError).
    a, b = socket.socketpair()
    closed = socket.socket()
    closed.close()
    a.setblocking(False)
    try:
        cases = [
            (loop.sock_recv(_FileObj(2**31 - 1), 10),
             ["AttributeError", "'_FileObj' object has no attribute 'recv'"]),
            (loop.sock_recv(_FileObj(10**9), 10),
             ["AttributeError", "'_FileObj' object has no attribute 'recv'"]),
            (loop.sock_recv_into(_FileObj(5), bytearray(2)),
             ["AttributeError", "'_FileObj' object has no attribute 'recv_into'"]),
            (loop.sock_sendall(_FileObj(2**31 - 1), b"x"),
             ["AttributeError", "'_FileObj' object has no attribute 'send'"]),
            (loop.sock_recv(None, 1),
             ["AttributeError", "'NoneType' object has no attribute 'recv'"]),
            (loop.sock_recv(closed, 10), _EBADF),
            (loop.sock_recv_into(closed, bytearray(2)), _EBADF),
            (loop.sock_sendall(closed, b"x"), _EBADF),
            (loop.sock_recv_into(a, b"xx"),
             ["TypeError", "recv_into() argument 1 must be read-write bytes-like "
                           "object, not bytes"]),
            (loop.sock_recv_into(a, memoryview(b"xx")),
             ["TypeError", "recv_into() argument 1 must be read-write bytes-like "
                           "object, not memoryview"]),
            (loop.sock_recv(a, "x"),
             ["TypeError", "'str' object cannot be interpreted as an integer"]),
            (loop.sock_recv(a, 2**70),
             ["OverflowError", "Python int too large to convert to C ssize_t"]),
            (loop.sock_recv(a, -1), ["ValueError", "negative buffersize in recv"]),
            (loop.sock_sendall(a, "s"),
             ["TypeError", "a bytes-like object is required, not 'str'"]),
            (loop.sock_sendall(_DuckSocket(a), b"duck"), ["ok", None]),
        ]
        for coro, want in cases:
            assert _outcome(loop, coro) == want
        assert b.recv(10) == b"duck"
        # A duck-typed socket also waits for data, as asyncio's.
        duck = _DuckSocket(a)
        loop.call_later(0.01, b.send, b"later")
        assert _outcome(loop, loop.sock_recv(duck, 2)) == ["ok", b"la"]
        buf = bytearray(3)
        assert _outcome(loop, loop.sock_recv_into(duck, buf)) == ["ok", 3]
        assert buf == b"ter"
    finally:
        a.close()
        b.close()


# --- A callback that swaps the protocol while it runs ---------------------------

# The callback is a method of a C object that only the transport holds, and
# it calls set_protocol() while it runs: the transport drops its reference,
# and unless the call holds one, the object is freed under its own method.
# PYTHONMALLOC=malloc_debug fills freed memory, so such a use crashes.
_SWAP_CHILD = """
import socket

class New(asyncio.BufferedProtocol):
    def __init__(self):
        self.events = []
        self.buf = bytearray(100)
    def data_received(self, data):
        self.events.append(["data", data.decode()])
    def get_buffer(self, hint):
        return self.buf
    def buffer_updated(self, n):
        self.events.append(["data", self.buf[:n].decode()])
    def datagram_received(self, data, addr):
        self.events.append(["data", data.decode()])
    def error_received(self, exc):
        self.events.append(["error", type(exc).__name__])
    def connection_lost(self, exc):
        pass

class NewPlain(asyncio.DatagramProtocol, asyncio.Protocol):
    def __init__(self):
        self.events = []
    data_received = New.data_received
    datagram_received = New.datagram_received
    error_received = New.error_received

new = New() if WHAT in ("get_buffer", "buffer_updated") else NewPlain()
holder = []

def swap():
    if holder:
        holder.pop().set_protocol(new)

class Collide:
    # Hashes like `like`: a dict lookup of `like` compares with it.
    def __init__(self, like=b"ping"):
        self.like = like
    def __hash__(self):
        return hash(self.like)
    def __eq__(self, other):
        swap()
        return False

class Swap:
    def __eq__(self, other):
        swap()
        return False

def c_method(kind):
    # A bound method of a fresh C object, calling swap() through Python.
    if kind == "one":     # list.__contains__(x) compares x with each item
        return [Swap(), Swap(), Swap()].__contains__
    if kind == "two":     # dict.setdefault(b"ping", x) compares its keys
        return {Collide(): 0, 1: 1}.setdefault
    if kind == "buffer":  # d[-1] compares -1 with a key first
        class Dict(dict):  # freed to the allocator, not to a free list
            pass
        return Dict({Collide(-1): None, -1: bytearray(100)}).__getitem__

class Old({"get_buffer": asyncio.BufferedProtocol, "buffer_updated": asyncio.BufferedProtocol,
           "datagram_received": asyncio.DatagramProtocol,
           "error_received": asyncio.DatagramProtocol}.get(WHAT, asyncio.Protocol)):
    def __init__(self):
        self.buf = bytearray(100)
        if WHAT == "data_received":
            self.data_received = c_method("one")
        elif WHAT == "get_buffer":
            self.get_buffer = c_method("buffer")
        elif WHAT == "buffer_updated":
            self.buffer_updated = c_method("one")
        elif WHAT == "datagram_received":
            self.datagram_received = c_method("two")
        elif WHAT == "error_received":
            self.error_received = c_method("one")
    def get_buffer(self, hint):
        return self.buf
    def connection_made(self, tr):
        holder.append(tr)
    def connection_lost(self, exc):
        pass

async def main():
    loop = asyncio.get_running_loop()
    errors = []
    loop.set_exception_handler(lambda l, ctx: errors.append(ctx["message"]))
    if WHAT in ("datagram_received", "error_received"):
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        tr, _ = await loop.create_datagram_endpoint(
            Old, local_addr=("127.0.0.1", 0), remote_addr=peer.getsockname())
        del _
        addr = tr.get_extra_info("sockname")
        if WHAT == "datagram_received":
            send = lambda: peer.sendto(b"ping", addr)
        else:
            peer.close()  # the peer's port now refuses: error_received()
            send = lambda: tr.sendto(b"ping")
    else:
        a, peer = socket.socketpair()
        tr, _ = await loop.connect_accepted_socket(Old, a)
        del _
        send = lambda: peer.send(b"ping")
    send()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not holder:
            break
    send()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if new.events:
            break
    report({"swapped": not holder, "new": new.events, "errors": errors})
    tr.close()
    peer.close()
    await asyncio.sleep(0.01)

loop = new_loop(LOOP_KIND)
loop.run_until_complete(main())
loop.close()
"""


@pytest.mark.parametrize("what", ["data_received", "get_buffer", "buffer_updated",
                                  "datagram_received", "error_received"])
def test_callback_swapping_protocol_keeps_itself_alive(loop_kind, what):
    (result,) = run_in_child(loop_kind, f"WHAT = {what!r}\n" + _SWAP_CHILD,
                             env={"PYTHONMALLOC": "malloc_debug"})
    assert result["swapped"]
    assert result["errors"] == []
    if what == "error_received":
        assert result["new"][:1] == [["error", "ConnectionRefusedError"]]
    elif what == "get_buffer":
        # The data went into the old protocol's buffer: the new one only
        # hears how much (asyncio's order: buffer_updated() of whichever
        # protocol is set after the read), then gets the next read.
        assert result["new"][:1] == [["data", "\x00" * 4]]
    else:
        assert result["new"][:1] == [["data", "ping"]]


def test_get_buffer_that_closes_the_transport_releases_the_buffer(loop):
    # get_buffer() closed the transport: asyncuv kept the buffer exported
    # (a bytearray could not be resized, BufferError) until the transport
    # was freed.
    class Proto(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(16)
            self.lost = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, hint):
            self.transport.close()
            return self.buf

        def buffer_updated(self, nbytes):
            pass

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    a, b = socket.socketpair()
    try:
        transport, proto = loop.run_until_complete(
            loop.connect_accepted_socket(Proto, a))
        b.send(b"data")
        assert loop.run_until_complete(asyncio.wait_for(proto.lost, 10)) is None
        proto.buf.extend(b"more")  # not exported any more
        assert len(proto.buf) == 20
        assert transport.is_closing()
    finally:
        b.close()


_SWAP_LOOP_CHILD = """
class Collide:
    def __init__(self, like, swap):
        self.like, self.swap = like, swap
    def __hash__(self):
        return hash(self.like)
    def __eq__(self, other):
        self.swap()
        return False

class Dict(dict):  # freed to the allocator, not to a free list
    pass

loop = new_loop(LOOP_KIND)
# Dict.setdefault(loop, x) compares loop with the colliding key, which
# replaces the callable (a method of the only reference to the dict).
loop.set_exception_handler(Dict({Collide(loop, lambda: loop.set_exception_handler(None)): 0})
                           .setdefault)
loop.call_exception_handler({"message": "first"})
assert loop.get_exception_handler() is None
loop.set_task_factory(Dict({Collide(loop, lambda: loop.set_task_factory(None)): 0}).setdefault)
class NotACoroutine:  # passed through by the factory
    def set_name(self, name):  # which 3.13's create_task() calls
        pass
c = NotACoroutine()
assert loop.create_task(c) is c  # what setdefault() returned
assert loop.get_task_factory() is None
loop.close()
report("ok")
"""


def test_handler_and_factory_replacing_themselves(loop_kind):
    # The exception handler and the task factory may replace themselves
    # while they run: the loop holds them for the call.
    assert run_in_child(loop_kind, _SWAP_LOOP_CHILD,
                        env={"PYTHONMALLOC": "malloc_debug"}) == ["ok"]


# --- loop.close() with the engine still busy -------------------------------------

def test_close_with_busy_engine_closes_the_rest(asyncuv):
    # A child watch made through the private _watch_child_exit() (what a C
    # extension's own engine handles do too) keeps the engine busy: close()
    # raised at once, leaving the signal wake-up fds open and the default
    # executor running, and a second close() did nothing.
    import concurrent.futures
    import signal
    import subprocess

    loop = asyncuv.new_event_loop()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        watch = loop._watch_child_exit(child.pid, lambda returncode: None)
        executor = concurrent.futures.ThreadPoolExecutor()
        loop.set_default_executor(executor)
        assert loop.run_until_complete(loop.run_in_executor(None, int, "7")) == 7
        wakeup_fd = loop._signal_wakeup_fd()
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        with pytest.raises(RuntimeError, match="cannot close the engine loop"):
            loop.close()
        assert loop.is_closed()
        assert executor._shutdown
        with pytest.raises(OSError):
            os.fstat(wakeup_fd)
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        # Still busy: every close() says so; once free, close() frees it.
        with pytest.raises(RuntimeError, match="cannot close the engine loop"):
            loop.close()
        assert watch.cancel()
        loop.close()
        loop.close()
    finally:
        child.kill()
        child.wait()


# --- Every method of every object, also after the collector cleared it ----------

_POKE_CHILD = """
import ctypes, gc, socket, subprocess, tempfile
import asyncuv
import tlsdata

def tp_clear(obj):
    # What the garbage collector does to an object in a cycle it frees;
    # other objects of the cycle may still call it (a finalizer, a
    # dealloc, a loop closing its watchers).
    get_slot = ctypes.pythonapi.PyType_GetSlot
    get_slot.restype = ctypes.c_void_p
    get_slot.argtypes = [ctypes.py_object, ctypes.c_int]
    Py_tp_clear = 51
    ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object)(get_slot(type(obj), Py_tp_clear))(obj)

def poke(obj):
    # Every attribute, every method with a few argument lists, repr, hash,
    # comparison: each works or raises, none crashes.
    repr(obj)
    for name in sorted(dir(obj)):
        if name in ("run_forever", "run_until_complete", "__init_subclass__",
                    "__subclasshook__", "__class__"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        if callable(value) and not isinstance(value, type):
            for args in ((), (None,), (1,), (b"x",), (None, None)):
                try:
                    value(*args)
                except Exception:
                    pass
    for op in (hash, lambda o: o == o, lambda o: o < o):
        try:
            op(obj)
        except Exception:
            pass

loop = asyncuv.new_event_loop()

async def make():
    a, b = socket.socketpair()
    tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
    dg, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                local_addr=("127.0.0.1", 0))
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0,
                                      ssl=tlsdata.server_context())
    tls, _ = await loop.create_connection(
        asyncio.Protocol, "127.0.0.1", server.sockets[0].getsockname()[1],
        ssl=tlsdata.client_context(), server_hostname="localhost")
    return tr, b, dg, server, tls

tr, peer, dg, server, tls = loop.run_until_complete(make())
c, d = socket.socketpair()
c.setblocking(False)
pending_recv = loop._sock_recv(c, 10)
sf_file = tempfile.TemporaryFile()
sf_file.write(b"x" * (1 << 22))
sf_file.flush()
child = subprocess.Popen([sys.executable, "-c", "pass"])
objs = {
    "Handle": lambda: loop.call_soon(print),
    "TimerHandle": lambda: loop.call_later(10, print),
    "SocketTransport open": lambda: tr,
    "SocketTransport closing": lambda: (tr.close(), tr)[1],
    "SocketTransport closed": lambda: (tr.close(), loop.run_until_complete(
        asyncio.sleep(0.01)), tr)[2],
    "DatagramTransport open": lambda: dg,
    "DatagramTransport closing": lambda: (dg.close(), dg)[1],
    "DatagramTransport closed": lambda: (dg.close(), loop.run_until_complete(
        asyncio.sleep(0.01)), dg)[2],
    "_FdWatcher": lambda: [o for o in gc.get_referents(loop)
                           if type(o).__name__ == "_FdWatcher"][0],
    "_Listener": lambda: [o for o in gc.get_objects()
                          if type(o).__name__ == "_Listener"][0],
    "_SockOp": lambda: [o for o in gc.get_objects()
                        if type(o).__name__ == "_SockOp"][0],
    "_SockSendfile": lambda: loop._sock_sendfile(c.fileno(), sf_file.fileno(), 0, 0),
    "_ChildWatch": lambda: loop._watch_child_exit(child.pid, print),
    "LoopBase": lambda: asyncuv._asyncuv.LoopBase(),
    "SSLTransport open": lambda: tls,
    "SSLTransport closing": lambda: (tls.close(), tls)[1],
    "SSLTransport closed": lambda: (tls.close(), loop.run_until_complete(
        asyncio.sleep(0.05)), tls)[2],
    "SSLProtocol": lambda: tls._ssl_protocol,
}
obj = objs[STATE]()
assert type(obj).__name__ == STATE.split()[0], type(obj)
if CLEAR:
    tp_clear(obj)
poke(obj)
report("ok")
child.wait()
os._exit(0)  # the objects are in no state to be closed cleanly
"""

_POKE_STATES = ["Handle", "TimerHandle", "SocketTransport open", "SocketTransport closing",
                "SocketTransport closed", "DatagramTransport open",
                "DatagramTransport closing", "DatagramTransport closed", "_FdWatcher",
                "_Listener", "_SockOp", "_SockSendfile", "_ChildWatch", "LoopBase",
                "SSLTransport open",
                "SSLTransport closing", "SSLTransport closed", "SSLProtocol"]


@pytest.mark.parametrize("state,clear", [
    pytest.param(state, clear, id=f"{state}-{'cleared' if clear else 'as is'}")
    for state in _POKE_STATES for clear in (False, True)
    # An open transport is held by the engine: the collector never clears it.
    if not (clear and state.endswith(" open"))])
def test_extension_objects_survive_any_call(asyncuv, state, clear):
    # Handles after the collector cleared them (NULL loop) crashed in
    # repr(), cancel(), _loop, get_context(); so did transports in
    # _force_close() and abort(), and the loop in its async generator
    # hooks, remove_reader() and _unlisten().
    assert run_in_child("asyncuv", f"import os\nSTATE = {state!r}\nCLEAR = {clear}\n"
                        + _POKE_CHILD) == ["ok"]


# --- Water marks -------------------------------------------------------------------

_LIMITS = [
    ((), {}), ((1000,), {}), ((), {"low": 100}), ((2**62,), {}), ((), {"low": 2**62}),
    ((), {"low": 2**61 + 1}), ((2**64,), {}), ((2**70, 2**69), {}), ((1.5e5,), {}),
    ((), {"low": 2.5}), ((float("inf"),), {}), ((float("nan"),), {}), ((10, 20), {}),
    ((-1,), {}), ((), {"low": -1}), (("x",), {}), ((), {"low": "x"}), ((None, None), {}),
    ((True,), {}), ((sys.maxsize, sys.maxsize), {}), ((2**63 - 1,), {"low": 0}),
]


def _limit_outcomes(transport):
    results = []
    for args, kwargs in _LIMITS:
        try:
            transport.set_write_buffer_limits(*args, **kwargs)
            results.append(repr(transport.get_write_buffer_limits()))
        except Exception as exc:
            results.append(f"{type(exc).__name__}: {exc}")
    return results


# What asyncio's _FlowControlMixin gives (Python arithmetic): the reference.
def _expected_limit_outcomes():
    class Reference(asyncio.transports._FlowControlMixin):
        def get_write_buffer_size(self):
            return 0
    ref = Reference(loop=object())
    return _limit_outcomes(ref)


@pytest.mark.parametrize("what", ["tcp", "datagram", "write_pipe"])
def test_write_buffer_limits_as_asyncio(loop, what):
    # 4 * low overflowed a signed multiplication for low near 2**62, and
    # numbers asyncio takes (floats, ints past 64 bits) were refused.
    async def make():
        if what == "tcp":
            a, b = socket.socketpair()
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            return transport, b
        if what == "datagram":
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            return transport, None
        rfd, wfd = os.pipe()
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol,
                                                     open(wfd, "wb", 0))
        return transport, open(rfd, "rb", 0)

    transport, other = loop.run_until_complete(make())
    try:
        assert _limit_outcomes(transport) == _expected_limit_outcomes()
    finally:
        transport.close()
        loop.run_until_complete(asyncio.sleep(0.01))
        if other is not None:
            other.close()


# --- The signal handler table ---------------------------------------------------------

_SIGNAL_TABLE_CHILD = """
import os, signal
loop = new_loop(LOOP_KIND)
ran = []
cancelled = asyncio.Handle(ran.append, ("cancelled",), loop)
cancelled.cancel()
values = {"str": "x", "None": None, "int": 12,
          "asyncio.Handle": asyncio.Handle(ran.append, ("asyncio.Handle",), loop),
          "cancelled asyncio.Handle": cancelled}
for label, value in values.items():
    errors = []
    loop.set_exception_handler(lambda l, ctx: errors.append(type(ctx.get("exception")).__name__))
    loop.add_signal_handler(signal.SIGUSR1, ran.append, "ours")
    loop._signal_handlers[signal.SIGUSR1] = value
    os.kill(os.getpid(), signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.05))
    report([label, errors, ran, signal.SIGUSR1 in loop._signal_handlers])
    del ran[:]
    loop._signal_handlers.pop(signal.SIGUSR1, None)
    loop.remove_signal_handler(signal.SIGUSR1)
loop.close()
"""


def test_signal_handler_table_values(loop_kind):
    # The table is a dict anybody may write to: asyncuv took its values for
    # its own handles unchecked (None crashed).  asyncio reads _cancelled
    # and calls _run() of whatever it finds.
    results = {label: rest for label, *rest in run_in_child(loop_kind, _SIGNAL_TABLE_CHILD)}
    assert results == {
        "str": [["AttributeError"], [], True],
        "None": [[], [], True],
        "int": [["AttributeError"], [], True],
        "asyncio.Handle": [[], ["asyncio.Handle"], True],
        "cancelled asyncio.Handle": [[], [], False],  # removed, as asyncio does
    }


# --- Another thread using a running loop's transports --------------------------------

_WRONG_THREAD = "Non-thread-safe operation invoked on an event loop other than the current one"


def _from_thread(call):
    result = []

    def run():
        try:
            result.append(["ok", call()])
        except Exception as exc:
            result.append([type(exc).__name__, str(exc)])

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def _recv_exactly(sock, n):
    sock.settimeout(10)
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def test_transports_from_another_thread(loop, loop_kind):
    # The loop's thread polls without the GIL, and libuv reads the lists of
    # its watchers meanwhile: another thread that changes a stream or
    # datagram handle then (write() that must queue, pause_reading(),
    # close(), a new transport) could corrupt them.  asyncuv raises
    # asyncio's debug-mode error instead, in every mode; asyncio lets the
    # calls race with its selector (a logic error it does not check).
    # Deliberate difference (README).
    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        dgram, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        target = dgram.get_extra_info("sockname")
        c, d = socket.socketpair()
        calls = {
            "write": lambda: transport.write(b"x"),
            "writelines": lambda: transport.writelines([b"x", b"y"]),
            "pause_reading": transport.pause_reading,
            "resume_reading": transport.resume_reading,
            "sendto": lambda: dgram.sendto(b"x", target),
        }
        if loop_kind == "asyncuv":
            # Racing asyncio's own selector with these proves nothing.
            calls.update({
                "write_eof": transport.write_eof,
                "close": transport.close,
                "abort": transport.abort,
                "datagram close": dgram.close,
                "datagram abort": dgram.abort,
                "server close": server.close,
                "new transport": lambda: loop._make_socket_transport(c, asyncio.Protocol()),
            })
        outcomes = {name: _from_thread(call) for name, call in calls.items()}
        # The transports still work from the loop's thread.
        transport.write(b"z")
        sent = b"z" if loop_kind == "asyncuv" else b"xxyz"
        assert await loop.run_in_executor(None, _recv_exactly, b, len(sent)) == sent
        assert transport.is_reading()
        transport.close()
        dgram.close()
        server.close()
        await asyncio.sleep(0.01)
        for s in (b, c, d):
            s.close()
        return outcomes

    outcomes = loop.run_until_complete(main())
    if loop_kind == "asyncuv":
        assert outcomes == {name: ["RuntimeError", _WRONG_THREAD] for name in outcomes}
        assert len(outcomes) == 12
    else:
        assert outcomes == {name: ["ok", None] for name in outcomes}


_THREAD_STRESS_CHILD = """
import socket, threading

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)

async def main():
    loop = asyncio.get_running_loop()
    transports, peers = [], []
    for _ in range(10):
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Echo, a)
        b.setblocking(False)
        transports.append(transport)
        peers.append(b)
    refused = []

    def hammer():
        # Changes of the engine's handles while the loop polls for the
        # echo traffic below.
        for _ in range(300):
            for transport in transports:
                for call in (transport.pause_reading, transport.resume_reading,
                             lambda: transport.write(b"x" * 100000)):
                    try:
                        call()
                    except RuntimeError:
                        refused.append(1)

    thread = threading.Thread(target=hammer)
    thread.start()
    echoed = 0
    while thread.is_alive() or echoed < 400:
        for b in peers:
            await loop.sock_sendall(b, b"ping")
            echoed += len(await loop.sock_recv(b, 4))
    thread.join()
    for transport in transports:
        transport.close()
    for b in peers:
        b.close()
    await asyncio.sleep(0.01)
    report([len(refused), echoed > 0])

loop = new_loop(LOOP_KIND)
loop.run_until_complete(main())
loop.close()
"""


def test_transports_hammered_from_another_thread(asyncuv):
    # Every change from the other thread is refused, and the loop keeps
    # serving (asyncuv used to let them race with libuv's poll).
    (result,) = run_in_child("asyncuv", _THREAD_STRESS_CHILD)
    assert result == [300 * 10 * 3, True]


# --- Write pipes: asyncio's write pipe transport API ---------------------------------

@pytest.mark.parametrize("what", ["pipe", "subprocess stdin", "/dev/null"])
def test_write_pipe_transport_api(loop, what):
    # asyncuv's write pipes (the C stream transport, and its Python
    # fallback for what epoll refuses) answered pause_reading() and
    # resume_reading() as if they could read, and offered start_tls().
    # asyncio's _UnixWritePipeTransport is a Transport whose reading
    # methods raise NotImplementedError.
    import ssl

    async def main():
        closers = []
        if what == "pipe":
            rfd, wfd = os.pipe()
            closers.append(lambda: os.close(rfd))
            transport, _ = await loop.connect_write_pipe(asyncio.Protocol,
                                                         open(wfd, "wb", 0))
        elif what == "/dev/null":
            transport, _ = await loop.connect_write_pipe(asyncio.Protocol,
                                                         open(os.devnull, "wb", 0))
        else:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import sys; sys.stdin.read()",
                stdin=asyncio.subprocess.PIPE)
            transport = proc._transport.get_pipe_transport(0)
            closers.append(proc.wait)
        try:
            for name in ("pause_reading", "resume_reading", "is_reading"):
                with pytest.raises(NotImplementedError):
                    getattr(transport, name)()
            if what != "/dev/null":  # asyncio's repr asks its selector
                assert repr(transport).endswith(f" fd={transport.get_extra_info('pipe').fileno()}"
                                                " idle bufsize=0>")
            assert transport.can_write_eof()
            with pytest.raises(TypeError, match="is not supported by start_tls"):
                await loop.start_tls(transport, asyncio.Protocol(),
                                     ssl.create_default_context())
        finally:
            transport.close()
            for closer in closers:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
            await asyncio.sleep(0.01)

    loop.run_until_complete(asyncio.wait_for(main(), 30))


# --- Unclosed objects left to the collector ----------------------------------------

_UNCLOSED_CHILD = """
import gc, os, socket, tempfile, threading, warnings

def warned(scenario):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scenario()
        gc.collect()
        gc.collect()
    kinds = []
    for w in caught:
        text = str(w.message)
        for prefix in ("unclosed event loop", "unclosed transport", "unclosed <socket"):
            if w.category is ResourceWarning and text.startswith(prefix):
                kinds.append(prefix)
    return sorted(set(kinds))

def server_loop_closed():
    loop = new_loop(LOOP_KIND)
    server = loop.run_until_complete(loop.create_server(asyncio.Protocol, "127.0.0.1", 0))
    del server
    loop.close()

def server_and_loop():
    loop = new_loop(LOOP_KIND)
    server = loop.run_until_complete(loop.create_server(asyncio.Protocol, "127.0.0.1", 0))
    del server, loop

def transports_and_loop():
    loop = new_loop(LOOP_KIND)
    a, b = socket.socketpair()
    tr, pr = loop.run_until_complete(loop.connect_accepted_socket(asyncio.Protocol, a))
    tr.write(b"x" * 10_000_000)  # queued
    dg, dp = loop.run_until_complete(loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)))
    del tr, pr, dg, dp, loop
    gc.collect()
    b.close()

def transport_loop_closed():
    loop = new_loop(LOOP_KIND)
    a, b = socket.socketpair()
    tr, pr = loop.run_until_complete(loop.connect_accepted_socket(asyncio.Protocol, a))
    del tr, pr
    loop.close()
    b.close()

def pipes_loop_closed():
    loop = new_loop(LOOP_KIND)
    r, w = os.pipe()
    tr, pr = loop.run_until_complete(loop.connect_write_pipe(asyncio.Protocol, open(w, "wb", 0)))
    tr2, pr2 = loop.run_until_complete(loop.connect_read_pipe(asyncio.Protocol, open(r, "rb", 0)))
    del tr, pr, tr2, pr2
    loop.close()

def subprocess_loop_closed():
    loop = new_loop(LOOP_KIND)
    class Proto(asyncio.SubprocessProtocol):
        def connection_made(self, transport):
            self.lost = loop.create_future()
        def connection_lost(self, exc):
            self.lost.set_result(None)
    async def main():
        # Until connection_lost() the child's exit and its pipes hold the
        # transport; after it, only the caller does.
        tr, pr = await loop.subprocess_exec(Proto, sys.executable, "-c", "pass")
        await pr.lost
    loop.run_until_complete(main())
    # asyncio's child watcher before 3.12 is a thread per child, whose frame
    # still holds the transport's _process_exited for a moment after it
    # handed it to the loop: the transport goes (and warns) when it ends.
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join()
    loop.close()

kept = []

def sock_sendfile_and_loop():
    # The engine's reference to a running transfer (which holds the loop)
    # was invisible to the collector: the loop was never freed.
    loop = new_loop(LOOP_KIND)
    a, b = socket.socketpair()
    a.setblocking(False)
    f = tempfile.TemporaryFile()
    f.write(b"x" * (8 << 20))
    f.flush()
    kept.extend((a, b, f))
    async def start():
        task = asyncio.ensure_future(loop.sock_sendfile(a, f))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # b does not read: the transfer waits
        return task
    task = loop.run_until_complete(start())
    task._log_destroy_pending = False
    del task, loop

def loop_alone():
    loop = new_loop(LOOP_KIND)
    del loop

new_loop(LOOP_KIND).close()  # libuv's process-wide pipe comes with the first
fds = len(os.listdir("/proc/self/fd"))
for scenario in (server_loop_closed, server_and_loop, transports_and_loop,
                 transport_loop_closed, pipes_loop_closed, subprocess_loop_closed,
                 sock_sendfile_and_loop, loop_alone):
    report([scenario.__name__, warned(scenario)])
for obj in kept:
    obj.close()
report(["fds left", len(os.listdir("/proc/self/fd")) - fds])
"""


def test_unclosed_objects_warn_and_are_freed(loop_kind):
    # A loop left unclosed with an open server or transport was never
    # freed (the engine's references to them were invisible to the
    # collector, and they hold the loop): no ResourceWarning, the
    # sockets leaked.  asyncio warns of the loop, each transport and the
    # listening sockets, and closes them.
    results = dict(run_in_child(loop_kind, _UNCLOSED_CHILD))
    # The order of finalizers decides whether a transport's socket warns
    # on its own before its transport does: not part of the contract.
    for name in ("transports_and_loop", "transport_loop_closed"):
        results[name] = [k for k in results[name] if k != "unclosed <socket"]
    assert results == {
        "server_loop_closed": ["unclosed <socket"],
        "server_and_loop": ["unclosed <socket", "unclosed event loop"],
        "transports_and_loop": ["unclosed event loop", "unclosed transport"],
        "transport_loop_closed": ["unclosed transport"],
        "pipes_loop_closed": ["unclosed transport"],
        "subprocess_loop_closed": ["unclosed transport"],
        "sock_sendfile_and_loop": ["unclosed event loop"],
        "loop_alone": ["unclosed event loop"],
        "fds left": 0,
    }


# --- What write() and sendto() take ---------------------------------------------------

def test_write_and_sendto_take_any_memoryview(loop, loop_kind):
    # A memoryview that is not C-contiguous (a slice with a step) was
    # refused by asyncuv's write() and sendto() with BufferError; asyncio's
    # take it (and then fail to send it: asyncuv sends it).  A type that is
    # refused is named as asyncio names it (type(data).__name__).
    import array

    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        dgram, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=peer.getsockname())
        errors = []
        loop.set_exception_handler(lambda l, ctx: errors.append(ctx))
        try:
            for tr, call in ((transport, transport.write), (dgram, dgram.sendto)):
                call(memoryview(b"")[::2])  # empty: nothing at all
                call(memoryview(b"abcdef")[::2])
                with pytest.raises(TypeError, match="not 'array'$"):
                    call(array.array("b", b"xy"))
            await asyncio.sleep(0.01)
            if loop_kind == "asyncuv":
                assert errors == []
                assert await loop.run_in_executor(None, _recv_exactly, b, 3) == b"ace"
                peer.settimeout(10)
                if sys.version_info >= (3, 13):  # empty datagrams are sent
                    assert peer.recv(10) == b""
                assert peer.recv(10) == b"ace"
        finally:
            transport.close()
            dgram.close()
            await asyncio.sleep(0.01)
            b.close()
            peer.close()

    loop.run_until_complete(main())

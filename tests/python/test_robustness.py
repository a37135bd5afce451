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
              "_FdWatcher", "_Listener", "_SockOp", "_ChildWatch"}


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

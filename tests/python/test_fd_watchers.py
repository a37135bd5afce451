"""add_reader / remove_reader / add_writer / remove_writer on socketpairs.
Every test runs on asyncuv and on the stock asyncio loop (the reference)."""

import asyncio
import gc
import os
import socket
import warnings
import weakref

import pytest

from support import RecordingProtocol, new_loop, noop, run_briefly, run_guarded, spin


@pytest.fixture
def pair():
    """A connected, non-blocking Unix socketpair (a, b)."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


class FileLike:
    """Not a socket: only has fileno()."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


class Payload:
    def method(self, *args):
        pass


class TestReader:
    def test_called_with_args_when_readable(self, loop, pair):
        a, b = pair
        fut = loop.create_future()

        def on_readable(*args):
            fut.set_result((args, a.recv(100)))
            loop.remove_reader(a.fileno())

        assert loop.add_reader(a.fileno(), on_readable, 1, "two") is None
        b.send(b"data")
        args, data = run_guarded(loop, fut)
        assert args == (1, "two")
        assert data == b"data"

    def test_not_called_while_nothing_to_read(self, loop, pair):
        a, b = pair
        calls = []
        loop.add_reader(a.fileno(), calls.append, "read")
        run_briefly(loop, steps=3)
        assert calls == []
        assert loop.remove_reader(a.fileno()) is True

    def test_level_triggered_while_data_is_unread(self, loop, pair):
        a, b = pair
        calls = []
        done = loop.create_future()

        def on_readable():
            calls.append(1)
            if len(calls) == 3:
                loop.remove_reader(a.fileno())
                done.set_result(None)

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"x")  # never consumed
        run_guarded(loop, done)
        assert len(calls) == 3

    def test_called_at_eof(self, loop, pair):
        a, b = pair
        fut = loop.create_future()

        def on_readable():
            loop.remove_reader(a.fileno())
            fut.set_result(a.recv(100))

        loop.add_reader(a.fileno(), on_readable)
        b.shutdown(socket.SHUT_WR)
        assert run_guarded(loop, fut) == b""

    def test_remove_reader_return_values(self, loop, pair):
        a, b = pair
        assert loop.remove_reader(a.fileno()) is False
        loop.add_reader(a.fileno(), noop)
        assert loop.remove_reader(a.fileno()) is True
        assert loop.remove_reader(a.fileno()) is False

    def test_removed_reader_is_not_called(self, loop, pair):
        a, b = pair
        calls = []
        loop.add_reader(a.fileno(), calls.append, 1)
        loop.remove_reader(a.fileno())
        b.send(b"x")
        run_briefly(loop, steps=3)
        assert calls == []

    def test_replacing_a_reader(self, loop, pair):
        a, b = pair
        calls = []
        fut = loop.create_future()

        def second():
            calls.append("second")
            loop.remove_reader(a.fileno())
            fut.set_result(None)

        loop.add_reader(a.fileno(), calls.append, "first")
        loop.add_reader(a.fileno(), second)
        b.send(b"x")
        run_guarded(loop, fut)
        run_briefly(loop, steps=2)
        assert calls == ["second"]
        assert loop.remove_reader(a.fileno()) is False

    def test_removing_itself_inside_the_callback(self, loop, pair):
        a, b = pair
        results = []

        def on_readable():
            results.append(loop.remove_reader(a.fileno()))

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"x")  # left unread: a level-triggered watcher would fire again

        async def main():
            while not results:
                await asyncio.sleep(0)
            await spin()

        run_guarded(loop, main())
        assert results == [True]

    def test_callback_adding_a_reader_on_another_fd(self, loop, pair):
        a, b = pair
        fut = loop.create_future()

        def on_a():
            loop.remove_reader(a.fileno())
            a.recv(10)
            loop.add_reader(b.fileno(), on_b)
            a.send(b"back")

        def on_b():
            loop.remove_reader(b.fileno())
            fut.set_result(b.recv(10))

        loop.add_reader(a.fileno(), on_a)
        b.send(b"go")
        assert run_guarded(loop, fut) == b"back"

    def test_fd_given_as_an_object_with_fileno(self, loop, pair):
        a, b = pair
        fut = loop.create_future()

        def on_readable():
            fut.set_result(a.recv(10))

        loop.add_reader(FileLike(a.fileno()), on_readable)
        b.send(b"obj")
        assert run_guarded(loop, fut) == b"obj"
        assert loop.remove_reader(FileLike(a.fileno())) is True

    def test_socket_object_and_its_fd_are_the_same_watcher(self, loop, pair):
        a, b = pair
        loop.add_reader(a, noop)
        assert loop.remove_reader(a.fileno()) is True
        loop.add_reader(a.fileno(), noop)
        assert loop.remove_reader(a) is True

    def test_callback_error_goes_to_the_exception_handler(self, loop, pair):
        a, b = pair
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        fut = loop.create_future()

        def on_readable():
            loop.remove_reader(a.fileno())
            loop.call_soon(fut.set_result, None)
            raise ZeroDivisionError("in reader")

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"x")
        run_guarded(loop, fut)
        [context] = contexts
        assert isinstance(context["exception"], ZeroDivisionError)
        assert context["message"].startswith("Exception in callback")

    def test_callback_is_released_once_removed(self, loop, pair):
        a, b = pair
        obj = Payload()
        ref = weakref.ref(obj)
        loop.add_reader(a.fileno(), obj.method, obj)
        del obj
        gc.collect()
        assert ref() is not None
        loop.remove_reader(a.fileno())
        gc.collect()
        assert ref() is None


class TestWriter:
    def test_called_with_args_when_writable(self, loop, pair):
        a, b = pair
        fut = loop.create_future()

        def on_writable(*args):
            loop.remove_writer(a.fileno())
            a.send(b"written")
            fut.set_result(args)

        assert loop.add_writer(a.fileno(), on_writable, "x", 2) is None
        assert run_guarded(loop, fut) == ("x", 2)
        assert b.recv(100) == b"written"

    def test_remove_writer_return_values(self, loop, pair):
        a, b = pair
        assert loop.remove_writer(a.fileno()) is False
        loop.add_writer(a.fileno(), noop)
        assert loop.remove_writer(a.fileno()) is True
        assert loop.remove_writer(a.fileno()) is False

    def test_replacing_a_writer(self, loop, pair):
        a, b = pair
        calls = []
        fut = loop.create_future()

        def second():
            calls.append("second")
            loop.remove_writer(a.fileno())
            fut.set_result(None)

        loop.add_writer(a.fileno(), calls.append, "first")
        loop.add_writer(a.fileno(), second)
        run_guarded(loop, fut)
        run_briefly(loop, steps=2)
        assert calls == ["second"]

    def test_removing_itself_inside_the_callback(self, loop, pair):
        a, b = pair
        results = []

        def on_writable():
            results.append(loop.remove_writer(a.fileno()))

        loop.add_writer(a.fileno(), on_writable)

        async def main():
            while not results:
                await asyncio.sleep(0)
            await spin()

        run_guarded(loop, main())
        assert results == [True]

    def test_not_called_while_the_send_buffer_is_full(self, loop, pair):
        a, b = pair
        try:
            while True:
                a.send(b"x" * 65536)
        except BlockingIOError:
            pass
        calls = []
        fut = loop.create_future()

        def on_writable():
            calls.append("writable")
            loop.remove_writer(a.fileno())
            fut.set_result(None)

        loop.add_writer(a.fileno(), on_writable)
        run_briefly(loop, steps=3)
        assert calls == []

        async def drain_peer():
            while not fut.done():
                try:
                    b.recv(65536)
                except BlockingIOError:
                    await asyncio.sleep(0)

        run_guarded(loop, drain_peer())
        assert calls == ["writable"]

    def test_fd_given_as_an_object_with_fileno(self, loop, pair):
        a, b = pair
        fut = loop.create_future()
        loop.add_writer(FileLike(a.fileno()), lambda: fut.done() or fut.set_result("w"))
        assert run_guarded(loop, fut) == "w"
        assert loop.remove_writer(FileLike(a.fileno())) is True


class TestReaderAndWriter:
    def test_reader_and_writer_on_one_fd_are_independent(self, loop, pair):
        a, b = pair
        events = []
        got_both = loop.create_future()

        def on_readable():
            loop.remove_reader(a.fileno())
            events.append("read")
            if len(events) == 2:
                got_both.set_result(None)

        def on_writable():
            loop.remove_writer(a.fileno())
            events.append("write")
            if len(events) == 2:
                got_both.set_result(None)

        loop.add_reader(a.fileno(), on_readable)
        loop.add_writer(a.fileno(), on_writable)
        b.send(b"x")
        run_guarded(loop, got_both)
        assert sorted(events) == ["read", "write"]

    def test_removing_the_reader_keeps_the_writer(self, loop, pair):
        a, b = pair
        fut = loop.create_future()
        loop.add_reader(a.fileno(), noop)
        loop.add_writer(a.fileno(), lambda: fut.done() or fut.set_result(None))
        assert loop.remove_reader(a.fileno()) is True
        run_guarded(loop, fut)
        assert loop.remove_writer(a.fileno()) is True
        assert loop.remove_reader(a.fileno()) is False

    def test_removing_the_writer_keeps_the_reader(self, loop, pair):
        a, b = pair
        fut = loop.create_future()
        loop.add_writer(a.fileno(), noop)
        loop.add_reader(a.fileno(), lambda: fut.done() or fut.set_result(a.recv(10)))
        assert loop.remove_writer(a.fileno()) is True
        b.send(b"still")
        assert run_guarded(loop, fut) == b"still"
        assert loop.remove_reader(a.fileno()) is True

    def test_reader_only_remove_writer_returns_false(self, loop, pair):
        a, b = pair
        loop.add_reader(a.fileno(), noop)
        assert loop.remove_writer(a.fileno()) is False
        assert loop.remove_reader(a.fileno()) is True


class TestIterationOrder:
    """One iteration polls, then runs the calls queued before the poll, then
    the handles of the fds the poll found ready (asyncio's _run_once())."""

    def test_fd_made_ready_by_a_queued_call_waits_for_the_next_poll(self, loop, pair):
        a, b = pair
        c, d = socket.socketpair()
        with c, d:
            calls = []
            loop.add_reader(a.fileno(), calls.append, "a")
            loop.add_reader(c.fileno(), calls.append, "c")
            b.send(b"x")  # ready before the iteration
            loop.call_soon(d.send, b"x")  # ready after its poll
            loop.call_soon(loop.stop)
            loop.run_forever()
            assert calls == ["a"]
            loop.call_soon(loop.stop)
            loop.run_forever()
            assert sorted(calls[1:]) == ["a", "c"]
            loop.remove_reader(a.fileno())
            loop.remove_reader(c.fileno())

    def test_reader_replaced_by_a_queued_call_waits_for_the_next_poll(self, loop, pair):
        a, b = pair
        calls = []
        loop.add_reader(a.fileno(), calls.append, "old")
        b.send(b"x")
        loop.call_soon(loop.add_reader, a.fileno(), calls.append, "new")
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert calls == []  # the old handle is cancelled, the new one waits
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert calls == ["new"]
        loop.remove_reader(a.fileno())

    def test_writer_added_beside_a_ready_reader_keeps_the_reader(self, loop, pair):
        a, b = pair
        calls = []
        loop.add_reader(a.fileno(), calls.append, "read")
        b.send(b"x")
        loop.call_soon(loop.add_writer, a.fileno(), calls.append, "write")
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert calls == ["read"]
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert sorted(calls[1:]) == ["read", "write"]
        loop.remove_reader(a.fileno())
        loop.remove_writer(a.fileno())


class TestInvalidArguments:
    @pytest.mark.parametrize("method", ["add_reader", "add_writer"])
    def test_negative_fd(self, loop, method):
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            getattr(loop, method)(-1, noop)

    @pytest.mark.parametrize("method", ["add_reader", "add_writer"])
    def test_object_without_fileno(self, loop, method):
        with pytest.raises(ValueError, match="Invalid file object: 'not a file'"):
            getattr(loop, method)("not a file", noop)

    @pytest.mark.parametrize("method", ["remove_reader", "remove_writer"])
    def test_remove_with_object_without_fileno(self, loop, method):
        with pytest.raises(ValueError, match="Invalid file object"):
            getattr(loop, method)("not a file")

    @pytest.mark.parametrize("method", ["add_reader", "add_writer"])
    def test_fd_owned_by_a_transport(self, loop, pair, method):
        a, b = pair

        async def main():
            tr, proto = await loop.create_unix_connection(lambda: RecordingProtocol(loop), sock=a)
            try:
                with pytest.raises(RuntimeError, match="is used by transport"):
                    getattr(loop, method)(a.fileno(), noop)
            finally:
                tr.close()
            await proto.lost

        run_guarded(loop, main())


class TestClosedLoop:
    @pytest.mark.parametrize("method", ["add_reader", "add_writer"])
    def test_add_raises(self, loop, pair, method):
        a, b = pair
        loop.close()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            getattr(loop, method)(a.fileno(), noop)

    @pytest.mark.parametrize("method", ["remove_reader", "remove_writer"])
    def test_remove_returns_false(self, loop, pair, method):
        a, b = pair
        loop.close()
        assert getattr(loop, method)(a.fileno()) is False

    def test_close_releases_watcher_callbacks(self, loop, pair):
        a, b = pair
        obj = Payload()
        ref = weakref.ref(obj)
        loop.add_reader(a.fileno(), obj.method)
        loop.add_writer(b.fileno(), obj.method, obj)
        del obj
        loop.close()
        gc.collect()
        assert ref() is None


class TestDescriptorState:
    """What watching does to the descriptor, and what the loop keeps."""

    def test_blocking_mode_is_left_alone(self, loop):
        r, w = os.pipe()
        try:
            assert os.get_blocking(r) and os.get_blocking(w)
            loop.add_reader(r, noop)
            loop.add_writer(w, noop)
            run_briefly(loop)
            assert os.get_blocking(r) and os.get_blocking(w)
            assert loop.remove_reader(r) and loop.remove_writer(w)
        finally:
            os.close(r)
            os.close(w)

    def test_regular_file_is_refused(self, loop, tmp_path):
        with open(tmp_path / "plain", "wb") as f:
            with pytest.raises(PermissionError):
                loop.add_reader(f.fileno(), noop)
            assert loop.remove_reader(f.fileno()) is False

    def test_reader_fires_again_after_many_add_remove_cycles(self, loop, pair):
        a, b = pair

        async def main():
            for i in range(200):
                fut = loop.create_future()
                loop.add_reader(a, lambda f=fut: f.done() or f.set_result(a.recv(100)))
                b.send(b"%d" % i)
                assert await fut == b"%d" % i
                assert loop.remove_reader(a)

        run_guarded(loop, main())

    def test_reused_descriptor_number_is_watched_afresh(self, loop):
        r1, w1 = os.pipe()
        loop.add_reader(r1, noop)
        assert loop.remove_reader(r1)
        os.close(r1)
        os.close(w1)
        r2, w2 = os.pipe()  # most likely the same numbers again
        try:
            fired = []
            loop.add_reader(r2, fired.append, "r2")
            os.write(w2, b"x")
            run_briefly(loop, 3)
            assert fired and set(fired) == {"r2"}
            assert loop.remove_reader(r2)
        finally:
            os.close(r2)
            os.close(w2)

    def test_closed_loops_keep_no_descriptors(self, loop_factory, pair):
        a, b = pair
        before = sorted(os.listdir("/proc/self/fd"))
        for _ in range(20):
            lp = loop_factory()
            lp.add_reader(a, noop)
            lp.add_writer(b, noop)
            run_briefly(lp)
            lp.close()
        assert sorted(os.listdir("/proc/self/fd")) == before


class TestWatcherOwnership:
    def test_loop_closes_after_a_reader_on_a_closing_transport_fd(self, loop_factory):
        lp = loop_factory()
        a, b = socket.socketpair()
        # Small buffers: the transport closes with data still queued.
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        async def main():
            transport, _ = await lp.connect_accepted_socket(asyncio.Protocol, a)
            transport.write(b"x" * 1_000_000)
            transport.close()
            assert transport.is_closing()
            lp.add_reader(a.fileno(), noop)  # allowed: the transport is closing
            await asyncio.sleep(0)

        with b:
            lp.run_until_complete(main())
            # The transport never gets to finish closing: it may warn.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                lp.close()
                gc.collect()
            assert lp.is_closed()

    def test_loop_with_an_unfired_reader_is_collected(self, loop_factory, loop_kind, pair):
        a, b = pair
        loop_factory()  # loads asyncuv (or fails loudly)
        lp = new_loop(loop_kind)
        lp.run_until_complete(asyncio.sleep(0))
        lp.add_reader(a.fileno(), noop)
        ref = weakref.ref(lp)
        # Left unclosed on purpose: only the collector can free it (and it
        # warns about the unclosed loop as it does).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del lp
            gc.collect()
        assert ref() is None

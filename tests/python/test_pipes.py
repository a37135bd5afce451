"""loop.connect_read_pipe() / loop.connect_write_pipe() and their transports,
on os.pipe(), FIFOs (in tmp_path), ptys, sockets and character devices.
Every test runs on asyncuv and on the stock asyncio loop (the reference).

The pipe "files" are unbuffered file objects; the transport owns the one it
is given and closes it at connection_lost, so the fixtures only close what
is still open."""

import asyncio
import errno
import gc
import os
import socket
import stat
import threading
import tty

import pytest

from support import RecordingProtocol, new_loop, run_guarded, spin


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


def factory(loop, **kwargs):
    return lambda: RecordingProtocol(loop, **kwargs)


@pytest.fixture
def pipe():
    """(rf, wf): the two ends of an os.pipe() as unbuffered file objects."""
    r, w = os.pipe()
    rf = open(r, "rb", buffering=0)
    wf = open(w, "wb", buffering=0)
    yield rf, wf
    for f in (rf, wf):
        if not f.closed:
            f.close()


@pytest.fixture
def fifo(tmp_path):
    """(rf, wf) opened on a FIFO in tmp_path (reader first, non-blocking, so
    that opening the writer does not block)."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    rf = open(path, "rb", buffering=0,
              opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK))
    wf = open(path, "wb", buffering=0)
    yield rf, wf
    for f in (rf, wf):
        if not f.closed:
            f.close()


@pytest.fixture
def pty_pair():
    """(master, slave) of a raw-mode pty as unbuffered file objects."""
    master, slave = os.openpty()
    tty.setraw(slave)
    mf = open(master, "rb", buffering=0)
    sf = open(slave, "wb", buffering=0)
    yield mf, sf
    for f in (mf, sf):
        if not f.closed:
            f.close()


def blocking_writer(wf, data, close=True):
    """Write data to wf from another thread (the write end stays blocking)."""
    def run():
        view = memoryview(data)
        while view:
            n = wf.write(view)
            view = view[n:]
        if close:
            wf.close()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def fill_until_paused(tr, proto, chunk_size=256 * 1024):
    """Write chunks until pause_writing() is called; return what was written."""
    chunks = []
    seed = 0
    while not proto.paused.done():
        assert seed < 256, "pause_writing() never called"
        chunk = pattern(chunk_size, seed)
        chunks.append(chunk)
        tr.write(chunk)
        seed += 1
    return b"".join(chunks)


async def fill_until_buffered(tr):
    """Write until the transport buffers (the pipe is full)."""
    chunks = []
    seed = 0
    tr.set_write_buffer_limits(high=2 ** 40)
    while tr.get_write_buffer_size() == 0:
        assert seed < 256, "the pipe never filled"
        chunk = pattern(64 * 1024, seed)
        chunks.append(chunk)
        tr.write(chunk)
        seed += 1
    return b"".join(chunks)


class TestReadPipe:
    def test_transport_after_connection_made(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop), rf)
            assert isinstance(tr, asyncio.ReadTransport)
            assert isinstance(proto, RecordingProtocol)
            assert proto.events == ["made"]
            assert proto.transport is tr
            assert tr.get_extra_info("pipe") is rf
            assert tr.get_extra_info("no-such-key", 42) == 42
            assert tr.get_protocol() is proto
            assert tr.is_closing() is False
            assert os.get_blocking(rf.fileno()) is False
            tr.close()
            await proto.lost

        run_guarded(loop, main())

    def test_data_then_eof_then_connection_lost(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop), rf)
            wf.write(b"hello ")
            assert await proto.read_at_least(6) == b"hello "
            wf.write(b"world")
            wf.close()
            assert await proto.lost is None
            assert bytes(proto.data) == b"hello world"
            assert proto.events == ["made", "data", "eof", "lost"]
            assert proto.lost_calls == [None]
            assert tr.is_closing() is True
            assert rf.closed

        run_guarded(loop, main())

    def test_eof_received_returning_true_still_closes(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop, eof_result=True), rf)
            wf.close()
            assert await proto.lost is None
            assert proto.events == ["made", "eof", "lost"]
            assert rf.closed

        run_guarded(loop, main())

    def test_several_mib_arrive_in_order(self, loop, pipe):
        rf, wf = pipe
        payload = pattern(4 * 1024 * 1024 + 17)

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop), rf)
            thread = blocking_writer(wf, payload)
            try:
                await proto.lost
            finally:
                await loop.run_in_executor(None, thread.join)
            assert bytes(proto.data) == payload
            assert proto.events == ["made", "data", "eof", "lost"]

        run_guarded(loop, main())

    def test_close(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop), rf)
            tr.close()
            assert tr.is_closing() is True
            # connection_lost() comes later, from the loop.
            assert proto.events == ["made"]
            tr.close()
            wf.write(b"too late")
            assert await proto.lost is None
            await spin()
            assert proto.events == ["made", "lost"]
            assert proto.lost_calls == [None]
            assert rf.closed

        run_guarded(loop, main())

    def test_pause_and_resume_reading(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop), rf)
            tr.pause_reading()
            tr.pause_reading()  # twice is harmless
            wf.write(b"held back")
            await spin(10)
            assert proto.events == ["made"]
            tr.resume_reading()
            tr.resume_reading()  # twice is harmless
            assert await proto.read_at_least(9) == b"held back"
            tr.close()
            await proto.lost

        run_guarded(loop, main())

    def test_eof_is_not_reported_while_paused(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop), rf)
            tr.pause_reading()
            wf.write(b"last words")
            wf.close()
            await spin(10)
            assert proto.events == ["made"]
            assert tr.is_closing() is False
            tr.resume_reading()
            assert await proto.lost is None
            assert proto.events == ["made", "data", "eof", "lost"]
            assert bytes(proto.data) == b"last words"

        run_guarded(loop, main())

    def test_pause_and_resume_after_close_are_no_ops(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_read_pipe(factory(loop), rf)
            tr.close()
            tr.pause_reading()
            tr.resume_reading()
            await proto.lost
            assert proto.events == ["made", "lost"]

        run_guarded(loop, main())

    def test_set_protocol(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, first = await loop.connect_read_pipe(factory(loop), rf)
            second = RecordingProtocol(loop)
            tr.set_protocol(second)
            assert tr.get_protocol() is second
            wf.write(b"to the second")
            wf.close()
            assert await second.lost is None
            assert second.events == ["data", "eof", "lost"]
            assert bytes(second.data) == b"to the second"
            assert first.events == ["made"]

        run_guarded(loop, main())

    def test_a_socket_can_be_a_read_pipe(self, loop):
        a, b = socket.socketpair()
        with a, b:
            async def main():
                tr, proto = await loop.connect_read_pipe(factory(loop), a)
                assert tr.get_extra_info("pipe") is a
                b.sendall(b"over a socket")
                b.shutdown(socket.SHUT_WR)
                assert await proto.lost is None
                assert bytes(proto.data) == b"over a socket"
                assert proto.events == ["made", "data", "eof", "lost"]
                assert a.fileno() == -1  # closed by the transport

            run_guarded(loop, main())

    def test_regular_file_is_rejected(self, loop, tmp_path):
        path = tmp_path / "regular"
        path.write_bytes(b"data")
        with open(path, "rb", buffering=0) as f:
            with pytest.raises(ValueError, match=r"^Pipe transport is for pipes/sockets only\.$"):
                run_guarded(loop, loop.connect_read_pipe(factory(loop), f))
            # Untouched: still open and blocking.
            assert not f.closed
            assert os.get_blocking(f.fileno()) is True
            assert f.read() == b"data"


class TestWritePipe:
    def test_transport_after_connection_made(self, loop, pipe):
        rf, wf = pipe

        async def main():
            tr, proto = await loop.connect_write_pipe(factory(loop), wf)
            assert isinstance(tr, asyncio.WriteTransport)
            assert proto.events == ["made"]
            assert proto.transport is tr
            assert tr.get_extra_info("pipe") is wf
            assert tr.get_protocol() is proto
            assert tr.is_closing() is False
            assert tr.can_write_eof() is True
            assert tr.get_write_buffer_size() == 0
            assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            assert os.get_blocking(wf.fileno()) is False
            tr.close()
            await proto.lost

        run_guarded(loop, main())

    def test_data_reaches_the_reader(self, loop, pipe):
        rf, wf = pipe

        async def main():
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            wtr.write(b"bytes ")
            wtr.write(bytearray(b"bytearray "))
            wtr.write(memoryview(b"memoryview"))
            wtr.write(b"")
            wtr.close()
            assert await reader.lost is None
            assert bytes(reader.data) == b"bytes bytearray memoryview"
            assert await writer.lost is None
            assert writer.events == ["made", "lost"]
            assert wf.closed

        run_guarded(loop, main())

    def test_pause_and_resume_writing_at_the_water_marks(self, loop, pipe):
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            wtr.set_write_buffer_limits(high=128 * 1024, low=32 * 1024)
            assert wtr.get_write_buffer_limits() == (32 * 1024, 128 * 1024)
            payload = await fill_until_paused(wtr, writer)
            # pause_writing() is called from within write().
            assert writer.events == ["made", "pause"]
            assert wtr.get_write_buffer_size() > 128 * 1024
            assert wtr.get_write_buffer_size() <= len(payload)
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            await writer.resumed
            assert writer.events == ["made", "pause", "resume"]
            assert await reader.read_at_least(len(payload)) == payload
            assert wtr.get_write_buffer_size() == 0
            wtr.close()
            assert await reader.lost is None
            assert bytes(reader.data) == payload
            await writer.lost

        run_guarded(loop, main())

    def test_buffer_size_while_the_pipe_is_full(self, loop, pipe):
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            payload = await fill_until_buffered(wtr)
            buffered = wtr.get_write_buffer_size()
            assert 0 < buffered <= len(payload)
            wtr.write(b"more")
            assert wtr.get_write_buffer_size() == buffered + 4
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            assert await reader.read_at_least(len(payload) + 4) == payload + b"more"
            assert wtr.get_write_buffer_size() == 0
            wtr.close()
            await writer.lost
            await reader.lost

        run_guarded(loop, main())

    @pytest.mark.parametrize("kwargs, message", [
        ({"high": 1, "low": 2}, r"high \(1\) must be >= low \(2\) must be >= 0"),
        ({"high": -1}, r"high \(-1\) must be >= low \(-1\) must be >= 0"),
        ({"low": -2, "high": 10}, r"high \(10\) must be >= low \(-2\) must be >= 0"),
    ])
    def test_invalid_write_buffer_limits(self, loop, pipe, kwargs, message):
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            with pytest.raises(ValueError, match=message):
                wtr.set_write_buffer_limits(**kwargs)
            assert wtr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            wtr.close()
            await writer.lost

        run_guarded(loop, main())

    def test_write_eof(self, loop, pipe):
        rf, wf = pipe

        async def main():
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            wtr.write(b"the end")
            wtr.write_eof()
            assert wtr.is_closing() is True
            assert writer.events == ["made"]
            wtr.write_eof()  # twice is harmless
            assert await writer.lost is None
            assert writer.lost_calls == [None]
            assert await reader.lost is None
            assert bytes(reader.data) == b"the end"
            assert reader.events == ["made", "data", "eof", "lost"]

        run_guarded(loop, main())

    def test_write_after_write_eof_or_close_is_ignored(self, loop, pipe):
        """Unlike a socket transport (RuntimeError), a pipe transport drops
        writes after write_eof()/close() silently."""
        rf, wf = pipe

        async def main():
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            wtr.write(b"kept")
            wtr.write_eof()
            wtr.write(b"dropped")
            wtr.close()
            wtr.write(b"dropped too")
            await writer.lost
            wtr.write(b"dropped after connection_lost")
            assert await reader.lost is None
            assert bytes(reader.data) == b"kept"
            assert writer.events == ["made", "lost"]

        run_guarded(loop, main())

    def test_close_flushes_buffered_data_first(self, loop, pipe):
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            payload = await fill_until_buffered(wtr)
            wtr.close()
            wtr.close()
            assert wtr.is_closing() is True
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            assert await reader.lost is None
            assert bytes(reader.data) == payload
            assert await writer.lost is None
            assert wtr.get_write_buffer_size() == 0
            assert writer.events == ["made", "lost"]

        run_guarded(loop, main())

    def test_abort_discards_buffered_data(self, loop, pipe):
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            payload = await fill_until_buffered(wtr)
            wtr.abort()
            assert wtr.is_closing() is True
            assert wtr.get_write_buffer_size() == 0
            assert writer.events == ["made"]
            assert await writer.lost is None
            assert wf.closed
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            assert await reader.lost is None
            assert len(reader.data) < len(payload)
            assert bytes(reader.data) == payload[:len(reader.data)]
            assert writer.events == ["made", "lost"]

        run_guarded(loop, main())

    def test_reader_closed_with_nothing_buffered(self, loop, pipe):
        """The write transport watches its fd for readability to learn that
        the reader went away: connection_lost(None) comes without a write."""
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            rf.close()
            assert await writer.lost is None
            assert wtr.is_closing() is True
            wtr.write(b"nobody listens")  # ignored, no exception
            await spin()
            assert writer.events == ["made", "lost"]
            assert wf.closed

        run_guarded(loop, main())

    def test_reader_closed_with_data_buffered(self, loop, pipe):
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            await fill_until_buffered(wtr)
            rf.close()
            exc = await writer.lost
            assert isinstance(exc, BrokenPipeError)
            assert writer.lost_calls == [exc]
            assert wtr.get_write_buffer_size() == 0
            assert wf.closed

        run_guarded(loop, main())

    def test_write_to_a_pipe_whose_reader_is_gone(self, loop, pipe):
        rf, wf = pipe

        async def main():
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            rf.close()
            # No loop iteration in between: the write itself fails.
            wtr.write(b"into the void")
            exc = await writer.lost
            assert isinstance(exc, BrokenPipeError)
            assert exc.errno == errno.EPIPE
            assert writer.lost_calls == [exc]
            assert wtr.is_closing() is True

        run_guarded(loop, main())

    def test_set_protocol(self, loop, pipe):
        rf, wf = pipe

        async def main():
            wtr, first = await loop.connect_write_pipe(factory(loop), wf)
            second = RecordingProtocol(loop)
            wtr.set_protocol(second)
            assert wtr.get_protocol() is second
            wtr.close()
            assert await second.lost is None
            assert first.events == ["made"]
            assert second.events == ["lost"]

        run_guarded(loop, main())

    def test_dev_null(self, loop):
        with open(os.devnull, "wb", buffering=0) as f:
            async def main():
                tr, proto = await loop.connect_write_pipe(factory(loop), f)
                tr.write(pattern(1024 * 1024))
                assert tr.get_write_buffer_size() == 0
                tr.close()
                assert await proto.lost is None

            run_guarded(loop, main())
            assert f.closed

    def test_regular_file_is_rejected(self, loop, tmp_path):
        path = tmp_path / "regular"
        with open(path, "wb", buffering=0) as f:
            with pytest.raises(
                    ValueError,
                    match=r"^Pipe transport is only for pipes, sockets and character devices$"):
                run_guarded(loop, loop.connect_write_pipe(factory(loop), f))
            assert not f.closed
            assert os.get_blocking(f.fileno()) is True
            f.write(b"still usable")
        assert path.read_bytes() == b"still usable"


class TestFifo:
    def test_round_trip_and_eof(self, loop, fifo):
        rf, wf = fifo
        payload = pattern(1024 * 1024, 3)

        async def main():
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            wtr.write(payload)
            wtr.write_eof()
            assert await reader.lost is None
            assert bytes(reader.data) == payload
            assert reader.events == ["made", "data", "eof", "lost"]
            assert await writer.lost is None

        run_guarded(loop, main())

    def test_writer_learns_that_the_reader_closed(self, loop, fifo):
        rf, wf = fifo

        async def main():
            rtr, reader = await loop.connect_read_pipe(factory(loop), rf)
            wtr, writer = await loop.connect_write_pipe(factory(loop), wf)
            wtr.write(b"ping")
            assert await reader.read_at_least(4) == b"ping"
            rtr.close()
            await reader.lost
            assert await writer.lost is None
            assert wtr.is_closing() is True

        run_guarded(loop, main())


class TestPty:
    def test_round_trip(self, loop, pty_pair):
        mf, sf = pty_pair

        async def main():
            rtr, reader = await loop.connect_read_pipe(factory(loop), mf)
            wtr, writer = await loop.connect_write_pipe(factory(loop), sf)
            assert wtr.get_extra_info("pipe") is sf
            wtr.write(b"through the terminal\n")
            assert await reader.read_at_least(21) == b"through the terminal\n"
            wtr.close()
            assert await writer.lost is None
            rtr.close()
            assert await reader.lost is None

        run_guarded(loop, main())

    def test_closing_the_slave_gives_eio_on_the_master(self, loop, pty_pair):
        """Linux reports a hung-up pty master with EIO: the read transport
        calls connection_lost(OSError(EIO)), without eof_received() and
        without calling the exception handler."""
        mf, sf = pty_pair

        async def main():
            rtr, reader = await loop.connect_read_pipe(factory(loop), mf)
            sf.write(b"bye")
            assert await reader.read_at_least(3) == b"bye"
            sf.close()
            exc = await reader.lost
            assert isinstance(exc, OSError)
            assert exc.errno == errno.EIO
            assert reader.events == ["made", "data", "lost"]
            assert mf.closed

        run_guarded(loop, main())


class TestResourceWarning:
    """These tests use a loop of their own, so that it can be dropped too."""

    def test_unclosed_read_pipe_transport_warns(self, loop_kind, loop_factory, loop_errors, pipe):
        rf, wf = pipe
        lp = new_loop(loop_kind)

        async def main():
            await lp.connect_read_pipe(asyncio.Protocol, rf)

        try:
            run_guarded(lp, main())
        except BaseException:
            lp.close()
            raise
        with pytest.warns(ResourceWarning, match="unclosed"):
            lp.close()
            del lp
            gc.collect()
        assert rf.closed

    def test_unclosed_write_pipe_transport_warns(self, loop_kind, loop_factory, loop_errors, pipe):
        rf, wf = pipe
        lp = new_loop(loop_kind)

        async def main():
            await lp.connect_write_pipe(asyncio.Protocol, wf)

        try:
            run_guarded(lp, main())
        except BaseException:
            lp.close()
            raise
        with pytest.warns(ResourceWarning, match="unclosed"):
            lp.close()
            del lp
            gc.collect()
        assert wf.closed


    def test_repr_of_transports_left_open_by_a_closed_loop(self, loop_kind, loop_factory,
                                                            loop_errors, pipe):
        """repr() still works once the loop is closed, and says 'open'
        (CPython's test_unclosed_pipe_transport, uvloop issue #314)."""
        rf, wf = pipe
        lp = new_loop(loop_kind)

        async def main():
            rt, _ = await lp.connect_read_pipe(asyncio.Protocol, rf)
            wt, _ = await lp.connect_write_pipe(asyncio.Protocol, wf)
            return rt, wt

        try:
            rt, wt = run_guarded(lp, main())
        finally:
            lp.close()
        assert "open" in repr(rt)
        assert "open" in repr(wt)
        with pytest.warns(ResourceWarning, match="unclosed"):
            del rt, wt, lp
            gc.collect()


class TestReadPipeDetails:
    def test_eof_closes_even_if_eof_received_returns_true(self, loop):
        r, w = os.pipe()
        events = []

        class KeepOpen(asyncio.Protocol):
            def connection_made(self, transport):
                self.lost = loop.create_future()

            def data_received(self, data):
                events.append(data)

            def eof_received(self):
                events.append("eof")
                return True  # ignored by read pipes

            def connection_lost(self, exc):
                events.append(("lost", exc))
                self.lost.set_result(None)

        async def main():
            transport, proto = await loop.connect_read_pipe(KeepOpen, os.fdopen(r, "rb", 0))
            os.write(w, b"abc")
            os.close(w)
            await proto.lost
            assert transport.is_closing()

        run_guarded(loop, main())
        assert events == [b"abc", "eof", ("lost", None)]

    def test_attributes_can_be_set_on_the_transport(self, loop):
        r, w = os.pipe()

        async def main():
            transport, _ = await loop.connect_read_pipe(asyncio.Protocol, os.fdopen(r, "rb", 0))
            transport.pause_reading = lambda: "patched"
            assert transport.pause_reading() == "patched"
            del transport.pause_reading
            assert transport.pause_reading() is None  # the real one again
            transport.close()
            await asyncio.sleep(0)

        try:
            run_guarded(loop, main())
        finally:
            os.close(w)

"""Datagram endpoints, sendfile/sock_sendfile, subprocess essentials and
fork: every test runs on asyncuv and on the stock asyncio loop (the
reference)."""

import asyncio
import io
import os
import socket
import subprocess
import sys

import pytest

from support import DATAGRAM_SOCKET_EXPECTED, run_guarded


def unused_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# --- Datagrams ------------------------------------------------------------------

class Recorder(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.datagrams = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.lost = loop.create_future()
        self.made = 0

    def connection_made(self, transport):
        self.made += 1
        self.transport = transport

    def datagram_received(self, data, addr):
        self.datagrams.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.put_nowait(exc)

    def connection_lost(self, exc):
        assert not self.lost.done(), 'connection_lost() called twice'
        self.lost.set_result(exc)


def test_udp_round_trip(loop):
    async def main():
        server, sproto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=('127.0.0.1', 0))
        addr = server.get_extra_info('sockname')
        client, cproto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), remote_addr=addr)
        assert isinstance(server, asyncio.BaseTransport)
        assert client.get_extra_info('peername') == addr
        assert server.get_extra_info('peername') is None
        assert client.get_extra_info('socket').type == socket.SOCK_DGRAM
        client.sendto(b'ping')
        data, caddr = await sproto.datagrams.get()
        assert data == b'ping'
        assert caddr == client.get_extra_info('sockname')
        server.sendto(b'pong', caddr)
        assert (await cproto.datagrams.get()) == (b'pong', addr)
        # The same address, spelled as the endpoint's, is accepted.
        client.sendto(b'again', addr)
        assert (await sproto.datagrams.get())[0] == b'again'
        with pytest.raises(ValueError, match='Invalid address'):
            client.sendto(b'x', ('127.0.0.1', addr[1] + 1 if addr[1] < 65535 else 1))
        with pytest.raises(TypeError):
            client.sendto('text')
        assert server.get_write_buffer_size() == 0
        client.close()
        server.close()
        assert client.is_closing()
        assert await cproto.lost is None
        assert await sproto.lost is None
        assert cproto.made == sproto.made == 1
        # Sending after close is silently dropped.
        client.sendto(b'late')
    run_guarded(loop, main())


def test_udp_many_datagrams_and_names(loop):
    async def main():
        server, sproto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=('127.0.0.1', 0))
        port = server.get_extra_info('sockname')[1]
        client, cproto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=('127.0.0.1', 0))
        for i in range(200):
            client.sendto(b'%d' % i, ('127.0.0.1', port))
        got = [int((await sproto.datagrams.get())[0]) for _ in range(200)]
        assert sorted(got) == list(range(200))
        # A host name goes through the resolver; an empty datagram is not
        # sent at all until 3.12, and sent from 3.13 on.
        client.sendto(b'', ('127.0.0.1', port))
        client.sendto(b'named', ('localhost', port))
        if sys.version_info >= (3, 13):
            assert (await sproto.datagrams.get())[0] == b''
        assert (await sproto.datagrams.get())[0] == b'named'
        client.close()
        server.close()
        await cproto.lost
        await sproto.lost
    run_guarded(loop, main())


def test_udp_error_received_on_refused(loop):
    async def main():
        port = unused_udp_port()
        client, proto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), remote_addr=('127.0.0.1', port))
        client.sendto(b'anyone?')
        exc = await proto.errors.get()
        assert isinstance(exc, ConnectionRefusedError)
        assert not client.is_closing()
        client.abort()
        assert await proto.lost is None
    run_guarded(loop, main())


def test_udp_unix_datagrams(loop, tmp_path):
    async def main():
        spath = str(tmp_path / 'server.sock')
        cpath = str(tmp_path / 'client.sock')
        server, sproto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=spath, family=socket.AF_UNIX)
        client, cproto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=cpath, remote_addr=spath,
            family=socket.AF_UNIX)
        client.sendto(b'over unix')
        assert (await sproto.datagrams.get()) == (b'over unix', cpath)
        server.sendto(b'back', cpath)
        assert (await cproto.datagrams.get()) == (b'back', spath)
        client.close()
        server.close()
        await cproto.lost
        await sproto.lost
    run_guarded(loop, main())


@pytest.mark.parametrize('kwargs, exc', [
    (dict(local_addr=('127.0.0.1', 0), reuse_address=False), TypeError),
    (dict(), ValueError),
    (dict(local_addr='x', family=socket.AF_INET), TypeError),
    (dict(local_addr=('127.0.0.1', 0), family=socket.AF_UNIX), TypeError),
])
def test_udp_bad_arguments(loop, kwargs, exc):
    with pytest.raises(exc):
        run_guarded(loop, loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, **kwargs))


def test_udp_sock_argument(loop):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stream:
            with pytest.raises(ValueError, match=DATAGRAM_SOCKET_EXPECTED):
                await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, sock=stream)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(('127.0.0.1', 0))
        with pytest.raises(ValueError, match='socket modifier keyword'):
            await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, sock=sock, local_addr=('127.0.0.1', 0))
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), sock=sock)
        assert tr.get_extra_info('sockname') == sock.getsockname()
        tr.close()
        await proto.lost
        assert sock.fileno() == -1
    run_guarded(loop, main())


# --- sendfile -----------------------------------------------------------------------

DATA = bytes(range(256)) * 4096 * 4  # 4 MiB


class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def __init__(self, loop, expect):
        self.data = bytearray()
        self.expect = expect
        self.done = loop.create_future()

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.expect and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


@pytest.fixture
def datafile(tmp_path):
    path = tmp_path / 'data.bin'
    path.write_bytes(DATA)
    with open(path, 'rb') as f:
        yield f


async def _connected(loop, expect):
    sink = Sink(loop, expect)
    server = await loop.create_server(lambda: sink, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    tr, proto = await loop.create_connection(asyncio.Protocol, '127.0.0.1', port)
    return server, sink, tr


@pytest.mark.parametrize('offset, count', [(0, None), (1000, 100_000), (len(DATA) - 5, None)])
def test_sendfile(loop, datafile, offset, count):
    async def main():
        expect = DATA[offset:offset + count] if count else DATA[offset:]
        server, sink, tr = await _connected(loop, len(expect) + 6)
        tr.write(b'pre')
        sent = await loop.sendfile(tr, datafile, offset, count)
        tr.write(b'end')
        await sink.done
        assert sent == len(expect)
        assert bytes(sink.data) == b'pre' + expect + b'end'
        assert datafile.tell() == offset + len(expect)
        tr.close()
        sink.transport.close()
        server.close()
        await server.wait_closed()
    run_guarded(loop, main())


def test_sendfile_errors(loop, datafile, tmp_path):
    async def main():
        server, sink, tr = await _connected(loop, len(DATA))
        text = open(tmp_path / 'data.bin', 'r')
        try:
            with pytest.raises(ValueError, match='binary mode'):
                await loop.sendfile(tr, text)
        finally:
            text.close()
        task = loop.create_task(loop.sendfile(tr, datafile))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match='sendfile is in progress'):
            tr.write(b'x')
        assert await task == len(DATA)
        tr.close()
        with pytest.raises(RuntimeError, match='is closing'):
            await loop.sendfile(tr, datafile)
        await sink.done
        sink.transport.close()
        server.close()
        await server.wait_closed()
    run_guarded(loop, main())


def test_sock_sendfile(loop, datafile):
    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        received = bytearray()

        async def reader(n):
            while len(received) < n:
                received.extend(await loop.sock_recv(b, 65536))

        task = loop.create_task(reader(len(DATA) - 10))
        assert await loop.sock_sendfile(a, datafile, 10) == len(DATA) - 10
        await task
        assert bytes(received) == DATA[10:]
        assert datafile.tell() == len(DATA)
        # A file object without fileno(): the read-and-send fallback.
        received.clear()
        task = loop.create_task(reader(5000))
        assert await loop.sock_sendfile(a, io.BytesIO(DATA), 0, 5000) == 5000
        await task
        assert bytes(received) == DATA[:5000]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
            dgram.setblocking(False)
            with pytest.raises(ValueError, match='SOCK_STREAM'):
                await loop.sock_sendfile(dgram, datafile)
        with pytest.raises(ValueError, match='count must be a positive integer'):
            await loop.sock_sendfile(a, datafile, 0, 0)
        a.close()
        b.close()
    run_guarded(loop, main())


# --- Subprocess essentials ------------------------------------------------------------

def _open_fds():
    fds = {}
    for fd in os.listdir('/proc/self/fd'):
        try:
            fds[fd] = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            pass  # the listing's own fd
    return fds


def test_subprocess_round_trips_leak_nothing(loop):
    async def main():
        for _ in range(20):
            proc = await asyncio.create_subprocess_exec(
                'cat', stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            out, err = await proc.communicate(b'data' * 1000)
            assert (out, err, proc.returncode) == (b'data' * 1000, b'', 0)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, '-c', 'import time; time.sleep(30)')
        proc.kill()
        assert await proc.wait() == -9
        proc = await asyncio.create_subprocess_shell('exit 7')
        assert await proc.wait() == 7

    # The loop's own fds (asyncuv makes its wake-up socket pair at its
    # first run) are not the subprocesses' business.
    loop.run_until_complete(asyncio.sleep(0))
    before = _open_fds()
    run_guarded(loop, main())
    after = _open_fds()
    assert {fd: what for fd, what in after.items() if before.get(fd) != what} == {}


def test_subprocess_keeps_foreign_children(loop):
    outside = subprocess.Popen([sys.executable, '-c', 'import sys; sys.exit(5)'])

    async def main():
        for _ in range(3):
            proc = await asyncio.create_subprocess_exec('true')
            assert await proc.wait() == 0

    run_guarded(loop, main())
    assert outside.wait() == 5


def test_subprocess_session_and_fds(loop):
    async def main():
        r, w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, '-c',
                f'import os; os.write({w}, str(os.getsid(0)).encode())',
                pass_fds=(w,), start_new_session=True)
            assert await proc.wait() == 0
            assert int(os.read(r, 100)) == proc.pid
        finally:
            os.close(r)
            os.close(w)
    run_guarded(loop, main())


def test_subprocess_bad_arguments(loop):
    async def main():
        with pytest.raises(ValueError, match='text must be False'):
            await asyncio.create_subprocess_exec('true', text=True)
        with pytest.raises(ValueError, match='cmd must be a string'):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, ['true'])
        with pytest.raises(ValueError, match='shell must be False'):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, 'true', shell=True)
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec('/nonexistent/program')
    run_guarded(loop, main())


# --- fork ---------------------------------------------------------------------------------

def test_fork_child_runs_a_new_loop(loop_kind, loop):
    from support import new_loop

    async def work(lp):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        await lp.sock_sendall(a, b'ping')
        data = await lp.sock_recv(b, 4)
        await asyncio.sleep(0.001)
        a.close()
        b.close()
        return data

    assert loop.run_until_complete(work(loop)) == b'ping'
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child = new_loop(loop_kind)
            if child.run_until_complete(work(child)) == b'ping':
                code = 0
            child.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

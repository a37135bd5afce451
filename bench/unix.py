#!/usr/bin/python3
"""Processes, pipes, UDP and sendfile: stock asyncio vs uvloop vs asyncuv.

    /usr/bin/python3 bench/unix.py [--repeat 5] [--only spawn,udp]

Each case runs on every loop in one process, the loops interleaved (the
order rotates every repetition) so that a noisy machine's drift hits all of
them alike; the median wall time per operation is reported, with asyncuv's
ratio to each peer (below 1.0: asyncuv is faster).  uvloop has no
loop.sendfile() and no sock_sendfile() of its own (it inherits asyncio's
NotImplementedError / read-and-send fallback): its sendfile rows say n/a.

Cases:
  spawn        create_subprocess_exec('/bin/true') and wait(): one round trip
  pipe_read    a child writes 256 MiB to its stdout; the parent reads it all
               with a SubprocessProtocol (per MiB)
  pipe_write   the parent writes 64 MiB to a child's stdin (cat > /dev/null),
               paced by drain() (per MiB).  Two references with no loop run
               interleaved with the loops: the same 256 KiB pieces written by
               blocking os.write() into a real pipe (grown to 1 MiB, as
               asyncuv grows a busy one) and into a socket pair (what uvloop
               gives a child for its stdin).  Blocking writes are the least a
               parent can do, so the pipe reference is the best any loop can
               reach while the child gets a real pipe.
  udp_pingpong one 64-byte datagram each way between two endpoints on
               127.0.0.1 (per round trip)
  sendfile     loop.sendfile() of a 64 MiB file over a loopback TCP
               connection to a protocol that counts the bytes (per MiB)
  sock_sendfile  loop.sock_sendfile() of the same file over a connected
               non-blocking socket to the same counting protocol (per MiB)
"""

import argparse
import asyncio
import fcntl
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

LOOPS = ('asyncio', 'uvloop', 'asyncuv')


def new_loop(name):
    if name == 'asyncio':
        return asyncio.SelectorEventLoop()
    if name == 'uvloop':
        import uvloop
        return uvloop.new_event_loop()
    import asyncuv
    return asyncuv.new_event_loop()


# --- Cases: each returns (seconds, operations) --------------------------------

async def case_spawn(loop, n):
    start = time.perf_counter()
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec('/bin/true')
        assert await proc.wait() == 0
    return time.perf_counter() - start, n


class _Counter(asyncio.SubprocessProtocol):
    def __init__(self, done):
        self.done = done
        self.nbytes = 0

    def pipe_data_received(self, fd, data):
        self.nbytes += len(data)

    def process_exited(self):
        pass

    def connection_lost(self, exc):
        self.done.set_result(self.nbytes)


async def case_pipe_read(loop, mib):
    done = loop.create_future()
    start = time.perf_counter()
    transport, _ = await loop.subprocess_exec(
        lambda: _Counter(done), 'head', '-c', str(mib << 20), '/dev/zero',
        stdin=None, stderr=None)
    nbytes = await done
    elapsed = time.perf_counter() - start
    transport.close()
    assert nbytes == mib << 20, nbytes
    return elapsed, mib


#: pipe_write's piece size, for the loops and the references alike.
PIPE_WRITE_CHUNK = 256 << 10


async def case_pipe_write(loop, mib):
    proc = await asyncio.create_subprocess_exec(
        'cat', stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    chunk = b'x' * PIPE_WRITE_CHUNK
    start = time.perf_counter()
    for _ in range((mib << 20) // PIPE_WRITE_CHUNK):
        proc.stdin.write(chunk)
        await proc.stdin.drain()
    proc.stdin.close()
    assert await proc.wait() == 0
    return time.perf_counter() - start, mib


def pipe_write_reference(channel, mib):
    """pipe_write with no loop: blocking writes into a real pipe or a
    socket pair that is cat's stdin.  Returns (seconds, MiB)."""
    if channel == 'pipe':
        reader, writer = os.pipe()
        fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 1 << 20)
    else:
        parent, child = socket.socketpair()
        reader, writer = child.detach(), parent.detach()
    proc = subprocess.Popen(['cat'], stdin=reader, stdout=subprocess.DEVNULL)
    os.close(reader)
    chunk = b'x' * PIPE_WRITE_CHUNK
    try:
        start = time.perf_counter()
        for _ in range((mib << 20) // PIPE_WRITE_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(writer, view):]
    finally:
        os.close(writer)
    assert proc.wait() == 0
    return time.perf_counter() - start, mib


#: Rows measured without a loop, next to the loops, by case.
REFERENCES = {
    'pipe_write': {'pipe, no loop': lambda mib: pipe_write_reference('pipe', mib),
                   'socketpair, no loop':
                       lambda mib: pipe_write_reference('socketpair', mib)},
}


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class _Pinger(asyncio.DatagramProtocol):
    def __init__(self, n, done):
        self.left = n
        self.done = done

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.left -= 1
        if self.left:
            self.transport.sendto(data)
        else:
            self.done.set_result(None)


async def case_udp_pingpong(loop, n):
    server, _ = await loop.create_datagram_endpoint(
        _Echo, local_addr=('127.0.0.1', 0))
    addr = server.get_extra_info('sockname')
    done = loop.create_future()
    client, _ = await loop.create_datagram_endpoint(
        lambda: _Pinger(n, done), remote_addr=addr)
    start = time.perf_counter()
    client.sendto(b'p' * 64)
    await done
    elapsed = time.perf_counter() - start
    client.close()
    server.close()
    return elapsed, n


class _Sink(asyncio.Protocol):
    def __init__(self, expect, done):
        self.expect = expect
        self.done = done
        self.nbytes = 0

    def data_received(self, data):
        self.nbytes += len(data)
        if self.nbytes == self.expect:
            self.done.set_result(None)


_SENDFILE_PATH = None


def sendfile_path(mib):
    global _SENDFILE_PATH
    if _SENDFILE_PATH is None:
        fd, path = tempfile.mkstemp(prefix='asyncuv-bench-')
        with os.fdopen(fd, 'wb') as f:
            block = os.urandom(1 << 20)
            for _ in range(mib):
                f.write(block)
        _SENDFILE_PATH = path
    return _SENDFILE_PATH


async def case_sendfile(loop, mib):
    size = mib << 20
    done = loop.create_future()
    server = await loop.create_server(lambda: _Sink(size, done), '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, '127.0.0.1', port)
    with open(sendfile_path(mib), 'rb') as f:
        start = time.perf_counter()
        sent = await loop.sendfile(transport, f)
        await done
        elapsed = time.perf_counter() - start
    assert sent == size
    transport.close()
    server.close()
    await server.wait_closed()
    return elapsed, mib



async def case_sock_sendfile(loop, mib):
    size = mib << 20
    done = loop.create_future()
    server = await loop.create_server(lambda: _Sink(size, done), '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ('127.0.0.1', port))
        with open(sendfile_path(mib), 'rb') as f:
            start = time.perf_counter()
            sent = await loop.sock_sendfile(sock, f)
            await done
            elapsed = time.perf_counter() - start
    finally:
        sock.close()
    assert sent == size
    server.close()
    await server.wait_closed()
    return elapsed, mib

CASES = {
    # name: (function, default size, unit, loops without the feature)
    'spawn': (case_spawn, 200, 'spawn+wait', ()),
    'pipe_read': (case_pipe_read, 256, 'MiB', ()),
    'pipe_write': (case_pipe_write, 64, 'MiB', ()),
    'udp_pingpong': (case_udp_pingpong, 20000, 'round trip', ()),
    'sendfile': (case_sendfile, 64, 'MiB', ('uvloop',)),
    'sock_sendfile': (case_sock_sendfile, 64, 'MiB', ('uvloop',)),
}


def run_case(loop_name, case, size):
    reference = REFERENCES.get(case, {}).get(loop_name)
    if reference is not None:
        gc.collect()
        elapsed, ops = reference(size)
        return elapsed / ops
    func = CASES[case][0]
    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        gc.collect()
        elapsed, ops = loop.run_until_complete(func(loop, size))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return elapsed / ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--only', default=','.join(CASES))
    parser.add_argument('--scale', type=float, default=1.0,
                        help='multiply every case size (0.1 for a quick run)')
    args = parser.parse_args()
    cases = [c.strip() for c in args.only.split(',') if c.strip()]
    for case in cases:
        if case not in CASES:
            parser.error(f'unknown case {case!r}')
    try:
        import uvloop  # noqa: F401
        loops = LOOPS
    except ImportError:
        print('uvloop not importable: asyncio and asyncuv only', file=sys.stderr)
        loops = ('asyncio', 'asyncuv')

    results = {}
    try:
        for case in cases:
            _, size, unit, missing = CASES[case]
            size = max(1, int(size * args.scale))
            names = [name for name in loops if name not in missing]
            names += list(REFERENCES.get(case, ()))
            times = {name: [] for name in names}
            for rep in range(args.repeat):
                order = names[rep % len(names):] + names[:rep % len(names)]
                for name in order:
                    times[name].append(run_case(name, case, size))
            results[case] = (unit, {n: statistics.median(t) for n, t in times.items()})
    finally:
        if _SENDFILE_PATH is not None:
            os.unlink(_SENDFILE_PATH)

    print(f'median wall time per operation, {args.repeat} runs, loops interleaved')
    print(f'{"case":<14}{"unit":<12}{"asyncio":>12}{"uvloop":>12}{"asyncuv":>12}'
          f'{"vs asyncio":>12}{"vs uvloop":>11}')
    for case, (unit, med) in results.items():
        def cell(name):
            return f'{med[name] * 1e6:10.1f}us' if name in med else f'{"n/a":>12}'
        vs_aio = med['asyncuv'] / med['asyncio']
        vs_uv = (f'{med["asyncuv"] / med["uvloop"]:11.2f}' if 'uvloop' in med
                 else f'{"n/a":>11}')
        print(f'{case:<14}{unit:<12}{cell("asyncio")}{cell("uvloop")}'
              f'{cell("asyncuv")}{vs_aio:12.2f}{vs_uv}')
    for case, (unit, med) in results.items():
        for name in REFERENCES.get(case, ()):
            vs_uv = (f', {med[name] / med["uvloop"]:.2f}x uvloop'
                     if 'uvloop' in med else '')
            print(f'{case} reference, {name}: {med[name] * 1e6:.1f}us per '
                  f'{unit}{vs_uv}')


if __name__ == '__main__':
    main()

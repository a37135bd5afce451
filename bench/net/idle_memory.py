#!/usr/bin/python3
"""Memory per idle connection of the echo server, per event loop.

    /usr/bin/python3 bench/net/idle_memory.py                # 10,000 conns
    /usr/bin/python3 bench/net/idle_memory.py -n 2000 --loops asyncio,uvloop

For each loop: start ``echo_server.py --mode protocol`` in a subprocess,
warm it up (a few hundred connections opened, used once and closed), read
its RSS (VmRSS of /proc/PID/status), open N connections from this process
and leave them idle, read the RSS again, and report

    (RSS after - RSS before) / N   bytes per connection.

Each connection sends one byte and waits for its echo before counting as
open: that proves the server has accepted it and built its transport and
protocol (a bare connect() may still sit in the listen backlog).  So "idle"
means "has done one tiny exchange, then nothing".  Kernel socket buffers are
not in RSS and are not counted.

RLIMIT_NOFILE is raised as needed here (the hard limit too, when running as
root) before the server starts, so it inherits it; the server raises its own
soft limit to the hard one.  With at least two CPUs the server runs on one
and this client on another, as in run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import time

import procutil
from procutil import NotImplementedLoop, Server

ECHO_SERVER = os.path.join(procutil.HERE, "echo_server.py")
LOOPS = ("asyncio", "uvloop", "asyncuv")
BATCH = 100          # connections opened before their pings are answered
WARMUP_CONNS = 300   # connections used once and closed before "before"


def ensure_nofile(n: int) -> int:
    """Make room for *n* more descriptors; return the soft limit obtained."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # needs CAP_SYS_RESOURCE (root)
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def open_pinged(port: int, n: int, timeout: float) -> list[socket.socket]:
    """Open *n* TCP connections to 127.0.0.1:*port*, each echoing 1 byte."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            batch = []
            for _ in range(min(BATCH, n - len(socks))):
                s = socket.create_connection(("127.0.0.1", port), timeout)
                socks.append(s)
                batch.append(s)
                s.sendall(b"x")
            for s in batch:
                if s.recv(1) != b"x":
                    raise procutil.ServerError("idle connection: no echo")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def measure(loop: str, n: int = 10_000, *, python: str = procutil.DEFAULT_PYTHON,
            env: dict | None = None, server_cpu: int | None = None,
            settle: float = 1.0, timeout: float = 30.0) -> dict:
    """Measure one loop; return a dict with the RSS figures (bytes).

    Raises :class:`procutil.NotImplementedLoop` when the loop cannot run the
    protocol-mode echo server, :class:`procutil.ServerError` on failures.
    """
    limit = ensure_nofile(n)
    if limit < n + 64:
        raise procutil.ServerError(
            f"RLIMIT_NOFILE is {limit}: too low for {n} connections")
    cmd = [python, ECHO_SERVER, "--loop", loop, "--mode", "protocol",
           "--backlog", "1024"]
    with Server(cmd, cpu=server_cpu, env=env) as server:
        for s in open_pinged(server.port, WARMUP_CONNS, timeout):
            s.close()
        time.sleep(settle)
        before = server.rss_bytes()
        t0 = time.monotonic()
        socks = open_pinged(server.port, n, timeout)
        try:
            opened = time.monotonic() - t0
            time.sleep(settle)
            after = server.rss_bytes()
            server.check_alive()
        finally:
            server.stop()  # before closing: no need for it to see 10k EOFs
            for s in socks:
                s.close()
    return {"loop": loop, "connections": n, "rss_before": before,
            "rss_after": after, "bytes_per_conn": (after - before) / n,
            "open_seconds": opened}


def main(argv: list[str] | None = None) -> int:
    """Command line: measure each loop, print a table, optionally JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loops", default=",".join(LOOPS),
                    help="comma-separated (default: %(default)s)")
    ap.add_argument("-n", "--connections", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1,
                    help="measurements per loop; the median is shown")
    ap.add_argument("--python", default=procutil.DEFAULT_PYTHON)
    ap.add_argument("--server-cpu", type=int, default=None)
    ap.add_argument("--client-cpu", type=int, default=None)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)

    env, note = procutil.python_env(args.python)
    if note:
        print(note, file=sys.stderr)
    server_cpu = client_cpu = None
    if not args.no_pin and procutil.can_pin():
        cpus = sorted(os.sched_getaffinity(0))
        server_cpu = cpus[0] if args.server_cpu is None else args.server_cpu
        client_cpu = cpus[1] if args.client_cpu is None else args.client_cpu
        os.sched_setaffinity(0, {client_cpu})

    results = []
    print(f"{'loop':<8} {'conns':>6} {'RSS before':>11} {'RSS after':>11} "
          f"{'bytes/conn':>10}")
    status = 0
    for loop in [x for x in args.loops.split(",") if x]:
        if loop == "uvloop" and not procutil.importable(args.python, "uvloop"):
            print(f"{loop:<8} skipped: not importable")
            continue
        samples = []
        try:
            for _ in range(args.repeat):
                samples.append(measure(loop, args.connections,
                                       python=args.python, env=env,
                                       server_cpu=server_cpu))
        except NotImplementedLoop:
            print(f"{loop}: network not implemented yet")
            continue
        except (procutil.ServerError, OSError) as exc:
            print(f"{loop:<8} ERROR: {exc}")
            status = 1
            continue
        row = dict(samples[0], samples=samples,
                   bytes_per_conn=statistics.median(
                       s["bytes_per_conn"] for s in samples))
        results.append(row)
        print(f"{loop:<8} {row['connections']:>6} "
              f"{row['rss_before'] / 2**20:>9.1f}Mi "
              f"{row['rss_after'] / 2**20:>9.1f}Mi "
              f"{row['bytes_per_conn']:>10.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"idle_memory": results}, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())

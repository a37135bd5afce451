#!/usr/bin/python3
"""Network benchmarks: stock asyncio vs uvloop vs asyncuv, over loopback.

    /usr/bin/python3 bench/net/run.py            # everything, ~5-8 min
    /usr/bin/python3 bench/net/run.py --quick    # CI-sized, < 2 min
    /usr/bin/python3 bench/net/run.py --only echo --sizes 1 --json out.json

Benchmarks (see bench/README.md, "Network benchmarks"):

* echo: ``echo_server.py`` in each of its four modes (streams, protocol,
  buffered, sockets) x message sizes 1, 10, 100 KiB, driven by the C client
  ``echo_client.c`` (C connections, one message in flight on each);
* ceiling: the same load against two C servers, measured inside the loops'
  rows and interleaved with them: ``libuv_echo.c`` (pure libuv: the ceiling
  for a loop built on libuv) in the protocol rows, and ``epoll_floor.c``
  (epoll, read, write and nothing else: the kernel's floor) in every echo
  row and, answering HTTP, in the http row.  With ``app_cost.py`` (the
  servers' own Python work, timed alone) it gives each row a bound: the
  lowest asyncuv/uvloop ratio any loop running that server reaches here;
* unix: protocol mode, 1 KiB, over a Unix socket;
* http: ``http_server.py`` (httptools) driven by ``wrk``;
* tls: the protocol-mode echo over TLS (``echo_server.py --tls``), 1 and 64
  KiB messages, driven by ``echo_client_tls -S`` (echo_client.c built with
  OpenSSL);
* https: ``http_server.py --tls`` driven by ``wrk https://``: 13-byte bodies
  on 50 connections, 64 KiB bodies on 10;
* idle: server memory per idle connection (``idle_memory.py``).

For every row the loops are interleaved -- repetition 1 runs asyncio, uvloop,
asyncuv; repetition 2 uvloop, asyncuv, asyncio; ... -- and the median of the
repetitions is shown.  Each measurement starts a fresh server process.  With
two or more CPUs the server is pinned to one CPU and the client (and this
script) to another.

The most repeatable figure is the server's CPU time per request: its
utime+stime (from /proc/PID/stat) over the measured interval divided by the
requests completed in it.  Ratios asyncuv/uvloop and asyncuv/asyncio are of
that figure: below 1.00x asyncuv spends less CPU per request.

asyncuv is included automatically: when its server cannot start because the
loop raises NotImplementedError, "asyncuv: network not implemented yet" is
printed and its rows are skipped.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import idle_memory
import procutil

# bench/machine.py, shared with bench/workload.py.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import machine  # noqa: E402
from procutil import LineReader, NotImplementedLoop, Server, ServerError

HERE = procutil.HERE
LOOPS = ("asyncio", "uvloop", "asyncuv")
CEILING = "libuv-C"
FLOOR = "epoll-C"
#: The C servers and the binaries that are them.
C_SERVERS = {CEILING: "libuv_echo", FLOOR: "epoll_floor"}
#: Certificate and key of the TLS rows (self-signed, for localhost).
TLS_PEM = os.path.join(HERE, "tls-cert.pem")
MODES = ("streams", "protocol", "buffered", "sockets")
KIB = 1024


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@dataclass
class Config:
    """Everything a run needs to know; filled from the command line."""

    python: str
    env: dict
    loops: list[str]
    repeat: int
    duration: float          # measured seconds per echo sample
    warmup: float            # warm-up seconds per echo sample
    http_duration: int       # wrk -d, whole seconds
    conns: int               # echo connections
    http_conns: int          # wrk connections
    idle_conns: int
    server_cpu: int | None
    client_cpu: int | None
    bin_dir: str
    verbose: bool
    tmp_dir: str


@dataclass
class Row:
    """One benchmark row: a workload measured on several servers."""

    name: str
    kind: str                # echo | ceiling | unix | http | idle
    loops: list[str]
    mode: str = "protocol"
    size: int = 0
    conns: int = 0           # connections, if not the configured default
    samples: dict = field(default_factory=dict)   # loop -> [sample dict]
    status: dict = field(default_factory=dict)    # loop -> ok|skipped|ERROR
    errors: dict = field(default_factory=dict)    # loop -> message


def build_rows(args: argparse.Namespace, loops: list[str]) -> list[Row]:
    """The benchmark rows selected by --quick / --only / --sizes / --modes."""
    only = set(args.only.split(",")) if args.only else {
        "echo", "ceiling", "unix", "http", "tls", "https", "idle"}
    if args.quick and not args.only:
        only.discard("unix")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [1] if args.quick else [1, 10, 100])
    modes = args.modes.split(",") if args.modes else list(MODES)
    c_servers = list(C_SERVERS) if "ceiling" in only else []
    rows: list[Row] = []
    for size in sizes:
        if "echo" in only:
            for mode in modes:
                # The C servers join the rows, so that their figures come
                # from the same minutes as the loops': the floor every echo
                # row, the libuv ceiling the protocol rows.
                extra = [c for c in c_servers
                         if c == FLOOR or mode == "protocol"]
                rows.append(Row(f"echo {mode} {size}KiB", "echo",
                                loops + extra, mode=mode, size=size * KIB))
        if c_servers and ("echo" not in only or "protocol" not in modes):
            rows.append(Row(f"echo {size}KiB (C servers)", "ceiling",
                            list(c_servers), size=size * KIB))
    if "unix" in only:
        rows.append(Row("echo protocol 1KiB unix", "unix", loops,
                        size=1 * KIB))
    if "http" in only:
        rows.append(Row("http httptools", "http",
                        loops + ([FLOOR] if c_servers else [])))
    if "tls" in only:
        tls_sizes = [int(s) for s in args.tls_sizes.split(",")] if \
            args.tls_sizes else ([1] if args.quick else [1, 64])
        for size in tls_sizes:
            rows.append(Row(f"tls echo {size}KiB", "tls", loops,
                            size=size * KIB))
    if "https" in only:
        rows.append(Row("https httptools 13B", "https", loops, size=0,
                        conns=args.https_conns))
        if not args.quick:
            rows.append(Row("https httptools 64KiB", "https", loops,
                            size=64 * KIB, conns=args.https_big_conns))
    if "idle" in only:
        rows.append(Row(f"idle memory ({args.idle_conns} conns)", "idle",
                        loops))
    return rows


# --------------------------------------------------------------------------
# Building the C programs
# --------------------------------------------------------------------------


def build_binaries(out_dir: str) -> dict[str, str | None]:
    """Compile echo_client and the C servers with ``cc -O2`` into *out_dir*.

    Returns ``{name: path or None}``; a failed build prints why.
    """
    cc = os.environ.get("CC", "cc")
    uv_flags = ["-luv"]
    if shutil.which("pkg-config"):
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            uv_flags = out.stdout.split()
    recipes = {
        "echo_client": ["echo_client.c"],
        "echo_client_tls": ["echo_client.c", "-DECHO_TLS", "-lssl",
                            "-lcrypto"],
        "libuv_echo": ["libuv_echo.c"] + uv_flags,
        "epoll_floor": ["epoll_floor.c"],
    }
    built: dict[str, str | None] = {}
    for name, args in recipes.items():
        path = os.path.join(out_dir, name)
        cmd = [cc, "-O2", "-Wall", "-o", path,
               os.path.join(HERE, args[0])] + args[1:]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"note: cannot build {name}: {' '.join(cmd)}\n"
                  f"{res.stderr.strip()}", file=sys.stderr)
            built[name] = None
        else:
            built[name] = path
    return built


# --------------------------------------------------------------------------
# One measurement of each kind
# --------------------------------------------------------------------------


def parse_kv(line: str) -> dict:
    """``RESULT a=1 b=2.5`` -> ``{"a": 1, "b": 2.5}``."""
    out = {}
    for item in line.split()[1:]:
        key, _, value = item.partition("=")
        try:
            out[key] = int(value)
        except ValueError:
            out[key] = float(value)
    return out


def server_cmd(cfg: Config, row: Row, loop: str, unix: str | None) -> list:
    """The command line that starts the server for *row* on *loop*."""
    if loop in C_SERVERS:
        cmd = [os.path.join(cfg.bin_dir, C_SERVERS[loop])]
        if row.kind == "http":
            cmd.append("--http")
    elif row.kind in ("http", "https"):
        cmd = [cfg.python, os.path.join(HERE, "http_server.py"),
               "--loop", loop]
        if row.kind == "https":
            cmd += ["--tls", TLS_PEM]
            if row.size:
                cmd += ["--body-size", str(row.size)]
    else:
        cmd = [cfg.python, os.path.join(HERE, "echo_server.py"),
               "--loop", loop, "--mode", row.mode]
        if row.kind == "tls":
            cmd += ["--tls", TLS_PEM]
    if unix:
        cmd += ["--unix", unix]
    return cmd


def measure_echo(cfg: Config, row: Row, loop: str) -> dict:
    """Run the C echo client against a fresh server; one sample."""
    unix = (os.path.join(cfg.tmp_dir, f"echo-{loop}.sock")
            if row.kind == "unix" else None)
    with Server(server_cmd(cfg, row, loop, unix), cpu=cfg.server_cpu,
                env=cfg.env) as server:
        target = ["-u", unix] if unix else ["-H", "127.0.0.1",
                                            "-p", str(server.port)]
        if row.kind == "tls":
            target += ["-S"]
        client_bin = "echo_client_tls" if row.kind == "tls" else "echo_client"
        cmd = [os.path.join(cfg.bin_dir, client_bin), *target,
               "-c", str(cfg.conns), "-s", str(row.size),
               "-d", str(cfg.duration), "-w", str(cfg.warmup)]
        client = procutil.spawn(cmd, cfg.client_cpu, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        try:
            reader = LineReader(client)
            limit = cfg.warmup + cfg.duration + 30
            cpu0 = t0 = None
            result = None
            while result is None:
                line = reader.readline(limit)
                if line is None:
                    break
                if line == "START":
                    cpu0, t0 = server.cpu_times(), time.monotonic()
                elif line.startswith("RESULT"):
                    cpu1, t1 = server.cpu_times(), time.monotonic()
                    result = parse_kv(line)
            client.wait(30)
            server.check_alive()
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            err = client.stderr.read().decode(errors="replace").strip()
            client.stdout.close()
            client.stderr.close()
        if (result is None or cpu0 is None or result.get("errors")
                or not result.get("requests")):
            raise ServerError(f"echo_client failed: {err or 'no result'}"
                              f"{server_state(server)}")
    return sample_from(result["requests"], result["seconds"], cpu0, cpu1,
                       t1 - t0, result["p50_us"], result["p99_us"])


def server_state(server: Server) -> str:
    """What became of the server, to append to an error message."""
    time.sleep(0.2)  # let a crashing server finish writing and exiting
    state = ("; server still running" if server.alive() else
             f"; server exited with status {server.proc.returncode}")
    tail = server.stderr_tail(1500)
    return state + (f"; server stderr:\n{tail}" if tail else "")


def sample_from(requests: int, seconds: float, cpu0: tuple, cpu1: tuple,
                wall: float, p50: float, p99: float) -> dict:
    """One sample as stored in the results and the JSON output; cpu0 and
    cpu1 are the server's (user, system) times before and after."""
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = user + system
    return {"requests": requests, "seconds": seconds,
            "rps": requests / seconds, "p50_us": p50, "p99_us": p99,
            "server_cpu_s": cpu, "server_cpu_util": cpu / wall,
            "cpu_us_per_req": cpu / requests * 1e6,
            "user_us_per_req": user / requests * 1e6,
            "sys_us_per_req": system / requests * 1e6}


HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_WRK_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def http_warmup(port: int, n: int = 1000, tls: bool = False,
                body: int = 13) -> None:
    """Send *n* keep-alive requests on one connection and check answers
    (the body, Hello, World! repeated, ends with a known tail)."""
    tail = (b"Hello, World!" * (body // 13 + 1))[:body][-13:]
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        buf = b""
        for _ in range(n):
            s.sendall(HTTP_REQUEST)
            while tail not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise ServerError("http server closed the connection")
                buf += chunk
            buf = buf[buf.index(tail) + len(tail):]
        if tls:
            s.close()


def parse_wrk(text: str) -> dict:
    """Requests, seconds, p50/p99 (µs) and error counts from wrk --latency."""
    def lat(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if not m:
            raise ServerError(f"cannot parse wrk's {pct}% latency:\n{text}")
        return float(m.group(1)) * _WRK_UNITS[m.group(2)]

    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ServerError(f"cannot parse wrk output:\n{text}")
    errors = 0
    m_err = re.search(r"Socket errors: connect (\d+), read (\d+), "
                      r"write (\d+), timeout (\d+)", text)
    if m_err:
        errors += sum(int(x) for x in m_err.groups())
    m_non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m_non2xx:
        errors += int(m_non2xx.group(1))
    return {"requests": int(m.group(1)),
            "seconds": float(m.group(2)) * _WRK_UNITS[m.group(3)] / 1e6,
            "p50_us": lat("50"), "p99_us": lat("99"), "errors": errors}


def measure_http(cfg: Config, row: Row, loop: str) -> dict:
    """Run wrk against a fresh http_server.py; one sample."""
    with Server(server_cmd(cfg, row, loop, None), cpu=cfg.server_cpu,
                env=cfg.env) as server:
        tls = row.kind == "https"
        http_warmup(server.port, 200 if tls and row.size else 1000, tls,
                    row.size or 13)
        scheme = "https" if tls else "http"
        cmd = ["wrk", "-t1", f"-c{row.conns or cfg.http_conns}",
               f"-d{cfg.http_duration}s",
               "--latency", f"{scheme}://127.0.0.1:{server.port}/"]
        cpu0, t0 = server.cpu_times(), time.monotonic()
        wrk = procutil.spawn(cmd, cfg.client_cpu, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            out, err = wrk.communicate(timeout=cfg.http_duration + 60)
        except subprocess.TimeoutExpired:
            wrk.kill()
            wrk.communicate()
            raise ServerError("wrk did not finish")
        cpu1, t1 = server.cpu_times(), time.monotonic()
        server.check_alive()
        text = out.decode(errors="replace")
        if wrk.returncode != 0:
            raise ServerError(f"wrk failed: {err.decode(errors='replace')}")
        res = parse_wrk(text)
        if res["errors"] or not res["requests"]:
            raise ServerError(f"wrk saw {res['errors']} errors:\n{text}"
                              f"{server_state(server)}")
    return sample_from(res["requests"], res["seconds"], cpu0, cpu1, t1 - t0,
                       res["p50_us"], res["p99_us"])


def measure_idle(cfg: Config, row: Row, loop: str) -> dict:
    """Server memory per idle connection; one sample."""
    return idle_memory.measure(loop, cfg.idle_conns, python=cfg.python,
                               env=cfg.env, server_cpu=cfg.server_cpu)


MEASURE = {"echo": measure_echo, "ceiling": measure_echo,
           "unix": measure_echo, "http": measure_http, "idle": measure_idle,
           "tls": measure_echo, "https": measure_http}


def impl_key(row: Row) -> str:
    """Which server feature a row needs (for remembering what is missing)."""
    return {"echo": row.mode, "unix": "unix", "http": "protocol",
            "idle": "protocol", "tls": "tls", "https": "tls"}.get(row.kind,
                                                                   row.kind)


# --------------------------------------------------------------------------
# Running the rows
# --------------------------------------------------------------------------


def run_rows(cfg: Config, rows: list[Row]) -> None:
    """Measure every row, loops interleaved, repetitions rotated."""
    missing: dict[tuple[str, str], str] = {}   # (loop, feature) -> why
    announced = set()
    for index, row in enumerate(rows, 1):
        t_row = time.monotonic()
        repeat = 1 if row.kind == "idle" else cfg.repeat
        for loop in row.loops:
            row.samples[loop] = []
        for rep in range(repeat):
            k = rep % len(row.loops)
            for loop in row.loops[k:] + row.loops[:k]:
                if loop in row.status:            # skipped or failed already
                    continue
                why = missing.get((loop, impl_key(row)))
                if why is not None:
                    row.status[loop] = "skipped"
                    row.errors[loop] = why
                    continue
                try:
                    sample = MEASURE[row.kind](cfg, row, loop)
                except NotImplementedLoop as exc:
                    why = f"not implemented: {exc}"
                    missing[(loop, impl_key(row))] = why
                    row.status[loop] = "skipped"
                    row.errors[loop] = why
                    if loop not in announced:
                        announced.add(loop)
                        print(f"{loop}: network not implemented yet",
                              file=sys.stderr)
                    continue
                except (ServerError, OSError, subprocess.SubprocessError) as exc:
                    row.status[loop] = "ERROR"
                    row.errors[loop] = f"{type(exc).__name__}: {exc}"
                    print(f"  {row.name} / {loop}: ERROR {exc}",
                          file=sys.stderr)
                    continue
                row.samples[loop].append(sample)
                if cfg.verbose:
                    print(f"  {row.name:<28} {loop:<8} "
                          + describe_sample(sample), file=sys.stderr)
        for loop in row.loops:
            row.status.setdefault(loop, "ok")
        print(f"[{index:2}/{len(rows)}] {row.name:<28} "
              f"{time.monotonic() - t_row:5.1f} s", file=sys.stderr)


def describe_sample(s: dict) -> str:
    """One sample on one line, for -v."""
    if "bytes_per_conn" in s:
        return f"{s['bytes_per_conn']:.0f} B/conn"
    return (f"{s['rps']:10.0f} req/s  p50 {s['p50_us']:.0f} us  "
            f"p99 {s['p99_us']:.0f} us  cpu {s['cpu_us_per_req']:.2f} us/req "
            f"({s['server_cpu_util']:.0%})")


def median_of(samples: list[dict], key: str) -> float | None:
    """Median of *key* over the samples (None when there are none)."""
    values = [s[key] for s in samples if key in s]
    return statistics.median(values) if values else None


def spread(samples: list[dict], key: str) -> float | None:
    """Half the min-max range relative to the median (rough noise)."""
    values = [s[key] for s in samples if key in s]
    if len(values) < 2:
        return None
    med = statistics.median(values)
    return (max(values) - min(values)) / 2 / med if med else None


def app_cost_key(row: Row) -> str | None:
    """The key of *row*'s server in app_cost.py's result, if it has one."""
    if row.kind == "http":
        return "http"
    if row.kind == "echo" and row.mode in ("protocol", "buffered"):
        return f"{row.mode} {row.size // KIB}KiB"
    return None


def measure_app_cost(cfg: Config) -> dict:
    """app_cost.py's microseconds per request, run on the server's CPU."""
    cmd = [cfg.python, os.path.join(HERE, "app_cost.py"), "--json"]
    proc = procutil.spawn(cmd, cfg.server_cpu, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=cfg.env)
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        print(f"note: app_cost.py failed, no bound column: "
              f"{err.decode(errors='replace').strip()}", file=sys.stderr)
        return {}
    return json.loads(out)


def summarize(row: Row, app_cost: dict) -> dict:
    """Per loop medians, and the CPU-per-request (or memory) ratios.

    bound/uvloop is (epoll-C + the server's own Python work) / uvloop: the
    lowest asyncuv/uvloop ratio any loop running this server reaches here.
    """
    key = "bytes_per_conn" if row.kind == "idle" else "cpu_us_per_req"
    per_loop = {}
    for loop in row.loops:
        samples = row.samples.get(loop, [])
        med = {k: median_of(samples, k) for k in (
            "rps", "p50_us", "p99_us", "cpu_us_per_req", "server_cpu_util",
            "user_us_per_req", "sys_us_per_req",
            "bytes_per_conn", "rss_before", "rss_after")}
        med = {k: v for k, v in med.items() if v is not None}
        per_loop[loop] = {"status": row.status.get(loop, "ok"),
                          "error": row.errors.get(loop), "samples": samples,
                          "median": med, "spread": spread(samples, key)}

    def ratio(a: str, b: str) -> float | None:
        """a's median over b's, when both were measured without error."""
        da, db = per_loop.get(a, {}), per_loop.get(b, {})
        if da.get("status") != "ok" or db.get("status") != "ok":
            return None
        va, vb = da["median"].get(key), db["median"].get(key)
        return va / vb if va and vb else None

    def bound() -> float | None:
        floor = ratio(FLOOR, "uvloop")
        app_us = app_cost.get(app_cost_key(row))
        if floor is None or app_us is None:
            return None
        return floor + app_us / per_loop["uvloop"]["median"][key]

    return {"name": row.name, "kind": row.kind, "mode": row.mode,
            "size": row.size, "metric": key, "loops": per_loop,
            "ratios": {"asyncuv/uvloop": ratio("asyncuv", "uvloop"),
                       "asyncuv/asyncio": ratio("asyncuv", "asyncio"),
                       "uvloop/asyncio": ratio("uvloop", "asyncio"),
                       "asyncuv/libuv-C": ratio("asyncuv", CEILING),
                       "asyncuv/epoll-C": ratio("asyncuv", FLOOR),
                       "epoll-C/uvloop": ratio(FLOOR, "uvloop"),
                       "bound/uvloop": bound()}}


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def fmt(value: float | None, spec: str, width: int) -> str:
    """Format *value* right-aligned, or "-" when missing."""
    return f"{'-' if value is None else format(value, spec):>{width}}"


def fmt_ratio(value: float | None) -> str:
    return f"{'n/a' if value is None else f'{value:.2f}x':>9}"


def print_c_servers(traffic: list[dict]) -> None:
    """Ratios against the C servers measured in the same row."""
    rows = [s for s in traffic if any(
        s["ratios"][k] is not None for k in (
            "asyncuv/libuv-C", "asyncuv/epoll-C", "epoll-C/uvloop"))]
    if not rows:
        return
    print(f"\nThe C servers, measured in the same row: {CEILING} is the "
          f"libuv ceiling, {FLOOR}\nthe kernel floor (epoll, read, write "
          f"and nothing else).  bound = ({FLOOR} + the\nserver's own Python "
          f"work, app_cost.py) / uvloop: the lowest asyncuv/uvloop ratio\n"
          f"any loop running this server can reach on this machine\n")
    print(f"{'benchmark':<28} {'uv/' + CEILING:>13} {'uv/' + FLOOR:>13} "
          f"{FLOOR + '/uvloop':>15} {'bound':>9}")
    for s in rows:
        r = s["ratios"]
        print(f"{s['name']:<28} "
              f"{fmt_ratio(r['asyncuv/libuv-C']):>13} "
              f"{fmt_ratio(r['asyncuv/epoll-C']):>13} "
              f"{fmt_ratio(r['epoll-C/uvloop']):>15} "
              f"{fmt_ratio(r['bound/uvloop'])}")


def print_split(traffic: list[dict]) -> None:
    """User and system (kernel) CPU per request, and the ratio asyncuv would
    reach against uvloop if its user time were zero: the system time is
    mostly the network stack, which no loop can shave off."""
    print("\nServer CPU per request split into user / system time, us "
          "(medians of each);\nfloor = asyncuv system time / uvloop total: "
          "asyncuv/uvloop with zero user time\n")
    print(f"{'benchmark':<28} {'uvloop usr':>10} {'uvloop sys':>10} "
          f"{'asyncuv usr':>11} {'asyncuv sys':>11} {'floor':>9}")
    for s in traffic:
        cells = {}
        for loop in ("uvloop", "asyncuv"):
            d = s["loops"].get(loop)
            m = d["median"] if d and d["status"] == "ok" else {}
            cells[loop] = (m.get("user_us_per_req"), m.get("sys_us_per_req"),
                           m.get("cpu_us_per_req"))
        floor = None
        if cells["asyncuv"][1] is not None and cells["uvloop"][2]:
            floor = cells["asyncuv"][1] / cells["uvloop"][2]
        print(f"{s['name']:<28} {fmt(cells['uvloop'][0], '.2f', 10)} "
              f"{fmt(cells['uvloop'][1], '.2f', 10)} "
              f"{fmt(cells['asyncuv'][0], '.2f', 11)} "
              f"{fmt(cells['asyncuv'][1], '.2f', 11)} {fmt_ratio(floor)}")


def print_tables(summaries: list[dict]) -> None:
    """The detailed table, then CPU per request with ratios, then memory."""
    traffic = [s for s in summaries if s["kind"] != "idle"]
    idle = [s for s in summaries if s["kind"] == "idle"]
    if traffic:
        print("\nThroughput and latency (medians); CPU = server CPU time "
              "per request\n")
        print(f"{'benchmark':<28} {'loop':<8} {'req/s':>9} {'p50 us':>8} "
              f"{'p99 us':>8} {'srv CPU':>7} {'CPU us/req':>10} {'±':>5}")
        for s in traffic:
            for loop, d in s["loops"].items():
                m = d["median"]
                if d["status"] != "ok" or not m:
                    status = d["status"] if d["status"] != "ok" else "no data"
                    print(f"{s['name']:<28} {loop:<8} {status}")
                    continue
                sp = d["spread"]
                print(f"{s['name']:<28} {loop:<8} {fmt(m['rps'], ',.0f', 9)} "
                      f"{fmt(m['p50_us'], '.0f', 8)} "
                      f"{fmt(m['p99_us'], '.0f', 8)} "
                      f"{fmt(m['server_cpu_util'] * 100, '.0f', 6)}% "
                      f"{fmt(m['cpu_us_per_req'], '.2f', 10)} "
                      f"{'' if sp is None else f'{sp:.0%}':>5}")
        print("\nServer CPU time per request, us (lower is better); "
              "ratios of those\n")
        print(f"{'benchmark':<28} {'asyncio':>8} {'uvloop':>8} "
              f"{'asyncuv':>8} {CEILING:>8} {FLOOR:>8} {'uv/uvloop':>9} "
              f"{'uv/asyncio':>10} {'uvloop/aio':>10}")
        for s in traffic:
            cells = []
            for loop in (*LOOPS, *C_SERVERS):
                d = s["loops"].get(loop)
                if d is None:
                    cells.append(f"{'':>8}")
                elif d["status"] == "skipped":
                    cells.append(f"{'skip':>8}")
                elif d["status"] == "ERROR":
                    cells.append(f"{'ERROR':>8}")
                else:
                    cells.append(fmt(d["median"].get("cpu_us_per_req"),
                                     ".2f", 8))
            r = s["ratios"]
            print(f"{s['name']:<28} {' '.join(cells)} "
                  f"{fmt_ratio(r['asyncuv/uvloop'])} "
                  f"{fmt_ratio(r['asyncuv/asyncio']):>10} "
                  f"{fmt_ratio(r['uvloop/asyncio']):>10}")
        print_c_servers(traffic)
        print_split(traffic)
    for s in idle:
        print("\nIdle connections: server RSS growth per connection "
              "(lower is better)\n")
        print(f"{'loop':<8} {'conns':>6} {'RSS before':>11} {'RSS after':>11} "
              f"{'bytes/conn':>10}")
        for loop, d in s["loops"].items():
            m = d["median"]
            if d["status"] != "ok" or not m:
                print(f"{loop:<8} {d['status']}")
                continue
            conns = d["samples"][0]["connections"]
            print(f"{loop:<8} {conns:>6} {m['rss_before'] / 2**20:>9.1f}Mi "
                  f"{m['rss_after'] / 2**20:>9.1f}Mi "
                  f"{m['bytes_per_conn']:>10.0f}")
        r = s["ratios"]
        print(f"asyncuv/uvloop {fmt_ratio(r['asyncuv/uvloop']).strip()}  "
              f"asyncuv/asyncio {fmt_ratio(r['asyncuv/asyncio']).strip()}  "
              f"uvloop/asyncio {fmt_ratio(r['uvloop/asyncio']).strip()}")
    skipped = sorted({loop for s in summaries
                      for loop, d in s["loops"].items()
                      if d["status"] == "skipped"})
    for loop in skipped:
        print(f"\n{loop}: network not implemented yet (rows marked skip)")
    errors = [(s["name"], loop, d["error"]) for s in summaries
              for loop, d in s["loops"].items() if d["status"] == "ERROR"]
    if errors:
        print("\nErrors:")
        for name, loop, msg in errors:
            print(f"  {name} / {loop}: {msg}")


def environment(cfg: Config, pin_note: str, cpus: list[int]) -> dict:
    """Facts about the machine and the software, for the JSON output."""
    def cmd_out(cmd: list[str]) -> str | None:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return (res.stdout or res.stderr).strip().splitlines()[0] \
            if (res.stdout or res.stderr).strip() else None

    return {
        "python": cmd_out([cfg.python, "-VV"]),
        "uvloop": procutil.module_version(cfg.python, "uvloop", cfg.env),
        "asyncuv": procutil.module_version(cfg.python, "asyncuv", cfg.env),
        "httptools": procutil.module_version(cfg.python, "httptools",
                                             cfg.env),
        "libuv": cmd_out(["pkg-config", "--modversion", "libuv"]),
        "wrk": cmd_out(["wrk", "--version"]),
        "kernel": machine.kernel(),
        "cpu": machine.cpu_model(),
        "cpus_available": cpus,
        "pinning": pin_note,
        "clk_tck": procutil.CLK_TCK,
    }


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Network benchmarks: asyncio vs uvloop vs asyncuv "
                    "(loopback only).")
    ap.add_argument("--quick", action="store_true",
                    help="short runs, 1 KiB echo only, no Unix row, "
                         "2,000 idle connections (< 2 min)")
    ap.add_argument("--loops", default=",".join(LOOPS),
                    help="comma-separated (default: %(default)s)")
    ap.add_argument("--only", metavar="KINDS",
                    help="comma-separated subset of "
                         "echo,ceiling,unix,http,tls,https,idle")
    ap.add_argument("--tls-sizes", metavar="KIB",
                    help="TLS echo message sizes in KiB (default 1,64; "
                         "1 with --quick)")
    ap.add_argument("--https-conns", type=int, default=50,
                    help="wrk connections, HTTPS small bodies "
                         "(default %(default)s)")
    ap.add_argument("--https-big-conns", type=int, default=10,
                    help="wrk connections, HTTPS 64 KiB bodies "
                         "(default %(default)s)")
    ap.add_argument("--sizes", metavar="KIB",
                    help="echo message sizes in KiB (default 1,10,100; "
                         "1 with --quick)")
    ap.add_argument("--modes", help="echo modes (default: all four)")
    ap.add_argument("--repeat", type=int,
                    help="repetitions per row (default 3)")
    ap.add_argument("--duration", type=float,
                    help="measured seconds per echo sample (default 2; "
                         "1 with --quick)")
    ap.add_argument("--warmup", type=float,
                    help="warm-up seconds per echo sample (default 0.5; "
                         "0.3 with --quick)")
    ap.add_argument("--http-duration", type=int,
                    help="wrk seconds per sample (default 2; 1 with --quick)")
    ap.add_argument("--conns", type=int, default=10,
                    help="echo connections (default %(default)s)")
    ap.add_argument("--http-conns", type=int, default=100,
                    help="wrk connections (default %(default)s)")
    ap.add_argument("--idle-conns", type=int,
                    help="idle connections (default 10000; 2000 with --quick)")
    ap.add_argument("--server-cpu", type=int)
    ap.add_argument("--client-cpu", type=int)
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin server and client to CPUs")
    ap.add_argument("--python", default=procutil.DEFAULT_PYTHON,
                    help="interpreter for the servers (default %(default)s)")
    ap.add_argument("--bin-dir",
                    help="use echo_client and the C servers from here (after "
                         "make -C bench/net) instead of compiling them")
    ap.add_argument("--json", metavar="FILE",
                    help="write all samples and the environment here")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print every sample")
    args = ap.parse_args(argv)
    quick = args.quick
    if args.repeat is None:
        args.repeat = 3
    if args.duration is None:
        args.duration = 1.0 if quick else 2.0
    if args.warmup is None:
        args.warmup = 0.3 if quick else 0.5
    if args.http_duration is None:
        args.http_duration = 1 if quick else 2
    if args.idle_conns is None:
        args.idle_conns = 2000 if quick else 10_000
    return args


def choose_cpus(args: argparse.Namespace) -> tuple[int | None, int | None,
                                                     str]:
    """Server and client CPUs (None: unpinned) and a note on the choice."""
    if args.no_pin:
        return None, None, "off (--no-pin)"
    if not procutil.can_pin():
        return None, None, "off (fewer than 2 CPUs available)"
    cpus = sorted(os.sched_getaffinity(0))
    server = cpus[0] if args.server_cpu is None else args.server_cpu
    client = cpus[1] if args.client_cpu is None else args.client_cpu
    if server == client or {server, client} - set(cpus):
        sys.exit(f"run.py: bad CPUs {server}/{client}; available: {cpus}")
    return server, client, f"server CPU {server}, client CPU {client}"


def main(argv: list[str] | None = None) -> int:
    """Build, measure, print; exit status 1 if any measurement failed."""
    args = parse_args(argv)
    t_start = time.monotonic()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu, pin_note = choose_cpus(args)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})   # this script: client side
    print(f"pinning: {pin_note}", file=sys.stderr)

    env, note = procutil.python_env(args.python)
    if note:
        print(note, file=sys.stderr)
    loops = []
    for loop in [x for x in args.loops.split(",") if x]:
        if loop not in LOOPS:
            sys.exit(f"run.py: unknown loop {loop!r}")
        if loop != "asyncio" and not procutil.importable(args.python, loop,
                                                         env):
            print(f"{loop}: not importable by {args.python}; skipped",
                  file=sys.stderr)
            continue
        loops.append(loop)

    tmp_dir = tempfile.mkdtemp(prefix="asyncuv-bench-net-")
    atexit.register(shutil.rmtree, tmp_dir, ignore_errors=True)
    bin_dir = args.bin_dir or tmp_dir
    if not args.bin_dir:
        built = build_binaries(tmp_dir)
    else:
        built = {name: os.path.join(bin_dir, name) if os.access(
            os.path.join(bin_dir, name), os.X_OK) else None
            for name in ("echo_client", "echo_client_tls",
                         *C_SERVERS.values())}

    rows = build_rows(args, loops)
    drop = set()
    if not built.get("echo_client"):
        drop |= {"echo", "ceiling", "unix"}
        print("note: no echo_client: echo rows skipped", file=sys.stderr)
    if not built.get("echo_client_tls"):
        drop.add("tls")
        print("note: no echo_client_tls (apt-get install libssl-dev): TLS "
              "echo rows skipped", file=sys.stderr)
    for server, binary in C_SERVERS.items():
        if not built.get(binary):
            for row in rows:
                if server in row.loops:
                    row.loops.remove(server)
            print(f"note: no {binary}: {server} not measured", file=sys.stderr)
    rows = [r for r in rows if r.loops]
    if not shutil.which("wrk"):
        drop |= {"http", "https"}
        print("note: wrk not found (apt-get install wrk): http rows skipped",
              file=sys.stderr)
    elif not procutil.importable(args.python, "httptools", env):
        drop |= {"http", "https"}
        print("note: httptools missing (apt-get install python3-httptools): "
              "http rows skipped", file=sys.stderr)
    rows = [r for r in rows if r.kind not in drop]

    cfg = Config(python=args.python, env=env, loops=loops,
                 repeat=args.repeat, duration=args.duration,
                 warmup=args.warmup, http_duration=args.http_duration,
                 conns=args.conns, http_conns=args.http_conns,
                 idle_conns=args.idle_conns, server_cpu=server_cpu,
                 client_cpu=client_cpu, bin_dir=bin_dir,
                 verbose=args.verbose, tmp_dir=tmp_dir)
    run_rows(cfg, rows)
    app_cost = (measure_app_cost(cfg)
                if any(FLOOR in r.loops for r in rows) else {})
    summaries = [summarize(r, app_cost) for r in rows]
    print_tables(summaries)
    elapsed = time.monotonic() - t_start
    print(f"\n{len(rows)} rows, repeat {cfg.repeat}, {cfg.conns} echo "
          f"connections, pinning {pin_note}; {elapsed:.0f} s")
    if args.json:
        doc = {"config": {k: v for k, v in vars(cfg).items()
                          if k not in ("env",)},
               "environment": environment(cfg, pin_note, cpus),
               "elapsed_s": elapsed, "rows": summaries}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"JSON: {args.json}")
    failed = any(s == "ERROR" for r in rows for s in r.status.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

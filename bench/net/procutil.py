"""Process plumbing shared by the network benchmark scripts.

Starting a server subprocess pinned to one CPU, waiting for its
``LISTENING <port>`` line, reading its CPU time and memory from ``/proc``,
and stopping it; plus finding out which event loops the benchmark Python
can import.  Used by ``run.py`` and ``idle_memory.py``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Iterator, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
#: The interpreter with Debian's python3-uvloop and python3-httptools.
DEFAULT_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Exit status of echo_server.py / http_server.py for "not implemented".
EXIT_NOT_IMPLEMENTED = 3


class NotImplementedLoop(Exception):
    """The server reported that its loop lacks what the benchmark needs."""


class ServerError(RuntimeError):
    """The server failed to start, died, or misbehaved."""


# --------------------------------------------------------------------------
# CPU pinning
# --------------------------------------------------------------------------


def can_pin() -> bool:
    """True when at least two CPUs are available to pin server and client."""
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the block with this process pinned to *cpu* (None: no change).

    A child started inside the block inherits the affinity, so it is pinned
    from its first instruction (no window where it runs elsewhere, and no
    thread of it escapes), without ``preexec_fn`` or ``taskset``.
    """
    if cpu is None:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def spawn(cmd: Sequence[str], cpu: int | None, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(cmd, **kwargs)`` with the child pinned to *cpu*."""
    with pinned(cpu):
        return subprocess.Popen(list(cmd), **kwargs)


# --------------------------------------------------------------------------
# /proc readings
# --------------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of process *pid* (all its threads), in seconds.

    The kernel counts in clock ticks (usually 10 ms), so measure intervals
    of a second or more.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # Fields after the command name "(...)", which may contain spaces:
    # state is field 3, utime field 14, stime field 15.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of process *pid* (all its threads), in seconds."""
    return sum(cpu_times(pid))


def rss_bytes(pid: int) -> int:
    """Resident set size of *pid* (VmRSS of /proc/PID/status), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ServerError(f"no VmRSS for pid {pid}")


# --------------------------------------------------------------------------
# Line-oriented reading from a child, with a timeout
# --------------------------------------------------------------------------


class LineReader:
    """Read whole lines from a child's stdout pipe, with a deadline."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.eof = False

    def readline(self, timeout: float) -> str | None:
        """Next line (without newline), or None at EOF; ServerError when
        nothing arrives in *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode(errors="replace")
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerError(f"no output from {self.proc.args[0]} "
                                  f"within {timeout:.0f} s")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                if chunk:
                    self.buf += chunk
                else:
                    self.eof = True
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")


# --------------------------------------------------------------------------
# A benchmark server subprocess
# --------------------------------------------------------------------------


class Server:
    """A server subprocess that speaks the ``LISTENING <port>`` protocol.

    Use as a context manager: entering starts it and waits until it listens
    (or raises :class:`NotImplementedLoop` / :class:`ServerError`), leaving
    stops it (SIGTERM, then SIGKILL after 5 s).
    """

    def __init__(self, cmd: Sequence[str], cpu: int | None = None,
                 env: dict | None = None, start_timeout: float = 30.0):
        self.cmd = list(cmd)
        self.cpu = cpu
        self.env = env
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._stderr = tempfile.TemporaryFile()

    def __enter__(self) -> "Server":
        self.proc = spawn(self.cmd, self.cpu, stdout=subprocess.PIPE,
                          stderr=self._stderr, stdin=subprocess.DEVNULL,
                          env=self.env)
        reader = LineReader(self.proc)
        try:
            while True:
                line = reader.readline(self.start_timeout)
                if line is None:
                    self.proc.wait(5)
                    if self.proc.returncode == EXIT_NOT_IMPLEMENTED:
                        raise NotImplementedLoop(self.stderr_tail())
                    raise ServerError(
                        f"server exited with status {self.proc.returncode} "
                        f"before listening: {self.stderr_tail()}")
                if line.startswith("NOTIMPLEMENTED"):
                    raise NotImplementedLoop(line.partition(" ")[2])
                if line.startswith("LISTENING "):
                    self.port = int(line.split()[1])
                    return self
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """True while the server process is running."""
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise ServerError if the server has exited."""
        if not self.alive():
            raise ServerError(f"server died (status {self.proc.returncode}): "
                              f"{self.stderr_tail()}")

    def cpu_seconds(self) -> float:
        """The server's user + system CPU time so far."""
        return cpu_seconds(self.pid)

    def cpu_times(self) -> tuple[float, float]:
        """The server's (user, system) CPU time so far."""
        return cpu_times(self.pid)

    def rss_bytes(self) -> int:
        """The server's resident set size now."""
        return rss_bytes(self.pid)

    def stderr_tail(self, limit: int = 2000) -> str:
        """The last *limit* characters the server wrote to stderr."""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return text[-limit:]

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


# --------------------------------------------------------------------------
# Which loops are there?
# --------------------------------------------------------------------------


def python_env(python: str = DEFAULT_PYTHON) -> tuple[dict, str | None]:
    """Environment for the server processes, and a note about asyncuv.

    asyncuv is used as ``import asyncuv`` finds it.  When it cannot be
    imported and the tree has been built (``build/python/asyncuv`` exists,
    made by ``make``), that directory is put on PYTHONPATH.
    """
    env = dict(os.environ)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if importable(python, "asyncuv", env):
        return env, None
    root = os.path.join(REPO, "build", "python")
    if os.path.exists(os.path.join(root, "asyncuv", "__init__.py")):
        paths = [root] + [p for p in env.get("PYTHONPATH", "").split(
            os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env, f"asyncuv: using the built tree {root}"
    return env, None


def importable(python: str, module: str, env: dict | None = None) -> bool:
    """True if *python* can ``import module`` (checked in a subprocess)."""
    rc = subprocess.run([python, "-c", f"import {module}"], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        timeout=60).returncode
    return rc == 0


def module_version(python: str, module: str, env: dict | None = None) -> str:
    """``module.__version__ (path)`` as seen by *python*, or an error."""
    code = (f"import {module} as m; "
            f"print(getattr(m, '__version__', '?'), getattr(m, '__file__', ''))")
    out = subprocess.run([python, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    return (out.stdout.strip() if out.returncode == 0
            else "unavailable: " + (out.stderr.strip().splitlines() or ["?"])[-1])

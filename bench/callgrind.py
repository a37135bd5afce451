#!/usr/bin/python3
"""Instructions per operation of each micro-benchmark, counted by callgrind.

Each benchmark of ``bench/micro.py`` is run with two sizes, N1 and N2
operations, and the cost of one operation is

    Ir/op = (Ir(N2) - Ir(N1)) / (N2 - N1)

so that everything not proportional to N (loop creation, warm-up, closing)
cancels out.  Instruction counts (Ir) do not depend on machine load: the
single-threaded benchmarks give the same figure on every run.  Benchmarks
that use threads (call_soon_threadsafe, run_in_executor) depend on how the
threads interleave and are only approximately repeatable; they are marked
``~``.

How it is counted: starting CPython and importing asyncio costs some 5 s under
valgrind, so rather than one process per measurement there is one process per
event loop (``--worker`` mode).  For each benchmark it prepares the input, does
a throw-away run (first-use costs: lazy imports, type caches), then runs N1 and
N2 operations, each time on a fresh loop exactly as ``micro.run_once`` does for
the wall-clock figures.  Between these steps it calls ``os.getloadavg()``,
i.e. libc's ``getloadavg()``, which nothing else calls; valgrind is run with
``--dump-before=getloadavg``, so every step's instructions land in a dump file
of its own.  The dumps go to a temporary directory that is removed afterwards.

The issue's targets (asyncuv Ir/op divided by uvloop Ir/op) are reported as
PASS/FAIL; the exit status is 0 regardless, since speed is measured here,
not asserted.

Usage: ``/usr/bin/python3 bench/callgrind.py [--loops ...] [--only ...]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

sys.dont_write_bytecode = True  # leave no __pycache__ behind in bench/

import micro  # noqa: E402  (same directory; shares the benchmark code)

PYTHON = sys.executable  # the worker uses the same interpreter
HERE = os.path.dirname(os.path.abspath(__file__))
MARKER_FUNCTION = "getloadavg"  # libc function called by os.getloadavg()

# asyncuv Ir/op divided by uvloop Ir/op must not exceed these.
TARGETS = {
    "call_soon": 0.6,
    "timers_fired": 0.5,
    "timer_cancel": 0.6,
}

# (N1, N2) per benchmark.  Expensive operations use fewer so that the whole
# suite stays within a few minutes.  --n1/--n2 override these.
SIZES = {
    "run_in_executor": (500, 1500),
}
DEFAULT_SIZES = (2000, 6000)
WARMUP = 100  # ops run on each fresh loop before the measured ones

_TOTALS = re.compile(r"^totals:\s*(\d+)\s*$", re.MULTILINE)


class ValgrindError(RuntimeError):
    """A child run failed or its instruction counts could not be read."""


# --------------------------------------------------------------------------
# Child process (runs under valgrind)
# --------------------------------------------------------------------------


def _mark(label: str) -> None:
    """End the current measurement step; callgrind dumps its counts here."""
    print(f"mark {label}", flush=True)
    os.getloadavg()


def worker(loop_name: str, plan: list[tuple[str, int, int]]) -> None:
    """Run every ``(benchmark, n1, n2)`` of *plan* on loop *loop_name*.

    Prints one ``mark LABEL`` line per dump, in order, and ``error NAME MSG``
    when a benchmark fails (the remaining benchmarks still run).

    Benchmarks whose counts vary from run to run (those reading the clock,
    then those using threads) run last: they leave the heap in a slightly
    different state each time, which would perturb the counts of every
    benchmark run after them.
    """

    def variability(step):
        bench = micro.BENCHMARKS[step[0]]
        return bench.threaded, bench.clocked

    plan = sorted(plan, key=variability)
    for name, n1, n2 in plan:
        bench = micro.BENCHMARKS[name]
        try:
            data = bench.make_data(n2)
            micro.run_once(bench, loop_name, min(n1, 500), data, WARMUP)
            _mark(f"{name} setup")
            for n in (n1, n2):
                micro.run_once(bench, loop_name, n, data, WARMUP)
                _mark(f"{name} {n}")
        except Exception as exc:
            print(f"error {name} {type(exc).__name__}: {exc}", flush=True)
            _mark(f"{name} error")


# --------------------------------------------------------------------------
# Parent process
# --------------------------------------------------------------------------


@dataclass
class Measurement:
    """Ir/op of one benchmark on one loop."""

    benchmark: str
    loop: str
    n1: int
    n2: int
    ir1: int | None = None
    ir2: int | None = None
    error: str | None = None

    @property
    def per_op(self) -> float | None:
        if self.ir1 is None or self.ir2 is None:
            return None
        return (self.ir2 - self.ir1) / (self.n2 - self.n1)


def _read_totals(path: str) -> int:
    with open(path, encoding="utf-8", errors="replace") as f:
        match = _TOTALS.search(f.read())
    if not match:
        raise ValgrindError(f"no 'totals:' line in {os.path.basename(path)}")
    return int(match.group(1))


def _describe_failure(status: int, stderr: str, log_path: str) -> str:
    """One-line reason for a failed worker, with valgrind's crash location."""
    if status < 0:
        try:
            reason = f"worker killed by {signal.Signals(-status).name}"
        except ValueError:
            reason = f"worker killed by signal {-status}"
    else:
        reason = f"worker exit status {status}"
    lines = stderr.strip().splitlines()
    if lines:
        reason += f": {lines[-1]}"
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
    except OSError:
        return reason
    # valgrind: "Process terminating with default action of signal 11"
    # followed by the faulting address and a stack trace ("at 0x...: func").
    where = re.findall(r"^==\d+==\s+(?:at|by) 0x[0-9A-F]+: (.*)$", log,
                       re.MULTILINE)
    if "Process terminating" in log and where:
        reason += " [at " + " <- ".join(where[:3]) + "]"
    return reason


def run_loop(loop_name: str, plan: list[tuple[str, int, int]],
             timeout: float, save_dir: str | None = None
             ) -> dict[str, Measurement]:
    """Run the worker for *loop_name* under callgrind; measure its plan.

    With *save_dir*, each measured step's callgrind dump is copied there as
    ``LOOP.BENCHMARK.N.callgrind``, for ``callgrind_annotate``.
    """
    results = {name: Measurement(name, loop_name, n1, n2)
               for name, n1, n2 in plan}
    spec = ",".join(f"{name}={n1}:{n2}" for name, n1, n2 in plan)
    with tempfile.TemporaryDirectory(prefix="asyncuv-callgrind-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = [
            "valgrind", "--tool=callgrind",
            f"--callgrind-out-file={out}",
            f"--dump-before={MARKER_FUNCTION}",
            f"--log-file={os.path.join(tmp, 'valgrind.log')}",
            PYTHON, os.path.join(HERE, "callgrind.py"),
            "--worker", loop_name, spec,
        ]
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONASYNCIODEBUG", None)
        try:
            proc = subprocess.run(command, env=env, capture_output=True,
                                  text=True, timeout=timeout, cwd=tmp)
            failure = None
            if proc.returncode != 0:
                failure = _describe_failure(
                    proc.returncode, proc.stderr,
                    os.path.join(tmp, "valgrind.log"))
            stdout = proc.stdout
        except subprocess.TimeoutExpired as exc:
            failure = f"worker timed out after {timeout:.0f}s"
            stdout = exc.stdout or ""
            if isinstance(stdout, bytes):
                stdout = stdout.decode(errors="replace")

        labels = []
        for line in stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "mark":
                labels.append(rest)
            elif kind == "error":
                name, _, message = rest.partition(" ")
                results[name].error = message
        dumps = glob.glob(out + ".*")
        if len(dumps) < len(labels) or (failure is None
                                        and len(dumps) != len(labels)):
            raise ValgrindError(
                f"{loop_name}: {len(dumps)} callgrind dumps for "
                f"{len(labels)} markers (does something else call "
                f"{MARKER_FUNCTION}()?)")
        for index, label in enumerate(labels, start=1):
            name, _, n = label.partition(" ")
            m = results[name]
            dump = f"{out}.{index}"
            if n == str(m.n1):
                m.ir1 = _read_totals(dump)
            elif n == str(m.n2):
                m.ir2 = _read_totals(dump)
            else:
                continue
            if save_dir:
                shutil.copy(dump, os.path.join(
                    save_dir, f"{loop_name}.{name}.{n}.callgrind"))
    for m in results.values():
        if m.per_op is None and m.error is None:
            m.error = failure or "no measurement"
    return results


def measure(benchmarks: list[micro.Benchmark], loops: list[str],
            sizes: dict[str, tuple[int, int]], jobs: int, timeout: float,
            save_dir: str | None = None
            ) -> dict[str, dict[str, Measurement]]:
    """Measure every benchmark on every loop, *jobs* valgrind runs at once."""
    plan = [(b.name, *sizes[b.name]) for b in benchmarks]
    by_loop: dict[str, dict[str, Measurement]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_loop, loop, plan, timeout, save_dir): loop
                   for loop in loops}
        for future in concurrent.futures.as_completed(futures):
            loop = futures[future]
            try:
                by_loop[loop] = future.result()
            except ValgrindError as exc:
                print(f"  {exc}", file=sys.stderr)
                by_loop[loop] = {name: Measurement(name, loop, n1, n2,
                                                   error=str(exc))
                                 for name, n1, n2 in plan}
            print(f"  done: {loop}", file=sys.stderr, flush=True)
    return {b.name: {loop: by_loop[loop][b.name] for loop in loops}
            for b in benchmarks}


def print_table(results: dict[str, dict[str, Measurement]],
                loops: list[str]) -> None:
    """Print Ir/op per loop, ratios and the verdicts against the targets."""
    headers = ["benchmark", *(f"{loop} Ir/op" for loop in loops),
               "asyncuv/uvloop", "uvloop/asyncio", "target", "verdict"]
    rows = []
    for name, per_loop in results.items():
        approx = "~" if micro.BENCHMARKS[name].threaded else ""
        per_op = {loop: per_loop[loop].per_op for loop in loops}
        cells = [f"{name} {approx}".rstrip()]
        cells += ["ERROR" if per_op[loop] is None
                  else f"{approx}{per_op[loop]:,.0f}" for loop in loops]
        r = micro.ratio(per_op.get("asyncuv"), per_op.get("uvloop"))
        cells.append(micro.format_ratio(r))
        cells.append(micro.format_ratio(
            micro.ratio(per_op.get("uvloop"), per_op.get("asyncio"))))
        target = TARGETS.get(name)
        if target is None:
            cells += ["", ""]
        else:
            verdict = "n/a" if r is None else ("PASS" if r <= target
                                               else "FAIL")
            cells += [f"<= {target}", verdict]
        rows.append(cells)
    print(micro.format_table(headers, rows))
    print("\nIr/op: instructions per operation (lower is better); ratios < 1 "
          "mean the numerator loop executes fewer instructions.\n"
          "~ = uses threads: counts vary a little from run to run.")
    errors = [(name, loop, m.error) for name, per_loop in results.items()
              for loop, m in per_loop.items() if m.error]
    for name, loop, error in errors:
        print(f"error: {name} on {loop}: {error}")


def _parse_plan(spec: str) -> list[tuple[str, int, int]]:
    plan = []
    for item in spec.split(","):
        name, _, sizes = item.partition("=")
        n1, _, n2 = sizes.partition(":")
        plan.append((name, int(n1), int(n2)))
    return plan


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--worker"]:
        worker(argv[1], _parse_plan(argv[2]))
        return 0

    parser = argparse.ArgumentParser(
        description="Instructions per operation under callgrind "
                    "(lower is better).")
    parser.add_argument("--loops", type=micro.parse_loops,
                        default=",".join(micro.ALL_LOOPS),
                        help="comma-separated loops (default: %(default)s)")
    parser.add_argument("--only", metavar="NAME[,NAME...]",
                        help="run only these of: "
                             + ", ".join(micro.BENCHMARKS))
    parser.add_argument("--n1", type=int, help="smaller op count "
                        "(default: per benchmark, mostly 2000)")
    parser.add_argument("--n2", type=int, help="larger op count "
                        "(default: per benchmark, mostly 6000)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="valgrind processes run at once "
                             "(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed per valgrind run (one per loop)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write raw counts to FILE")
    parser.add_argument("--save-dumps", metavar="DIR",
                        help="keep the callgrind dumps of the measured runs "
                             "in DIR (for callgrind_annotate)")
    args = parser.parse_args(argv)

    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind); "
              "nothing measured", file=sys.stderr)
        return 0
    benchmarks = micro.select_benchmarks(args.only)
    sizes = {}
    for bench in benchmarks:
        n1, n2 = SIZES.get(bench.name, DEFAULT_SIZES)
        n1, n2 = args.n1 or n1, args.n2 or n2
        if not 0 < n1 < n2:
            parser.error("need 0 < N1 < N2")
        sizes[bench.name] = (n1, n2)

    loops, missing = micro.available_loops(args.loops)
    for name, reason in missing.items():
        print(f"note: loop {name!r} unavailable ({reason}); skipping it",
              file=sys.stderr)
    if not loops:
        print("no event loop available; nothing measured", file=sys.stderr)
        return 0
    for name in loops:
        print(f"{name}: {micro.loop_version(name)}", file=sys.stderr)

    started = time.monotonic()
    if args.save_dumps:
        os.makedirs(args.save_dumps, exist_ok=True)
    results = measure(benchmarks, loops, sizes, max(1, args.jobs),
                      args.timeout, args.save_dumps)
    print(f"({len(loops)} valgrind runs in "
          f"{time.monotonic() - started:.0f}s)\n", file=sys.stderr)
    print_table(results, loops)

    if args.json:
        report = {
            "environment": micro.environment(loops),
            "missing_loops": missing,
            "targets": TARGETS,
            "benchmarks": {
                name: {loop: {"n1": m.n1, "n2": m.n2, "ir_n1": m.ir1,
                              "ir_n2": m.ir2, "ir_per_op": m.per_op,
                              "error": m.error}
                       for loop, m in per_loop.items()}
                for name, per_loop in results.items()},
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Event-loop micro-benchmarks: stock asyncio vs uvloop vs asyncuv.

Every benchmark runs the same workload on each event loop in a single
process.  Loops are interleaved (asyncio, uvloop, asyncuv, then again with the
order rotated, ...) so that the slow drift of a noisy machine hits every loop
alike, and the median over the repetitions is reported.

Run ``/usr/bin/python3 bench/micro.py --help`` for the options; see
``bench/README.md`` for how to read the output.

The workloads themselves live in :data:`BENCHMARKS` and are executed through
:func:`run_once`; ``bench/callgrind.py`` imports this module and uses the very
same code to count instructions per operation under valgrind.

Harness overhead is kept small on purpose: wherever possible the benchmark
drives the loop API from C (``map`` over a bound method, drained by a
zero-length ``deque``) and uses a C callable as the callback
(``itertools.count().__next__``), so that per-operation time is dominated by
the event loop and not by interpreted benchmark code.  The remaining overhead
is identical for every loop, which pulls all ratios towards 1.0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import faulthandler
import gc
import itertools
import json
import operator
import os
import platform
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

# --------------------------------------------------------------------------
# Event loops
# --------------------------------------------------------------------------

ALL_LOOPS = ("asyncio", "uvloop", "asyncuv")


def _new_asyncio_loop() -> asyncio.AbstractEventLoop:
    """Return the stock selector-based (epoll) event loop."""
    return asyncio.SelectorEventLoop()


def _new_uvloop_loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


def _new_asyncuv_loop() -> asyncio.AbstractEventLoop:
    import asyncuv

    return asyncuv.new_event_loop()


LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": _new_asyncio_loop,
    "uvloop": _new_uvloop_loop,
    "asyncuv": _new_asyncuv_loop,
}


def loop_version(name: str) -> str | None:
    """Describe the implementation behind loop *name* (version or path)."""
    if name == "asyncio":
        return f"CPython {platform.python_version()}"
    module = __import__(name)
    version = getattr(module, "__version__", None)
    where = getattr(module, "__file__", None) or "?"
    return f"{version} ({where})" if version else where


def available_loops(names: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Split *names* into importable loops and ``{name: reason}`` for the rest.

    A loop is usable when its factory returns a loop that can be closed.
    """
    usable, missing = [], {}
    for name in names:
        try:
            make_loop(name).close()
        except Exception as exc:  # ImportError, or a broken build
            missing[name] = f"{type(exc).__name__}: {exc}"
        else:
            usable.append(name)
    return usable, missing


def make_loop(name: str) -> asyncio.AbstractEventLoop:
    """Create a fresh event loop of kind *name* (debug mode off)."""
    loop = LOOP_FACTORIES[name]()
    loop.set_debug(False)
    return loop


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Shut down the default executor (if one was started) and close *loop*."""
    try:
        if not loop.is_closed():
            try:
                loop.run_until_complete(loop.shutdown_default_executor())
            except (AttributeError, NotImplementedError):
                pass
    finally:
        loop.close()


# --------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------


class BenchmarkError(RuntimeError):
    """A benchmark did not do the work it was asked to (a loop bug)."""


@dataclass(frozen=True)
class Benchmark:
    """One micro-benchmark.

    ``func(loop, n, data)`` performs *n* operations on *loop*; ``data`` is what
    ``prepare(size)`` returned for some ``size >= n`` (``None`` when the
    benchmark needs no input).  Preparation is kept out of the timed section.
    ``func`` may return a number of seconds it deliberately spent idle, which
    is subtracted from the measured time.
    """

    name: str
    func: Callable[[asyncio.AbstractEventLoop, int, Any], float | None]
    n: int
    doc: str
    prepare: Callable[[int], Any] | None = None
    threaded: bool = False  # uses threads: instruction counts are not exact
    clocked: bool = False  # depends on clock readings: counts vary slightly

    def make_data(self, size: int) -> Any:
        """Return the benchmark's input for up to *size* operations."""
        return self.prepare(size) if self.prepare else None


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, n: int, *, prepare=None, threaded: bool = False,
              clocked: bool = False):
    """Register the decorated function as benchmark *name* with *n* ops."""

    def register(func):
        doc = (func.__doc__ or "").strip().splitlines()[0]
        BENCHMARKS[name] = Benchmark(name, func, n, doc, prepare, threaded,
                                     clocked)
        return func

    return register


def _drain(iterator: Iterable[Any]) -> None:
    """Exhaust *iterator* in C (the itertools "consume" recipe)."""
    collections.deque(iterator, maxlen=0)


def _expect(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise BenchmarkError(f"{what}: expected {expected}, got {got}")


def _shuffled(size: int) -> list[int]:
    """A fixed pseudo-random permutation of ``range(size)``."""
    order = list(range(size))
    random.Random(size).shuffle(order)
    return order


# Timer delays must stay >= 1 ms: uvloop turns call_later() with a delay that
# rounds to 0 ms into call_soon(), which would not exercise its timers at all.
TIMER_MIN_DELAY = 0.001
TIMER_SPREAD = 0.003
# Far-future timers are 60 s apart, much more than scheduling them all takes
# even under valgrind, so their order in a timer heap does not depend on how
# fast the clock advanced while they were being scheduled.
CANCEL_DELAY = 3600.0
CANCEL_SPACING = 60.0


def _prepare_timer_delays(size: int) -> list[float]:
    """Distinct delays in [1 ms, 4 ms), in shuffled order."""
    step = TIMER_SPREAD / size
    return [TIMER_MIN_DELAY + i * step for i in _shuffled(size)]


def _prepare_cancel_delays(size: int) -> list[float]:
    """Distinct far-future delays (an hour and more away), shuffled."""
    return [CANCEL_DELAY + i * CANCEL_SPACING for i in _shuffled(size)]


@benchmark("call_soon", 300_000)
def bench_call_soon(loop, n, _data):
    """call_soon() N callbacks from a running loop, then run them all."""
    counter = itertools.count()
    callback = counter.__next__

    def schedule():
        _drain(map(loop.call_soon, itertools.repeat(callback, n)))
        loop.call_soon(loop.stop)

    loop.call_soon(schedule)
    loop.run_forever()
    _expect("callbacks run", next(counter), n)


@benchmark("timers_fired", 100_000, prepare=_prepare_timer_delays,
           clocked=True)
def bench_timers_fired(loop, n, delays):
    """call_later() N callbacks with distinct 1-4 ms delays; all fire.

    After scheduling, the callback sleeps until every timer is due, so the
    loop fires them all in one iteration whatever the machine's speed (which
    keeps instruction counts repeatable).  The sleep is returned, and
    excluded from the timing.
    """
    counter = itertools.count()
    callback = counter.__next__
    slept = 0.0

    def schedule():
        nonlocal slept
        _drain(map(loop.call_later, itertools.islice(delays, n),
                   itertools.repeat(callback, n)))
        # Scheduled last with the largest delay: fires after every timer.
        loop.call_later(TIMER_MIN_DELAY + TIMER_SPREAD, loop.stop)
        start = time.perf_counter()
        time.sleep(TIMER_MIN_DELAY + TIMER_SPREAD + 0.001)
        slept = time.perf_counter() - start

    loop.call_soon(schedule)
    loop.run_forever()
    _expect("timers fired", next(counter), n)
    return slept


@benchmark("timer_cancel", 150_000, prepare=_prepare_cancel_delays)
def bench_timer_cancel(loop, n, delays):
    """call_later() N callbacks an hour ahead, cancel() them all, run once."""
    handles = []

    def schedule_and_cancel():
        handles.extend(map(loop.call_later, itertools.islice(delays, n),
                           itertools.repeat(int, n)))
        _drain(map(operator.methodcaller("cancel"), handles))
        # One more iteration, so lazily-purging loops pay for the cleanup.
        loop.call_soon(loop.stop)

    loop.call_soon(schedule_and_cancel)
    loop.run_forever()
    _expect("handles cancelled", sum(h.cancelled() for h in handles), n)


@benchmark("call_soon_threadsafe", 100_000, threaded=True)
def bench_call_soon_threadsafe(loop, n, _data):
    """A thread call_soon_threadsafe()s N callbacks; the loop runs them."""
    counter = itertools.count()
    callback = counter.__next__

    def pump():
        _drain(map(loop.call_soon_threadsafe, itertools.repeat(callback, n)))
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=pump, name="bench-pump")
    loop.call_soon(thread.start)
    try:
        loop.run_forever()
    finally:
        if thread.ident is not None:
            thread.join()
    _expect("callbacks run", next(counter), n)


async def _sleeper(count: int) -> int:
    sleep = asyncio.sleep
    for _ in range(count):
        await sleep(0)
    return count


@benchmark("sleep0_pingpong", 60_000)
def bench_sleep0_pingpong(loop, n, _data):
    """Two tasks alternate via await asyncio.sleep(0); N sleeps in total."""

    async def main():
        return await asyncio.gather(_sleeper(n // 2), _sleeper(n - n // 2))

    _expect("sleeps", sum(loop.run_until_complete(main())), n)


@benchmark("future_roundtrip", 60_000)
def bench_future_roundtrip(loop, n, _data):
    """N x: create_future(), call_soon(fut.set_result), await fut."""

    async def main():
        create_future = loop.create_future
        call_soon = loop.call_soon
        done = 0
        for _ in range(n):
            fut = create_future()
            call_soon(fut.set_result, 1)
            done += await fut
        return done

    _expect("futures", loop.run_until_complete(main()), n)


async def _trivial() -> int:
    return 1


@benchmark("task_gather", 40_000)
def bench_task_gather(loop, n, _data):
    """create_task() N trivial coroutines and await gather() of them all."""

    async def main():
        create_task = loop.create_task
        tasks = [create_task(_trivial()) for _ in range(n)]
        return sum(await asyncio.gather(*tasks))

    _expect("tasks", loop.run_until_complete(main()), n)


def _one() -> int:
    return 1


@benchmark("run_in_executor", 8_000, threaded=True)
def bench_run_in_executor(loop, n, _data):
    """run_in_executor(None, f) N trivial functions; await them all."""

    async def main():
        run = loop.run_in_executor
        return sum(await asyncio.gather(*[run(None, _one) for _ in range(n)]))

    _expect("executor calls", loop.run_until_complete(main()), n)


def run_once(bench: Benchmark, loop_name: str, n: int, data: Any,
             warmup: int = 0) -> float:
    """Run *bench* for *n* operations on a fresh loop; return seconds taken.

    A warm-up of *warmup* operations runs first on the same loop (starting
    executor threads, filling free lists); it is not timed.  Loop creation and
    closing are not timed either, nor is idle time the benchmark reports.
    """
    loop = make_loop(loop_name)
    try:
        if warmup:
            bench.func(loop, warmup, data)
        gc.collect()
        start = time.perf_counter()
        idle = bench.func(loop, n, data) or 0.0
        elapsed = time.perf_counter() - start - idle
    finally:
        close_loop(loop)
    return elapsed


def select_benchmarks(only: str | None) -> list[Benchmark]:
    """Benchmarks named in the comma-separated *only* (all when empty)."""
    if not only:
        return list(BENCHMARKS.values())
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; "
                         f"choose from {', '.join(BENCHMARKS)}")
    return [BENCHMARKS[name] for name in names]


def parse_loops(text: str) -> list[str]:
    """Parse the ``--loops`` value into a list of known loop names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LOOP_FACTORIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown loop(s) {unknown}; choose from {', '.join(ALL_LOOPS)}")
    return names


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` or ``None`` when either is missing."""
    if not numerator or not denominator:
        return None
    return numerator / denominator


# --------------------------------------------------------------------------
# Wall-clock driver
# --------------------------------------------------------------------------


# Ratio columns of the table: numerator loop / denominator loop.
RATIOS = (("asyncuv", "uvloop"), ("asyncuv", "asyncio"), ("uvloop", "asyncio"))


@dataclass
class Result:
    """Samples (ops/s) of one benchmark on one loop."""

    n: int
    samples: list[float]
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        """Half the min-max range, relative to the median."""
        if len(self.samples) < 2:
            return None
        return (max(self.samples) - min(self.samples)) / 2 / self.median


def measure(benchmarks: list[Benchmark], loops: list[str], repeat: int,
            scale: float, timeout: float, verbose: bool = False
            ) -> dict[str, dict[str, Result]]:
    """Time every benchmark on every loop, interleaving the loops."""
    results: dict[str, dict[str, Result]] = {}
    for bench in benchmarks:
        n = max(100, int(bench.n * scale))
        warmup = max(50, n // 10)
        data = bench.make_data(n)
        per_loop = {name: Result(n, []) for name in loops}
        results[bench.name] = per_loop
        for rep in range(repeat):
            shift = rep % len(loops)
            for name in loops[shift:] + loops[:shift]:
                result = per_loop[name]
                if result.error:
                    continue
                faulthandler.dump_traceback_later(timeout, exit=True)
                try:
                    elapsed = run_once(bench, name, n, data, warmup)
                except Exception as exc:
                    result.error = f"{type(exc).__name__}: {exc}"
                    print(f"  {bench.name} on {name} failed: {result.error}",
                          file=sys.stderr)
                    continue
                finally:
                    faulthandler.cancel_dump_traceback_later()
                result.samples.append(n / elapsed)
                if verbose:
                    print(f"  {bench.name:22} {name:8} rep {rep + 1}: "
                          f"{n / elapsed:12,.0f} ops/s", file=sys.stderr)
        print(f"done: {bench.name}", file=sys.stderr, flush=True)
    return results


def format_rate(value: float | None) -> str:
    """Format ops/s compactly: ``1.23M``, ``456.7k``."""
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def format_ratio(value: float | None) -> str:
    """Format a ratio as ``1.23x`` (``-`` when unknown)."""
    return "-" if value is None else f"{value:.2f}x"


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """Lay out *rows* under *headers*: first column left-aligned, others
    right-aligned, with a rule under the header."""
    widths = [max(len(row[i]) for row in [headers, *rows])
              for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    header = line(headers)
    return "\n".join([header, "-" * len(header), *map(line, rows)])


def print_table(results: dict[str, dict[str, Result]],
                loops: list[str]) -> None:
    """Print the median ops/s table with asyncuv ratios."""
    headers = ["benchmark", *loops, *(f"{a}/{b}" for a, b in RATIOS)]
    rows = []
    for name, per_loop in results.items():
        medians = {loop: per_loop[loop].median for loop in loops}
        cells = [name]
        for loop in loops:
            result = per_loop[loop]
            if result.error:
                cells.append("ERROR")
                continue
            spread = result.spread
            extra = f" ±{spread * 100:.0f}%" if spread is not None else ""
            cells.append(format_rate(result.median) + extra)
        cells += [format_ratio(ratio(medians.get(a), medians.get(b)))
                  for a, b in RATIOS]
        rows.append(cells)
    print(format_table(headers, rows))
    print("\nops/s: median over repetitions (± half the min-max range); "
          "ratios > 1 mean the numerator loop is faster.")
    for name, per_loop in results.items():
        for loop, result in per_loop.items():
            if result.error:
                print(f"error: {name} on {loop}: {result.error}")


def environment(loops: list[str]) -> dict[str, Any]:
    """Metadata recorded in the JSON report."""
    return {
        "python": sys.version,
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loops": {name: loop_version(name) for name in loops},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Event-loop micro-benchmarks (ops/s, higher is better).")
    parser.add_argument("--loops", type=parse_loops,
                        default=",".join(ALL_LOOPS),
                        help="comma-separated loops to compare "
                             "(default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repetitions per loop; the median is reported "
                             "(default 7, or 3 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller workloads and fewer repetitions")
    parser.add_argument("--scale", type=float, default=None,
                        help="multiply every benchmark's op count "
                             "(default 1, or 0.25 with --quick)")
    parser.add_argument("--only", metavar="NAME[,NAME...]",
                        help=f"run only these of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", metavar="FILE",
                        help="also write raw samples and metadata to FILE")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="abort if one run takes longer (seconds)")
    parser.add_argument("--list", action="store_true",
                        help="list the benchmarks and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print every sample")
    args = parser.parse_args(argv)

    if args.list:
        for bench in BENCHMARKS.values():
            print(f"{bench.name:22} N={bench.n:<8,} {bench.doc}")
        return 0

    repeat = args.repeat or (3 if args.quick else 7)
    scale = args.scale or (0.25 if args.quick else 1.0)
    benchmarks = select_benchmarks(args.only)
    faulthandler.enable()

    loops, missing = available_loops(args.loops)
    for name, reason in missing.items():
        print(f"note: loop {name!r} unavailable ({reason}); skipping it",
              file=sys.stderr)
    if not loops:
        print("no event loop available", file=sys.stderr)
        return 1
    for name in loops:
        print(f"{name}: {loop_version(name)}", file=sys.stderr)

    results = measure(benchmarks, loops, repeat, scale, args.timeout,
                      args.verbose)
    print()
    print_table(results, loops)

    if args.json:
        report = {
            "environment": environment(loops),
            "missing_loops": missing,
            "repeat": repeat,
            "scale": scale,
            "benchmarks": {
                name: {loop: {"n": r.n, "ops_per_sec": r.median,
                              "samples": r.samples, "error": r.error}
                       for loop, r in per_loop.items()}
                for name, per_loop in results.items()},
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
    failed = any(r.error for per_loop in results.values()
                 for r in per_loop.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

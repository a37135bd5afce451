#!/usr/bin/python3
"""Run CPython's own asyncio test suite against an alternative event loop.

    /usr/bin/python3 tests/conformance/run.py --loop {asyncuv,uvloop,asyncio}
        [--group {all,core}] [--module test_tasks ...] [--jobs N]
        [--timeout SECONDS] [--log PATH] [-v] [--strict] [--list-failures]
        [--python PATH] [--summary-json PATH] [--audit]

Design
------
The suite is the interpreter's own test.test_asyncio (on Debian the
libpython3.X-testsuite package, /usr/lib/python3.X/test/test_asyncio; a
CPython built from source has it in lib/python3.X/test).  Its layout changes
between versions; lists.py holds what to run for each of 3.11 to 3.14, and
the workers' version (--python, default this interpreter) chooses.  Most of
the suite tests asyncio's own internals; the loop-generic part comes in two
kinds (lists.py names them):

(a) mixins whose ``create_event_loop()`` / ``new_loop()`` can be overridden
    (test_events.EventLoopTestsMixin, test_subprocess.SubprocessMixin,
    test_sendfile, test_sock_lowlevel, ...).  The worker builds one TestCase
    class per mixin whose hook returns the chosen loop's ``new_event_loop()``.
    Upstream runs them once per selector or child watcher; once is enough
    here.

(b) tests that take their loop from the policy (``asyncio.new_event_loop()``,
    ``asyncio.run()``, ``asyncio.Runner``, IsolatedAsyncioTestCase: test_locks,
    test_queues, test_streams, the real-loop part of test_tasks, ...).  The
    worker installs the chosen loop's policy before every test, since every
    module resets it to None when it ends and some tests set their own.  In
    modules mixing test loops and real loops, a test is kept only if its
    set-up or body calls ``new_event_loop(``, ``asyncio.run(``, ``Runner(``
    or ``EventLoop(``.  From 3.13 ``asyncio.EventLoop`` (the platform's
    default loop, which tests pass as a loop_factory) is pointed at the loop
    under test too.

Before a full run, the audit (``--audit`` shows it) checks that every
TestCase class of the suite is either run (selected, or through a mixin) or
listed in lists.UNSELECTED with the reason; a class that is neither (one
that a new CPython added, say) counts as a failure.

Two test helpers are patched (never the tests): 3.11's
``test_utils.run_until`` raises AttributeError instead of a timeout, and
``test_utils.TestCase.close_loop`` reads the stock loop's private
``_default_executor``.  On 3.14, where asyncio deprecates the policy
functions, the workers install the policy through asyncio's own silent
setter.

Every module runs in its own worker process (worker.py), ``--jobs`` at a time,
in a scratch directory so tests' files do not land in the work tree.  The
worker reports each test as it starts and ends on a pipe.  A test that runs
longer than ``--timeout`` makes the worker dump all stacks (faulthandler) and
exit; a crash (segfault, abort) ends it too.  Either way this process records
the test that was running as ``timeout`` or ``crash`` and starts a new worker
for the rest of the module.  The worker's own output goes to the log.

Every test gets exactly one status: passed, failed, error, timeout, crash,
skipped, not held (in lists.NOT_HELD: asyncio internals, not run), expected
failure (in lists.EXPECTED_FAIL for this loop and version, and did not pass)
or unexpected pass (listed there, and passed: shrink the list).  The closing
line ``conformance: N passed, M failed`` counts as failed every failure,
error, timeout and crash not listed as expected, and every test class the
audit found unaccounted for; the exit status is 1 if M > 0 (or, with
--strict, if anything passed unexpectedly).  --summary-json writes the
counts for scripts (.ci/matrix's table).

Output is one line per module, in a fixed order whatever the scheduling; -v
adds the id of every test that did not pass, -vv their tracebacks.  The log
(--log, default tests/conformance/last-run.log, git-ignored) always gets every
test's status, the tracebacks and everything the workers printed, cut by test.
--list-failures prints the failing tests as entries ready to paste into
lists.EXPECTED_FAIL.

The workers import the loop by name (``asyncuv`` or ``uvloop``) from their
sys.path: for an uninstalled build, point PYTHONPATH (and LD_LIBRARY_PATH) at
it; run.py checks the import once before starting.  Each worker installs
Python's own SIGINT handler (signal.default_int_handler): a run started in the
background inherits SIGINT ignored, and with SIG_IGN -- or SIG_DFL --
_thread.interrupt_main() does nothing and test_runners' interrupt tests hang.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import lists  # noqa: E402
from worker import OUTPUT_MARK  # noqa: E402

WORKER = HERE / 'worker.py'
LOOPS = ('asyncuv', 'uvloop', 'asyncio')
# How long past --timeout a silent worker is given before it is killed.  The
# worker's faulthandler normally ends it first, after dumping its stacks.
GRACE = 10.0

# Statuses a test can end with, in report order, and their labels.
STATUSES = {
    'passed': 'passed',
    'failed': 'failed',
    'error': 'errors',
    'timeout': 'timeouts',
    'crash': 'crashes',
    'skipped': 'skipped',
    'not_held': 'not held',
    'xfail': 'expected failures',
    'xpass': 'unexpected passes',
}
BAD = ('failed', 'error', 'timeout', 'crash')

# A build configured with --enable-sanitizers (make check exports
# AUV_SANITIZERS): libasan, preloaded into the interpreter, maps every block
# above 128 KiB afresh, and a test that moves megabytes through Python
# objects runs 10 to 100 times slower (test_ssl's
# test_create_connection_ssl_1, whose test server grows 1 MiB bytes objects
# with +=, outlives its 30 s handshake timeout on the stock loop too).  The
# per-test timeout and the tests' own support.SHORT_TIMEOUT and LONG_TIMEOUT
# are scaled by this, as regrtest's --timeout does for slow buildbots.
SANITIZER_TIMEOUT_SCALE = 5
# What faulthandler.dump_traceback_later() writes before the stacks.
FAULTHANDLER_TIMEOUT = re.compile(r'^Timeout \(\d+:\d\d:\d\d(\.\d+)?\)!$',
                                  re.MULTILINE)


@dataclass
class Outcome:
    test_id: str
    status: str
    details: str = ''
    time: float = 0.0
    reason: str = ''          # NOT_HELD / EXPECTED_FAIL reason


@dataclass
class ModuleRun:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    # what the workers printed: (test id or None, text), in order
    output: list[tuple[str | None, str]] = field(default_factory=list)
    workers: int = 0
    elapsed: float = 0.0

    def counts(self) -> collections.Counter:
        return collections.Counter(o.status for o in self.outcomes)


# --------------------------------------------------------------------------
# One module, possibly over several workers
# --------------------------------------------------------------------------

class ModuleJob:
    """Runs one module to the end, restarting its worker after a timeout
    or a crash."""

    def __init__(self, name: str, args: argparse.Namespace, workdir: str,
                 expected: lists.Matcher):
        self.result = ModuleRun(name)
        self.args = args
        # the tests' scratch files (cwd), one directory per module
        self.workdir = tempfile.mkdtemp(prefix=f'{name}-', dir=workdir)
        self.expected = expected
        self.reported: set[str] = set()
        self.proc: subprocess.Popen | None = None

    def execute(self) -> ModuleRun:
        start = time.monotonic()
        while True:
            finished = self._one_worker()
            if finished or not self._remaining():
                break
        self.result.elapsed = time.monotonic() - start
        # Plan order, whichever worker reported what when.
        index = {test_id: i for i, test_id in enumerate(self.result.plan)}
        self.result.outcomes.sort(
            key=lambda o: index.get(o.test_id, len(index)))
        return self.result

    def _remaining(self) -> list[str]:
        return [t for t in self.result.plan if t not in self.reported]

    def _record(self, test_id: str, status: str, details: str = '',
                elapsed: float = 0.0) -> None:
        if test_id in self.reported:
            return
        self.reported.add(test_id)
        reason = ''
        if status not in ('skipped', 'not_held'):
            xreason = self.expected.reason(test_id)
            if xreason is not None:
                reason = xreason
                status = 'xpass' if status == 'passed' else 'xfail'
        self.result.outcomes.append(
            Outcome(test_id, status, details, elapsed, reason))

    def _spawn(self) -> tuple[subprocess.Popen, queue.Queue, TextIO]:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1',
                   PYTHONFAULTHANDLER='1')
        stderr = tempfile.TemporaryFile('w+', dir=self.workdir)
        proc = subprocess.Popen(
            [self.args.python, str(WORKER)], cwd=self.workdir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            text=True, start_new_session=True)
        orders = {'loop': self.args.loop, 'module': self.result.name,
                  'group': self.args.group, 'timeout': self.args.timeout,
                  'timeout_scale': self.args.timeout_scale,
                  'done': sorted(self.reported)}
        try:
            with proc.stdin:
                proc.stdin.write(json.dumps(orders))
        except BrokenPipeError:
            pass    # died at once: reported below like any other death
        lines: queue.Queue = queue.Queue()

        def pump():
            with proc.stdout:
                for line in proc.stdout:
                    lines.put(line)
            lines.put(None)
        threading.Thread(target=pump, daemon=True).start()
        self.result.workers += 1
        return proc, lines, stderr

    def _one_worker(self) -> bool:
        """Run a worker until it ends; True when the module is finished."""
        proc, lines, stderr = self._spawn()
        self.proc = proc
        current: str | None = None
        started = time.monotonic()      # of the current test, or last message
        finished = killed = False
        while True:
            limit = started + self.args.timeout + GRACE - time.monotonic()
            try:
                line = lines.get(timeout=max(limit, 0))
            except queue.Empty:
                self._stop(proc)
                killed = True
                break
            if line is None:
                break
            message = json.loads(line)
            started = time.monotonic()
            if 'plan' in message:
                if not self.result.plan:
                    self.result.plan = message['plan']
                for test_id, reason in message['not_held'].items():
                    if test_id not in self.reported:
                        self.reported.add(test_id)
                        self.result.outcomes.append(
                            Outcome(test_id, 'not_held', reason=reason))
            elif 'start' in message:
                current = message['start']
            elif 'end' in message:
                self._record(message['end'], message['status'],
                             message['details'], message['time'])
                current = None
            elif 'fixture' in message:
                self._record(f"{self.result.name}: {message['fixture']}",
                             message['status'], message['details'])
            elif message.get('done'):
                finished = True
                break
        try:
            returncode = proc.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            self._stop(proc)
            returncode = proc.wait()
        self._kill(proc)    # children its tests left behind
        self.proc = None
        stderr.seek(0)
        sections = split_output(stderr.read())
        stderr.close()
        self.result.output.extend(sections)
        if finished:
            return True

        elapsed = time.monotonic() - started
        if killed:
            how = (f'worker silent for {self.args.timeout + GRACE:g} s, '
                   f'killed')
        elif returncode < 0:
            how = f'worker killed by {signal.Signals(-returncode).name}'
        else:
            how = f'worker exited with status {returncode}'
        if current is None:
            # Died between tests (class or module fixture), or before its
            # plan: charge the next test so that the module moves on.
            remaining = self._remaining()
            last_words = sections[-1][1] if sections else ''
            if not self.result.plan or not remaining:
                self._record(f'{self.result.name}: worker',
                             'timeout' if killed else 'crash',
                             f'{how}\n{last_words[-6000:]}')
                return True
            current = remaining[0]
        else:
            last_words = ''.join(text for test_id, text in sections
                                 if test_id == current)
        timed_out = (killed or elapsed >= self.args.timeout
                     or FAULTHANDLER_TIMEOUT.search(last_words) is not None)
        status = 'timeout' if timed_out else 'crash'
        detail = (f'no result after {self.args.timeout:g} s' if timed_out
                  else how)
        self._record(current, status, f'{detail}\n{last_words[-6000:]}',
                     elapsed)
        return False

    @classmethod
    def _stop(cls, proc: subprocess.Popen) -> None:
        """End a hung worker, letting faulthandler dump its stacks first
        (it handles SIGABRT)."""
        try:
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        cls._kill(proc)

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        # The worker leads its own process group (start_new_session), which
        # holds whatever children its tests started.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        if self.proc is not None:
            self._kill(self.proc)


def split_output(output: str) -> list[tuple[str | None, str]]:
    """Cut a worker's stderr at the marks it writes before each test."""
    sections = []
    test_id, lines = None, []
    for line in output.split('\n'):
        if line.startswith(OUTPUT_MARK):
            sections.append((test_id, '\n'.join(lines)))
            test_id, lines = line[len(OUTPUT_MARK):], []
        else:
            lines.append(line)
    sections.append((test_id, '\n'.join(lines)))
    return [(t, text) for t, text in sections if text.strip()]


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------

def format_counts(counts: collections.Counter, *, zeros: bool = False) -> str:
    parts = [f'{counts[s]} {label}' for s, label in STATUSES.items()
             if zeros or counts[s]]
    return ', '.join(parts) if parts else 'no tests'


class Reporter:
    """Prints module lines in the order of the module list, whatever order
    they finish in, and writes the log."""

    def __init__(self, modules: list[str], args: argparse.Namespace,
                 log: TextIO):
        self.order = modules
        self.args = args
        self.log = log
        self.results: dict[str, ModuleRun] = {}
        self.next = 0
        self.lock = threading.Lock()
        self.width = max(map(len, modules), default=0)

    def module_done(self, run: ModuleRun) -> None:
        with self.lock:
            self.results[run.name] = run
            self._write_log(run)
            while (self.next < len(self.order)
                   and self.order[self.next] in self.results):
                self._print_module(self.results[self.order[self.next]])
                self.next += 1

    def _print_module(self, run: ModuleRun) -> None:
        restarts = (f', {run.workers - 1} restarts' if run.workers > 1
                    else '')
        n = len(run.outcomes)
        tests = 'test: ' if n == 1 else 'tests:'
        print(f'{run.name:<{self.width}}  {n:4d} {tests} '
              f'{format_counts(run.counts())} ({run.elapsed:.1f} s'
              f'{restarts})', flush=True)
        if self.args.verbose:
            for o in run.outcomes:
                if o.status in ('passed', 'skipped', 'not_held'):
                    continue
                print(f'    {o.status.upper():8} {o.test_id}', flush=True)
                if self.args.verbose > 1 and o.details:
                    for line in o.details.rstrip().splitlines():
                        print(f'        {line}')

    def _write_log(self, run: ModuleRun) -> None:
        log = self.log
        log.write(f'\n{"=" * 78}\n{run.name}: {format_counts(run.counts())}'
                  f' ({run.elapsed:.1f} s, {run.workers} worker(s))\n')
        for o in run.outcomes:
            line = f'{o.status:9} {o.test_id} ({o.time:.2f} s)'
            if o.reason:
                line += f'  [{o.reason}]'
            log.write(line + '\n')
        for o in run.outcomes:
            if o.status in ('passed', 'skipped', 'not_held') or not o.details:
                continue
            log.write(f'\n--- {o.status.upper()}: {o.test_id}\n'
                      f'{o.details.rstrip()}\n')
        for test_id, text in run.output:
            where = f'during {test_id}' if test_id else 'outside tests'
            log.write(f'\n--- output {where}\n{text.rstrip()}\n')
        log.flush()


def summarize(reporter: Reporter, args: argparse.Namespace,
              elapsed: float, unaccounted: int) -> int:
    outcomes = [o for name in reporter.order if name in reporter.results
                for o in reporter.results[name].outcomes]
    counts = collections.Counter(o.status for o in outcomes)
    bad = [o for o in outcomes if o.status in BAD]
    xpass = [o for o in outcomes if o.status == 'xpass']

    where = f'EXPECTED_FAIL[{args.loop!r}][{args.version!r}]'
    print()
    print(f'loop {args.loop}, group {args.group}: {len(reporter.results)} '
          f'modules, {len(outcomes)} tests in {elapsed:.1f} s '
          f'(--jobs {args.jobs}); log: {args.log}')
    print(format_counts(counts, zeros=True))
    if xpass:
        print(f'\n{len(xpass)} unexpected passes (remove them from '
              f'{where} in lists.py):')
        for o in xpass:
            print(f'    {o.test_id}  [{o.reason}]')
    if args.list_failures and bad:
        print(f'\nfailing tests, for {where}:')
        for o in bad:
            print(f'    ({o.test_id!r}, {_summary(o)!r}),')
    elif bad and not args.verbose:
        print(f'{len(bad)} tests failed: -v or --list-failures names them, '
              f'the log has the tracebacks')
    if unaccounted:
        print(f'{unaccounted} test classes unaccounted for (see the layout '
              f'line above): they count as failed')
    print(f'conformance: {counts["passed"]} passed, '
          f'{len(bad) + unaccounted} failed')
    if args.summary_json:
        with open(args.summary_json, 'w') as out:
            # bad: what fails the run (failures, errors, timeouts,
            # crashes and unaccounted classes); then each status's count.
            json.dump({'python': '.'.join(map(str, args.version)),
                       'loop': args.loop, 'group': args.group,
                       'tests': len(outcomes),
                       'bad': len(bad) + unaccounted,
                       'unaccounted_classes': unaccounted,
                       'seconds': round(elapsed, 1),
                       'timeout_scale': args.timeout_scale,
                       **{s: counts[s] for s in STATUSES}}, out)
            out.write('\n')

    if bad or unaccounted or (xpass and args.strict):
        return 1
    return 0


def _summary(outcome: Outcome) -> str:
    """One line on why a test failed: the exception it ended with, or how
    its worker ended."""
    lines = [ln.strip() for ln in outcome.details.splitlines() if ln.strip()]
    if outcome.status in ('timeout', 'crash'):
        line = lines[0] if lines else ''
    else:
        line = next((ln for ln in reversed(lines)
                     if not ln.startswith(('File ', '^', '~'))), '')
    return f'{outcome.status}: {line[:100]}' if line else outcome.status


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run CPython's asyncio tests against an event loop.",
        epilog='Tests are named by short ids such as '
               'test_events.EventLoopTests.test_call_soon; see lists.py.')
    parser.add_argument('--loop', choices=LOOPS, required=True,
                        help='loop under test (asyncio: the stock loop)')
    parser.add_argument('--group', choices=lists.GROUP_NAMES,
                        default='all',
                        help='all loop-generic tests (default) or the '
                             'loop-core set')
    parser.add_argument('--module', nargs='+', metavar='MODULE', default=[],
                        help='only these modules (test_tasks or tasks)')
    parser.add_argument('--jobs', '-j', type=int, default=2,
                        help='worker processes at a time (default 2)')
    parser.add_argument('--timeout', type=float, default=None,
                        help='seconds per test before it is a timeout '
                             '(default 60; times %d in a sanitizer build)'
                             % SANITIZER_TIMEOUT_SCALE)
    parser.add_argument('--log', default=str(HERE / 'last-run.log'),
                        help='log file (default %(default)s)')
    parser.add_argument('--python', default=sys.executable,
                        help='interpreter for the workers (default: this one)')
    parser.add_argument('--strict', action='store_true',
                        help='unexpected passes fail the run too')
    parser.add_argument('--list-failures', action='store_true',
                        help='print failing tests as EXPECTED_FAIL entries')
    parser.add_argument('-v', '--verbose', action='count', default=0,
                        help='name tests that did not pass; -vv: tracebacks')
    parser.add_argument('--audit', action='store_true',
                        help='only list how every TestCase class of the '
                             "suite is covered (the run's first step)")
    parser.add_argument('--summary-json', metavar='PATH',
                        help='also write the counts to PATH as JSON')
    args = parser.parse_args(argv)
    args.jobs = max(1, args.jobs)
    args.timeout_scale = (SANITIZER_TIMEOUT_SCALE
                          if os.environ.get('AUV_SANITIZERS') else 1)
    if args.timeout is None:
        args.timeout = 60.0 * args.timeout_scale
    args.parser = parser
    return args


def choose_modules(args: argparse.Namespace, layout: lists.Layout) -> None:
    """args.modules: the modules to run, for the workers' version."""
    group = layout.groups[args.group]
    modules = [m for m in layout.modules if m in group]
    if args.module:
        wanted = [m if m.startswith('test_') else f'test_{m}'
                  for m in args.module]
        unknown = [m for m in wanted if m not in group]
        if unknown:
            args.parser.error(
                f'not in group {args.group!r} on '
                f'{".".join(map(str, layout.version))}: {", ".join(unknown)}'
                f' (choose from {", ".join(modules)})')
        modules = [m for m in modules if m in wanted]
    args.modules = modules


def probe(args: argparse.Namespace) -> tuple[tuple[int, int] | None, str]:
    """The workers' Python version, and why they could not import the loop
    under test or the suite, if so."""
    code = ('import sys; print(*sys.version_info[:2], flush=True); '
            'import test.test_asyncio; print("suite", flush=True)')
    if args.loop != 'asyncio':
        code += f'; import {args.loop}'
    try:
        done = subprocess.run([args.python, '-c', code],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None, 'import did not finish in 60 s'
    lines = done.stdout.splitlines()
    try:
        major, minor = map(int, lines[0].split())
        version = (major, minor)
    except (IndexError, ValueError):
        version = None
    if done.returncode == 0:
        return version, ''
    why = (done.stderr.strip().splitlines() or
           [f'exit status {done.returncode}'])[-1]
    if version is None:
        return None, f'{args.python} does not run: {why}'
    if lines[1:] != ['suite']:
        return version, (f"cannot import CPython's asyncio tests "
                         f'(test.test_asyncio; on Debian: libpython'
                         f'{major}.{minor}-testsuite): {why}')
    return version, f'cannot import {args.loop}: {why}'


# --------------------------------------------------------------------------
# The layout audit
# --------------------------------------------------------------------------

AUDIT_ORDER = ('unaccounted', 'selected', 'mixin', 'unselected', 'skipped')


def run_audit(args: argparse.Namespace, *, show: bool) -> int:
    """Ask a worker how every TestCase class is covered; the number of
    classes neither run nor listed with a reason."""
    done = subprocess.run([args.python, str(WORKER), '--audit'],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE='1'))
    if done.returncode != 0:
        print(f'run.py: the layout audit failed:\n{done.stderr}',
              file=sys.stderr)
        return 1
    records = [json.loads(line) for line in done.stdout.splitlines()]
    counts = collections.Counter(r['status'] for r in records)
    unaccounted = [r for r in records if r['status'] == 'unaccounted']
    if show:
        width = max((len(r['class']) for r in records), default=0)
        for status in AUDIT_ORDER:
            for r in records:
                if r['status'] == status:
                    print(f'{status:11}  {r["class"]:<{width}}  '
                          f'{r["detail"]}')
    print('layout: ' + ', '.join(f'{counts[s]} {s}' for s in AUDIT_ORDER)
          + ' test classes')
    if unaccounted:
        print(f'{len(unaccounted)} test classes are neither run nor listed in '
              f'lists.UNSELECTED with a reason:')
        for r in unaccounted:
            print(f'    {r["class"]} ({r["detail"]})')
    return len(unaccounted)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    version, problem = probe(args)
    if problem:
        print(f'run.py: {args.python}: {problem}', file=sys.stderr)
        return 2
    args.version = version
    layout = lists.layout(version)
    choose_modules(args, layout)
    print(f'Python {version[0]}.{version[1]} ({args.python}), loop '
          f'{args.loop}', flush=True)
    if args.audit:
        return 1 if run_audit(args, show=True) else 0
    # A full run checks first that no test class slips by unrun.
    unaccounted = (run_audit(args, show=False)
                   if args.group == 'all' and not args.module else 0)
    expected = lists.Matcher(layout.expected_fail(args.loop))
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix='asyncuv-conformance-')
    pending: queue.Queue = queue.Queue()
    for module in args.modules:
        pending.put(module)
    jobs: dict[str, ModuleJob] = {}

    with open(args.log, 'w') as log:
        log.write(f'conformance run: loop {args.loop}, group {args.group}, '
                  f'modules {" ".join(args.modules)}\n')
        if args.timeout_scale != 1:
            log.write(f'sanitizer build (AUV_SANITIZERS): timeouts times '
                      f'{args.timeout_scale}, {args.timeout:g} s per test\n')
        reporter = Reporter(args.modules, args, log)

        def work():
            while True:
                try:
                    module = pending.get_nowait()
                except queue.Empty:
                    return
                job = jobs[module] = ModuleJob(module, args, workdir,
                                               expected)
                reporter.module_done(job.execute())

        threads = [threading.Thread(target=work, daemon=True)
                   for _ in range(min(args.jobs, len(args.modules)))]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            while not pending.empty():
                pending.get_nowait()
            for job in list(jobs.values()):
                job.kill()
            print('\ninterrupted', file=sys.stderr)
            shutil.rmtree(workdir, ignore_errors=True)
            return 130
        status = summarize(reporter, args, time.monotonic() - started,
                           unaccounted)
    shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == '__main__':
    sys.exit(main())

"""Worker of the conformance runner: runs one CPython asyncio test module.

Started by run.py, one process per module (and a fresh one after a timeout
or a crash).  It reads its orders as one JSON object on stdin:

    {"loop": "uvloop", "module": "test_tasks", "group": "all",
     "timeout": 60, "done": [<ids already reported by earlier workers>]}

and reports on its original stdout, one JSON object a line:

    {"plan": [ids...], "not_held": {id: reason}}   once, first
    {"start": id}                                   before each test
    {"end": id, "status": s, "time": t, "details": text}
    {"fixture": name, "status": "error", "details": text}   class/module set-up
    {"done": true}                                  last

status is one of passed, failed, error, skipped.  Whatever the tests print
goes to stderr, which run.py keeps for the log; a line starting with
OUTPUT_MARK before each test lets it tell whose output is whose.  A test that
outlives the timeout makes faulthandler dump every thread's stack and end the
process; run.py notices and carries on in a new worker.
"""

from __future__ import annotations

import asyncio
import collections
import faulthandler
import importlib
import inspect
import json
import os
import pkgutil
import re
import signal
import sys
import time
import traceback
import types
import unittest
import warnings
from dataclasses import dataclass
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lists  # noqa: E402

REAL_LOOP_MARKERS = re.compile(
    r'new_event_loop\(|asyncio\.run\(|Runner\(|\bEventLoop\(')
LAYOUT = lists.layout(sys.version_info)
# 3.14 deprecates the public setter; the runner's own use is not what the
# tests are about.
set_policy = getattr(asyncio.events, '_set_event_loop_policy',
                     asyncio.set_event_loop_policy)
OUTPUT_MARK = '@@conformance: start of '   # a line of stderr before each test


# --------------------------------------------------------------------------
# The loop under test
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class LoopAPI:
    name: str
    policy: Callable[[], asyncio.AbstractEventLoopPolicy]
    new_event_loop: Callable[[], asyncio.AbstractEventLoop]
    loop_class: type


def load_loop(name: str) -> LoopAPI:
    if name == 'asyncio':
        policy = asyncio.DefaultEventLoopPolicy
        # Not asyncio.new_event_loop(): that asks the *current* policy, and
        # test_runners installs a policy whose new_event_loop() calls ours.
        return LoopAPI(name, policy, lambda: policy().new_event_loop(),
                       asyncio.SelectorEventLoop)
    module = importlib.import_module(name)
    return LoopAPI(name, module.EventLoopPolicy, module.new_event_loop,
                   module.Loop)


# --------------------------------------------------------------------------
# Patches to CPython's test helpers (never to the tests themselves)
# --------------------------------------------------------------------------

def patch_test_helpers() -> None:
    from test import support
    from test.test_asyncio import utils as test_utils

    def run_until(loop, pred, timeout=support.SHORT_TIMEOUT):
        # 3.11's helper raises futures.TimeoutError, which no longer exists,
        # so a timeout surfaces as AttributeError.
        deadline = time.monotonic() + timeout
        while not pred():
            if timeout is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError()
            loop.run_until_complete(asyncio.sleep(0.001))

    missing = object()

    def close_loop(loop):
        # The helper reads the stock loop's private _default_executor; for a
        # loop without it, shut the default executor down through the API.
        executor = getattr(loop, '_default_executor', missing)
        if executor is missing:
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
        elif executor is not None:
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
            else:
                executor.shutdown(wait=True)
        loop.close()
        # Up to 3.13 the helper then waits for the threads of the stock
        # policy's ThreadedChildWatcher (3.14 has no child watchers).
        get_policy = getattr(support, 'maybe_get_event_loop_policy', None)
        policy = get_policy() if get_policy is not None else None
        get_watcher = getattr(policy, 'get_child_watcher', None)
        if get_watcher is None:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                watcher = get_watcher()
        except NotImplementedError:
            return
        if isinstance(watcher, getattr(asyncio, 'ThreadedChildWatcher', ())):
            for thread in list(watcher._threads.values()):
                thread.join(timeout=support.SHORT_TIMEOUT)

    test_utils.run_until = run_until
    test_utils.TestCase.close_loop = staticmethod(close_loop)


# --------------------------------------------------------------------------
# Building the module's tests
# --------------------------------------------------------------------------

def short_id(test: unittest.TestCase) -> str:
    return test.id().removeprefix(lists.PACKAGE + '.')


def runner_loop_factory(
        api: LoopAPI) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop for test_runners' BaseTest, which checks in tearDown that
    asyncio.run()/Runner called loop.shutdown_asyncgens()."""
    try:
        class TrackedLoop(api.loop_class):
            shutdown_ag_run = False

            async def shutdown_asyncgens(self):
                self.shutdown_ag_run = True
                await super().shutdown_asyncgens()
    except TypeError:          # a final type: record it on the instance
        def factory():
            loop = api.new_event_loop()
            original = loop.shutdown_asyncgens

            async def shutdown_asyncgens():
                loop.shutdown_ag_run = True
                await original()
            loop.shutdown_ag_run = False
            loop.shutdown_asyncgens = shutdown_asyncgens
            return loop
        return factory
    return TrackedLoop


def resolve(module: types.ModuleType, dotted: str):
    """A name as the test module sees it, e.g. 'test_utils.TestCase'."""
    obj = module
    for part in dotted.split('.'):
        obj = getattr(obj, part)
    return obj


def make_mixin_class(module: types.ModuleType, spec: lists.MixinClass,
                     api: LoopAPI) -> type:
    bases = [resolve(module, name) for name in spec.bases]
    if spec.case:
        bases.append(resolve(module, spec.case))
    factory = (runner_loop_factory(api) if spec.runner_loop
               else api.new_event_loop)

    def new_loop(self):
        return factory()

    attrs = {
        '__module__': module.__name__,
        '__qualname__': spec.name,
        'create_event_loop': new_loop,   # EventLoopTestsMixin & co
        'new_loop': new_loop,            # FunctionalTestCaseMixin, BaseTest
    }
    if spec.own_setup == 'test_utils':
        test_case = resolve(module, 'test_utils.TestCase')

        def setUp(self):
            test_case.setUp(self)
            self.loop = self.create_event_loop()
            self.set_event_loop(self.loop)
        attrs['setUp'] = setUp
    elif spec.own_setup == 'plain':
        def setUp(self):
            unittest.TestCase.setUp(self)
            self.loop = self.create_event_loop()
            self.addCleanup(self.loop.close)
        attrs['setUp'] = setUp
    elif spec.own_setup:
        raise ValueError(f'{spec.name}: unknown own_setup {spec.own_setup!r}')
    return type(spec.name, tuple(bases), attrs)


def _defined_source(func) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ''


def uses_real_loop(cls: type, method_name: str) -> bool:
    if issubclass(cls, unittest.IsolatedAsyncioTestCase):
        return True
    for klass in cls.__mro__:
        for hook in ('setUp', 'asyncSetUp'):
            func = vars(klass).get(hook)
            if func and REAL_LOOP_MARKERS.search(_defined_source(func)):
                return True
    return bool(REAL_LOOP_MARKERS.search(
        _defined_source(getattr(cls, method_name))))


def module_classes(module: types.ModuleType) -> list[type]:
    """The TestCase classes the module defines, in definition order."""
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, unittest.TestCase)
            and obj.__module__ == module.__name__]


def policy_classes(module: types.ModuleType,
                   class_names: tuple[str, ...] | None) -> list[type]:
    if class_names is not None:
        return [getattr(module, name) for name in class_names]
    return module_classes(module)


def point_event_loop_at(api: LoopAPI) -> None:
    """From 3.13, asyncio.EventLoop names the platform's default loop, and
    tests take it directly: asyncio.run(..., loop_factory=asyncio.EventLoop),
    3.14's IsolatedAsyncioTestCase.loop_factory = asyncio.EventLoop (read when
    the module is imported).  Make it the loop under test."""
    if api.name != 'asyncio' and hasattr(asyncio, 'EventLoop'):
        asyncio.EventLoop = api.loop_class


def import_test_module(module_name: str) -> types.ModuleType:
    return importlib.import_module(f'{lists.PACKAGE}.{module_name}')


def policy_tests(module: types.ModuleType, class_names, real_loop_only: bool,
                 loader: unittest.TestLoader) -> list[unittest.TestCase]:
    tests = []
    for cls in policy_classes(module, class_names):
        for name in loader.getTestCaseNames(cls):
            if not real_loop_only or uses_real_loop(cls, name):
                tests.append(cls(name))
    return tests


def build_tests(module_name: str, group: str,
                api: LoopAPI) -> list[unittest.TestCase]:
    """The module's selected tests, in a stable order."""
    module = import_test_module(module_name)
    loader = unittest.TestLoader()
    tests: list[unittest.TestCase] = []

    for spec in LAYOUT.mixins.get(module_name, ()):
        cls = make_mixin_class(module, spec, api)
        tests.extend(loader.loadTestsFromTestCase(cls))

    policy_spec = LAYOUT.policy.get(module_name)
    if policy_spec is not None:
        tests.extend(policy_tests(module, *policy_spec, loader))

    globs = LAYOUT.groups[group].get(module_name)
    return [t for t in tests if lists.module_globs_match(short_id(t), globs)]


# --------------------------------------------------------------------------
# Running them
# --------------------------------------------------------------------------

class ResultChannel(unittest.TestResult):
    """Sends each test's outcome to run.py as it happens."""

    # a test ends with the worst of what befell it
    RANK = {'error': 3, 'failed': 2, 'skipped': 1, 'passed': 0}

    def __init__(self, emit, api: LoopAPI, timeout: float):
        super().__init__()
        self.emit = emit
        self.api = api
        self.timeout = timeout
        self._status = 'passed'
        self._details: list[str] = []
        self._started = 0.0

    def _outcome(self, status: str, text: str = '') -> None:
        if self.RANK[status] > self.RANK[self._status]:
            self._status = status
        if text:
            self._details.append(text)

    def _format(self, err) -> str:
        return ''.join(traceback.format_exception(*err))

    def startTest(self, test):
        super().startTest(test)
        # Every module resets the policy when it ends, and some tests set
        # their own: install ours before each test, ahead of its setUp.
        set_policy(self.api.policy())
        self._status, self._details = 'passed', []
        # Marks where the test's output begins in the worker's stderr.
        sys.stderr.write(f'\n{OUTPUT_MARK}{short_id(test)}\n')
        sys.stderr.flush()
        self.emit(start=short_id(test))
        faulthandler.dump_traceback_later(self.timeout, exit=True)
        self._started = time.monotonic()

    def stopTest(self, test):
        elapsed = time.monotonic() - self._started
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        self.emit(end=short_id(test), status=self._status,
                  time=round(elapsed, 3), details='\n'.join(self._details))

    def addError(self, test, err):
        if isinstance(test, unittest.TestCase):
            self._outcome('error', self._format(err))
        else:   # class or module fixture (_ErrorHolder)
            self.emit(fixture=str(test), status='error',
                      details=self._format(err))

    def addFailure(self, test, err):
        self._outcome('failed', self._format(err))

    def addSubTest(self, test, subtest, err):
        if err is not None:
            status = ('failed' if issubclass(err[0], test.failureException)
                      else 'error')
            self._outcome(status, f'{subtest}\n{self._format(err)}')

    def addSkip(self, test, reason):
        if isinstance(test, unittest.TestCase):
            self._outcome('skipped', reason)

    def addExpectedFailure(self, test, err):
        pass    # CPython's own @expectedFailure: unittest counts it as OK

    def addUnexpectedSuccess(self, test):
        self._outcome('failed', 'unexpected success of an @expectedFailure')


# --------------------------------------------------------------------------
# The layout audit: how every TestCase class of the suite is covered
# --------------------------------------------------------------------------

def audit() -> list[dict]:
    """One record per TestCase class (with tests) of the installed suite:
    selected (some of its tests run), mixin (run through a class the runner
    builds on its mixin), skipped (skipped on this platform), unselected
    (listed in lists.UNSELECTED) or unaccounted."""
    import test.test_asyncio as package
    loader = unittest.TestLoader()
    unselected = lists.Matcher(LAYOUT.unselected)
    records = []
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__)
                   if info.name.startswith('test_'))
    for module_name in names:
        try:
            module = import_test_module(module_name)
        except unittest.SkipTest as exc:
            records.append({'class': f'{module_name}.*', 'status': 'skipped',
                            'detail': str(exc)})
            continue
        selected: collections.Counter = collections.Counter()
        mixin_bases: dict[type, str] = {}
        if module_name in LAYOUT.modules:
            for spec in LAYOUT.mixins.get(module_name, ()):
                for base in spec.bases:
                    mixin_bases[resolve(module, base)] = spec.name
            policy_spec = LAYOUT.policy.get(module_name)
            if policy_spec is not None:
                selected.update(type(t).__name__ for t in
                                policy_tests(module, *policy_spec, loader))
        for cls in module_classes(module):
            total = len(loader.getTestCaseNames(cls))
            if not total:
                continue
            name = f'{module_name}.{cls.__name__}'
            covering = [spec for base, spec in mixin_bases.items()
                        if base in cls.__mro__]
            reason = unselected.reason(name)
            if getattr(cls, '__unittest_skip__', False):
                status = 'skipped'
                detail = getattr(cls, '__unittest_skip_why__', '')
            elif selected[cls.__name__]:
                status = 'selected'
                detail = f'{selected[cls.__name__]} of {total} tests'
            elif covering:
                status, detail = 'mixin', f'run as {covering[0]}'
            elif reason is not None:
                status, detail = 'unselected', reason
            else:
                status, detail = 'unaccounted', f'{total} tests'
            records.append({'class': name, 'status': status,
                            'detail': detail})
    return records


def main() -> None:
    if sys.argv[1:] == ['--audit']:
        warnings.simplefilter('ignore', DeprecationWarning)
        for record in audit():
            print(json.dumps(record))
        sys.stdout.flush()
        os._exit(0)
    orders = json.load(sys.stdin)

    # Keep the original stdout for reports; send the tests' prints to stderr.
    channel = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)

    def emit(**message):
        channel.write(json.dumps(message) + '\n')

    # Python's own SIGINT handler, whatever was inherited: a run started in
    # the background inherits SIGINT ignored, and with SIG_DFL instead
    # _thread.interrupt_main() does nothing and test_runners' interrupt tests
    # hang.  asyncio.Runner only hooks SIGINT if it finds this handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    faulthandler.enable()

    from test import support
    support.verbose = 0
    # A sanitizer build (run.py's SANITIZER_TIMEOUT_SCALE): the tests' own
    # timeouts, before the test modules bind them as default arguments.
    scale = orders.get('timeout_scale', 1)
    support.SHORT_TIMEOUT *= scale
    support.LONG_TIMEOUT *= scale
    patch_test_helpers()

    api = load_loop(orders['loop'])
    point_event_loop_at(api)
    not_held = lists.Matcher(LAYOUT.not_held)
    tests = build_tests(orders['module'], orders['group'], api)
    ids = [short_id(t) for t in tests]
    held_out = {i: r for i in ids if (r := not_held.reason(i)) is not None}
    emit(plan=ids, not_held=held_out)

    done = set(orders.get('done', ())) | held_out.keys()
    suite = unittest.TestSuite(t for t in tests if short_id(t) not in done)
    suite.run(ResultChannel(emit, api, orders['timeout']))
    emit(done=True)
    channel.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Not a normal exit: threads or executors a test left behind would be
    # joined at interpreter shutdown, and could hang it.
    os._exit(0)


if __name__ == '__main__':
    main()

"""Shared fixtures for the asyncuv twin test suite.

Every behavioural test takes the ``loop`` fixture, which is parametrized over
two loop kinds:

* ``asyncuv`` -- the loop under test (``asyncuv.new_event_loop()``);
* ``asyncio`` -- the stock pure-Python selector loop, which is the reference:
  when the two disagree, asyncio is right and the tests assert its behaviour.

Until asyncuv is built, ``ASYNCUV_TEST_STANDIN=uvloop`` makes the ``asyncuv``
parameter use uvloop instead, so the suite itself can be exercised.  Without
that variable the suite imports ``asyncuv`` and every asyncuv test errors
loudly if the import fails; nothing is ever skipped silently.

Handy selections::

    python3 -m pytest tests/python -m "not asyncuv"   # stock asyncio only
    python3 -m pytest tests/python -m asyncuv         # asyncuv (+ API) only
"""

import asyncio
import fnmatch
import gc
import logging
import os
import sys

import pytest

from support import STANDIN_ENV, load_asyncuv, new_loop

_KNOWN_MATCHED = pytest.StashKey[dict]()


def _known_failures():
    from known_failures import KNOWN_FAILURES
    return KNOWN_FAILURES.get(sys.version_info[:2], {})


def _matches(nodeid, pattern):
    """A node id, or a pattern with * and ? (brackets, as in parameter ids,
    stand for themselves)."""
    if "*" not in pattern and "?" not in pattern:
        return nodeid == pattern
    return fnmatch.fnmatchcase(nodeid, pattern.replace("[", "[[]"))


def pytest_collection_modifyitems(config, items):
    """Mark the tests known_failures.py lists for this Python as xfail."""
    known = _known_failures()
    if not known:
        return
    matched = config.stash[_KNOWN_MATCHED] = {}
    for item in items:
        for pattern, reason in known.items():
            if _matches(item.nodeid, pattern):
                item.add_marker(pytest.mark.xfail(
                    reason=f"known failure on {sys.version_info[0]}."
                           f"{sys.version_info[1]}: {reason}",
                    strict=False))
                matched.setdefault(pattern, []).append(item.nodeid)
                break


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Name the known-failure entries that no longer fail (or match no
    test), so the list shrinks as the work lands."""
    known = _known_failures()
    if not known:
        return
    matched = config.stash.get(_KNOWN_MATCHED, {})
    xpassed = {report.nodeid for report in terminalreporter.stats.get("xpassed", [])}
    failing = {report.nodeid for report in terminalreporter.stats.get("xfailed", [])}
    version = "%d.%d" % sys.version_info[:2]
    stale = [p for p in known if not matched.get(p)]
    passing = [p for p, ids in matched.items()
               if ids and not set(ids) & failing and set(ids) <= xpassed]
    terminalreporter.write_line(
        f"known failures for {version} (known_failures.py): {len(known)} "
        f"listed, {len(failing)} tests failed as expected, {len(xpassed)} "
        f"passed")
    for pattern in passing:
        terminalreporter.write_line(f"    passes now, remove: {pattern}")
    for pattern in stale:
        terminalreporter.write_line(f"    matches no test, remove: {pattern}")


def pytest_report_header(config):
    standin = os.environ.get(STANDIN_ENV)
    if standin:
        return f"asyncuv param: STAND-IN {standin!r} ({STANDIN_ENV})"
    return "asyncuv param: real asyncuv module"


def _load_or_fail():
    """Load asyncuv or error the test loudly (never skip)."""
    try:
        return load_asyncuv()
    except ImportError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


class _LoopErrorCollector(logging.Handler):
    """Collects ERROR records of the 'asyncio' logger, which is where every
    default_exception_handler() call (ours or asyncio's) ends up."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def loop_errors(request):
    """Fail the test if the default exception handler was reached
    (unhandled callback errors, 'Task exception was never retrieved',
    'Task was destroyed but it is pending!', ...), unless the test is
    marked ``allow_loop_errors``.  Yields the list of collected records."""
    logger = logging.getLogger("asyncio")
    collector = _LoopErrorCollector()
    logger.addHandler(collector)
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.ERROR:
        logger.setLevel(logging.ERROR)
    try:
        yield collector.records
        # Let destroyed-pending-task style reports happen now, not later.
        gc.collect()
    finally:
        logger.removeHandler(collector)
        logger.setLevel(old_level)
    if collector.records and not request.node.get_closest_marker("allow_loop_errors"):
        details = "\n---\n".join(collector.format(r) for r in collector.records)
        pytest.fail(
            f"{len(collector.records)} unhandled error(s) reached the loop's "
            f"default exception handler:\n{details}",
            pytrace=False,
        )


@pytest.fixture(
    params=[
        pytest.param("asyncuv", marks=pytest.mark.asyncuv),
        pytest.param("asyncio", marks=pytest.mark.stock),
    ]
)
def loop_kind(request):
    """'asyncuv' or 'asyncio'."""
    return request.param


@pytest.fixture
def loop_factory(loop_kind):
    """Create extra loops of the same kind; they are closed at teardown."""
    if loop_kind == "asyncuv":
        _load_or_fail()
    created = []

    def factory():
        lp = new_loop(loop_kind)
        created.append(lp)
        return lp

    yield factory
    for lp in created:
        if not lp.is_closed():
            lp.close()


@pytest.fixture
def loop(loop_kind, loop_errors):
    """A fresh loop of each kind, current for the duration of the test."""
    if loop_kind == "asyncuv":
        _load_or_fail()
    lp = new_loop(loop_kind)
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        try:
            assert not lp.is_running(), "test left the loop running"
            if not lp.is_closed():
                lp.close()
        finally:
            asyncio.set_event_loop(None)
            # Drop lingering references so leaks are reported by this test.
            del lp
            gc.collect()


@pytest.fixture
def asyncuv():
    """The asyncuv module (or its stand-in) for asyncuv-only API tests."""
    return _load_or_fail()


@pytest.fixture
def restore_policy():
    """Restore the default event loop policy after tests that install one."""
    yield
    # Python 3.14 deprecates the public setter; this one does not warn.
    getattr(asyncio.events, "_set_event_loop_policy",
            asyncio.set_event_loop_policy)(None)

"""Data of the conformance runner: what to run, not hold and expect to fail.

Everything a person edits between runs lives here; ``run.py`` and ``worker.py``
hold only mechanism.

Test ids are short: the CPython test id without the ``test.test_asyncio.``
prefix, e.g. ``test_events.EventLoopTests.test_call_soon``.  Entries of
NOT_HELD and EXPECTED_FAIL are ``fnmatch`` globs over those ids, each with a
reason.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

PACKAGE = 'test.test_asyncio'


# ---------------------------------------------------------------------------
# Kind (a): mixin-based classes.  The runner builds
#     class <name>(*bases, <case>): create_event_loop = new_loop = <our loop>
# in the test module's namespace, so the tests run once on the loop under test
# (instead of once per selector).
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MixinClass:
    name: str                  # name of the generated class (part of test ids)
    bases: tuple[str, ...]     # names in the test module, mixins first
    case: str = 'test_utils.TestCase'   # or 'unittest.TestCase', or '' if a
                                        # base already is a TestCase
    own_setup: bool = False    # the class's setUp builds a hard-wired loop (or
                               # none): replace it by one that makes ours
    runner_loop: bool = False  # test_runners' BaseTest: the loop must record
                               # that shutdown_asyncgens() ran


MIXINS: dict[str, tuple[MixinClass, ...]] = {
    'test_events': (
        # Upstream runs these x3 selectors (+ a SafeChildWatcher, which only
        # the stock loop understands); once is what a foreign loop needs.
        MixinClass('EventLoopTests',
                   ('EventLoopTestsMixin', 'SubprocessTestsMixin')),
    ),
    'test_subprocess': (
        # Upstream: x5 child watchers, each attached to the loop.
        MixinClass('SubprocessTests', ('SubprocessMixin',), own_setup=True),
    ),
    'test_sock_lowlevel': (
        MixinClass('SockTests', ('BaseSockTestsMixin',)),
    ),
    'test_sendfile': (
        MixinClass('SendfileTests', ('SendfileTestsBase',)),
    ),
    'test_server': (
        # The selector class adds a Unix-socket test to the mixin's.
        MixinClass('StartServerTests', ('SelectorStartServerTests',), case=''),
    ),
    'test_buffered_proto': (
        MixinClass('BufferedProtocolTests', ('BaseTestBufferedProtocol',),
                   case='unittest.TestCase'),
    ),
    'test_sslproto': (
        MixinClass('StartTLSTests', ('SelectorStartTLSTests',), case=''),
    ),
    'test_unix_events': (
        MixinClass('UnixSocketTests', ('SelectorEventLoopUnixSocketTests',),
                   case='', own_setup=True),
    ),
    'test_runners': (
        MixinClass('RunTests', ('RunTests',), case='', runner_loop=True),
        MixinClass('RunnerTests', ('RunnerTests',), case='', runner_loop=True),
    ),
}


# ---------------------------------------------------------------------------
# Kind (b): classes that take their loop from the policy (new_event_loop(),
# asyncio.run(), asyncio.Runner, IsolatedAsyncioTestCase).  The runner installs
# the loop's policy before every test.
#
# classes=None means every TestCase class of the module.  With real_loop_only,
# a test is kept only if it runs on a real loop: its class is an
# IsolatedAsyncioTestCase, or a setUp/asyncSetUp in its class's MRO or the test
# body itself calls new_event_loop( / asyncio.run( / Runner(.  The others run
# on test_utils.TestLoop or a mocked BaseEventLoop and say nothing about ours.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyModule:
    classes: tuple[str, ...] | None = None
    real_loop_only: bool = True


POLICY_MODULES: dict[str, PolicyModule] = {
    'test_tasks': PolicyModule(),
    'test_futures': PolicyModule(),   # every class uses TestLoop: selects none
    'test_futures2': PolicyModule(),
    'test_locks': PolicyModule(),
    'test_queues': PolicyModule(),
    'test_streams': PolicyModule(),
    'test_taskgroups': PolicyModule(),
    'test_timeouts': PolicyModule(),
    'test_waitfor': PolicyModule(),
    'test_threads': PolicyModule(),
    'test_context': PolicyModule(),
    'test_ssl': PolicyModule(),
    'test_pep492': PolicyModule(),
    'test_base_events': PolicyModule(
        classes=('BaseEventLoopTests', 'RunningLoopTests')),
    'test_unix_events': PolicyModule(
        classes=('SelectorEventLoopUnixSockSendfileTests', 'TestFunctional')),
}

# test_futures and test_pep492 select nothing on 3.11 (TestLoop and a bare
# BaseEventLoop throughout); they stay listed so that a real-loop test added
# there is picked up.
#
# Not selected at all (no loop-generic tests): test_base_events' other
# classes, test_selector_events, test_proactor_events, test_windows_*,
# test_protocols, test_transports, test_sslproto.SslProtoHandshakeTests
# (asyncio's SSLProtocol), test_events' Handle/Timer/Policy/GetEventLoop tests
# (asyncio's own objects, patched module functions and SafeChildWatcher),
# test_unix_events' signal, pipe-transport and child-watcher tests,
# test_subprocess' transport tests.


# ---------------------------------------------------------------------------
# Groups.  A module in a group may carry globs that narrow its tests (matched
# against the short test id); None means the module's whole selection.
# ---------------------------------------------------------------------------

# Order matters twice: it is the order of the report, and modules are handed
# to workers in this order, so the long ones come first.
ALL_MODULES: tuple[str, ...] = (
    'test_events', 'test_tasks', 'test_ssl', 'test_subprocess',
    'test_sslproto', 'test_sendfile', 'test_streams', 'test_sock_lowlevel',
    'test_locks', 'test_queues', 'test_taskgroups', 'test_timeouts',
    'test_waitfor', 'test_runners', 'test_threads', 'test_context',
    'test_futures', 'test_futures2', 'test_pep492', 'test_server',
    'test_buffered_proto', 'test_unix_events', 'test_base_events',
)

_EVENTS_CORE = tuple(
    'test_events.EventLoopTests.' + pattern for pattern in (
        'test_call_*', 'test_run_until_complete*', 'test_run_forever*',
        'test_stop*', 'test_close*', 'test_run_in_executor*',
        'test_*exception_handler*', 'test_timeout_rounding',
    ))

GROUPS: dict[str, dict[str, tuple[str, ...] | None]] = {
    'all': {module: None for module in ALL_MODULES},
    'core': {
        'test_events': _EVENTS_CORE,
        'test_tasks': None,
        'test_futures': None,
        'test_futures2': None,
        'test_locks': None,
        'test_queues': None,
        'test_timeouts': None,
        'test_taskgroups': None,
        'test_waitfor': None,
        'test_runners': None,
        'test_threads': None,
        'test_context': None,
    },
}


# ---------------------------------------------------------------------------
# NOT_HELD: tests of asyncio's private internals, or that mock them.  A foreign
# loop cannot pass them and need not; they are not run.  Only tests whose very
# mechanism is asyncio's own machinery belong here (private attributes of the
# stock loop or its transports, mocked asyncio module globals, asyncio's child
# watchers) -- never a test of behaviour that a loop could get wrong, even one
# that merely ends by touching a private attribute (test_prompt_cancellation,
# test_server's two tests): those fail honestly until the loop copes, or
# EXPECTED_FAIL says why not.
# ---------------------------------------------------------------------------

NOT_HELD: tuple[tuple[str, str], ...] = (
    ('test_events.EventLoopTests.test_timeout_rounding',
     "wraps the stock loop's _run_once() to count its iterations and reads "
     "_clock_resolution and _selector"),
    ('test_events.EventLoopTests.test_create_server_multiple_hosts_*',
     'mocks asyncio.base_events.socket and loop._start_serving/_stop_serving'),
    ('test_subprocess.SubprocessTests.test_popen_error*',
     "mocks subprocess.Popen, which only asyncio's own subprocess transport "
     'calls'),
    ('test_ssl.TestSSL.test_flush_before_shutdown',
     "drives the SSL transport through its private _ssl_protocol "
     '(asyncio.sslproto.SSLProtocol)'),
    ('test_ssl.TestSSL.test_remote_shutdown_receives_trailing_data',
     "fills the write backlog through asyncio's private test hook "
     'transport._test__append_write_backlog()'),
    ('test_unix_events.UnixSocketTests.test_create_unix_server_bind_error',
     'mocks asyncio.unix_events.socket'),
    ('test_unix_events.SelectorEventLoopUnixSockSendfileTests.*',
     "calls or mocks the selector loop's private _sock_sendfile_native() "
     'and _sock_sendfile_native_impl()'),
)


# ---------------------------------------------------------------------------
# EXPECTED_FAIL: tests that fail on the loop under test until a later piece of
# work lands.  They are run; a failure, error, timeout or crash counts as
# expected, a pass is reported as an unexpected pass so the entry can go.
# Seed it from `run.py --list-failures`.
# ---------------------------------------------------------------------------

EXPECTED_FAIL: dict[str, tuple[tuple[str, str], ...]] = {
    # keyed by --loop; the stock loop and uvloop are references, not targets.
    'asyncuv': (
    ),
    'uvloop': (
    ),
    'asyncio': (
    ),
}


@dataclass
class Matcher:
    """Looks test ids up in a list of (glob, reason) entries."""

    entries: tuple[tuple[str, str], ...]
    _exact: dict[str, str] = field(init=False)
    _globs: list[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self._exact = {}
        self._globs = []
        for pattern, reason in self.entries:
            if any(ch in pattern for ch in '*?['):
                self._globs.append((pattern, reason))
            else:
                self._exact[pattern] = reason

    def reason(self, test_id: str) -> str | None:
        """The reason of the first entry that matches test_id, else None."""
        if test_id in self._exact:
            return self._exact[test_id]
        for pattern, reason in self._globs:
            if fnmatch.fnmatchcase(test_id, pattern):
                return reason
        return None


def module_globs_match(test_id: str, globs: tuple[str, ...] | None) -> bool:
    return globs is None or any(fnmatch.fnmatchcase(test_id, g) for g in globs)

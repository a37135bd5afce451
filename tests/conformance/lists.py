"""Data of the conformance runner: what to run, not hold and expect to fail,
for each version of CPython's test suite (3.11 to 3.14).

Everything a person edits between runs lives here; ``run.py`` and ``worker.py``
hold only mechanism.

Test ids are short: the CPython test id without the ``test.test_asyncio.``
prefix, e.g. ``test_events.EventLoopTests.test_call_soon``.  Entries of
NOT_HELD and EXPECTED_FAIL are ``fnmatch`` globs over those ids, each with a
reason.

The suite changes from one CPython to the next (modules added, classes added,
renamed or merged): every entry below that does not hold on all versions says
``since`` (the first minor version that has it) and ``until`` (the first that
no longer has it).  ``layout(version)`` gives the data for one version.  A
listed class or mixin that is missing on a version where it should exist
fails that module's run loudly; ``run.py --audit`` lists every TestCase class
of the installed suite with how it is covered, and the run fails if a class
is neither selected nor listed in UNSELECTED with a reason (so a test class
added by a new CPython cannot slip by unrun).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

PACKAGE = 'test.test_asyncio'

Version = tuple[int, int]
FIRST: Version = (3, 11)


@dataclass(frozen=True)
class Versions:
    """The minor versions an entry holds on: since <= version < until."""
    since: Version = FIRST
    until: Version | None = None

    def holds(self, version: Version) -> bool:
        return self.since <= version and (self.until is None
                                          or version < self.until)


@dataclass(frozen=True)
class Entry(Versions):
    """A glob with its reason (NOT_HELD, UNSELECTED)."""
    pattern: str = ''
    reason: str = ''


def entry(pattern: str, reason: str, since: Version = FIRST,
          until: Version | None = None) -> Entry:
    return Entry(since, until, pattern, reason)


# ---------------------------------------------------------------------------
# The modules the runner knows, in report order.  Modules are handed to
# workers in this order, so the long ones come first.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Module(Versions):
    name: str = ''


def module(name: str, since: Version = FIRST,
           until: Version | None = None) -> Module:
    return Module(since, until, name)


MODULES: tuple[Module, ...] = (
    module('test_events'), module('test_tasks'), module('test_ssl'),
    module('test_subprocess'), module('test_sslproto'),
    module('test_sendfile'), module('test_streams'),
    module('test_sock_lowlevel'), module('test_locks'),
    module('test_queues'), module('test_taskgroups'),
    module('test_timeouts'), module('test_waitfor'), module('test_runners'),
    module('test_threads'), module('test_context'),
    module('test_eager_task_factory', since=(3, 12)),
    module('test_staggered', since=(3, 13)),
    module('test_free_threading', since=(3, 14)),
    module('test_graph', since=(3, 14)),
    module('test_futures'), module('test_futures2'), module('test_pep492'),
    module('test_server'), module('test_buffered_proto'),
    module('test_unix_events'), module('test_base_events'),
)


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
    own_setup: str = ''        # the class's setUp builds a hard-wired loop (or
                               # none): replace it by one that makes ours and
                               # 'test_utils': sets it as the current loop
                               # (test_utils.TestCase.set_event_loop), or
                               # 'plain': closes it at clean-up
    runner_loop: bool = False  # test_runners' BaseTest: the loop must record
                               # that shutdown_asyncgens() ran
    since: Version = FIRST
    until: Version | None = None

    def holds(self, version: Version) -> bool:
        return Versions(self.since, self.until).holds(version)


MIXINS: dict[str, tuple[MixinClass, ...]] = {
    'test_events': (
        # Upstream runs these x3 selectors (+ a SafeChildWatcher up to 3.13,
        # which only the stock loop understands); once is what a foreign loop
        # needs.
        MixinClass('EventLoopTests',
                   ('EventLoopTestsMixin', 'SubprocessTestsMixin')),
        # Pipe transports over every kind of file object; the class builds a
        # SelectorEventLoop in its setUp.
        MixinClass('UnixPipeObjectSupportTests',
                   ('UnixPipeObjectSupportTests',), case='',
                   own_setup='plain', since=(3, 14)),
    ),
    'test_subprocess': (
        # Upstream: x5 child watchers (x2 from 3.14), each attached to the
        # loop.
        MixinClass('SubprocessTests', ('SubprocessMixin',),
                   own_setup='test_utils'),
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
                   case='', own_setup='test_utils'),
    ),
    'test_runners': (
        MixinClass('RunTests', ('RunTests',), case='', runner_loop=True),
        MixinClass('RunnerTests', ('RunnerTests',), case='', runner_loop=True),
    ),
}


# ---------------------------------------------------------------------------
# Kind (b): classes that take their loop from the policy (new_event_loop(),
# asyncio.run(), asyncio.Runner, IsolatedAsyncioTestCase) or from
# asyncio.EventLoop (3.14's IsolatedAsyncioTestCase.loop_factory and
# asyncio.run(..., loop_factory=asyncio.EventLoop)).  The runner installs the
# loop's policy before every test and, from 3.13, points asyncio.EventLoop at
# the loop's class before the module is imported.
#
# classes=None means every TestCase class of the module.  With real_loop_only,
# a test is kept only if it runs on a real loop: its class is an
# IsolatedAsyncioTestCase, or a setUp/asyncSetUp in its class's MRO or the test
# body itself calls new_event_loop( / asyncio.run( / Runner( / EventLoop(.
# The others run on test_utils.TestLoop or a mocked BaseEventLoop and say
# nothing about ours.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyClass(Versions):
    name: str = ''


def policy_class(name: str, since: Version = FIRST,
                 until: Version | None = None) -> PolicyClass:
    return PolicyClass(since, until, name)


@dataclass(frozen=True)
class PolicyModule:
    classes: tuple[PolicyClass | str, ...] | None = None
    real_loop_only: bool = True

    def class_names(self, version: Version) -> tuple[str, ...] | None:
        if self.classes is None:
            return None
        return tuple(c if isinstance(c, str) else c.name
                     for c in self.classes
                     if isinstance(c, str) or c.holds(version))


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
    'test_eager_task_factory': PolicyModule(),
    'test_staggered': PolicyModule(),
    'test_free_threading': PolicyModule(),
    'test_graph': PolicyModule(),
    'test_base_events': PolicyModule(
        classes=('BaseEventLoopTests', 'RunningLoopTests')),
    'test_events': PolicyModule(classes=('TestServer',)),
    'test_server': PolicyModule(classes=(
        policy_class('TestServer2', since=(3, 12)),
        policy_class('UnixServerCleanupTests', since=(3, 13)),
    )),
    'test_unix_events': PolicyModule(classes=(
        'SelectorEventLoopUnixSockSendfileTests', 'TestFunctional',
        policy_class('TestFork', since=(3, 12)),
    )),
}

# test_futures and test_pep492 select nothing (TestLoop and a bare
# BaseEventLoop throughout); they stay listed so that a real-loop test added
# there is picked up.  UNSELECTED (below) lists every class left out, with the
# reason.


# ---------------------------------------------------------------------------
# Groups.  A module in a group may carry globs that narrow its tests (matched
# against the short test id); None means the module's whole selection.
# 'all' is every module of MODULES that the version has.
# ---------------------------------------------------------------------------

_EVENTS_CORE = tuple(
    'test_events.EventLoopTests.' + pattern for pattern in (
        'test_call_*', 'test_run_until_complete*', 'test_run_forever*',
        'test_stop*', 'test_close*', 'test_run_in_executor*',
        'test_*exception_handler*', 'test_timeout_rounding',
    ))

_CORE: dict[str, tuple[str, ...] | None] = {
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
    'test_eager_task_factory': None,
    'test_staggered': None,
}

GROUP_NAMES = ('all', 'core')


# ---------------------------------------------------------------------------
# NOT_HELD: tests of asyncio's private internals, or that mock them.  A foreign
# loop cannot pass them and need not; they are not run.  Only tests whose very
# mechanism is asyncio's own machinery belong here (private attributes of the
# stock loop or its transports, mocked asyncio module globals, asyncio's child
# watchers, asyncio's choice of its own default loop class) -- never a test of
# behaviour that a loop could get wrong, even one that merely ends by touching
# a private attribute (test_prompt_cancellation, test_server's two tests):
# those fail honestly until the loop copes, or EXPECTED_FAIL says why not.
# ---------------------------------------------------------------------------

NOT_HELD: tuple[Entry, ...] = (
    entry('test_events.EventLoopTests.test_timeout_rounding',
          "wraps the stock loop's _run_once() to count its iterations and "
          'reads _clock_resolution and _selector'),
    entry('test_events.EventLoopTests.test_create_server_multiple_hosts_*',
          'mocks asyncio.base_events.socket and loop._start_serving/'
          '_stop_serving'),
    entry('test_subprocess.SubprocessTests.test_popen_error*',
          "mocks subprocess.Popen, which only asyncio's own subprocess "
          'transport calls'),
    entry('test_ssl.TestSSL.test_remote_shutdown_receives_trailing_data_on_slow_socket',
          "fills the write backlog through transport._test__append_write_backlog() "
          "and fakes a full socket buffer by replacing the selector transport's "
          'private _sock (and reading its _read_ready_cb) from a mock of '
          'its write() (3.14 and later 3.13 releases)', since=(3, 13)),
    entry('test_unix_events.UnixSocketTests.test_create_unix_server_bind_error',
          'mocks asyncio.unix_events.socket'),
    entry('test_unix_events.SelectorEventLoopUnixSockSendfileTests.*',
          "calls or mocks the selector loop's private _sock_sendfile_native() "
          'and _sock_sendfile_native_impl()'),
    entry('test_runners.RunTests.test_loop_factory_default_event_loop',
          'asserts that asyncio.EventLoop is the stock SelectorEventLoop '
          '(the runner points asyncio.EventLoop at the loop under test)',
          since=(3, 13)),
)


# ---------------------------------------------------------------------------
# UNSELECTED: the TestCase classes of the suite that the runner does not run,
# each with the reason (class globs, matched against 'module.Class').  Classes
# covered by a mixin above (the per-selector and per-watcher classes built on
# it) and classes skipped on Linux need no entry.  Only asyncio's own
# machinery belongs here, as for NOT_HELD.
# ---------------------------------------------------------------------------

_MOCKED_STOCK_LOOP = ("the stock loop's internals, driven with mocked "
                      'selectors, sockets or transports')

UNSELECTED: tuple[Entry, ...] = (
    # asyncio's own objects and functions, not a loop's
    entry('test_events.HandleTests', "asyncio.Handle itself, on mock loops"),
    entry('test_events.TimerTests', "asyncio.TimerHandle itself, on mock "
          'loops'),
    entry('test_events.AbstractEventLoopTests',
          "AbstractEventLoop's NotImplementedError methods"),
    entry('test_events.TestAbstractServer',
          "AbstractServer's NotImplementedError methods"),
    entry('test_events.PolicyTests', "asyncio's own event loop policies"),
    entry('test_unix_events.PolicyTests', "asyncio's own event loop policy "
          'and child watchers', until=(3, 14)),
    entry('test_events.Test[CP]*GetEventLoop',
          "asyncio's get_event_loop()/get_running_loop() accessors "
          'themselves, their Python and C versions patched into '
          'asyncio.events'),
    entry('test_futures.*', 'asyncio.Future on test_utils.TestLoop or a '
          'mock loop'),
    entry('test_tasks.*IntrospectionTests',
          "asyncio's task registry (_register_task, _enter_task, ...) with "
          'fake loops and tasks'),
    entry('test_tasks.GenericTaskTests', 'how asyncio.Task and _asyncio are '
          'built'),
    entry('test_tasks.*GatherTests', 'gather() on test_utils.TestLoop'),
    entry('test_pep492.*', 'on a bare asyncio.BaseEventLoop with a mocked '
          'selector'),
    entry('test_protocols.*', "the protocol base classes' default methods"),
    entry('test_transports.*', "the transport base classes' default "
          'methods'),
    entry('test_sslproto.SslProtoHandshakeTests',
          'asyncio.sslproto.SSLProtocol driven by hand with mocked '
          'transports and SSL objects'),
    entry('test_tools.*', "asyncio.tools (python -m asyncio ps/pstree) "
          'formatting call graphs given as data, no loop', since=(3, 14)),
    # the stock loop's and transports' internals
    entry('test_base_events.BaseEventTests', "asyncio.base_events' address "
          'helpers (_ipaddr_info, _ensure_resolved)'),
    entry('test_base_events.TestSelectorUtils', 'asyncio.base_events.'
          '_set_nodelay()'),
    entry('test_base_events.BaseEventLoopWithSelectorTests',
          _MOCKED_STOCK_LOOP),
    entry('test_base_events.BaseLoopSockSendfileTests',
          "BaseEventLoop's sock_sendfile() fallback on a loop without native "
          'sendfile (fallback=False must fail, which a loop with native '
          'sendfile rightly does not)'),
    entry('test_selector_events.*', _MOCKED_STOCK_LOOP),
    entry('test_proactor_events.*', "the Windows proactor loop's internals, "
          'on mocks'),
    entry('test_unix_events.SelectorEventLoopSignalTests',
          "the selector loop's signal machinery with a mocked signal module "
          '(_check_signal, _handle_signal, _signal_handlers)'),
    entry('test_unix_events.Unix*PipeTransportTests',
          "asyncio's pipe transports with mocked pipes, on TestLoop"),
    entry('test_unix_events.*ChildWatcherTests', "asyncio's child watchers",
          until=(3, 14)),
    entry('test_subprocess.SubprocessTransportTests',
          "asyncio's subprocess transport with a mocked Popen"),
    entry('test_subprocess.GenericWatcherTests', 'a mocked child watcher '
          'installed in the stock policy', until=(3, 14)),
    entry('test_subprocess.MultiLoopChildWatcherTests',
          "MultiLoopChildWatcher's deprecation warning", since=(3, 12),
          until=(3, 14)),
)


# ---------------------------------------------------------------------------
# EXPECTED_FAIL: tests that fail on the loop under test until a later piece of
# work lands, per loop and per minor version.  They are run; a failure, error,
# timeout or crash counts as expected, a pass is reported as an unexpected
# pass so the entry can go.  Seed it from `run.py --list-failures`; every
# entry says why it fails.
# ---------------------------------------------------------------------------

EXPECTED_FAIL: dict[str, dict[Version, tuple[tuple[str, str], ...]]] = {
    # keyed by --loop; the stock loop and uvloop are references, not targets.
    'asyncuv': {
    },
    'uvloop': {
    },
    'asyncio': {
    },
}


# ---------------------------------------------------------------------------
# One version's view of the above
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    version: Version
    modules: tuple[str, ...]
    mixins: dict[str, tuple[MixinClass, ...]]
    policy: dict[str, tuple[tuple[str, ...] | None, bool]]
    groups: dict[str, dict[str, tuple[str, ...] | None]]
    not_held: tuple[tuple[str, str], ...]
    unselected: tuple[tuple[str, str], ...]

    def expected_fail(self, loop: str) -> tuple[tuple[str, str], ...]:
        return EXPECTED_FAIL.get(loop, {}).get(self.version, ())


def layout(version: tuple[int, ...]) -> Layout:
    version = (version[0], version[1])
    modules = tuple(m.name for m in MODULES if m.holds(version))
    mixins = {name: tuple(c for c in specs if c.holds(version))
              for name, specs in MIXINS.items() if name in modules}
    policy = {name: (spec.class_names(version), spec.real_loop_only)
              for name, spec in POLICY_MODULES.items() if name in modules}
    groups = {
        'all': {name: None for name in modules},
        'core': {name: globs for name, globs in _CORE.items()
                 if name in modules},
    }
    return Layout(
        version=version, modules=modules, mixins=mixins, policy=policy,
        groups=groups,
        not_held=tuple((e.pattern, e.reason) for e in NOT_HELD
                       if e.holds(version)),
        unselected=tuple((e.pattern, e.reason) for e in UNSELECTED
                         if e.holds(version)))


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

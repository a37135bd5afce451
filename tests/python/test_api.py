"""asyncuv's own module-level API (run, install, EventLoopPolicy,
new_event_loop, Loop).  These run once, against asyncuv only."""

import asyncio
import contextlib
import sys
import threading
import warnings

import pytest

pytestmark = pytest.mark.asyncuv


class TestLoopClass:
    def test_loop_is_an_abstract_event_loop(self, asyncuv):
        assert issubclass(asyncuv.Loop, asyncio.AbstractEventLoop)

    def test_new_event_loop_returns_a_fresh_loop(self, asyncuv):
        first = asyncuv.new_event_loop()
        second = asyncuv.new_event_loop()
        try:
            assert isinstance(first, asyncuv.Loop)
            assert isinstance(first, asyncio.AbstractEventLoop)
            assert first is not second
            assert not first.is_running()
            assert not first.is_closed()
        finally:
            first.close()
            second.close()


# Python 3.14 deprecates asyncio's event loop policies: asyncio's policy
# functions and classes warn, and asyncuv's (install(), EventLoopPolicy) do
# too, in the same way; before 3.14 neither warns.
POLICIES_DEPRECATED = sys.version_info >= (3, 14)


@contextlib.contextmanager
def policy_api_warns():
    """Expect asyncio's warning for its policy API on this Python: on 3.14
    and later a DeprecationWarning, reported at the caller's line (this
    file); before 3.14 none at all."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if not POLICIES_DEPRECATED:
        assert [str(w.message) for w in caught] == []
        return
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert caught[0].category is DeprecationWarning
    assert caught[0].filename == __file__


def get_policy():
    # Not the API under test: the getter that does not warn on 3.14.
    return getattr(asyncio.events, "_get_event_loop_policy",
                   asyncio.get_event_loop_policy)()


class TestEventLoopPolicy:
    def test_is_an_event_loop_policy(self, asyncuv):
        with policy_api_warns():
            policy_class = asyncuv.EventLoopPolicy
        base = (asyncio.events._AbstractEventLoopPolicy if POLICIES_DEPRECATED
                else asyncio.AbstractEventLoopPolicy)
        assert isinstance(policy_class(), base)

    def test_new_event_loop_returns_asyncuv_loop(self, asyncuv):
        with policy_api_warns():
            policy_class = asyncuv.EventLoopPolicy
        loop = policy_class().new_event_loop()
        try:
            assert isinstance(loop, asyncuv.Loop)
        finally:
            loop.close()

    def test_install_makes_asyncio_create_asyncuv_loops(self, asyncuv, restore_policy):
        with policy_api_warns():
            asyncuv.install()
        assert type(get_policy()).__name__ == "EventLoopPolicy"
        assert type(get_policy()).__module__ == "asyncuv"
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, asyncuv.Loop)
        finally:
            loop.close()

    def test_asyncio_run_uses_installed_policy(self, asyncuv, restore_policy):
        with policy_api_warns():
            asyncuv.install()

        async def main():
            return type(asyncio.get_running_loop())

        assert issubclass(asyncio.run(main()), asyncuv.Loop)

    def test_warnings_match_asyncios_own(self, asyncuv, restore_policy):
        # The same category, reported at the same place (the caller's line),
        # as asyncio's set_event_loop_policy() and DefaultEventLoopPolicy.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.set_event_loop_policy(None)
            asyncuv.install()
            asyncio.DefaultEventLoopPolicy
            asyncuv.EventLoopPolicy
        seen = [(w.category, w.filename) for w in caught]
        if POLICIES_DEPRECATED:
            assert seen == [(DeprecationWarning, __file__)] * 4
        else:
            assert seen == []

    def test_not_in_star_import_when_deprecated(self, asyncuv):
        # As asyncio's policy classes, it leaves __all__ with the deprecation.
        assert ("EventLoopPolicy" in asyncuv.__all__) is not POLICIES_DEPRECATED
        assert ("DefaultEventLoopPolicy" in asyncio.__all__) is not POLICIES_DEPRECATED

    def test_recommended_spellings(self, asyncuv):
        # What the README recommends, on every Python: no policy involved.
        async def main():
            return type(asyncio.get_running_loop())

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert issubclass(asyncuv.run(main()), asyncuv.Loop)
            if sys.version_info >= (3, 12):   # loop_factory= is new in 3.12
                assert issubclass(
                    asyncio.run(main(), loop_factory=asyncuv.new_event_loop),
                    asyncuv.Loop)


class TestRun:
    def test_returns_result(self, asyncuv):
        async def main():
            await asyncio.sleep(0)
            return 42

        assert asyncuv.run(main()) == 42

    def test_runs_in_an_asyncuv_loop_that_is_closed_afterwards(self, asyncuv):
        async def main():
            return asyncio.get_running_loop()

        loop = asyncuv.run(main())
        assert isinstance(loop, asyncuv.Loop)
        assert loop.is_closed()

    @pytest.mark.parametrize("debug", [True, False])
    def test_debug_is_honoured(self, asyncuv, debug):
        async def main():
            return asyncio.get_running_loop().get_debug()

        assert asyncuv.run(main(), debug=debug) is debug

    def test_exception_propagates(self, asyncuv):
        async def main():
            await asyncio.sleep(0)
            raise LookupError("from main")

        with pytest.raises(LookupError, match="from main"):
            asyncuv.run(main())

    def test_cancels_leftover_tasks(self, asyncuv):
        async def forever():
            await asyncio.get_running_loop().create_future()

        async def main():
            task = asyncio.ensure_future(forever())
            await asyncio.sleep(0)
            return task

        task = asyncuv.run(main())
        assert task.cancelled()

    def test_finalizes_async_generators(self, asyncuv):
        events = []

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                events.append("finalized")

        async def main():
            gen = agen()
            await gen.__anext__()
            return gen

        gen = asyncuv.run(main())
        assert events == ["finalized"]
        del gen

    def test_shuts_down_default_executor(self, asyncuv):
        async def main():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, threading.current_thread)

        worker = asyncuv.run(main())
        assert not worker.is_alive()

    def test_rejects_non_coroutine(self, asyncuv):
        # As asyncio.run() on this Python (3.14 takes any awaitable and
        # raises TypeError for the rest).
        with pytest.raises((ValueError, TypeError)) as stock:
            asyncio.run(42)
        with pytest.raises(type(stock.value), match=str(stock.value)):
            asyncuv.run(42)

    def test_cannot_be_called_from_a_running_loop(self, asyncuv):
        async def inner():
            pass

        async def main():
            coro = inner()
            try:
                asyncuv.run(coro)
            except RuntimeError as exc:
                return str(exc)
            finally:
                coro.close()

        assert "cannot be called from a running event loop" in asyncuv.run(main())

    def test_debug_is_keyword_only(self, asyncuv):
        async def main():
            pass

        coro = main()
        try:
            with pytest.raises(TypeError):
                asyncuv.run(coro, True)
        finally:
            coro.close()


class TestPrivateTransportMethods:
    """_call_connection_lost() is private, but layers built on transports
    (and asyncio's own tests) call it directly.  Called twice, or followed
    by any public method, it must neither crash nor raise: the transport is
    simply closed.  (asyncio's loop raises AttributeError on the second
    call; asyncuv stays quiet rather than report a state it knows.)"""

    PUBLIC = [("is_closing", ()), ("write", (b"x",)), ("writelines", ([b"x"],)),
              ("pause_reading", ()), ("resume_reading", ()),
              ("is_reading", ()), ("set_write_buffer_limits", (10,)),
              ("get_write_buffer_size", ()), ("get_extra_info", ("socket",)),
              ("set_protocol", (asyncio.Protocol(),)), ("close", ()),
              ("abort", ()), ("_call_connection_lost", (None,))]

    def test_stream_transport(self, asyncuv):
        import socket

        async def main():
            loop = asyncio.get_running_loop()
            a, b = socket.socketpair()
            with b:
                tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
                tr._call_connection_lost(None)
                results = {name: getattr(tr, name)(*args)
                           for name, args in self.PUBLIC}
            assert results["is_closing"] is True
            assert results["is_reading"] is False
            assert results["_call_connection_lost"] is None

        asyncuv.run(main())

    def test_datagram_transport(self, asyncuv):
        async def main():
            loop = asyncio.get_running_loop()
            tr, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            tr._call_connection_lost(None)
            assert tr.is_closing()
            tr.sendto(b"x", ("127.0.0.1", 9))
            tr.set_protocol(asyncio.DatagramProtocol())
            tr.close()
            tr.abort()
            assert tr._call_connection_lost(None) is None

        asyncuv.run(main())

"""loop.getaddrinfo() and loop.getnameinfo(): the results and errors of the
socket module's functions.  Only loopback names and numeric addresses are
used (AI_NUMERICHOST / NI_NUMERICHOST where a name service could otherwise be
consulted).  Every test runs on asyncuv and on the stock asyncio loop (the
reference)."""

import asyncio
import socket

import pytest

from support import run_guarded

GETADDRINFO_CASES = [
    (("localhost", 80), {}),
    (("127.0.0.1", 80), {}),
    (("::1", 80), {}),
    ((None, 80), {}),
    (("localhost", "80"), {}),
    (("localhost", "http"), {}),
    (("localhost", None), {}),
    ((b"localhost", b"80"), {}),
    (("127.0.0.1", 0), {}),
    (("localhost", 80), dict(family=socket.AF_INET)),
    (("localhost", 80), dict(type=socket.SOCK_STREAM)),
    (("127.0.0.1", 80), dict(family=socket.AF_INET, type=socket.SOCK_DGRAM)),
    (("localhost", 80), dict(proto=socket.IPPROTO_TCP)),
    (("localhost", 80), dict(flags=socket.AI_CANONNAME)),
    (("127.0.0.1", 80), dict(flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)),
    ((None, 0), dict(flags=socket.AI_PASSIVE, type=socket.SOCK_STREAM)),
    (("::1", 443), dict(family=socket.AF_INET6, type=socket.SOCK_STREAM)),
]


def case_id(case):
    (host, port), kwargs = case
    return f"{host!r}-{port!r}-" + ",".join(f"{k}={int(v)}" for k, v in kwargs.items())


GETADDRINFO_ERRORS = [
    # Not numeric while AI_NUMERICHOST forbids any lookup: EAI_NONAME.
    (("localhost", 80), dict(flags=socket.AI_NUMERICHOST)),
    (("localhost", "no-such-service-name"), {}),
    ((None, None), {}),
    (("127.0.0.1", 80), dict(family=socket.AF_INET6, flags=socket.AI_NUMERICHOST)),
]


class TestGetaddrinfo:
    @pytest.mark.parametrize("case", GETADDRINFO_CASES, ids=[case_id(c) for c in GETADDRINFO_CASES])
    def test_same_result_as_socket_getaddrinfo(self, loop, case):
        args, kwargs = case
        expected = socket.getaddrinfo(*args, **kwargs)
        assert run_guarded(loop, loop.getaddrinfo(*args, **kwargs)) == expected

    def test_result_types(self, loop):
        result = run_guarded(loop, loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
        assert isinstance(result, list)
        [(family, type_, proto, canonname, sockaddr)] = result
        assert isinstance(family, socket.AddressFamily) and family == socket.AF_INET
        assert isinstance(type_, socket.SocketKind) and type_ == socket.SOCK_STREAM
        assert proto == socket.IPPROTO_TCP
        assert canonname == ""
        assert sockaddr == ("127.0.0.1", 80)

    @pytest.mark.parametrize("case", GETADDRINFO_ERRORS, ids=[case_id(c) for c in GETADDRINFO_ERRORS])
    def test_errors_are_socket_gaierror(self, loop, case):
        args, kwargs = case
        with pytest.raises(socket.gaierror) as expected:
            socket.getaddrinfo(*args, **kwargs)
        with pytest.raises(socket.gaierror) as info:
            run_guarded(loop, loop.getaddrinfo(*args, **kwargs))
        assert info.value.errno == expected.value.errno
        assert info.value.strerror == expected.value.strerror

    def test_unknown_name_without_lookup(self, loop):
        with pytest.raises(socket.gaierror) as info:
            run_guarded(loop, loop.getaddrinfo(
                "no-such-host.invalid", 80, flags=socket.AI_NUMERICHOST))
        assert info.value.errno == socket.EAI_NONAME

    def test_family_type_proto_flags_are_keyword_only(self, loop):
        with pytest.raises(TypeError):
            run_guarded(loop, loop.getaddrinfo("127.0.0.1", 80, socket.AF_INET))

    def test_concurrent_calls(self, loop):
        async def main():
            return await asyncio.gather(*(
                loop.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
                for port in range(1000, 1020)))

        results = run_guarded(loop, main())
        assert results == [socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
                           for port in range(1000, 1020)]

    def test_closed_loop_raises(self, loop, loop_factory):
        loop.close()
        other = loop_factory()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            run_guarded(other, loop.getaddrinfo("localhost", 80))


GETNAMEINFO_CASES = [
    (("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("127.0.0.1", 80), socket.NI_NUMERICHOST),
    (("127.0.0.1", 0), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("127.0.0.1", 53), socket.NI_NUMERICHOST | socket.NI_DGRAM),
    (("::1", 80, 0, 0), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("::1", 443), socket.NI_NUMERICHOST),
]


class TestGetnameinfo:
    @pytest.mark.parametrize("sockaddr, flags", GETNAMEINFO_CASES)
    def test_same_result_as_socket_getnameinfo(self, loop, sockaddr, flags):
        expected = socket.getnameinfo(sockaddr, flags)
        assert run_guarded(loop, loop.getnameinfo(sockaddr, flags)) == expected

    def test_service_name(self, loop):
        # Without NI_NUMERICSERV the port is given as a service name.
        result = run_guarded(loop, loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST))
        assert result == ("127.0.0.1", socket.getservbyport(80, "tcp"))

    def test_numeric_result(self, loop):
        result = run_guarded(loop, loop.getnameinfo(
            ("127.0.0.1", 8080), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))
        assert result == ("127.0.0.1", "8080")

    def test_non_numeric_host_is_a_gaierror(self, loop):
        # getnameinfo() only accepts numeric addresses: no lookup is made.
        with pytest.raises(socket.gaierror) as expected:
            socket.getnameinfo(("localhost", 80), 0)
        with pytest.raises(socket.gaierror) as info:
            run_guarded(loop, loop.getnameinfo(("localhost", 80), 0))
        assert info.value.errno == expected.value.errno

    def test_malformed_sockaddr_is_a_type_error(self, loop):
        with pytest.raises(TypeError):
            run_guarded(loop, loop.getnameinfo(("127.0.0.1",), 0))

    def test_closed_loop_raises(self, loop, loop_factory):
        loop.close()
        other = loop_factory()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            run_guarded(other, loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST))

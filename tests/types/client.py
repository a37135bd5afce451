"""A small asyncuv client, type-checked with mypy --strict against the
package's stubs (tests/check-types.sh), then run."""

import asyncio
import socket
import sys
from typing import assert_type

import asyncuv


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def echo_once(payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, asyncuv.Loop)
    server = await loop.create_server(Echo, "127.0.0.1", 0, keep_alive=True)
    assert_type(server, asyncuv.Server)
    port: int = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()
    if sys.version_info >= (3, 13):
        server.close_clients()
    server.close()
    await server.wait_closed()
    return data


async def main() -> int:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    handle = loop.call_soon(fired.append, "soon")
    assert_type(handle, asyncio.Handle)
    timer = loop.call_later(0.001, fired.append, "later")
    assert_type(timer.when(), float)
    assert await echo_once(b"ping") == b"ping"
    infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    assert infos[0][0] == socket.AF_INET
    result = await loop.run_in_executor(None, sum, [1, 2, 3])
    assert_type(result, int)
    await asyncio.sleep(0.01)
    assert fired == ["soon", "later"]
    return result


def run_everywhere() -> None:
    assert_type(asyncuv.run(main()), int)
    loop = asyncuv.new_event_loop()
    assert_type(loop, asyncuv.Loop)
    asyncuv.Loop().close()
    try:
        assert loop.run_until_complete(main()) == 6
    finally:
        loop.close()
    with asyncio.Runner(loop_factory=asyncuv.new_event_loop) as runner:
        assert runner.run(main()) == 6
    if sys.version_info >= (3, 12):
        assert asyncio.run(main(), loop_factory=asyncuv.new_event_loop) == 6
    if sys.version_info < (3, 14):
        policy: asyncio.AbstractEventLoopPolicy = asyncuv.EventLoopPolicy()
        assert isinstance(policy.new_event_loop(), asyncuv.Loop)
    assert isinstance(asyncuv.libasyncuv_version, str)
    print(f"asyncuv {asyncuv.__version__} (libasyncuv {asyncuv.libasyncuv_version}): ok")


if __name__ == "__main__":
    run_everywhere()

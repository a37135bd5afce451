"""Mistakes the stubs must catch: tests/check-types.sh expects mypy
--strict to report exactly the lines marked 'error:'."""

import asyncuv


async def main() -> int:
    return 1


def mistakes() -> None:
    text: str = asyncuv.run(main())  # error: int is not str
    loop = asyncuv.new_event_loop()
    loop.call_soon(1)  # error: not a callable
    loop.call_later("soon", print)  # error: delay is a float
    loop.create_task(main(), nam="x")  # error: no such keyword
    asyncuv.run(main(), debug="yes")  # error: debug is a bool
    version: int = asyncuv.libasyncuv_version  # error: a str
    print(text, version)

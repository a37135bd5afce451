#!/bin/sh
# Real applications on the loop (tests/python/test_apps.py): aiohttp,
# uvicorn + Starlette + httpx, websockets and asyncpg against a private
# PostgreSQL server, each on asyncuv and on the stock asyncio loop.  Needs
# the Debian packages .ci/install installs; the package builds leave it out.
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
exec "$PYTHON" -m pytest -p no:cacheprovider -q "$top_srcdir/tests/python/test_apps.py"

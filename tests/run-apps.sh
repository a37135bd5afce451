#!/bin/sh
# Real applications on the loop (tests/python/test_apps.py): aiohttp,
# uvicorn + Starlette + httpx (also from uvicorn's command line and under
# gunicorn), websockets, asyncpg against a private PostgreSQL server,
# redis-py against a private redis-server, and anyio, each on asyncuv and on
# the stock asyncio loop.  Needs the Debian packages .ci/install installs
# (.ci/matrix's forky leg installs forky's); the package builds leave it out.
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
# The versions under test, first in the log.
"$PYTHON" - <<'PY' || true
import importlib.metadata as m, platform
names = ("aiohttp", "uvicorn", "starlette", "httpx", "websockets",
         "asyncpg", "redis", "anyio", "gunicorn", "uvloop")
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return "absent"
print("applications on Python", platform.python_version() + ":",
      ", ".join(f"{n} {version(n)}" for n in names))
PY
exec "$PYTHON" -m pytest -p no:cacheprovider -q -rs "$top_srcdir/tests/python/test_apps.py"

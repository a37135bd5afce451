#!/bin/sh
# The twin pytest suite: every behavioural test runs on asyncuv and on the
# stock asyncio loop.
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
exec "$PYTHON" -m pytest -p no:cacheprovider -q "$top_srcdir/tests/python"

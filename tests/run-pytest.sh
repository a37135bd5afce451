#!/bin/sh
# The twin pytest suite: every behavioural test runs on asyncuv and on the
# stock asyncio loop.  The applications suite (test_apps.py) has its own
# runner, tests/run-apps.sh.
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
exec "$PYTHON" -m pytest -p no:cacheprovider -q "$top_srcdir/tests/python" \
  --ignore="$top_srcdir/tests/python/test_apps.py"

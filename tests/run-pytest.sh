#!/bin/sh
# The twin pytest suite: every behavioural test runs on asyncuv and on the
# stock asyncio loop.  The applications suite (test_apps.py) has its own
# runner, tests/run-apps.sh.  -rfEsxX lists the failures and errors, why
# tests were skipped, and the known failures (tests/python/known_failures.py)
# that failed or passed.
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
exec "$PYTHON" -m pytest -p no:cacheprovider -q -rfEsxX "$top_srcdir/tests/python" \
  --ignore="$top_srcdir/tests/python/test_apps.py"

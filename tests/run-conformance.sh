#!/bin/sh
# CPython's own asyncio test suite against asyncuv (see tests/conformance).
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
if [ ! -d /usr/lib/python3.11/test/test_asyncio ] && \
   ! "$PYTHON" -c 'import test.test_asyncio' 2>/dev/null; then
  echo "CPython's asyncio tests are missing: install libpython3.11-testsuite" >&2
  exit 1
fi
exec "$PYTHON" "$top_srcdir/tests/conformance/run.py" --loop asyncuv \
  --jobs "${AUV_CONFORMANCE_JOBS:-2}" --log "${top_builddir:-.}/conformance.log"

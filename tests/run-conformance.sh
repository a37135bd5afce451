#!/bin/sh
# CPython's own asyncio test suite against asyncuv (see tests/conformance):
# the interpreter's own test.test_asyncio (on Debian: libpython3.X-testsuite;
# run.py names the package if it is missing).  The counts also go to
# conformance.json for .ci/matrix's summary.
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
exec "$PYTHON" "$top_srcdir/tests/conformance/run.py" --loop asyncuv \
  --jobs "${AUV_CONFORMANCE_JOBS:-2}" --log "${top_builddir:-.}/conformance.log" \
  --summary-json "${top_builddir:-.}/conformance.json"

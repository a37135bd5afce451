"""Twin-suite tests known to fail on a Python version, until the work that
fixes them lands (the twin suite's counterpart of the conformance runner's
EXPECTED_FAIL in tests/conformance/lists.py).

Keyed by (major, minor); each entry is a pytest node id (relative to
tests/python, e.g. "test_udp.py::TestDatagramTransport::test_x[asyncio]"), or
a pattern of such ids with * and ? (brackets stand for themselves), and the
reason.  conftest.py marks the matching tests xfail (not strict):
they still run, a failure is reported as xfailed and does not fail the run,
a pass is reported as xpassed, and the run's last lines name the entries to
remove.  A new failure, or a failure on a version not listed here, fails the
run as before.  Only .ci/matrix's legs for Pythons after 3.11 need entries:
on 3.11 every test passes, and the list for it stays empty.
"""

KNOWN_FAILURES = {
}

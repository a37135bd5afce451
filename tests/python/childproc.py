"""Run code that could crash the interpreter in a child process, so that a
segfault fails the test instead of ending the whole run."""

import json
import os
import subprocess
import sys
import textwrap

from support import NET_HANG_GUARD, load_asyncuv

_CHILD_PRELUDE = """\
import asyncio, json, sys
sys.path.insert(0, {tests_dir!r})
from support import new_loop
LOOP_KIND = {kind!r}
def report(value):
    print("RESULT " + json.dumps(value), flush=True)
"""


def run_in_child(kind, source, timeout=NET_HANG_GUARD, env=None):
    """Run ``source`` in a fresh interpreter (this one's executable and
    import path), with ``LOOP_KIND`` set to ``kind``, ``new_loop`` imported
    and ``report(value)`` to hand a JSON value back.  Fails the calling
    test with the child's output if it dies on a signal, exits non-zero or
    hangs; returns the reported values, in order."""
    import pytest

    if kind == "asyncuv":
        load_asyncuv()  # errors loudly here rather than in the child
    code = _CHILD_PRELUDE.format(tests_dir=os.path.dirname(os.path.abspath(__file__)),
                                 kind=kind) + textwrap.dedent(source)
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if env:
        child_env.update(env)
    try:
        proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code],
                              capture_output=True, text=True, timeout=timeout,
                              env=child_env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child hung ({timeout} s):\n{exc.stdout}\n{exc.stderr}",
                    pytrace=False)
    if proc.returncode != 0:
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with {proc.returncode}")
        pytest.fail(f"the child {how}:\n--- stdout\n{proc.stdout}\n--- stderr\n"
                    f"{proc.stderr}", pytrace=False)
    return [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines()
            if line.startswith("RESULT ")]

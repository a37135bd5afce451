"""python3 -m asyncuv: a program (a script, or a module with -m) run
unchanged on asyncuv, asyncio's REPL on an asyncuv loop, --version and
--help.  Each run is a child process.  The twin of ``python3 -m asyncuv
X`` is ``python3 X`` (and of the REPL, ``python3 -m asyncio``): the same
outcome (sys.argv, sys.path[0], exit status, output) but for the loop."""

import os
import subprocess
import sys
import textwrap

import pytest

import asyncuv

# asyncio.run() takes loop_factory= from 3.12 on; policies are deprecated
# from 3.14 on, where python3 -m asyncuv takes the loop-factory route.
HAS_RUN_LOOP_FACTORY = sys.version_info >= (3, 12)
POLICIES_DEPRECATED = sys.version_info >= (3, 14)

PROGRAM = textwrap.dedent("""\
    import asyncio, sys

    async def loop_module():
        return type(asyncio.get_running_loop()).__module__

    print("run", asyncio.run(loop_module()))
    with asyncio.Runner() as runner:
        print("runner", runner.run(loop_module()))
    print("argv", sys.argv[1:])
    print("path0", sys.path[0])
    print("name", __name__)
    """)


def run(argv, *, runner, cwd, stdin=None):
    """argv run by ``python3`` (runner "python") or by ``python3 -m asyncuv``
    (runner "asyncuv"); DeprecationWarnings are errors."""
    prefix = [sys.executable, "-W", "error::DeprecationWarning"]
    if runner == "asyncuv":
        prefix += ["-m", "asyncuv"]
    return subprocess.run(prefix + argv, cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=60)


def expected_loop(runner):
    return "asyncuv" if runner == "asyncuv" else "asyncio.unix_events"


@pytest.fixture(params=["python", "asyncuv"])
def runner(request):
    return request.param


def test_script(runner, tmp_path):
    (tmp_path / "sub").mkdir()
    script = tmp_path / "sub" / "prog.py"
    script.write_text(PROGRAM)
    proc = run([str(script), "one", "--two"], runner=runner, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    loop = expected_loop(runner)
    assert proc.stdout.splitlines() == [
        f"run {loop}", f"runner {loop}", "argv ['one', '--two']",
        f"path0 {tmp_path / 'sub'}", "name __main__"]
    assert proc.stderr == ""


def test_module(runner, tmp_path):
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(PROGRAM)
    proc = run(["-m", "app", "x"], runner=runner, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    loop = expected_loop(runner)
    assert lines[:3] == [f"run {loop}", f"runner {loop}", "argv ['x']"]
    # python3 -m puts the current directory first on sys.path.
    assert os.path.realpath(lines[3].split(" ", 1)[1]) == os.path.realpath(tmp_path)
    assert lines[4:] == ["name __main__"]


def test_exit_status_and_uncaught_exception(runner, tmp_path):
    (tmp_path / "exits.py").write_text("import sys; sys.exit(3)\n")
    (tmp_path / "fails.py").write_text(
        "import asyncio\n"
        "async def main():\n"
        "    raise LookupError('from the program')\n"
        "asyncio.run(main())\n")
    assert run(["exits.py"], runner=runner, cwd=tmp_path).returncode == 3
    proc = run(["fails.py"], runner=runner, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.rstrip().splitlines()[-1] == "LookupError: from the program"


@pytest.mark.skipif(not HAS_RUN_LOOP_FACTORY,
                    reason="asyncio.run() takes loop_factory= from 3.12 on")
def test_a_loop_factory_the_program_passes_is_kept(runner, tmp_path):
    (tmp_path / "factory.py").write_text(
        "import asyncio\n"
        "async def main():\n"
        "    return type(asyncio.get_running_loop()).__name__\n"
        "print(asyncio.run(main(), loop_factory=asyncio.SelectorEventLoop))\n"
        "with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as r:\n"
        "    print(r.run(main()))\n")
    proc = run(["factory.py"], runner=runner, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["_UnixSelectorEventLoop"] * 2


def test_new_event_loop(runner, tmp_path):
    # Up to 3.13 the policy is installed: asyncio.new_event_loop() makes an
    # asyncuv loop too.  From 3.14 on only asyncio.run() and Runner do (the
    # loop-factory route), and nothing warns.
    (tmp_path / "new.py").write_text(
        "import asyncio\n"
        "loop = asyncio.new_event_loop()\n"
        "print(type(loop).__module__)\n"
        "loop.close()\n")
    proc = run(["new.py"], runner=runner, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    if runner == "asyncuv" and not POLICIES_DEPRECATED:
        assert proc.stdout.split() == ["asyncuv"]
    else:
        assert proc.stdout.split() == ["asyncio.unix_events"]


def test_repl(tmp_path):
    # asyncio's REPL, with top-level await, on its own loop: the same
    # session under python3 -m asyncio and python3 -m asyncuv.
    session = ("import asyncio\n"
               "await asyncio.sleep(0, result=type(asyncio.get_running_loop()).__module__)\n"
               "x = 6 * 7\n"
               "x\n")
    env = dict(os.environ, PYTHON_BASIC_REPL="1", TERM="dumb")
    outputs = {}
    for module in ("asyncio", "asyncuv"):
        proc = subprocess.run([sys.executable, "-m", module], input=session,
                              capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "asyncio REPL" in proc.stderr
        assert "exiting asyncio REPL" in proc.stderr
        assert "Traceback" not in proc.stderr
        outputs[module] = proc.stdout
    loops = {"asyncio": "'asyncio.unix_events'", "asyncuv": "'asyncuv'"}
    for module, out in outputs.items():
        assert loops[module] in out
        assert "42" in out
        assert out.replace(loops[module], "LOOP") == \
            outputs["asyncio"].replace(loops["asyncio"], "LOOP")


def test_version(tmp_path):
    proc = run(["--version"], runner="asyncuv", cwd=tmp_path)
    assert proc.returncode == 0
    python = sys.version.split()[0]
    assert proc.stdout == (f"asyncuv {asyncuv.__version__} "
                           f"(libasyncuv {asyncuv.libasyncuv_version}), Python {python}\n")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag, tmp_path):
    proc = run([flag], runner="asyncuv", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: python3 -m asyncuv")
    assert "-m module [args...]" in proc.stdout
    assert "REPL" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize("argv, message", [
    (["-m"], "-m needs a module name"),
    (["--nonsense"], "unknown option --nonsense"),
    (["missing.py"], "can't open file 'missing.py'"),
])
def test_usage_errors(argv, message, tmp_path):
    proc = run(argv, runner="asyncuv", cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""

"""python3 -m asyncuv: run a program, or asyncio's REPL, on asyncuv.

    python3 -m asyncuv script.py [args...]
    python3 -m asyncuv -m module [args...]
    python3 -m asyncuv                  (asyncio's REPL on an asyncuv loop)
    python3 -m asyncuv --version | --help

The program runs unchanged: the loops that asyncio.run() and
asyncio.Runner make are asyncuv loops.  Up to Python 3.13 asyncuv's event
loop policy is installed (as asyncuv.install() does), so that
asyncio.new_event_loop() and asyncio.get_event_loop() give asyncuv loops
too.  From 3.14 on, where asyncio deprecates policies, asyncio.Runner's
default loop factory becomes asyncuv.new_event_loop: asyncio.run() and
asyncio.Runner() without a loop_factory run on asyncuv, as with
asyncio.run(main(), loop_factory=asyncuv.new_event_loop).
"""

import os
import runpy
import sys

import asyncio

import asyncuv
from asyncuv import _POLICIES_DEPRECATED, _EventLoopPolicy, _set_event_loop_policy

USAGE = """\
usage: python3 -m asyncuv [--version | --help]
       python3 -m asyncuv script.py [args...]
       python3 -m asyncuv -m module [args...]
"""

HELP = USAGE + """
Run a Python program with asyncuv as the event loop of asyncio.run() and
asyncio.Runner, without changing the program; with no arguments, start
asyncio's REPL (top-level await) on an asyncuv loop.

  script.py [args...]   run the file (or a directory or zip file with a
                        __main__.py) as python3 script.py would; sys.argv is
                        [script.py, args...]
  -m module [args...]   run a module or package (its __main__) as
                        python3 -m module would
  --version             print the versions of asyncuv, libasyncuv and Python
  -h, --help            print this help

Up to Python 3.13 asyncuv's event loop policy is installed (as
asyncuv.install() does): asyncio.run(), asyncio.Runner,
asyncio.new_event_loop() and asyncio.get_event_loop() give asyncuv loops.
From Python 3.14 on, where asyncio deprecates policies, asyncio.Runner's
default loop factory is asyncuv.new_event_loop instead: asyncio.run() and
asyncio.Runner() run on asyncuv, as with
asyncio.run(main(), loop_factory=asyncuv.new_event_loop); a loop_factory
the program passes is kept.
"""


def use_asyncuv():
    """Make asyncio.run() and asyncio.Runner() use asyncuv loops."""
    if not _POLICIES_DEPRECATED:
        _set_event_loop_policy(_EventLoopPolicy())
        return
    runner_init = asyncio.Runner.__init__

    def __init__(self, *, debug=None, loop_factory=None):
        if loop_factory is None:
            loop_factory = asyncuv.new_event_loop
        runner_init(self, debug=debug, loop_factory=loop_factory)

    __init__.__doc__ = runner_init.__doc__
    __init__.__wrapped__ = runner_init
    asyncio.Runner.__init__ = __init__


def repl():
    """asyncio's own REPL (python3 -m asyncio), its loop an asyncuv loop."""
    # Every version's asyncio.__main__ makes its loop with
    # asyncio.new_event_loop().
    asyncio.new_event_loop = asyncuv.new_event_loop
    sys.argv = [sys.argv[0]]
    runpy.run_module('asyncio', run_name='__main__', alter_sys=True)


def main(args):
    if not args:
        use_asyncuv()
        repl()
        return 0
    first = args[0]
    if first in ('-h', '--help'):
        sys.stdout.write(HELP)
        return 0
    if first == '--version':
        print(f'asyncuv {asyncuv.__version__} '
              f'(libasyncuv {asyncuv.libasyncuv_version}), '
              f'Python {sys.version.split()[0]}')
        return 0
    if first == '-m':
        if len(args) < 2:
            sys.stderr.write(USAGE)
            sys.stderr.write('python3 -m asyncuv: error: -m needs a module name\n')
            return 2
        use_asyncuv()
        # As python3 -m: sys.path[0] stays the current directory, and
        # runpy puts the module's file in sys.argv[0].
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name='__main__', alter_sys=True)
        return 0
    if first.startswith('-'):
        sys.stderr.write(USAGE)
        sys.stderr.write(f'python3 -m asyncuv: error: unknown option {first}\n')
        return 2
    if not os.path.exists(first):
        sys.stderr.write(f"python3 -m asyncuv: can't open file {first!r}: "
                         "No such file or directory\n")
        return 2
    use_asyncuv()
    # As python3 script.py: the script's directory first on sys.path, not
    # the current directory that -m put there (a directory or zip file
    # puts itself there: runpy.run_path() does that).
    if not os.path.isdir(first) and not _is_zip(first):
        sys.path[0] = os.path.dirname(os.path.abspath(first))
    sys.argv = args[:]
    runpy.run_path(first, run_name='__main__')
    return 0


def _is_zip(path):
    import zipfile
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

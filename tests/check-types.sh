#!/bin/sh
# The package's types (module/asyncuv/*.pyi, py.typed): mypy --strict
# passes on a small client program (tests/types/client.py) that uses them,
# reports each mistake marked in tests/types/wrong.py, and the client then
# runs.  Skipped, with a message, where $PYTHON has no mypy (Debian:
# python3-mypy; the pyenv interpreters have none).
set -u
: "${top_srcdir:?}" "${top_builddir:?}" "${PYTHON:?}"
if ! "$PYTHON" -c 'import mypy' > /dev/null 2>&1; then
  echo "SKIP: no mypy for $PYTHON (Debian: apt-get install python3-mypy)"
  exit 77
fi
types=$top_srcdir/tests/types
# The uninstalled package, stubs included (make copies them there).
MYPYPATH=$top_builddir/build/python
export MYPYPATH
mypy() {
  "$PYTHON" -m mypy --strict --no-incremental --cache-dir=/dev/null \
    --no-color-output --no-error-summary "$@"
}
"$PYTHON" -m mypy --version
# mypy writes nothing into the tree: run it from a scratch directory.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch" || exit 1

echo "== mypy --strict tests/types/client.py"
mypy "$types/client.py" || exit 1
echo "no issues"

echo "== mypy --strict tests/types/wrong.py: each marked line, nothing else"
mypy "$types/wrong.py" > wrong.out 2>&1
cat wrong.out
expected=$(grep -n '# error:' "$types/wrong.py" | cut -d: -f1 | sort -n | tr '\n' ' ')
found=$(grep ': error:' wrong.out | cut -d: -f2 | sort -n -u | tr '\n' ' ')
if [ "$expected" != "$found" ]; then
  echo "FAIL: errors expected on lines $expected, reported on lines $found"
  exit 1
fi

echo "== $PYTHON tests/types/client.py"
"$PYTHON" "$types/client.py"

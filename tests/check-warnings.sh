#!/bin/sh
# Build libasyncuv, the Python module, the test extension and the C tests
# with the project's warning flags against each interpreter's headers, and
# report every compiler warning.  A new compiler or a new Python's headers
# warn here first.
#
#   sh tests/check-warnings.sh [--cc CC] [--chroot ROOT] [PYTHON...]
#
# PYTHON: the interpreters whose headers to build against (default:
# /usr/bin/python3 and the newest pyenv 3.12.*, 3.13.* and 3.14.* there
# are).  --cc: the compiler (default: cc).  --chroot ROOT: build inside
# the chroot ROOT (a Debian release with python3-dev, libuv1-dev, autoconf,
# automake, libtool and pkg-config), with its compiler and, by default, its
# /usr/bin/python3.
#
# The build is out of tree, from a copy of this source tree (the files git
# tracks and the new ones it does not ignore), in a scratch directory that
# is removed at the end.  Exit status: 0 when no compiler warned, 1 when
# one did (the warnings are listed), 2 when a build failed for another
# reason.  The test matrix builds every leg with --enable-werror, which
# turns the same warnings into errors.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cc=cc
chroot_root=
while [ $# -gt 0 ]; do
  case $1 in
    --cc) cc=$2; shift ;;
    --chroot) chroot_root=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "usage: $0 [--cc CC] [--chroot ROOT] [PYTHON...]" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done

# A copy of the source tree, configure made once.
snapshot() {  # dest
  mkdir -p "$1"
  if git -C "$top" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git -C "$top" ls-files -z --cached --others --exclude-standard |
      (cd "$top" && tar --null --ignore-failed-read -T - -cf - 2> /dev/null) |
      tar -xf - -C "$1"
  else
    (cd "$top" && tar --exclude=./config.status --exclude=./Makefile -cf - .) |
      tar -xf - -C "$1"
  fi
}

if [ -n "$chroot_root" ]; then
  scratch=$(mktemp -d "$chroot_root/tmp/check-warnings.XXXXXX") || exit 2
  trap 'rm -rf "$scratch"' EXIT
  snapshot "$scratch/src"
  inside=${scratch#"$chroot_root"}
  chroot "$chroot_root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 sh "$inside/src/tests/check-warnings.sh" \
    --cc "$cc" ${1+"$@"}
  exit $?
fi

if [ $# -eq 0 ]; then
  set -- /usr/bin/python3
  root=${PYENV_ROOT:-}
  [ -n "$root" ] || root=$(pyenv root 2> /dev/null) || root=$HOME/.pyenv
  for minor in 3.12 3.13 3.14; do
    newest=$(ls -d "$root/versions/$minor".[0-9]* 2> /dev/null | sort -V | tail -n 1)
    [ -n "$newest" ] && [ -x "$newest/bin/python3" ] && set -- "$@" "$newest/bin/python3"
  done
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/check-warnings.XXXXXX") || exit 2
trap 'rm -rf "$scratch"' EXIT
snapshot "$scratch/src"
if ! (cd "$scratch/src" && autoreconf -fi > "$scratch/autoreconf.out" 2>&1); then
  cat "$scratch/autoreconf.out"
  exit 2
fi

status=0
n=0
for python in "$@"; do
  n=$((n + 1))
  build=$scratch/build$n
  mkdir -p "$build"
  version=$("$python" -c 'import platform; print(platform.python_version())' 2> /dev/null)
  ccversion=$("$cc" --version 2> /dev/null | head -n 1)
  printf '== %s (%s) with %s: ' "$python" "${version:-?}" "${ccversion:-$cc}"
  if ! (cd "$build" && "$scratch/src/configure" PYTHON="$python" CC="$cc" \
          > configure.out 2>&1); then
    echo "configure failed"
    tail -n 20 "$build/configure.out"
    status=2
    continue
  fi
  # Everything the C compiler builds: the library, the module, the test
  # extension, the C tests and the example.
  if ! (cd "$build" && make -j2 V=0 lib/libasyncuv.la module/_asyncuv.la \
          tests/ext/_nativeecho.la tests/lib/run-lib-tests examples/echo-server \
          > make.out 2>&1); then
    echo "build failed"
    grep -E 'error|warning' "$build/make.out" | head -n 40
    status=2
    continue
  fi
  count=$(grep -c 'warning:' "$build/make.out")
  if [ "$count" -eq 0 ]; then
    echo "no warnings"
  else
    echo "$count warnings"
    grep -A3 'warning:' "$build/make.out" | sed "s|$scratch/src/||g"
    [ $status -eq 0 ] && status=1
  fi
done
exit $status

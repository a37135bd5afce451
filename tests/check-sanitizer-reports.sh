#!/bin/sh
# The last test of a build configured with --enable-sanitizers: the
# sanitizers of every process the other tests ran wrote their reports under
# sanitizer-reports/ (ASAN_OPTIONS/UBSAN_OPTIONS log_path).  Any report
# fails the run, and is shown.
set -u
dir="${top_builddir:-.}/sanitizer-reports"
n=0
for f in "$dir"/asan.* "$dir"/ubsan.*; do
  [ -e "$f" ] || continue
  n=$((n + 1))
  echo "=== $f"
  cat "$f"
done
echo "sanitizer reports: $n"
[ "$n" -eq 0 ]

#!/bin/sh
# The ABI guard: libasyncuv must export exactly the functions the public
# header documents (AUV_EXTERN declarations), nothing more, nothing less.
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"
NM=${NM:-nm}
lib="$top_builddir/lib/.libs/libasyncuv.so.1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sed -n 's/^AUV_EXTERN[^(]*[ *]\(auv_[a-z0-9_]*\)(.*/\1/p' "$top_srcdir/lib/asyncuv.h" \
  | sort -u > "$tmp/documented"
$NM -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' \
  | sort -u > "$tmp/exported"

if ! diff -u "$tmp/documented" "$tmp/exported"; then
  echo "exports: FAIL (lines with - are documented but not exported," \
       "+ exported but not documented)"
  exit 1
fi
# Every export carries the version node.
if $NM -D --defined-only "$lib" | awk '$2 == "T"' | grep -v '@@ASYNCUV_1\.0$'; then
  echo "exports: FAIL (symbols above lack the ASYNCUV_1.0 version node)"
  exit 1
fi
echo "exports: $(wc -l < "$tmp/exported") functions, all documented"
echo "1 passed, 0 failed"

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
# Every export carries its version node: the node of the version script that
# names it (the symbols a release added), else ASYNCUV_1.0 (its auv_*).
awk '/^ASYNCUV_[0-9.]+ *\{/ { node = $1 }
     /^[ \t]*auv_[a-z0-9_]*;/ { gsub(/[ \t;]/, ""); print $0 "@@" node }' \
  "$top_srcdir/lib/libasyncuv.map" | sort > "$tmp/named"
$NM -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | sort > "$tmp/versioned"
awk -F'@@' 'NR == FNR { node[$1] = $2; next }
            { want = ($1 in node) ? node[$1] : "ASYNCUV_1.0"
              if ($2 != want) { print $0 " (want " want ")"; bad = 1 } }
            END { exit bad }' "$tmp/named" "$tmp/versioned" > "$tmp/badnodes" || {
  cat "$tmp/badnodes"
  echo "exports: FAIL (symbols above lack their version node)"
  exit 1
}
echo "exports: $(wc -l < "$tmp/exported") functions, all documented"
echo "1 passed, 0 failed"

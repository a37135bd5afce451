#!/bin/sh
# The man pages follow the public header: every function the header exports
# (AUV_EXTERN) has a page man/<name>.3, either its group's page or a one-line
# stub ".so man3/<group page>.3"; no page names a function that is not
# exported; every stub points at a group page that exists and names the
# function in its SYNOPSIS.  Pages render without groff warnings.
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"
man="$top_srcdir/man"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { echo "manpages: FAIL: $*"; failed=$((failed + 1)); }

# The same extraction as check-exports.sh.
sed -n 's/^AUV_EXTERN[^(]*[ *]\(auv_[a-z0-9_]*\)(.*/\1/p' "$top_srcdir/lib/asyncuv.h" \
  | sort -u > "$tmp/functions"
if [ ! -s "$tmp/functions" ]; then
  echo "manpages: FAIL: no AUV_EXTERN function found in lib/asyncuv.h"
  echo "0 passed, 1 failed"
  exit 1
fi

# A stub is a page whose first line is a .so request.
is_stub() { head -n 1 "$1" | grep -q '^\.so[ 	]'; }
so_target() { head -n 1 "$1" | sed 's/^\.so[ 	]*//; s/[ 	]*$//'; }
# The SYNOPSIS section of a page: from .SH SYNOPSIS to the next .SH.
synopsis() { sed -n '/^\.SH[ 	]*"*SYNOPSIS/,/^\.SH/p' "$1"; }

# 1. Every exported function has a page.
while read -r fn; do
  if [ -f "$man/$fn.3" ]; then pass; else fail "$fn: no page man/$fn.3"; fi
done < "$tmp/functions"

# 2. Every man/auv_*.3 page names an exported function.
for page in "$man"/auv_*.3; do
  [ -f "$page" ] || continue
  name=$(basename "$page" .3)
  if grep -qx "$name" "$tmp/functions"; then
    pass
  else
    fail "man/$name.3: $name is not an exported function of lib/asyncuv.h"
  fi
done

# 3. Every stub's target exists and is a page, not another stub;
# 4. the target's SYNOPSIS names every function documented there (the
#    functions whose stub points at it, and its own).
stubs=0
mains=0
for page in "$man"/auv_*.3; do
  [ -f "$page" ] || continue
  name=$(basename "$page" .3)
  if is_stub "$page"; then
    stubs=$((stubs + 1))
    target=$(so_target "$page")
    case $target in
      man3/*.3) ;;
      *) fail "man/$name.3: .so $target is not of the form man3/<page>.3"
         continue ;;
    esac
    main="$man/$(basename "$target")"
    if [ ! -f "$main" ]; then
      fail "man/$name.3: .so target $target does not exist in man/"
      continue
    fi
    if is_stub "$main"; then
      fail "man/$name.3: .so target $target is itself a stub"
      continue
    fi
    pass
  else
    mains=$((mains + 1))
    main=$page
  fi
  if synopsis "$main" | grep -Eq "(^|[^A-Za-z0-9_])$name([^A-Za-z0-9_]|\$)"; then
    pass
  else
    fail "man/$(basename "$main"): SYNOPSIS does not mention $name"
  fi
done

# 5. The overview page exists.
if [ -f "$man/asyncuv.7" ]; then pass; else fail "no overview page man/asyncuv.7"; fi

# 6. Every page other than a stub renders without warnings.  groff runs
# without the libasan that make check preloads under --enable-sanitizers:
# its reports would be troff's, not ours.
if command -v groff > /dev/null 2>&1; then
  for page in "$man"/*.[37]; do
    [ -f "$page" ] || continue
    is_stub "$page" && continue
    if env -u LD_PRELOAD groff -man -ww -z "$page" > "$tmp/groff.out" 2>&1 &&
       [ ! -s "$tmp/groff.out" ]; then
      pass
    else
      fail "man/$(basename "$page"): groff warnings:"
      sed 's/^/    /' "$tmp/groff.out"
    fi
  done
  rendered=yes
else
  rendered="no (groff not found)"
fi

# 7. Every page is installed and distributed: Makefile.am lists it in
# dist_man_MANS (a page only in git is missing from make dist's tarball and
# from make install).
tr -s ' \t\\' '\n\n\n' < "$top_srcdir/Makefile.am" | grep '^man/' > "$tmp/listed"
for page in "$man"/*.[37]; do
  [ -f "$page" ] || continue
  if grep -qFx "man/$(basename "$page")" "$tmp/listed"; then
    pass
  else
    fail "man/$(basename "$page") is not in Makefile.am's dist_man_MANS"
  fi
done

echo "manpages: $(wc -l < "$tmp/functions") exported functions," \
     "$mains group pages, $stubs stubs; rendering checked: $rendered"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

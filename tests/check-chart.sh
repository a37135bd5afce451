#!/bin/sh
# bench/chart.py draws the committed benchmark results (bench/results/*.json)
# as a PNG, grows a row of panels for another Python version (a copy of the
# results said to come from 3.99.1), and refuses a file that is no
# benchmark's output.  Skipped (exit 77) where matplotlib is not installed (Debian:
# python3-matplotlib).
set -eu
: "${top_srcdir:?}" "${PYTHON:?}"
if ! "$PYTHON" -c 'import matplotlib' 2> /dev/null; then
  echo "SKIP: matplotlib is not installed (apt-get install python3-matplotlib)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chart=$top_srcdir/bench/chart.py
set -- "$top_srcdir"/bench/results/*.json
[ -f "$1" ] || { echo "FAIL: no bench/results/*.json"; exit 1; }
failed=0

is_png() {  # file min-width min-height
  "$PYTHON" - "$@" <<'PY'
import struct, sys
path, min_w, min_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height = struct.unpack(">II", data[16:24])
assert width >= min_w and height >= min_h, (width, height)
print(f"{path}: PNG {width}x{height}, {len(data)} bytes")
PY
}

# The committed results.
if "$PYTHON" "$chart" -o "$tmp/one.png" "$@" && is_png "$tmp/one.png" 800 300; then
  echo "PASS: the committed results"
else
  echo "FAIL: the committed results"; failed=1
fi
height() {
  "$PYTHON" -c 'import struct, sys; print(struct.unpack(">I", open(sys.argv[1], "rb").read()[20:24])[0])' "$1"
}

# The copies say they ran on 3.99.1: the chart grows a row.
for f in "$@"; do
  "$PYTHON" - "$f" "$tmp/copy-$(basename "$f")" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(re.sub(r"\b3\.1\d\.\d+", "3.99.1", text))
PY
done
if "$PYTHON" "$chart" -o "$tmp/two.png" "$@" "$tmp"/copy-*.json > "$tmp/two.out" &&
   grep -q "3.99.1" "$tmp/two.out" && is_png "$tmp/two.png" 800 300 &&
   [ "$(height "$tmp/two.png")" -gt $(($(height "$tmp/one.png") + 200)) ]; then
  echo "PASS: a row more for another Python version"
else
  cat "$tmp/two.out"; echo "FAIL: another Python version"; failed=1
fi

# Something else: refused, with the file named, and no PNG.
echo '{"something": "else"}' > "$tmp/other.json"
if "$PYTHON" "$chart" -o "$tmp/bad.png" "$tmp/other.json" 2> "$tmp/bad.err"; then
  echo "FAIL: a file that is no benchmark's output was taken"; failed=1
elif grep -q "other.json" "$tmp/bad.err" && [ ! -e "$tmp/bad.png" ]; then
  echo "PASS: refuses $(cat "$tmp/bad.err")"
else
  cat "$tmp/bad.err"; echo "FAIL: refusal"; failed=1
fi
exit $failed

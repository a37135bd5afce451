#!/bin/sh
# The C example examples/echo-server.c runs: it echoes two clients at once
# (one sending 4 MiB, which exercises flow control) and exits once both
# have closed.
set -eu
: "${top_builddir:?}" "${PYTHON:?}"
server=${ECHO_SERVER:-$top_builddir/examples/echo-server}
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2> /dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$server" 0 2 > "$tmp/out" 2> "$tmp/err" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
  [ -n "$port" ] && break
  kill -0 "$pid" 2> /dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "example: FAIL: echo-server did not start"
  cat "$tmp/err"
  echo "0 passed, 1 failed"
  exit 1
fi

if "$PYTHON" - "$port" <<'PY'
import socket, sys, threading

port = int(sys.argv[1])
payloads = [b"hello, libasyncuv\n", bytes(range(256)) * 16384]
results = [None, None]

def client(i):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        def send():
            s.sendall(payloads[i])
            s.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=send)
        t.start()
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
        t.join()
        results[i] = bytes(got)

threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
for t in threads: t.start()
for t in threads: t.join()
sys.exit(0 if results == payloads else 1)
PY
then
  echo "example: the clients got their echoes"
else
  echo "example: FAIL: wrong echo"
  echo "0 passed, 1 failed"
  exit 1
fi
# Both connections are closed: the server exits by itself.
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -ne 0 ]; then
  echo "example: FAIL: echo-server exited with $status"
  cat "$tmp/err"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "2 passed, 0 failed"

#!/usr/bin/env bash
# Start a store-svc on a temporary database and a free port, run store_bench
# against it, stop it (SIGTERM) and remove the database.
#   bench/store_bench.sh [bin-dir] [seconds] [threads...]
# bin-dir defaults to build/bin; the rest is passed to store_bench.
set -eu
BIN=${1:-build/bin}
shift || true
[ -x "$BIN/store-svc" ] && [ -x "$BIN/store_bench" ] ||
    { echo "store_bench.sh: build first (no $BIN/store-svc or $BIN/store_bench)" >&2; exit 2; }

WORK=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" || echo "store_bench.sh: store-svc exited $?" >&2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export STORE_URL=tcp://127.0.0.1:$PORT DB_PATH=$WORK/bench.db LOG_LEVEL=warn
"$BIN/store-svc" 2>"$WORK/store-svc.log" &
PID=$!
for _ in $(seq 100); do
    "$BIN/store_bench" --only=ping 0.01 1 >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/store-svc.log" >&2; exit 1; }
    sleep 0.1
done
"$BIN/store_bench" "$@"

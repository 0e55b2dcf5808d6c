#!/usr/bin/env bash
# Start a store-svc on a temporary database and a free port, run store_bench
# against it, stop it (SIGTERM) and remove the database.
#   bench/store_bench.sh [bin-dir] [seconds] [threads...]
# bin-dir defaults to build/bin; the rest is passed to store_bench.
#
# PREFILL_ROWS=N first fills session_logs with N old rows (by python3's
# sqlite3, store-svc stopped in between) dealt out round robin to 1000
# other users and to the bench's own users, so that log.list reads its
# user's newest rows out of a table of millions:
#   PREFILL_ROWS=2000000 bench/store_bench.sh build/bin --only=log.list 5 64
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
start() {
    "$BIN/store-svc" 2>>"$WORK/store-svc.log" &
    PID=$!
    for _ in $(seq 100); do
        "$BIN/store_bench" --only=ping 0.01 1 >/dev/null 2>&1 && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$WORK/store-svc.log" >&2; exit 1; }
        sleep 0.1
    done
}
start
if [ "${PREFILL_ROWS:-0}" -gt 0 ]; then
    kill -TERM "$PID" && wait "$PID" # the schema is there; the file is ours
    PID=
    t0=$(date +%s.%N)
    python3 - "$DB_PATH" "$PREFILL_ROWS" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
users = ["fill-user-%d" % i for i in range(1000)] + \
        ["bench-user-%d" % i for i in range(256)]
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
c.executemany(
    "INSERT INTO session_logs (user_id, event_type, event_data, timestamp) "
    "VALUES (?, 'message', ?, '2026-01-01T00:00:00.000Z')",
    ((users[i % len(users)], '{"n":%d,"body":"%040d"}' % (i, 0))
     for i in range(n)))
c.commit()
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print("# prefilled %d rows; session_logs holds %d" % (
    n, c.execute("SELECT count(*) FROM session_logs").fetchone()[0]))
c.close()
PY
    echo "# prefill took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; database $(du -h "$DB_PATH" | cut -f1)"
    start
fi
"$BIN/store_bench" "$@"

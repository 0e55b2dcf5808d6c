#!/usr/bin/env bash
# store-svc as a process: how it refuses a bad DB_PATH or a newer schema,
# that rows survive SIGTERM and kill -9 (every acknowledged write was
# committed), that the event sequence continues across restarts, and that
# no event data or QR code reaches its log.
#   store_svc.sh <bin-dir> <tools-dir>
set -u
. "$(dirname "$0")/lib.sh"
BIN=$1 TOOLS=$2
WORK=$(mktemp -d)
trap 'stop_all; rm -rf "$WORK"' EXIT
SECRET_MARK=do-not-log-4f1c2a

# run_refused <want-status> <VAR=value...>: start, expect a quick exit.
run_refused() {
    local want=$1; shift
    local rc
    env -i PATH="$PATH" STORE_URL=tcp://127.0.0.1:$(free_port) "$@" \
        timeout 10 "$BIN/store-svc" >"$WORK/refused.out" 2>"$WORK/refused.err"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "store-svc $*: exit $rc, want $want ($(cat "$WORK/refused.err"))"
}

# A directory is not a database file: configuration error, one line, 2.
mkdir -p "$WORK/adir"
run_refused 2 DB_PATH="$WORK/adir"
[ "$(wc -l <"$WORK/refused.err")" -eq 1 ] || fail "DB_PATH directory: want one line: $(cat "$WORK/refused.err")"
grep -q '^store-svc: DB_PATH: ' "$WORK/refused.err" || fail "DB_PATH directory: unclear: $(cat "$WORK/refused.err")"
pass "DB_PATH that is a directory: exit 2 ($(cat "$WORK/refused.err"))"

# Nowhere to write: DB_PATH names a place that cannot be: configuration,
# one line, 2. (As root every directory is writable: a path under /proc
# is not.)
if [ "$(id -u)" -eq 0 ]; then nowhere=/proc/wa-store-test/db/s.db
else mkdir -m 0500 "$WORK/ro"; nowhere=$WORK/ro/db/s.db; fi
run_refused 2 DB_PATH="$nowhere"
grep -q '^store-svc: DB_PATH: cannot' "$WORK/refused.err" ||
    fail "unwritable DB_PATH: unclear: $(cat "$WORK/refused.err")"
[ "$(wc -l <"$WORK/refused.err")" -eq 1 ] || fail "unwritable DB_PATH: want one line: $(cat "$WORK/refused.err")"
pass "unwritable DB_PATH: exit 2 ($(cat "$WORK/refused.err"))"

# A database from a newer store-svc is left alone.
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("PRAGMA user_version=99"); c.commit()' "$WORK/newer.db"
run_refused 1 DB_PATH="$WORK/newer.db"
grep -q 'schema version 99 is newer' "$WORK/refused.err" || fail "newer schema: $(cat "$WORK/refused.err")"
pass "newer schema: refused, exit 1"

# A store on a free port.
export DB_PATH=$WORK/data/sessions.db LOG_LEVEL=debug
export STORE_URL=tcp://127.0.0.1:$(free_port)
start_store() {
    start store-svc "$BIN/store-svc"
    wait_for "store-svc answers ping" "$TOOLS/buscall" "$STORE_URL" ping
}
call() { "$TOOLS/buscall" "$STORE_URL" "$@"; }

start_store
# The database is store-svc's alone while it runs: a second store-svc on
# it stops with a clear line, and so does any other reader.
run_refused 1 DB_PATH="$DB_PATH"
grep -q 'another process has it open: only one store-svc' "$WORK/refused.err" ||
    fail "second store-svc: unclear: $(cat "$WORK/refused.err")"
pass "a second store-svc on the same database: refused, exit 1"
python3 -c 'import sqlite3,sys
c = sqlite3.connect(sys.argv[1], timeout=0.2)
try:
    c.execute("SELECT count(*) FROM user_sessions").fetchone()
except sqlite3.OperationalError as e:
    sys.exit(0 if "locked" in str(e) else 1)
sys.exit(1)' "$DB_PATH" || fail "another process read the database under store-svc"
pass "another process cannot read the database while store-svc runs"
for i in $(seq 20); do
    call log.append doc1 "{\"eventType\":\"message\",\"eventData\":{\"body\":\"$SECRET_MARK\",\"n\":$i}}" >/dev/null ||
        fail "log.append $i"
done
call session.upsert doc1 "{\"status\":\"qr\",\"qrCode\":\"2@$SECRET_MARK\"}" >/dev/null || fail "session.upsert"
for i in 1 2 3; do call event.record doc1 '{"type":"status","data":{}}' >/dev/null || fail "event.record"; done
stop store-svc

start_store
out=$(call log.list doc1 '{"limit":500}') || fail "log.list after restart"
[ "$(printf '%s' "$out" | grep -o '"eventType"' | wc -l)" -eq 23 ] || fail "rows after restart: $out"
pass "rows survive a restart"
out=$(call session.get doc1) || fail "session.get"
case "$out" in *'"status":"qr"'*) pass "session survives a restart" ;; *) fail "session after restart: $out" ;; esac
out=$(call event.record doc1 '{"type":"status","data":{}}') || fail "event.record"
case "$out" in *'"seq":4'*) pass "event seq continues after a restart ($out)" ;; *) fail "seq after restart: $out" ;; esac

# kill -9 right after acknowledged writes: none of them is lost.
for i in $(seq 30); do
    call log.append crash '{"eventType":"t","eventData":1}' >/dev/null || fail "append before crash"
done
kill -KILL "${PIDS[store-svc]}"; wait "${PIDS[store-svc]}" 2>/dev/null; unset "PIDS[store-svc]"
start_store
out=$(call log.list crash '{"limit":500}') || fail "log.list after kill -9"
[ "$(printf '%s' "$out" | grep -o '"eventType"' | wc -l)" -eq 30 ] || fail "after kill -9: $out"
pass "kill -9 loses no acknowledged row"
stop store-svc

if grep -q "$SECRET_MARK" "$WORK"/store-svc.log; then fail "event data or a QR code reached the log"; fi
if grep -v '^{.*}$' "$WORK"/store-svc.log; then fail "a log line is not a JSON object"; fi
grep -q '"rid":"' "$WORK"/store-svc.log || fail "log lines carry no request id"
pass "log: JSON lines with request ids, no event data or QR codes"
summary

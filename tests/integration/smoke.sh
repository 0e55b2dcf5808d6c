#!/usr/bin/env bash
# Smoke test of the four binaries: each refuses bad configuration with one
# line and exit status 2, starts on free ports, answers, and stops cleanly
# (exit 0) on SIGTERM.
#   smoke.sh <bin-dir> <tools-dir>
set -u
. "$(dirname "$0")/lib.sh"
BIN=$1 TOOLS=$2
SECRET=0123456789abcdef0123456789abcdef-smoke

# expect_config_refusal <binary> <VAR=value...>
expect_config_refusal() {
    local bin=$1; shift
    local out rc
    out=$(env -i PATH="$PATH" "$@" timeout 10 "$BIN/$bin" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -eq 2 ] || fail "$bin $*: exit $rc, want 2 (output: $out)"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "$bin $*: want one line, got: $out"
    case "$out" in "$bin: "*) ;; *) fail "$bin $*: line does not name the binary: $out" ;; esac
    pass "$bin refuses $* ($out)"
}

expect_config_refusal store-svc STORE_URL=http://x
expect_config_refusal store-svc STORE_WORKERS=0
expect_config_refusal store-svc LOG_LEVEL=loud
expect_config_refusal store-svc DB_PATH=/proc/wa-smoke/db/sessions.db
expect_config_refusal gateway JWT_SECRET=
expect_config_refusal gateway JWT_SECRET=short
expect_config_refusal gateway JWT_SECRET=$SECRET PORT=70000
expect_config_refusal gateway JWT_SECRET=$SECRET RATE_LIMIT_RPS=abc
expect_config_refusal gateway SUPABASE_JWT_SECRET=tooshort
expect_config_refusal gateway JWT_SECRET=$SECRET AUTH_DEV_MODE=maybe
expect_config_refusal notifier-svc NOTIFIER_PORT=3002
expect_config_refusal notifier-svc JWT_SECRET=$SECRET NOTIFIER_PORT=-1
expect_config_refusal notifier-svc JWT_SECRET=$SECRET EVENTS_URL=tcp://nohost
expect_config_refusal session-svc CHROMIUM_PATH=/nonexistent/chromium
expect_config_refusal session-svc MAX_SESSIONS=0
expect_config_refusal session-svc WA_WEB_URL=ftp://example
expect_config_refusal session-svc SESSION_URL=tcp://127.0.0.1:99999
expect_config_refusal session-svc SESSIONS_DIR=/proc/wa-smoke/sessions

# A port another process holds: configuration too, one line, exit 2.
BUSY=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen()
time.sleep(60)' "$BUSY" &
HOLDER=$!
wait_for "port $BUSY held" python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$BUSY"
expect_config_refusal gateway JWT_SECRET=$SECRET PORT=$BUSY
expect_config_refusal notifier-svc JWT_SECRET=$SECRET NOTIFIER_PORT=$BUSY \
    EVENTS_URL=tcp://127.0.0.1:$(free_port)
expect_config_refusal fakewa FAKEWA_PORT=$BUSY
# The bus addresses a service listens on alike, and before anything else
# (store-svc's database is not created).
SMOKE_DIR=$(mktemp -d)
expect_config_refusal store-svc STORE_URL=tcp://127.0.0.1:$BUSY \
    DB_PATH="$SMOKE_DIR/db/sessions.db"
[ ! -e "$SMOKE_DIR/db" ] || fail "store-svc created its database before listening"
pass "store-svc refused the address before touching the database"
expect_config_refusal notifier-svc JWT_SECRET=$SECRET \
    NOTIFIER_PORT="$(free_port)" EVENTS_URL=tcp://127.0.0.1:$BUSY
expect_config_refusal session-svc SESSION_URL=tcp://127.0.0.1:$BUSY \
    SESSIONS_DIR="$SMOKE_DIR/sessions"
expect_config_refusal store-svc STORE_URL=ipc://"$SMOKE_DIR"/missing/store.sock \
    DB_PATH="$SMOKE_DIR/db/sessions.db"
rm -rf "$SMOKE_DIR"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true

# A whole stack on free ports.
WORK=$(mktemp -d)
trap 'stop_all; rm -rf "$WORK"' EXIT
STORE_PORT=$(free_port) EVENTS_PORT=$(free_port) SESSION_PORT=$(free_port)
GW_PORT=$(free_port) NT_PORT=$(free_port)
export STORE_URL=tcp://127.0.0.1:$STORE_PORT
export EVENTS_URL=tcp://127.0.0.1:$EVENTS_PORT
export SESSION_URL=tcp://127.0.0.1:$SESSION_PORT
export JWT_SECRET=$SECRET PORT=$GW_PORT NOTIFIER_PORT=$NT_PORT
export DB_PATH=$WORK/db/sessions.db SESSIONS_DIR=$WORK/sessions LOG_LEVEL=debug

start store-svc "$BIN/store-svc"
start notifier-svc "$BIN/notifier-svc"
start session-svc "$BIN/session-svc"
start gateway "$BIN/gateway"

wait_for "store-svc answers ping" "$TOOLS/buscall" "$STORE_URL" ping
wait_for "session-svc answers ping" "$TOOLS/buscall" "$SESSION_URL" ping
wait_for "gateway /health is 200" http_status_is 200 "http://127.0.0.1:$GW_PORT/health"
wait_for "notifier /health is 200" http_status_is 200 "http://127.0.0.1:$NT_PORT/health"
out=$("$TOOLS/buscall" "$STORE_URL" wa.status u1) && fail "store-svc served an op it does not own: $out"
pass "store-svc refuses an operation it does not serve ($out)"
http_status_is 404 "http://127.0.0.1:$GW_PORT/nope" || fail "gateway: unknown route is not 404"
pass "gateway: unknown route is 404"
http_status_is 405 -X POST "http://127.0.0.1:$GW_PORT/health" || fail "gateway: POST /health is not 405"
pass "gateway: POST /health is 405"
rid=$(curl -s -D - -o /dev/null -H 'X-Request-Id: smoke-rid-1' "http://127.0.0.1:$GW_PORT/health" | tr -d '\r' | sed -n 's/^X-Request-Id: //ip')
[ "$rid" = "smoke-rid-1" ] || fail "gateway did not echo X-Request-Id (got '$rid')"
pass "gateway echoes X-Request-Id"

# store-svc gone: the gateway says so quickly instead of hanging.
stop store-svc
http_status_is 503 --max-time 10 "http://127.0.0.1:$GW_PORT/health" || fail "gateway /health is not 503 without store-svc"
pass "gateway /health is 503 without store-svc"

for s in gateway session-svc notifier-svc; do stop "$s"; done
grep -q '"level":"info"' "$WORK/gateway.log" || fail "gateway log is not JSON lines"
if grep -v '^{.*}$' "$WORK"/*.log; then fail "a log line is not a JSON object"; fi
pass "logs are JSON lines"
summary

#!/usr/bin/env bash
# Throughput and latency of the gateway's store routes, measured with wrk.
#
# Starts store-svc and gateway on free ports with a temporary database and a
# generous rate limit, seeds 50 log rows per user and a ready session
# placed on a live (heartbeating) instance, mints tokens with wa-token,
# then runs wrk on GET /status and GET /logs (default limit, 50
# rows) at 1 and 64 keep-alive connections, first with one user's token
# (identical reads in flight share one bus call), then with USERS users'
# tokens dealt out between wrk's threads (gateway_bench.lua: nearly every
# request is its own bus round trip). Prints requests/s, p50 and p99, the
# share of requests that reached store-svc (to_store), the share of /logs
# answers that were the body the gateway kept (kept), the CPU time
# gateway and store-svc spent per
# request (user + system; steadier than req/s on a shared machine), and the
# memory of both processes (RSS, its anonymous part, PSS), idle before and
# after the load; "after" is sampled 3 s after the last request, since both
# services give memory back on the first second without work that follows
# a busy one (wa_service_trim_when_idle). Use an optimised build (the default RelWithDebInfo, or
# Release), not a Debug one.
#
#   bench/gateway_bench.sh [build-dir] [seconds-per-run]   (default build, 10)
#
# Environment: GATEWAY_THREADS (default 72: CivetWeb holds one thread per
# keep-alive connection, so it must exceed the connection count); ONLY, a
# run to do alone, as "<path> <conns> <users>" (e.g. ONLY="/status 64 256";
# ONLY=- runs none); USERS, the users of the many-user runs (default 256);
# APPEND_RPS=N appends N rows a second (store_bench --pace, 8 producers,
# one row per call, across the users) during each many-user /logs run, as
# events arriving while the CRM polls: a changed log's next poll carries
# the rows again (kept falls below 100%);
# FLOOR=1 then repeats the 64-connection many-user runs against
# http_floor (bench/http_floor.c): CivetWeb started as the gateway starts
# it, answering each request at once with a body of the route's size, no
# auth, no bus: the ceiling the HTTP layer alone leaves on this machine.
set -eu
BUILD=${1:-build}
DURATION=${2:-10}
BIN=$BUILD/bin TOOLS=$BUILD/tests
HERE=$(cd "$(dirname "$0")" && pwd)
for f in "$BIN/gateway" "$BIN/store-svc" "$BIN/wa-token" "$TOOLS/buscall" \
    "$BIN/http_floor" "$BIN/store_bench"; do
    [ -x "$f" ] || { echo "gateway_bench.sh: build first (no $f)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "gateway_bench.sh: wrk is not installed" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# A free TCP port, outside the ephemeral range (tests/integration/ports.py).
free_port() {
    python3 "$(dirname "$0")/../tests/integration/ports.py"
}
# "VmRSS x MiB (anon y, PSS z)": RSS counts the shared libraries' pages in
# full; anon is the process's own memory; PSS shares the rest out.
mem_of() {
    local rss anon pss
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")
    anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$1/status")
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup")
    awk -v r="$rss" -v a="$anon" -v p="$pss" \
        'BEGIN { printf "RSS %.1f MiB (anon %.1f, PSS %.1f)", r / 1024, a / 1024, p / 1024 }'
}

export JWT_SECRET=gateway-bench-secret-0123456789abcdef
export STORE_URL=tcp://127.0.0.1:$(free_port) PORT=$(free_port)
export DB_PATH=$WORK/bench.db LOG_LEVEL=warn
export RATE_LIMIT_RPS=1000000 RATE_LIMIT_BURST=1000000
export GATEWAY_THREADS=${GATEWAY_THREADS:-72}

"$BIN/store-svc" 2>"$WORK/store-svc.log" &
STORE_PID=$!
PIDS+=("$STORE_PID")
"$BIN/gateway" 2>"$WORK/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do
    curl -sf -o /dev/null "$URL/metrics" && "$TOOLS/buscall" "$STORE_URL" ping >/dev/null 2>&1 && break
    sleep 0.1
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# USERS users (default 256: four per connection, so that wrk's rotation
# rarely has one user in flight twice), 50 log rows each (what GET /logs
# answers by default), one 50-row log.append per user.
USERS=${USERS:-256}
: >"$WORK/tokens"
for u in $(seq "$USERS"); do
    "$BIN/wa-token" "bench-user-$u" 86400 >>"$WORK/tokens"
done
ROWS=$(for n in $(seq 50); do
    printf '{"eventType":"message","eventData":{"n":%d,"body":"%040d"}}\n' "$n" 0
done | paste -sd, -)
# One store call of the seeding; a failure stops the bench, saying why.
seed() { # seed <what> <buscall args...>
    local what=$1 out
    shift
    out=$("$TOOLS/buscall" "$STORE_URL" "$@" 2>&1) ||
        { echo "gateway_bench.sh: seeding $what failed: $out" >&2; return 1; }
}
# Run "<fn> <u>" for every user u, 8 at a time; false if any failed.
seed_all() { # seed_all <fn>
    local u p pids=() ok=0
    for u in $(seq "$USERS"); do
        "$1" "$u" &
        pids+=($!)
        if [ ${#pids[@]} -eq 8 ]; then
            for p in "${pids[@]}"; do wait "$p" || ok=1; done
            pids=()
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || ok=1; done
    return $ok
}
seed_logs() { seed "user $1's log" log.append "bench-user-$1" "{\"rows\":[$ROWS]}"; }
# Each user linked: a ready session row, placed on an instance that stays
# alive (a heartbeat every 2 s, as session-svc sends), so GET /status reads
# what it reads for a working doctor: the row and the owner's liveness.
seed_session() {
    seed "user $1's placement" placement.resolve "bench-user-$1" &&
        seed "user $1's session" session.upsert "bench-user-$1" \
            "{\"status\":\"ready\",\"phoneNumber\":\"+4179$(printf %07d "$1")\",\"displayName\":\"Dr Bench $1\",\"connectedAt\":\"2026-11-26T08:00:00.000Z\",\"lastActivity\":\"2026-11-26T08:00:00.000Z\"}"
}
seed_all seed_logs
seed "the instance" instance.register "" \
    "{\"instance\":\"bench-1\",\"url\":\"tcp://127.0.0.1:9\",\"capacity\":$((USERS + 1))}"
(trap - EXIT; set +e
while :; do
    "$TOOLS/buscall" "$STORE_URL" instance.heartbeat "" \
        "{\"instance\":\"bench-1\",\"sessions\":$USERS}" >/dev/null 2>&1
    sleep 2
done) &
PIDS+=($!)
seed_all seed_session
TOKEN=$(head -1 "$WORK/tokens")
[ "$(curl -s -H "Authorization: Bearer $TOKEN" "$URL/status" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')" = ready ] ||
    { echo "gateway_bench.sh: the seeded session does not read ready" >&2; exit 1; }
sleep 1
IDLE_GW=$(mem_of "$GW_PID") IDLE_STORE=$(mem_of "$STORE_PID")

echo "# gateway_bench: $(nproc) CPUs, ${DURATION}s per run, GATEWAY_THREADS=$GATEWAY_THREADS, load average before seeding $LOAD_BEFORE"
printf '%-12s %5s %5s %10s %9s %9s %8s %8s %8s %5s %6s\n' route conns users req/s p50 p99 \
    gw_us/req st_us/req to_store kept errors
# "<requests> <store calls> <kept> <fetched>" the gateway has counted so
# far: to_store is the share of a run's requests that reached store-svc;
# the rest shared the answer of an identical read in flight (coalescing).
# kept is the share of /logs answers that were the body the gateway kept,
# store-svc having found the log unchanged (logcache.h); the others
# carried the rows. The seeded logs do not change during a run, so every
# user's first /logs fetches and the rest are kept, unless there are
# more users than kept bodies fit (4 MiB: USERS=1024 fetches every time).
counters() {
    curl -s "$URL/metrics" | awk '
        $1 ~ /^wa_gateway_http_requests_total/ { r += $2 }
        $1 == "wa_gateway_store_calls_total" { c = $2 }
        $1 == "wa_gateway_logs_cache_hits_total" { h = $2 }
        $1 == "wa_gateway_logs_cache_misses_total" { m = $2 }
        END { print r + 0, c + 0, h + 0, m + 0 }'
}
# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU microseconds per request from a tick delta: <ticks> <req/s>
us_per_req() {
    awk -v t="$1" -v r="$2" -v d="$DURATION" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.1f", (r > 0 ? t / hz * 1e6 / (r * d) : 0) }'
}
run() { # run <path> <conns> <users>
    local path=$1 conns=$2 users=$3 threads=2 out gw0 st0 gw1 st1 rps r0 c0 r1 c1 h0 m0 h1 m1 ap
    [ -n "${ONLY:-}" ] && [ "$ONLY" != "$path $conns $users" ] && return 0
    [ "$conns" -eq 1 ] && threads=1
    read -r r0 c0 h0 m0 < <(counters)
    ap=
    if [ -n "${APPEND_RPS:-}" ] && [ "$path" = /logs ] && [ "$users" -gt 1 ]; then
        # 8 producers: one waits for each commit's disk sync.
        "$BIN/store_bench" --only=log.append --users="$users" \
            --pace=$(((APPEND_RPS + 7) / 8)) "$DURATION" 8 >"$WORK/append.out" &
        ap=$!
    fi
    gw0=$(cpu_ticks "$GW_PID") st0=$(cpu_ticks "$STORE_PID")
    if [ "$users" -eq 1 ]; then
        out=$(wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency \
            -H "Authorization: Bearer $TOKEN" "$URL$path")
    else
        out=$(wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency \
            -s "$HERE/gateway_bench.lua" "$URL$path" -- "$WORK/tokens" "$threads")
    fi
    gw1=$(cpu_ticks "$GW_PID") st1=$(cpu_ticks "$STORE_PID")
    read -r r1 c1 h1 m1 < <(counters)
    if [ -n "$ap" ]; then
        wait "$ap" || { echo "gateway_bench.sh: appending failed" >&2; return 1; }
    fi
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    printf '%-12s %5s %5s %10s %9s %9s %8s %8s %8s %5s %6s\n' "GET $path" "$conns" "$users" \
        "$rps" \
        "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
        "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
        "$(us_per_req $((gw1 - gw0)) "$rps")" "$(us_per_req $((st1 - st0)) "$rps")" \
        "$(awk -v r=$((r1 - r0 - 1)) -v c=$((c1 - c0)) 'BEGIN { printf "%.0f%%", (r > 0 ? 100 * c / r : 0) }')" \
        "$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN { if (h + m > 0) printf "%.0f%%", 100 * h / (h + m); else printf "-" }')" \
        "$(awk '/Non-2xx|Socket errors/ {e = e $0 "; "} END {print (e == "" ? 0 : e)}' <<<"$out")"
    [ -z "$ap" ] || awk '/^log.append/ { print "  meanwhile store_bench " $1 " " $3 " " $6 }' "$WORK/append.out"
}
for path in /status /logs; do
    run "$path" 1 1
    run "$path" 64 1
    run "$path" 64 "$USERS"
done
# The HTTP layer alone: the same wrk run against http_floor.
floor() { # floor <path>
    local path=$1 size port fp out f0 f1 rps
    size=$(curl -s -o /dev/null -w '%{size_download}' \
        -H "Authorization: Bearer $TOKEN" "$URL$path")
    port=$(free_port)
    "$BIN/http_floor" "$port" "$size" "$GATEWAY_THREADS" &
    fp=$!
    for _ in $(seq 50); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    f0=$(cpu_ticks "$fp")
    out=$(wrk -t2 -c64 -d"${DURATION}s" --latency -s "$HERE/gateway_bench.lua" \
        "http://127.0.0.1:$port$path" -- "$WORK/tokens" 2)
    f1=$(cpu_ticks "$fp")
    kill -TERM "$fp" && wait "$fp" || true
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    printf '%-12s %5s %5s %10s %9s %9s %8s %8s %8s %5s %6s\n' "floor $path" 64 "$USERS" \
        "$rps" \
        "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
        "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
        "$(us_per_req $((f1 - f0)) "$rps")" "-" "${size}B" "-" \
        "$(awk '/Non-2xx|Socket errors/ {e = e $0 "; "} END {print (e == "" ? 0 : e)}' <<<"$out")"
}
if [ "${FLOOR:-0}" = 1 ]; then
    floor /status
    floor /logs
fi
sleep 1
curl -s "$URL/metrics" | awk '
    $1 == "wa_gateway_store_calls_total" { c = $2 }
    $1 == "wa_gateway_store_batches_total" { b = $2 }
    $1 == "wa_gateway_store_batched_calls_total" { m = $2 }
    END { printf "store calls %d, of which %d in %d bus.batch messages (%.1f per batch)\n", c, m, b, (b > 0 ? m / b : 0) }'
sleep 3 # idle: past the services' first still second (see the top)
echo "idle before load: gateway $IDLE_GW; store-svc $IDLE_STORE"
echo "idle after load:  gateway $(mem_of "$GW_PID"); store-svc $(mem_of "$STORE_PID")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine skews figures: compare runs)"

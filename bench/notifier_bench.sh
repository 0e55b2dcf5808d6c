#!/usr/bin/env bash
# Fan-out benchmark of notifier-svc: the bus's own ceiling, then four runs
# against a fresh notifier each.
#   0. the bus alone: the same publishers into a SUB socket that only
#      receives and decodes (no notifier, no WebSocket), at RATE_USERS
#   1. one user x 1,000 sockets
#   2. 1,000 users x 1 socket
#   3. as 1, plus one stalled subscriber of that user (never reads)
#   4. as 2, plus one stalled subscriber of the first user
# Each prints memory per idle connection, the rate the publishers offered,
# delivered frames/s and their share of those expected, the
# publish-to-receive latency p50/p99/p99.9, and the notifier's counters
# (events_gap_total: events lost before the notifier, e.g. by a full SUB
# queue).
#
#   bench/notifier_bench.sh [build-dir] [seconds]
# Environment: RATE_FANOUT (events/s in runs 1 and 3, default 100 = 100,000
# frames/s), RATE_USERS (events/s in runs 2 and 4, default 100000),
# PUBLISHERS (PUB sockets, one thread each, as several session-svc
# instances; default 2), READERS (client epoll threads, default 2).
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-5}
RATE_FANOUT=${RATE_FANOUT:-100}
RATE_USERS=${RATE_USERS:-100000}
PUBLISHERS=${PUBLISHERS:-2}
READERS=${READERS:-2}
NOTIFIER=$BUILD/bin/notifier-svc
BENCH=$BUILD/bin/notifier_bench
SECRET=0123456789abcdef0123456789abcdef-bench
[ -x "$NOTIFIER" ] && [ -x "$BENCH" ] || { echo "build first: $NOTIFIER, $BENCH" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"

# A free TCP port, outside the ephemeral range (tests/integration/ports.py).
free_port() {
    python3 "$(dirname "$0")/../tests/integration/ports.py"
}

run() {
    local title=$1 stalled=$2; shift 2
    local port events pid
    port=$(free_port) events=tcp://127.0.0.1:$(free_port)
    JWT_SECRET=$SECRET NOTIFIER_PORT=$port EVENTS_URL=$events \
        NOTIFIER_MAX_CONN=2100 NOTIFIER_MAX_CONN_PER_USER=1100 \
        NOTIFIER_QUEUE_FRAMES=512 NOTIFIER_REPLAY=256 LOG_LEVEL=warn \
        "$NOTIFIER" 2>"$LOGDIR/notifier-$port.log" &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        sleep 0.05
    done
    echo "== $title"
    local rc=0
    "$BENCH" "$port" "$events" "$SECRET" "$pid" "$@" "$stalled" \
        "$PUBLISHERS" "$READERS" || rc=$?
    curl -s "http://127.0.0.1:$port/metrics" |
        grep -E '^notifier_(events_in_total|events_gap_total|frames_out_total|drops_total)' || true
    # Stop this notifier whatever the bench did, then report its failure.
    kill -TERM "$pid"
    wait "$pid" || true
    return "$rc"
}

LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT
echo "machine: $(nproc) CPUs, $(uname -r); notifier and bench share them"
echo "== the bus alone, 1000 users, $RATE_USERS events/s"
"$BENCH" --bus 1000 "$RATE_USERS" "$SECS" "$PUBLISHERS"
run "1 user x 1000 sockets, $RATE_FANOUT events/s" 0 1 1000 "$RATE_FANOUT" "$SECS"
run "1000 users x 1 socket, $RATE_USERS events/s" 0 1000 1 "$RATE_USERS" "$SECS"
# Twice as long, so the stalled client overflows its queue (512 frames).
run "1 user x 1000 sockets + 1 stalled, $RATE_FANOUT events/s" 1 1 1000 "$RATE_FANOUT" "$((SECS * 2))"
# The stalled client's user gets 1/1000 of the events: 100/s at the default
# rate, so its queue (512 frames) overflows within the run.
run "1000 users x 1 socket + 1 stalled, $RATE_USERS events/s" 1 1000 1 "$RATE_USERS" "$((SECS * 2))"

# Shared helpers for the shell integration tests. Processes started with
# `start` are stopped with SIGTERM by `stop`/`stop_all`, which checks they
# exit 0 within 10 s.
PASSED=0
FAILED=0
declare -A PIDS=()

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; summary; exit 1; }
summary() { echo "$PASSED passed, $FAILED failed"; }

# A free TCP port, outside the ephemeral range (ports.py says why).
free_port() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/ports.py"
}

# start <name> <command...>: run in the background, log to $WORK/<name>.log.
start() {
    local name=$1; shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS[$name]=$!
}

# stop <name>: SIGTERM, then require exit status 0 within 10 s.
stop() {
    local name=$1 pid=${PIDS[$1]:-} i rc
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"; unset "PIDS[$name]"
        fail "$name did not stop within 10 s of SIGTERM"
    fi
    wait "$pid"; rc=$?
    unset "PIDS[$name]"
    [ "$rc" -eq 0 ] || { tail -5 "$WORK/$name.log"; fail "$name exited $rc after SIGTERM"; }
    pass "$name stopped cleanly on SIGTERM"
}

stop_all() {
    local n
    for n in "${!PIDS[@]}"; do kill -KILL "${PIDS[$n]}" 2>/dev/null; done
}

# wait_for <what> <command...>: retry for up to 15 s.
wait_for() {
    local what=$1; shift
    local i
    for i in $(seq 150); do
        "$@" >/dev/null 2>&1 && { pass "$what"; return 0; }
        sleep 0.1
    done
    fail "$what (timed out)"
}

# http_status_is <code> <curl args...>
http_status_is() {
    local want=$1; shift
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@")" = "$want" ]
}

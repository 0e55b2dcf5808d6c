#!/usr/bin/env bash
# Build and run the whole stack on this machine: store-svc, session-svc,
# notifier-svc and gateway on loopback, SQLite under ./data, browser profiles
# under ./whatsapp-sessions. Ctrl-C stops everything.
#
# Environment as in README.md. Without JWT_SECRET a random one is made and
# kept in ./data/dev-jwt-secret, and a token for user "demo" is printed.
#
#   scripts/run.sh --demo   also starts build/bin/fakewa (the fake WhatsApp
#                           Web) and points session-svc at it: no phone needed.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=0
[ "${1:-}" = "--demo" ] && demo=1
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

mkdir -p data
if [ -z "${JWT_SECRET:-}" ] && [ -z "${SUPABASE_JWT_SECRET:-}" ]; then
    [ -s data/dev-jwt-secret ] ||
        (umask 077; head -c 36 /dev/urandom | base64 | tr -d '\n/+=' > data/dev-jwt-secret)
    JWT_SECRET=$(cat data/dev-jwt-secret)
    export JWT_SECRET
    token=$(build/bin/wa-token demo 86400)
    echo "run: JWT_SECRET from data/dev-jwt-secret; a token for user demo:"
    echo "  $token"
    echo "run: the live page as demo:"
    echo "  http://127.0.0.1:${PORT:-3001}/?token=$token${NOTIFIER_PORT:+&ws=ws://127.0.0.1:$NOTIFIER_PORT/}"
fi
# The live page (GET /) opens the notifier's WebSocket from the gateway's
# origin, which the notifier checks against ALLOWED_ORIGINS.
export ALLOWED_ORIGINS="${ALLOWED_ORIGINS-http://localhost:${PORT:-3001},http://127.0.0.1:${PORT:-3001}}"
# Debian's /usr/bin/chromium is a shell wrapper around this binary; starting
# the binary itself saves ~0.1 s per browser start (as the image does).
if [ -z "${CHROMIUM_PATH:-}${PUPPETEER_EXECUTABLE_PATH:-}" ] &&
    [ -x /usr/lib/chromium/chromium ]; then
    export CHROMIUM_PATH=/usr/lib/chromium/chromium
fi

pids=()
cleanup() {
    trap - INT TERM EXIT
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
    wait
}
trap cleanup INT TERM EXIT

if [ "$demo" -eq 1 ]; then
    FAKEWA_PORT=${FAKEWA_PORT:-3100}
    export FAKEWA_PORT WA_WEB_URL="http://127.0.0.1:$FAKEWA_PORT/"
    build/bin/fakewa & pids+=($!)
    cat <<EOT
run: demo mode, WhatsApp Web is fakewa on :$FAKEWA_PORT. After POST /connect,
  scan from the "phone" with the QR string fakewa shows:
  curl -s localhost:$FAKEWA_PORT/_fake/pages
  curl -s -X POST localhost:$FAKEWA_PORT/_fake/scan \\
       -d '{"ref":"<ref from /_fake/pages>","phone":"41790000001","name":"Dr Demo"}'
EOT
fi
build/bin/store-svc & pids+=($!)
build/bin/notifier-svc & pids+=($!)
build/bin/session-svc & pids+=($!)
build/bin/gateway & pids+=($!)
echo "run: gateway on :${PORT:-3001} (live page http://127.0.0.1:${PORT:-3001}/), notifier on :${NOTIFIER_PORT:-3002}; Ctrl-C stops"
# If any service exits, stop the rest.
wait -n

#!/usr/bin/env bash
# session-svc benchmarks (see session_bench.py): connect -> QR and scan ->
# ready latency (median of 10) and PSS per ready session at 1, 5 and 10
# sessions; `--flags` compares Chromium flag sets instead.
#   bench/session_bench.sh [--flags]      (after cmake --build build)
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/session_bench.py build/bin "$@"

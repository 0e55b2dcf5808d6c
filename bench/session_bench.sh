#!/usr/bin/env bash
# session-svc benchmarks (see session_bench.py): connect -> QR and scan ->
# ready latency (median of 10) and PSS per ready session at 1, 5 and 10
# sessions; `--flags` compares Chromium flag sets instead.
#   bench/session_bench.sh [--flags]      (after cmake --build build)
#   BIN_DIR=build-x/bin bench/session_bench.sh 10 1   (another build; runs,
#                                          session counts)
#   SPARE_BROWSERS=1 bench/session_bench.sh          (one pre-warmed browser)
#   GAP_S=8 bench/session_bench.sh 10 1     (8 s between connects)
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/session_bench.py "${BIN_DIR:-build/bin}" "$@"

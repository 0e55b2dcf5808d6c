#!/usr/bin/env bash
# Build everything and run every test (unit and integration) with ctest.
#   scripts/test.sh            # build/ ; BUILD_DIR and SANITIZE override
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
args=()
[ -n "${SANITIZE:-}" ] && args+=("-DSANITIZE=$SANITIZE")
cmake -S . -B "$build" "${args[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
exec ctest --output-on-failure ${CTEST_LABEL:+-L "$CTEST_LABEL"}

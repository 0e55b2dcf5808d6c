#!/usr/bin/env bash
# Install every Debian package wa-server needs to build, test and run.
# Idempotent: quiet and quick when everything is already present.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git ca-certificates
    libnng-dev libsqlite3-dev libjwt-dev libcjson-dev libqrencode-dev
    libcivetweb-dev libuv1-dev libpng-dev libcmocka-dev libssl-dev
    chromium wrk curl python3 python3-yaml procps zbar-tools
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "bootstrap: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

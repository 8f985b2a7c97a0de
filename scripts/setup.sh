#!/usr/bin/env bash
# Installs what rkbridge needs on Debian 12 (if missing) and builds ./build/rkbridge.
#   scripts/setup.sh              install + release build into ./build
#   scripts/setup.sh --deps-only  install only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config librdkafka-dev libhiredis-dev libjansson-dev
          libcmocka-dev libmicrohttpd-dev libssl-dev openssl redis-server redis-tools kcat)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "${1:-}" = "--deps-only" ] && exit 0

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRKB_SANITIZE=OFF -DRKB_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "setup: built ./build/rkbridge ($(./build/rkbridge --version))"

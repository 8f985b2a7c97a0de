#!/usr/bin/env bash
# Installs what rkbridge needs on Debian 12 (if missing) and builds ./build/rkbridge.
#   scripts/setup.sh              install + release build into ./build
#   scripts/setup.sh --deps-only  install only
#   scripts/setup.sh --bench-deps install only, plus what bench/run needs beyond that: the peers
#                                 it compares with (Python's Kafka and Redis clients) and GNU time
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config librdkafka-dev libhiredis-dev libjansson-dev
          libcmocka-dev libmicrohttpd-dev libssl-dev openssl libjemalloc-dev redis-server redis-sentinel redis-tools kcat)
[ "${1:-}" = "--bench-deps" ] && packages+=(python3-confluent-kafka python3-redis time)
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
case "${1:-}" in --deps-only | --bench-deps) exit 0 ;; esac

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRKB_SANITIZE=OFF -DRKB_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "setup: built ./build/rkbridge ($(./build/rkbridge --version))"

#!/usr/bin/env bash
# Installs what is needed, builds with AddressSanitizer + UBSan and -Werror, and runs the whole
# suite against real redis-server and dev-broker processes (started by the tests themselves).
# A leak, a sanitizer report or a warning fails the run. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --deps-only
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRKB_SANITIZE=ON -DRKB_WERROR=ON >/dev/null
cmake --build build-test -j"$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-test --output-on-failure -j2 --timeout 900

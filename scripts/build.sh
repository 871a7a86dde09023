#!/usr/bin/env bash
# Builds popsync into build/ (or build-asan/ with --asan).
# usage: scripts/build.sh [--asan]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--asan" ]; then
    dir=build-asan
    flags=(-DCMAKE_BUILD_TYPE=Debug -DPS_SANITIZE=ON -DCMAKE_C_COMPILER=clang)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"

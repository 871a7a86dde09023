#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test
# with ctest, then again built with AddressSanitizer + UndefinedBehaviorSanitizer,
# then runs each libFuzzer target (scripts/fuzz.sh) for PS_FUZZ_SECONDS (60).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "=== build and test (RelWithDebInfo)"
scripts/build.sh
(cd build && ctest --output-on-failure -j"$jobs")

echo "=== build and test (ASan + UBSan)"
scripts/build.sh --asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The long scenarios (label "long") ran above; the randomized sync test runs
# a shorter random walk here (two seeds of 6,000 operations).
(cd build-asan && PS_SIM_OPS=${PS_SIM_OPS:-6000} ctest --output-on-failure -j"$jobs" -LE long)

echo "=== fuzz (libFuzzer, ASan + UBSan): every target ${PS_FUZZ_SECONDS:-60} s, two at a time"
scripts/fuzz.sh "${PS_FUZZ_SECONDS:-60}"
echo "=== all tests passed, normal and under ASan+UBSan, and the fuzz targets found nothing"

#!/usr/bin/env bash
# Fuzzes the decoders and parsers with libFuzzer under ASan + UBSan.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds tests/fuzz/fuzz_*.c with clang into build-fuzz/, then runs each
# target for SECONDS (default 60; e.g. 3600 for a long local run), two at a
# time, on a temporary copy of its seed corpus tests/fuzz/corpus/<target>
# (the repository is never written).  Fails when any target finds a crash,
# a leak, undefined behaviour, a timeout or an out-of-memory; the input is
# left in build-fuzz/crashes/ and its hex is printed: add it to the target's
# corpus directory once the bug is fixed, as a regression test.
# Env: PS_FUZZ_JOBS (parallel targets, default 2), PS_FUZZ_KEEP=DIR (keep the
# grown working corpora in DIR, to merge interesting inputs back by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_frame fuzz_msg fuzz_validate fuzz_csv fuzz_json fuzz_orgunits)
jobs=${PS_FUZZ_JOBS:-2}

# Largest input per target: a few frames / records / files' worth.
max_len() {
    case $1 in
        fuzz_frame) echo 8192 ;;
        fuzz_msg) echo 16384 ;;
        fuzz_validate) echo 4096 ;;
        fuzz_csv | fuzz_json) echo 16384 ;;
        fuzz_orgunits) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

echo "=== fuzz: build (clang, libFuzzer, ASan + UBSan) into build-fuzz"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DPS_SANITIZE=ON \
    -DPS_FUZZ=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/popsync-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
crashes=build-fuzz/crashes
mkdir -p "$crashes"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_one() {
    local t=$1 log="$work/$t.log"
    mkdir -p "$work/corpus/$t"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -r "tests/fuzz/corpus/$t/." "$work/corpus/$t/"
    fi
    # -timeout: a single input taking 25 s is a hang; -rss_limit_mb bounds memory.
    if "build-fuzz/tests/fuzz/$t" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=25 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/$t-" \
        "$work/corpus/$t" >"$log" 2>&1; then
        echo ok >"$work/$t.rc"
    else
        echo "failed ($?)" >"$work/$t.rc"
    fi
}

echo "=== fuzz: ${#targets[@]} targets, ${secs} s each, $jobs at a time"
start=$(date +%s)
running=()
for t in "${targets[@]}"; do
    run_one "$t" &
    running+=($!)
    if [ ${#running[@]} -ge "$jobs" ]; then
        wait "${running[0]}"
        running=("${running[@]:1}")
    fi
done
for p in "${running[@]}"; do wait "$p"; done

failed=0
printf '%-15s %12s %10s %8s  %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
    log="$work/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$work/corpus/$t" -type f | wc -l)
    res=$(cat "$work/$t.rc" 2>/dev/null || echo "not run")
    printf '%-15s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$res"
    if [ "$res" != ok ]; then
        failed=1
        echo "--- $t: last lines of its log" >&2
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written|deadly signal|==[0-9]+==' "$log" | head -20 >&2 || true
        tail -n 30 "$log" >&2
        for f in "$crashes/$t"-*; do
            [ -f "$f" ] || continue
            echo "--- input $f ($(stat -c %s "$f") bytes):" >&2
            od -An -tx1 -v "$f" | head -20 >&2
        done
    fi
    if [ -n "${PS_FUZZ_KEEP:-}" ]; then
        mkdir -p "$PS_FUZZ_KEEP/$t"
        cp -r "$work/corpus/$t/." "$PS_FUZZ_KEEP/$t/"
    fi
done
echo "=== fuzz: $(( $(date +%s) - start )) s"
if [ $failed -ne 0 ]; then
    echo "=== fuzz: FAILED (inputs in $root/$crashes)" >&2
    exit 1
fi
echo "=== fuzz: no crash in ${#targets[@]} targets"

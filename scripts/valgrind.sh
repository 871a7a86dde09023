#!/usr/bin/env bash
# Runs a representative subset of the integration tests with popsyncd and
# popsync under valgrind memcheck, and fails on any invalid access, use of
# uninitialised memory or leak (definitely or indirectly lost).
#
# usage: scripts/valgrind.sh [TEST...]     (default: the four below)
#
# Builds a plain Debug build (no sanitizers: valgrind and ASan do not mix)
# into build-valgrind/, points the tests' $POPSYNCD and $POPSYNC at wrapper
# scripts that exec valgrind, runs each test, then reads every valgrind log.
# A process the test kills with SIGKILL leaves no summary; those are counted
# apart.  Too slow for CI (minutes); docs/reliability.md has its last result.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(t_sync_basic t_kill_sync t_bad_frames t_sync_concurrent)
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (scripts/install-deps.sh)" >&2; exit 1; }

echo "=== valgrind: build (Debug, no sanitizers) into build-valgrind"
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Debug -DPS_SANITIZE=OFF >/dev/null
cmake --build build-valgrind -j"$(nproc)" >/dev/null
b=$root/build-valgrind

work=$(mktemp -d "${TMPDIR:-/tmp}/popsync-valgrind.XXXXXX")
logs=$work/logs
mkdir -p "$logs" "$work/tmp" "$work/bin"
for prog in popsyncd popsync; do
    cat >"$work/bin/$prog" <<WRAP
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \\
    --errors-for-leak-kinds=definite,indirect --track-origins=yes --error-exitcode=1 \\
    --log-file="$logs/$prog.%p.log" "$b/$prog" "\$@"
WRAP
    chmod +x "$work/bin/$prog"
done

failed=0
start=$(date +%s)
for t in "${tests[@]}"; do
    t=${t%.sh}
    s=$(date +%s)
    if TMPDIR="$work/tmp" PS_TEST_SRC="$root" POPSYNCD="$work/bin/popsyncd" POPSYNC="$work/bin/popsync" \
        PS_TESTCLIENT="$b/tests/ps_testclient" PS_SIMSYNC="$b/tests/ps_simsync" PS_LMDBPOKE="$b/tests/ps_lmdbpoke" \
        PS_FAULTPROXY="$b/tests/ps_faultproxy" \
        bash "tests/integration/$t.sh" >"$work/$t.out" 2>&1; then
        echo "test $t: passed ($(( $(date +%s) - s )) s)"
    else
        echo "test $t: FAILED ($(( $(date +%s) - s )) s); last lines:"
        tail -n 15 "$work/$t.out" | sed 's/^/    /'
        failed=1
    fi
done

# Every log with a summary: errors and leaks.
runs=0
unfinished=0
bad=()
for f in "$logs"/*.log; do
    [ -e "$f" ] || continue
    runs=$((runs + 1))
    if ! grep -q "ERROR SUMMARY:" "$f"; then
        unfinished=$((unfinished + 1)) # killed by the test (SIGKILL): no summary
        continue
    fi
    if ! grep -q "ERROR SUMMARY: 0 errors" "$f" || grep -qE "(definitely|indirectly) lost: [1-9]" "$f"; then
        bad+=("$f")
    fi
done
echo "=== valgrind: ${#tests[@]} tests in $(( $(date +%s) - start )) s; $runs processes under memcheck," \
    "$((runs - unfinished)) with a summary ($unfinished killed by their test), ${#bad[@]} with errors or leaks"
if [ ${#bad[@]} -gt 0 ]; then
    for f in "${bad[@]}"; do
        echo "--- $f" >&2
        grep -E "Invalid|uninitialised|definitely lost|indirectly lost|ERROR SUMMARY|at 0x|by 0x" "$f" | head -40 >&2
    done
    failed=1
fi
if [ $failed -ne 0 ]; then
    echo "=== valgrind: FAILED (logs kept in $logs)" >&2
    exit 1
fi
rm -rf "$work"
echo "=== valgrind: no invalid access, no uninitialised use, no leak"

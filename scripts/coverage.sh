#!/usr/bin/env bash
# Line coverage of server/ and client/ (and common/ for reference) by the
# whole test suite: builds build-coverage/ with gcc --coverage, runs ctest
# in it, and sums gcov's per-file line counts.  Needs only gcov, which
# comes with gcc (build-essential).  Not run in CI: about as long as ctest.
# usage: scripts/coverage.sh [ctest args, e.g. -R unit\.]
# Prints one line per source file (least covered first) and a total per
# directory; docs/reliability.md states the last figures.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-coverage
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="--coverage -O0" >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null
find "$dir" -name '*.gcda' -delete
(cd "$dir" && ctest -j2 "$@" >ctest.log 2>&1) || echo "coverage: some tests failed (see $dir/ctest.log); figures below are still what ran"
tail -n 3 "$dir/ctest.log" | head -n 1
# gcov -n prints "File '...'" then "Lines executed:P% of N" for each source;
# keep the .c files of server/, client/ and common/, once each.
find "$dir/CMakeFiles" -name '*.gcda' | while read -r f; do
    (cd "$(dirname "$f")" && gcov -n "$(basename "$f")" 2>/dev/null)
done | awk -v root="$PWD/" '
    /^File / { f = $2; gsub(/\x27/, "", f); sub(root, "", f); next }
    /^Lines executed:/ && f ~ /^(server|client|common)\/[^\/]*\.c$/ && !(f in seen) {
        split($2, a, ":"); p = a[2]; sub(/%/, "", p); n = $4
        seen[f] = 1; hit = int(p * n / 100 + 0.5)
        d = f; sub(/\/.*/, "", d); dh[d] += hit; dn[d] += n
        printf "%6.1f%% %6d  %s\n", p, n, f
        f = ""
    }
    END {
        for (d in dn) printf "TOTAL %-7s %5.1f%% of %d lines\n", d, 100 * dh[d] / dn[d], dn[d] > "/dev/stderr"
        sh = dh["server"] + dh["client"]; sn = dn["server"] + dn["client"]
        if (sn) printf "TOTAL server+client %5.1f%% of %d lines\n", 100 * sh / sn, sn > "/dev/stderr"
    }' | sort -n

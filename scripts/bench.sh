#!/usr/bin/env bash
# Builds popsync in Release and runs the benchmarks of docs/performance.md:
# popsync-ceilings (this machine's limits) and popsync-bench (a real popsyncd
# and real clients on loopback), saving both outputs in
# bench/results/<date>.txt.
#
# usage: scripts/bench.sh [--quick] [--no-build] [--build-dir DIR] [popsync-bench args...]
#   --quick          both programs in smoke-test size (seconds, rough figures)
#   --no-build       use the binaries already in the build directory
#   --build-dir DIR  where to build (default build-bench/; scripts/build.sh
#                    makes RelWithDebInfo in build/, which is kept apart)
#   anything else goes to popsync-bench, e.g. --persons 200000 --idle 300;
#   the defaults are 1,000,000 persons, 8 townships, 1,000 idle clients.
# The stores go under $TMPDIR (default /tmp) and are removed afterwards; the
# full size needs about 5 GB there.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
build=1
dir=build-bench
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=(--quick); args+=(--quick) ;;
    --no-build) build=0 ;;
    --build-dir) dir="$2"; shift ;;
    *) args+=("$1") ;;
    esac
    shift
done

if [ "$build" = 1 ]; then
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$dir" -j"$(nproc)" --target popsyncd popsync-bench popsync-ceilings
fi

tmp="${TMPDIR:-/tmp}"
mkdir -p "$tmp"
export TMPDIR="$tmp"

# Every idle client is a descriptor in popsyncd and one in popsync-bench;
# both raise their soft limit to the hard one.  Ask for no more than fits.
idle=1000
[ ${#quick[@]} -gt 0 ] && idle=20
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = "--idle" ] && idle="${args[$((i + 1))]}"
done
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$idle" -gt $((hard - 200)) ]; then
    fit=$((hard - 200))
    echo "bench.sh: $idle idle clients need more descriptors than the hard limit ($hard) allows; using --idle $fit" >&2
    args+=(--idle "$fit")
fi
if [ ${#quick[@]} -eq 0 ]; then
    avail=$(df -Pk "$tmp" | awk 'NR == 2 {print $4}')
    if [ "${avail:-0}" -lt $((6 * 1024 * 1024)) ]; then
        echo "bench.sh: warning: only $((avail / 1024)) MB free in $tmp; the full run needs about 5 GB" >&2
    fi
fi

mkdir -p bench/results
out="bench/results/$(date +%Y-%m-%d).txt"
[ -e "$out" ] && out="bench/results/$(date +%Y-%m-%d-%H%M%S).txt"

{
    echo "# popsync benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)'), Release build in $dir"
    echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores, $(free -m | awk '/^Mem:/ {print $2}') MB RAM, kernel $(uname -r)"
    echo "# load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# popsync-bench ${args[*]:-}"
    echo
    echo "## popsync-ceilings ${quick[*]:-}"
    "$dir/bench/popsync-ceilings" "${quick[@]}"
    echo
    echo "## popsync-bench ${args[*]:-}"
    "$dir/bench/popsync-bench" "${args[@]}" 2>&1
    echo
    echo "# load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
echo "bench.sh: saved in $out" >&2

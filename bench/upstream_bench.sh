#!/usr/bin/env bash
# upstream_bench.sh - the upward stream's speed (issue 19 point 6): a
# district store with a backlog of N persons' records (households, births,
# migrations, benefits, visits with them) made while popsyncd had no
# upstream, then popsyncd started with [upstream] against a real 3-node
# JetStream cluster (R3, file storage) on loopback: the time until the whole
# backlog is acknowledged (catch-up) and so the records/s published.  Then a
# second batch synced while publishing is live: time from the end of the
# sync to lag 0.  Figures go to docs/performance.md; no test asserts them.
# usage: bench/upstream_bench.sh [--persons N] [--in-flight K] [BUILD_DIR]
set -euo pipefail
persons=30000 inflight=1000 build=
while [ $# -gt 0 ]; do
    case $1 in
    --persons) persons=$2; shift 2 ;;
    --in-flight) inflight=$2; shift 2 ;;
    *) build=$1; shift ;;
    esac
done
src=$(cd "$(dirname "$0")/.." && pwd)
build=${build:-$src/build}
export POPSYNCD=$build/popsyncd POPSYNC=$build/popsync PS_NATSTOOL=$build/tests/ps_natstool
export TMPDIR=${TMPDIR:-$build/test-tmp}
mkdir -p "$TMPDIR"
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/lib_nats.sh"
set +e +u

now() { date +%s.%N; }
lag() { "$POPSYNCD" status --data "$T/server" | sed -n 's/^upstream lag: *\([0-9]*\).*/\1/p'; }
head_seq() { "$POPSYNCD" status --data "$T/server" | sed -n 's/^feed head: *\([0-9]*\).*/\1/p'; }
wait_zero() {
    local i
    for i in $(seq 1 36000); do [ "$(lag)" = 0 ] && return 0; sleep 0.1; done
    echo "did not catch up" >&2; exit 1
}

make_pki
start_server
client t1 town1
client t2 town2
t0=$(now)
ps --data "$T/t1" generate --persons "$persons" --seed 7 >/dev/null 2>&1
ps --data "$T/t1" sync >/dev/null
N=$(head_seq)
echo "backlog: $N feed entries ($persons persons) loaded in $(echo "$(now) - $t0" | bc) s; store $(du -sh "$T/server" | cut -f1)"
stop_server

nats_cluster_start "$T/nats"
cat >"$T/up.conf" <<EOT
[upstream]
urls = $NATS_URLS
district = $DISTRICT
max_in_flight = $inflight
EOT
t0=$(now)
start_server --config "$T/up.conf" --listen "127.0.0.1:$PORT"
wait_zero
dt=$(echo "$(now) - $t0" | bc)
echo "catch-up of $N entries (R3, $inflight in flight): $dt s = $(echo "$N / $dt" | bc) records/s"

ps --data "$T/t2" generate --persons $((persons / 10)) --seed 8 >/dev/null 2>&1
h0=$(head_seq)
ps --data "$T/t2" sync >/dev/null
t0=$(now)
wait_zero
dt=$(echo "$(now) - $t0" | bc)
echo "live: $(( $(head_seq) - h0 )) entries synced, lag 0 ${dt} s after the sync ended"
"$PS_NATSTOOL" "$NATS_URLS" info
du -sh "$T/nats/n1" | sed 's/^/JetStream store of one node: /'

#!/usr/bin/env bash
# bench_warehouse.sh - the province tier's two figures (docs/performance.md
# §"Province warehouse"): records/s from three districts into PostgreSQL
# through a 3-node JetStream cluster (R3), and the catch-up time of a backlog.
#
#   bench/bench_warehouse.sh [BUILD_DIR] [LIVE_RECORDS] [BACKLOG_RECORDS]
#
# Real nats-server and PostgreSQL 15 processes on loopback (the test
# libraries tests/integration/lib_nats.sh and lib_pg.sh, PostgreSQL with
# fsync on); the records are published by ps_jspub in the stream's format
# (docs/upstream.md), a third each from three districts, synthetic (60 %
# persons, 10 % births, 10 % migrations, 20 % service visits).
#  1. live: popsync-warehouse runs while the three districts publish
#     LIVE_RECORDS; the figure is records / (first publish -> all applied).
#  2. backlog: BACKLOG_RECORDS published with the warehouse stopped, then
#     `popsync-warehouse run --drain` timed from start to caught up.
# Prints one JSON line per phase.  Asserts nothing about speed.
set -eu
BUILD=${1:-build}
LIVE=${2:-60000}
BACKLOG=${3:-1000000}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
export POPSYNCD=$BUILD/popsyncd POPSYNC=$BUILD/popsync PS_WAREHOUSE=$BUILD/popsync-warehouse
export PS_JSPUB=$BUILD/tests/ps_jspub PG_FSYNC=on
export TMPDIR=${TMPDIR:-$BUILD/test-tmp}
mkdir -p "$TMPDIR"
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/lib_nats.sh"
. "$SRC/tests/integration/lib_pg.sh"

D1=110105000000 D2=110106000000 D3=110107000000
now() { date +%s.%N; }
rows() { psql_q "SELECT (SELECT count(*) FROM person) + (SELECT count(*) FROM birth) + (SELECT count(*) FROM migration) + (SELECT count(*) FROM service_visit)"; }
publish3() { # N START_SEQ: N records, a third from each district, in parallel
    local n=$(($1 / 3)) pids=() d
    for d in $D1 $D2 $D3; do
        "$PS_JSPUB" --nats "$NATS_URLS" --generate "$n" --districts "$d" --start-seq "$2" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail "ps_jspub failed"; done
}

nats_cluster_start "$T/nats"
pg_start "$T/pg"
"$PS_JSPUB" --nats "$NATS_URLS" --create-stream --replicas 3
"$PS_WAREHOUSE" init --pg "$PG_DSN"

# 1. Live: the warehouse consumes while the districts publish.
"$PS_WAREHOUSE" run --pg "$PG_DSN" --nats "$NATS_URLS" >"$T/wh-live.log" 2>&1 &
WH=$!
t0=$(now)
publish3 "$LIVE" 1
t_pub=$(now)
want=$(( (LIVE / 3) * 3 ))
for _ in $(seq 1 3600); do
    [ "$(rows)" -ge "$want" ] && break
    sleep 0.5
done
t1=$(now)
kill -TERM "$WH"; wait "$WH" || true
[ "$(rows)" -ge "$want" ] || fail "live: not all records arrived"
python3 -c "import sys; n,a,p,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); print('{\"phase\":\"live\",\"records\":%d,\"publish_s\":%.1f,\"end_to_end_s\":%.1f,\"records_per_s\":%.0f}' % (n,p-a,b-a,n/(b-a)))" "$want" "$t0" "$t_pub" "$t1"

# 2. Backlog: published while the warehouse is stopped, then caught up.
before=$(rows)
t0=$(now)
publish3 "$BACKLOG" 1000000
t_pub=$(now)
stream_bytes=$(python3 -c 'import json,sys,urllib.request
try:
    d=json.load(urllib.request.urlopen(sys.argv[1] + "/jsz", timeout=5)); print(d.get("bytes", 0))
except Exception: print(0)' "$NATS_MON1")
t1=$(now)
"$PS_WAREHOUSE" run --pg "$PG_DSN" --nats "$NATS_URLS" --drain >"$T/wh-backlog.log" 2>&1 || fail "drain failed"
t2=$(now)
n=$(( $(rows) - before ))
db=$(psql_q "SELECT pg_database_size('warehouse')")
python3 -c "import sys; n,a,p,b,c=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]),float(sys.argv[5]); print('{\"phase\":\"backlog\",\"records\":%d,\"publish_s\":%.1f,\"catch_up_s\":%.1f,\"records_per_s\":%.0f,\"stream_bytes\":%s,\"pg_database_bytes\":%s}' % (n,p-a,c-b,n/(c-b),sys.argv[6],sys.argv[7]))" "$n" "$t0" "$t_pub" "$t1" "$t2" "$stream_bytes" "$db"
# 3. The province report: it reads the counters only, whatever the number of records.
t0=$(now)
"$PS_WAREHOUSE" report monthly --pg "$PG_DSN" --month 2026-10 >/dev/null || fail "report"
t1=$(now)
python3 -c "import sys; print('{\"phase\":\"report\",\"records\":%s,\"report_ms\":%.0f}' % (sys.argv[1], (float(sys.argv[3]) - float(sys.argv[2])) * 1000))" "$(rows)" "$t0" "$t1"
"$PS_WAREHOUSE" verify --pg "$PG_DSN"

#!/usr/bin/env bash
# The province tier end to end (issue 19 point 5, warehouse half): three
# district popsyncds with township caches publish their feeds to a real
# 3-node JetStream cluster; popsync-warehouse consumes the stream into a real
# PostgreSQL 15.  Checks:
#  - every record reaches PostgreSQL exactly once: live records per kind and
#    district equal the district administrator's;
#  - the province report equals the district reports, district by district
#    (every indicator), and its total their sum;
#  - an edit and a delete made in a township reach PostgreSQL;
#  - an old version of a record published again later changes nothing;
#  - popsync-warehouse killed with SIGKILL mid-batch while catching up a
#    backlog loses and doubles nothing (counts, report, verify).
# Every wait is bounded.
. "$(dirname "$0")/lib.sh"
[ -n "${PS_WAREHOUSE:-}" ] && [ -x "$PS_WAREHOUSE" ] || { echo "SKIP: popsync-warehouse not built (libpq/libnats)"; exit 77; }
. "$(dirname "$0")/lib_nats.sh"
. "$(dirname "$0")/lib_pg.sh"

WH_PID=""
DPIDS=()
wh_stop() {
    [ -n "$WH_PID" ] || return 0
    kill -TERM "$WH_PID" 2>/dev/null || true
    wait "$WH_PID" 2>/dev/null || true
    WH_PID=""
}
t_exit() {
    local rc=$? p
    wh_stop
    for p in "${DPIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [ $rc -eq 0 ] || tail -n 20 "$T/warehouse.log" >&2 2>/dev/null || true
    set +e
    (exit $rc)
    pg_exit
}
trap t_exit EXIT

DISTRICTS=(110105000000 110106000000 110107000000)
MONTH=$(date -u +%Y-%m)

# district I CODE: PKI, org-unit tree, popsyncd publishing upstream, caches
# of an administrator and two townships in $T/dI.
district() {
    local i=$1 code=$2 d=$T/d$1 p6=${2:0:6} who
    mkdir -p "$d"
    ps pki init-ca --dir "$d/pki" >/dev/null
    ps pki issue --dir "$d/pki" --role server --orgunit "$code" --name popsyncd >/dev/null
    ps pki issue --dir "$d/pki" --role admin --orgunit "$code" --name admin >/dev/null
    ps pki issue --dir "$d/pki" --role township --orgunit "${p6}001000" --name town1 >/dev/null
    ps pki issue --dir "$d/pki" --role township --orgunit "${p6}002000" --name town2 >/dev/null
    cat >"$d/units.csv" <<EOF
code,parent,name,kind
$code,,District $i,district
${p6}001000,$code,Town $i-1,subdistrict
${p6}001001,${p6}001000,Community $i-1-1,community
${p6}002000,$code,Town $i-2,town
${p6}002201,${p6}002000,Village $i-2-1,village
EOF
    printf '[upstream]\nurls = %s\ndistrict = %s\nmax_in_flight = 64\n' "$NATS_URLS" "$code" >"$d/up.conf"
    "$POPSYNCD" --listen 127.0.0.1:0 --port-file "$d/port" --data "$d/server" --allow-synthetic \
        --ca "$d/pki/ca.crt" --cert "$d/pki/popsyncd.crt" --key "$d/pki/popsyncd.key" \
        --orgunits "$d/units.csv" --config "$d/up.conf" >>"$T/d$i.log" 2>&1 &
    DPIDS+=($!)
    for _ in $(seq 1 200); do [ -s "$d/port" ] && break; sleep 0.05; done
    [ -s "$d/port" ] || fail "district $i's popsyncd did not start"
    for who in admin town1 town2; do
        ps --data "$d/$who" init --server "127.0.0.1:$(cat "$d/port")" --ca "$d/pki/ca.crt" \
            --cert "$d/pki/$who.crt" --key "$d/pki/$who.key" >/dev/null
    done
}

# fill I PERSONS SEED: each township of district I generates and syncs.
fill() {
    local d=$T/d$1 t s=$3
    for t in town1 town2; do
        s=$((s + 1))
        ps --data "$d/$t" generate --persons "$2" --seed "$s" --orgunits "$d/units.csv" >/dev/null ||
            fail "generate in district $1 $t"
        ps --data "$d/$t" sync >/dev/null || fail "sync of district $1 $t"
    done
}

# district_counts: "district kind count" lines from each administrator's cache.
district_counts() {
    local i code k
    for i in 1 2 3; do
        code=${DISTRICTS[$((i - 1))]}
        ps --data "$T/d$i/admin" sync >/dev/null || fail "admin sync of district $i"
        for k in person household birth migration benefit service_visit; do
            echo "$code $k $(ps --data "$T/d$i/admin" list --kind $k --format json |
                python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
        done
    done
}

pg_counts() {
    local k
    for k in person household birth migration benefit service_visit; do
        psql_q "SELECT district || ' $k ' || count(*) FROM ${k}_live GROUP BY district"
    done | sort
}

# wait_equal WHAT SECONDS: PostgreSQL's live counts reach the districts'.
wait_equal() {
    local want got
    want=$(district_counts | grep -v ' 0$' | sort)
    for _ in $(seq 1 $(($2 * 2))); do
        got=$(pg_counts)
        [ "$got" = "$want" ] && return 0
        sleep 0.5
    done
    diff <(echo "$want") <(echo "$got") >&2 || true
    fail "$1: PostgreSQL's counts did not reach the districts' within $2 s"
}

wh_start() {
    "$PS_WAREHOUSE" run --pg "$PG_DSN" --nats "$NATS_URLS" --ack-wait 3 "$@" >>"$T/warehouse.log" 2>&1 &
    WH_PID=$!
}

# check_reports: each district's report total equals its row of the
# province report, every indicator; the province total is their sum.
check_reports() {
    local i
    "$PS_WAREHOUSE" report monthly --pg "$PG_DSN" --month "$MONTH" --format json >"$T/prov.json" ||
        fail "province report"
    for i in 1 2 3; do
        ps --data "$T/d$i/admin" report monthly --month "$MONTH" --format json >"$T/dist$i.json" ||
            fail "district $i's report"
    done
    python3 - "$T/prov.json" "$T"/dist1.json "$T"/dist2.json "$T"/dist3.json ${DISTRICTS[*]} <<'EOF' || fail "$1: reports differ"
import json, sys
prov = json.load(open(sys.argv[1]))
rows = {r["orgunit"]: r for r in prov["rows"]}
skip = {"orgunit", "name", "close_state", "corrections"}
codes = sys.argv[5:8]
keys = [k for k in rows[""] if k not in skip and not k.endswith("_pct") and k != "sex_ratio_at_birth"]
total = {k: 0 for k in keys}
for path, code in zip(sys.argv[2:5], codes):
    d = json.load(open(path))
    t = [r for r in d["rows"] if r["orgunit"] == ""][0]
    for k in keys:
        dv, pv = t.get(k), rows[code].get(k)
        if str(dv) != str(pv):
            sys.exit("district %s %s: district says %s, province %s" % (code, k, dv, pv))
        if k != "benefits_paid_yuan":
            total[k] += int(dv)
for k in keys:
    if k != "benefits_paid_yuan" and int(rows[""][k]) != total[k]:
        sys.exit("province total %s: %s, the districts sum to %s" % (k, rows[""][k], total[k]))
if int(rows[""]["persons_total"]) == 0:
    sys.exit("an empty report proves nothing")
EOF
}

nats_cluster_start "$T/nats"
pg_start "$T/pg"
for i in 1 2 3; do district "$i" "${DISTRICTS[$((i - 1))]}"; done
wh_start

# --- 1. every record once; the province report = the districts' -------------------
for i in 1 2 3; do fill "$i" 40 "$((i * 10))"; done
wait_equal "first load" 180
check_reports "first load"
"$PS_WAREHOUSE" verify --pg "$PG_DSN" >/dev/null || fail "counters differ from a recount"
pass "three districts: every record in PostgreSQL once; province report = district reports"

# --- 2. an edit and a delete reach PostgreSQL; an old version replayed changes nothing --
D1=${DISTRICTS[0]}
e=$(ps --data "$T/d1/town1" list --kind person --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
x=$(ps --data "$T/d1/town1" list --kind service_visit --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
old_hex=$(psql_q "SELECT encode(record, 'hex') FROM person WHERE id = '$e'")
[ -n "$old_hex" ] || fail "person $e not in PostgreSQL"
ps --data "$T/d1/town1" edit "$e" --set address=EditedAddress >/dev/null || fail "edit"
ps --data "$T/d1/town1" delete "$x" >/dev/null || fail "delete"
ps --data "$T/d1/town1" sync >/dev/null || fail "sync of the edit"
for _ in $(seq 1 120); do
    [ "$(psql_q "SELECT address FROM person WHERE id = '$e'")" = EditedAddress ] &&
        [ "$(psql_q "SELECT deleted FROM service_visit WHERE id = '$x'")" = t ] && break
    sleep 0.5
done
expect_eq "$(psql_q "SELECT address FROM person WHERE id = '$e'")" "EditedAddress" "the edit in PostgreSQL"
expect_eq "$(psql_q "SELECT deleted FROM service_visit WHERE id = '$x'")" "t" "the delete in PostgreSQL"
gen=$(psql_q "SELECT gen FROM person WHERE id = '$e'")
"$PS_JSPUB" --nats "$NATS_URLS" --district "$D1" --seq 900000000 --payload-hex "$old_hex" || fail "replay publish"
for _ in $(seq 1 120); do
    [ "$(psql_q "SELECT last_seq FROM wh_position WHERE district = '$D1'")" = 900000000 ] && break
    sleep 0.5
done
expect_eq "$(psql_q "SELECT last_seq FROM wh_position WHERE district = '$D1'")" "900000000" "the replay consumed"
expect_eq "$(psql_q "SELECT gen || ' ' || address FROM person WHERE id = '$e'")" "$gen EditedAddress" \
    "an old version replayed"
wait_equal "after the edit and the delete" 120
check_reports "after the edit and the delete"
pass "an edit and a delete reach PostgreSQL; an old version replayed changes nothing"

# --- 3. SIGKILL mid-batch while catching up a backlog ------------------------------------
wh_stop
for i in 1 2 3; do fill "$i" 60 "$((100 + i * 10))"; done
for i in 1 2 3; do
    for _ in $(seq 1 240); do
        "$POPSYNCD" status --data "$T/d$i/server" | grep -q "lag: *0 records" && break
        sleep 0.25
    done
done
base=$(psql_q "SELECT sum(messages) FROM wh_position")
POPSYNC_WH_TEST_PAUSE_MS=300 wh_start --batch 40
for _ in $(seq 1 200); do
    [ "$(psql_q "SELECT sum(messages) FROM wh_position")" -gt "$base" ] && break
    sleep 0.1
done
[ "$(psql_q "SELECT sum(messages) FROM wh_position")" -gt "$base" ] || fail "the warehouse did not get going"
sleep 0.15
kill -KILL "$WH_PID"
wait "$WH_PID" 2>/dev/null || true
WH_PID=""
at_kill=$(pg_counts)
wh_start
wait_equal "after SIGKILL mid-batch" 180
[ "$at_kill" != "$(pg_counts)" ] || fail "the kill came after the backlog was applied: it proves nothing"
check_reports "after SIGKILL mid-batch"
"$PS_WAREHOUSE" verify --pg "$PG_DSN" >/dev/null || fail "counters differ from a recount after the kill"
pass "popsync-warehouse killed mid-batch: nothing lost, nothing doubled"

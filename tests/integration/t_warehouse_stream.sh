#!/usr/bin/env bash
# The province warehouse against the agreed stream format (issue 19 point 3),
# with a real 3-node JetStream cluster and a real PostgreSQL 15, messages
# published by ps_jspub exactly as popsyncd publishes them:
#  - rows upserted by (district, id): an edit replaces, a tombstone marks the
#    row deleted, an old revision replayed later (a new message id) changes
#    nothing, a message that is not a record is kept in wh_rejected;
#  - counters equal a recount from the stored records (verify);
#  - the whole stream consumed again from the start changes nothing;
#  - popsync-warehouse killed with SIGKILL mid-batch (between its rows and
#    its COMMIT) loses and doubles nothing;
#  - quality lists an ID number in two districts and one twice in a district;
#  - report monthly by district, English and Chinese;
#  - a migration shared by two districts, published by both, is one row in
#    its owner district's partition (the other district's copy skipped).
. "$(dirname "$0")/lib.sh"
[ -n "${PS_WAREHOUSE:-}" ] && [ -x "$PS_WAREHOUSE" ] || { echo "SKIP: popsync-warehouse not built (libpq/libnats)"; exit 77; }
[ -f "$(dirname "$0")/lib_nats.sh" ] || { echo "SKIP: lib_nats.sh not here yet"; exit 77; }
. "$(dirname "$0")/lib_nats.sh"
. "$(dirname "$0")/lib_pg.sh"

WH_PID=""
wh_stop() {
    [ -n "$WH_PID" ] || return 0
    kill -TERM "$WH_PID" 2>/dev/null || true
    wait "$WH_PID" 2>/dev/null || true
    WH_PID=""
}
wh_exit() {
    local rc=$?
    wh_stop
    [ $rc -eq 0 ] || tail -n 20 "$T/warehouse.log" >&2 2>/dev/null || true
    set +e
    (exit $rc)
    pg_exit
}
trap wh_exit EXIT

wh() { "$PS_WAREHOUSE" "$@"; }
pub() { "$PS_JSPUB" --nats "$NATS_URLS" "$@"; }
# wh_drain [OPTIONS]: consumes until nothing is pending (at most 120 s).
wh_drain() {
    timeout 120 "$PS_WAREHOUSE" run --pg "$PG_DSN" --nats "$NATS_URLS" --drain --ack-wait 3 "$@" \
        >>"$T/warehouse.log" 2>&1 || fail "warehouse run --drain failed: $(tail -n 5 "$T/warehouse.log")"
}

A=110105000000
B=110106000000
P1=01900000-0000-7000-8000-000000000001
P2=01900000-0000-7000-8000-000000000002
P3=01900000-0000-7000-8000-000000000003
P4=01900000-0000-7000-8000-000000000004
P5=01900000-0000-7000-8000-000000000005
BI=01900000-0000-7000-8000-000000000006
ID1=110105199001011234
ID2=110105199202022345
H=$(( (1790000000000) << 16 ))

nats_cluster_start "$T/nats"
pg_start "$T/pg"
pub --create-stream --replicas 3

# District A: P1 created, then edited; P3 and P4 share an ID number; P5
# created then deleted; a birth.  District B: P2 with P1's ID number.
pub --district $A --seq 1 --kind person --id $P1 --gen 1 --hlc $((H + 1)) id_number=$ID1 name=Zhang sex=male birth_date=1990-01-01
pub --district $A --seq 2 --kind person --id $P1 --gen 2 --hlc $((H + 2)) id_number=$ID1 name=Zhang2 sex=male birth_date=1990-01-01
pub --district $A --seq 3 --kind person --id $P3 --gen 1 --hlc $((H + 3)) id_number=$ID2 name=Li sex=female birth_date=1992-02-02
pub --district $A --seq 4 --kind person --id $P4 --gen 1 --hlc $((H + 4)) id_number=$ID2 name=Li sex=female birth_date=1992-02-02
pub --district $A --seq 5 --kind person --id $P5 --gen 1 --hlc $((H + 5)) id_number=110105198001015678 name=Wang sex=male birth_date=1980-01-01
pub --district $A --seq 6 --kind person --id $P5 --gen 2 --hlc $((H + 6)) --deleted id_number=110105198001015678 name=Wang sex=male birth_date=1980-01-01
pub --district $A --seq 7 --kind birth --id $BI --gen 1 --hlc $((H + 7)) mother_id=$P3 child_sex=female birth_date=2026-10-03 birth_order=1
pub --district $B --seq 1 --kind person --id $P2 --gen 1 --hlc $((H + 8)) --orgunit 110106001000 id_number=$ID1 name=Zhang sex=male birth_date=1990-01-01
# An old version of P1 published again later under a new message id.
pub --district $A --seq 8 --kind person --id $P1 --gen 1 --hlc $((H + 1)) id_number=$ID1 name=Zhang sex=male birth_date=1990-01-01
# Not a record at all.
pub --district $A --seq 9 --raw "not a protobuf record"
# The district's node marks (for its own rebuild): not the warehouse's.
pub --district $A --seq 10 --subject-kind _nodes --raw "node marks"

wh_drain
expect_eq "$(psql_q "SELECT gen || ' ' || name FROM person WHERE id = '$P1'")" "2 Zhang2" "P1 keeps its newest revision"
expect_eq "$(psql_q "SELECT deleted FROM person WHERE id = '$P5'")" "t" "P5's tombstone applied"
expect_eq "$(psql_q "SELECT count(*) FROM person_live")" "4" "live persons"
expect_eq "$(psql_q "SELECT district || ' ' || count(*) FROM person_live GROUP BY district ORDER BY 1" | tr '\n' ' ')" \
    "110105000000 3 110106000000 1 " "persons per district"
expect_eq "$(psql_q "SELECT count(*) FROM birth_d$A")" "1" "the birth in district A's partition"
expect_eq "$(psql_q "SELECT child_sex || ' ' || birth_date FROM birth")" "female 2026-10-03" "birth columns typed"
expect_eq "$(psql_q "SELECT count(*) FROM wh_rejected")" "1" "the malformed message kept aside"
expect_eq "$(psql_q "SELECT last_seq FROM wh_position WHERE district = '$A'")" "9" "district A's position"
grep -q "1 rejected, 1 node marks or exits" "$T/warehouse.log" || fail "node marks not told apart"
expect_eq "$(psql_q "SELECT value FROM wh_counter WHERE district = '$A' AND month = 0 AND metric = 'persons_total'")" \
    "3" "persons_total of A after an edit, a delete and a stale replay"
wh verify --pg "$PG_DSN" >/dev/null || fail "counters differ from a recount"
pass "edits, tombstones, stale replay, rejected message, counters"

# The same stream consumed again from the start by a new consumer (what a
# replay after a crash does at worst): nothing changes.
before=$(psql_q "SELECT md5(string_agg(district||id||gen||hlc||deleted, ',' ORDER BY district, id)) FROM person")
cbefore=$(psql_q "SELECT md5(string_agg(district||month||unit||metric||value, ',' ORDER BY 1)) FROM wh_counter")
psql_q "DELETE FROM wh_stream" >/dev/null
wh_drain --durable replay-all
expect_eq "$(psql_q "SELECT md5(string_agg(district||id||gen||hlc||deleted, ',' ORDER BY district, id)) FROM person")" \
    "$before" "rows after a full replay"
expect_eq "$(psql_q "SELECT md5(string_agg(district||month||unit||metric||value, ',' ORDER BY 1)) FROM wh_counter")" \
    "$cbefore" "counters after a full replay"
pass "a full replay changes nothing"

# Quality: ID1 in two districts, ID2 twice in district A.
wh quality --pg "$PG_DSN" >"$T/q.txt" || fail "quality"
grep -q "1 in two or more districts, 1 more than once within one district" "$T/q.txt" || { cat "$T/q.txt"; fail "quality counts"; }
grep -q "110105\*\*\*\*\*\*\*\*1234 .* 110105000000 110106000000" "$T/q.txt" || { cat "$T/q.txt"; fail "quality row across districts"; }
grep -q "$ID1" "$T/q.txt" && fail "quality printed an ID number unmasked"
wh quality --pg "$PG_DSN" --format json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["across_districts"] == 1 and d["within_one_district"] == 1, d
' || fail "quality json"
wh quality --pg "$PG_DSN" --lang zh | grep -q "身份证号重复登记" || fail "quality in Chinese"
pass "quality: ID numbers across and within districts"

# Report: a row per district and the total.
wh report monthly --pg "$PG_DSN" --month 2026-10 --format json >"$T/r.json" || fail "report"
python3 - "$T/r.json" <<'EOF' || fail "report monthly json"
import json, sys
d = json.load(open(sys.argv[1]))
rows = {r["orgunit"]: r for r in d["rows"]}
assert set(rows) == {"110105000000", "110106000000", ""}, rows.keys()
assert rows["110105000000"]["persons_total"] == 3 and rows["110106000000"]["persons_total"] == 1, rows
assert rows[""]["persons_total"] == 4 and rows[""]["births_female"] == 1, rows[""]
EOF
wh report monthly --pg "$PG_DSN" --month 2026-10 --lang zh | grep -q "统计月报 2026-10" || fail "report in Chinese"
wh report monthly --pg "$PG_DSN" --month 2026-10 | grep -q "Monthly report 2026-10" || fail "report table"
wh report monthly --pg "$PG_DSN" --month 2026-13 2>/dev/null && fail "a bad month accepted"
# District names from the province's org-unit file (the districts below a root).
cat >"$T/province.csv" <<'EOF'
code,parent,name,kind
110000000000,,Province,district
110105000000,110000000000,朝阳区,district
110106000000,110000000000,丰台区,district
EOF
wh report monthly --pg "$PG_DSN" --month 2026-10 --lang zh --orgunits "$T/province.csv" >"$T/r.txt" ||
    fail "report with --orgunits"
grep -q "110105000000 *朝阳区" "$T/r.txt" && grep -q "110106000000 *丰台区" "$T/r.txt" && grep -q "合计" "$T/r.txt" ||
    { cat "$T/r.txt"; fail "district names and the total row"; }
pass "report monthly by district"

# SIGKILL mid-batch: 3,000 records, batches of 100, each paused before its
# COMMIT; the warehouse is killed during a pause, then run to the end.
pub --generate 3000 --districts $A,$B --start-seq 100 --sync
POPSYNC_WH_TEST_PAUSE_MS=400 "$PS_WAREHOUSE" run --pg "$PG_DSN" --nats "$NATS_URLS" --batch 100 --ack-wait 3 \
    >>"$T/warehouse.log" 2>&1 &
WH_PID=$!
for _ in $(seq 1 150); do
    n=$(psql_q "SELECT coalesce(sum(messages), 0) FROM wh_position")
    [ "$n" -ge 300 ] && break
    sleep 0.2
done
[ "$n" -ge 300 ] || fail "the warehouse did not get going"
sleep 0.2
kill -KILL "$WH_PID"
wait "$WH_PID" 2>/dev/null || true
WH_PID=""
killed_at=$(psql_q "SELECT sum(messages) FROM wh_position")
[ "$killed_at" -lt 3000 ] || fail "killed too late to be mid-stream"
wh_drain
expect_eq "$(psql_q "SELECT count(*) FROM person_live")" "$((4 + 1800))" "persons after the kill"
expect_eq "$(psql_q "SELECT count(*) FROM service_visit")" "600" "visits after the kill"
expect_eq "$(psql_q "SELECT count(*) FROM birth")" "$((1 + 300))" "births after the kill"
expect_eq "$(psql_q "SELECT value FROM wh_counter WHERE district = '$A' AND month = 0 AND metric = 'persons_total'")" \
    "$((3 + 900))" "persons_total of A after the kill"
wh verify --pg "$PG_DSN" >/dev/null || fail "counters differ from a recount after the kill"
pass "SIGKILL mid-batch (at $killed_at rows): nothing lost, nothing doubled"

wh status --pg "$PG_DSN" | grep -q "^$B " || fail "status"
pass "status"

# A migration shared by two districts (docs/upstream.md §7): its owner A
# publishes it, and B, the district of its other place, republishes the
# copy it holds (the same record, A's unit).  The warehouse keeps A's
# only: one row, in A's partition.
MG=01900000-0000-7000-8000-0000000000a1
for d in $A $B; do
    pub --district $d --seq 20000 --kind migration --id $MG --gen 1 --hlc $((H + 60)) --orgunit 110105001000 \
        person_id=$P1 direction=outflow other_place_code=110106001000 start_date=2026-10-05
done
wh_drain
expect_eq "$(psql_q "SELECT district || ' ' || count(*) FROM migration WHERE id = '$MG' GROUP BY district")" \
    "$A 1" "rows of the shared case (B's republished copy skipped)"
wh verify --pg "$PG_DSN" >/dev/null || fail "counters differ from a recount after the shared case"
pass "a shared migration case counts once, in its owner district"

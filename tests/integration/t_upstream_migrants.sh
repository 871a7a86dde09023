# upstream migrants (issue 19 point 2): two district popsyncds, A (朝阳区)
# and B (海淀区), publish to and consume from a real 3-node NATS JetStream
# cluster on loopback.  A migration registered in A whose other place is a
# township of B reaches B's township as a same-district case does (the
# migrant summary, the submission and feedback dates, the deadlines); B's
# feedback comes back to A's record; nothing echoes back and forth; the
# case counts in A's report only; edits made in both districts while NATS
# is down merge field by field into one revision in both; B's popsyncd
# killed with SIGKILL mid-consume loses and doubles nothing; every foreign
# write has its audit entry and both audit chains verify; B rebuilt from
# the stream equals B, the foreign cases and what `foreign` keeps included.
# B and a third district C read only the copies addressed to them
# (`migrants = addressed`), A every district's migrations (the previous
# way, as during an upgrade): C's consumer (created by the province)
# receives nothing of A's cases for B, while B gets them all.
. "$(dirname "$0")/lib4.sh"
. "$(dirname "$0")/lib_nats.sh"
: "${PS_NATSTOOL:?PS_NATSTOOL must point at ps_natstool}"
command -v mdb_dump >/dev/null || { echo "SKIP: mdb_dump (lmdb-utils) missing"; exit 77; }

DA=110105000000
DB=110108000000
DC=110106000000
TB1=110108001000
make_pki
ps pki issue --dir "$T/pki" --role server --orgunit $DC --name popsyncdC >/dev/null
ps pki issue --dir "$T/pki" --role server --orgunit $DB --name popsyncdB >/dev/null
ps pki issue --dir "$T/pki" --role township --orgunit $TB1 --name tb1 >/dev/null
ps pki issue --dir "$T/pki" --role admin --orgunit $DB --name adminB >/dev/null
UNITSA="$T/unitsA.csv"
UNITSB="$T/unitsB.csv"
cat >"$UNITSA" <<'EOF'
code,parent,name,kind
110105000000,,朝阳区,district
110105001000,110105000000,建外街道,subdistrict
110105002000,110105000000,朝外街道,subdistrict
110105003000,110105000000,东坝镇,town
EOF
cat >"$UNITSB" <<'EOF'
code,parent,name,kind
110108000000,,海淀区,district
110108001000,110108000000,万寿路街道,subdistrict
110108002000,110108000000,永定路街道,subdistrict
EOF
{
    echo "code,parent,name,kind"
    echo "110000000000,,北京市,district"
    sed 1d "$UNITSA" | sed 's/^110105000000,,/110105000000,110000000000,/'
    sed 1d "$UNITSB" | sed 's/^110108000000,,/110108000000,110000000000,/'
} >"$T/province.csv"

nats_cluster_start "$T/nats"
for d in A B C; do
    code=$([ $d = A ] && echo $DA || { [ $d = B ] && echo $DB || echo $DC; })
    cat >"$T/$d.conf" <<EOF
[upstream]
urls = $NATS_URLS
district = $code
max_in_flight = 64
province_orgunits = $T/province.csv
EOF
    [ $d = A ] || echo "migrants = addressed" >>"$T/$d.conf"
done
# C as a locked-down district would run: its replies under its own inbox prefix.
echo "inbox_prefix = _INBOX_$DC" >>"$T/C.conf"
printf 'code,parent,name,kind\n110106000000,,丰台区,district\n110106001000,110106000000,右安门街道,subdistrict\n' \
    >"$T/unitsC.csv"
"$POPSYNCD" --check-config --config "$T/A.conf" --data "$T/server" --listen 127.0.0.1:0 --ca "$T/pki/ca.crt" \
    --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" >/dev/null || fail "A's config does not check"

B_PID=""
PORTB=""
# start_b [popsyncd options]: district B's popsyncd (data $T/serverB).
start_b() {
    rm -f "$T/portB"
    "$POPSYNCD" --listen "127.0.0.1:${PORTB:-0}" --port-file "$T/portB" --data "$T/serverB" --allow-synthetic \
        --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncdB.crt" --key "$T/pki/popsyncdB.key" --orgunits "$UNITSB" \
        --config "$T/B.conf" "$@" >>"$T/serverB.log" 2>&1 &
    B_PID=$!
    for _ in $(seq 1 200); do
        [ -s "$T/portB" ] && break
        kill -0 "$B_PID" 2>/dev/null || fail "B's popsyncd exited at start"
        sleep 0.05
    done
    [ -s "$T/portB" ] || fail "B's popsyncd did not start listening"
    PORTB=$(cat "$T/portB")
}
stop_b() {
    [ -n "$B_PID" ] || return 0
    kill -TERM "$B_PID" 2>/dev/null || true
    wait "$B_PID" 2>/dev/null || true
    B_PID=""
}
# District C: reads only what is addressed to it; its metrics say what it received.
C_PID=""
CMPORT=$(nats_free_ports 1)
start_c() {
    "$POPSYNCD" --listen 127.0.0.1:0 --port-file "$T/portC" --data "$T/serverC" --allow-synthetic \
        --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncdC.crt" --key "$T/pki/popsyncdC.key" --orgunits "$T/unitsC.csv" \
        --config "$T/C.conf" --metrics "127.0.0.1:$CMPORT" >>"$T/serverC.log" 2>&1 &
    C_PID=$!
}
# c_metric NAME: C's value of metric NAME.
c_metric() {
    python3 - "$CMPORT" "$1" <<'PY'
import re, sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
m = re.search(r"^%s (\d+)$" % re.escape(sys.argv[2]), body, re.M)
print(m.group(1) if m else "")
PY
}
# B's and C's servers go down with the test, whatever happens.
b_exit() {
    local rc=$?
    stop_b
    if [ -n "$C_PID" ]; then
        kill -TERM "$C_PID" 2>/dev/null || true
        wait "$C_PID" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ]; then
        echo "--- C's server log (last 10 lines) ---" >&2
        tail -n 10 "$T/serverC.log" >&2 2>/dev/null || true
        echo "--- B's server log (last 30 lines) ---" >&2
        tail -n 30 "$T/serverB.log" >&2 2>/dev/null || true
    fi
    (exit $rc)
    nats_exit
}
trap b_exit EXIT

start_server --orgunits "$UNITSA" --config "$T/A.conf"
start_b
# C's consumer made by the province, as docs/upstream.md §7 "Permissions"
# says to when districts may not create consumers: C binds to it.
for _ in $(seq 1 60); do
    "$PS_NATSTOOL" "$NATS_URLS" info >/dev/null 2>&1 && break
    sleep 0.5
done
"$PS_NATSTOOL" "$NATS_URLS" consumer "popsync-migrants-to-$DC" "popsync.*._to.$DC" ||
    fail "the province could not create C's consumer"
start_c
client ta town1
ps --data "$T/tb" init --server "127.0.0.1:$PORTB" --ca "$T/pki/ca.crt" --cert "$T/pki/tb1.crt" \
    --key "$T/pki/tb1.key" --server-name popsyncdB >/dev/null
ps --data "$T/bad" init --server "127.0.0.1:$PORTB" --ca "$T/pki/ca.crt" --cert "$T/pki/adminB.crt" \
    --key "$T/pki/adminB.key" --server-name popsyncdB >/dev/null

sq() { local c=$1; shift; ps --data "$T/$c" "$@"; }
day() { python3 -c 'import sys,datetime,zoneinfo; print((datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date()+datetime.timedelta(days=int(sys.argv[1]))).isoformat())' "$1"; }
# case_of CACHE ID [--awaiting X]: the case's JSON from `popsync migrations`, or "" (after a sync).
case_of() {
    local c=$1 id=$2
    shift 2
    sq "$c" sync --quiet >/dev/null 2>&1 || true
    sq "$c" migrations --json "$@" | python3 -c '
import json,sys
for c in json.load(sys.stdin):
    if c["id"]==sys.argv[1]: print(json.dumps(c))' "$id"
}
# wait_case CACHE ID SECONDS PYTHON-CONDITION [--awaiting X]: until the case satisfies the condition (on c).
wait_case() {
    local c=$1 id=$2 secs=$3 cond=$4 j=""
    shift 4
    for _ in $(seq 1 $((secs * 2))); do
        j=$(case_of "$c" "$id" "$@")
        if [ -n "$j" ] && python3 -c "import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if ($cond) else 1)" "$j"; then
            echo "$j"
            return 0
        fi
        sleep 0.5
    done
    fail "case $id in cache $c: not ($cond) within $secs s (last: $j)"
}

# --- 1. a case crosses from A to B ------------------------------------------------
idn=$(idnum 1990-04-12 7 female)
p=$(sq ta add person --set id_number="$idn" --set name=王秀英 --set sex=female --set birth_date=1990-04-12 \
    --set registration=migrant --set phone=13912345678 --set address=建国路1号)
m1=$(sq ta add migration --set person_id="$p" --set direction=outflow --set other_place_code=$TB1 \
    --set start_date="$(day -20)" --set urgent=true --set employer=首钢公司)
sq ta sync --quiet
j=$(wait_case tb "$m1" 60 'c["awaiting"]=="submission"')
masked="${idn:0:6}********${idn:14:4}"
python3 - "$j" "$masked" "$(day -5)" <<'PY' || fail "B's view of A's case: $j"
import json,sys
c=json.loads(sys.argv[1])
assert c["side"]=="other place" and c["direction"]=="inflow" and c["other_place_code"]=="110105001000", c
assert c["other_place_name"]=="建外街道", c
assert c["migrant"]=={"name":"王秀英","sex":"female","birth_date":"1990-04-12","id_number_masked":sys.argv[2]}, c
assert c["deadline"]==sys.argv[3] and c["days_left"]==-5 and c["urgent"] and c["who_acts"]=="the other place", c
PY
expect_eq "$(count tb person)" 0 "person records in B's township cache"
all=$( (sq tb migrations --json; sq tb list --format json) )
grep -q "$idn\|13912345678\|建国路1号" <<<"$all" && fail "more than the summary of the person reached B"
j=$(case_of bad "$m1")
python3 - "$j" <<'PY' || fail "B's admin's view of A's case: $j"
import json,sys
c=json.loads(sys.argv[1])
assert c["migrant"]["name"]=="王秀英" and "*" in c["migrant"]["id_number_masked"], c
PY
pass "A's case reached B's township with the migrant summary and its deadline, nothing else of the person"

# --- 2. A submits, B sees the feedback deadline, gives feedback, A sees it -------------
sq ta edit "$m1" --set submitted_date="$(day -2)"
sq ta sync --quiet
j=$(wait_case tb "$m1" 60 'c["awaiting"]=="feedback"' --awaiting feedback)
python3 - "$j" "$(day 13)" <<'PY' || fail "B's case awaiting its feedback: $j"
import json,sys
c=json.loads(sys.argv[1])
assert c["who_acts"]=="this place" and c["deadline"]==sys.argv[2] and c["days_left"]==13, c
assert c["submitted_date"], c
PY
set +e
out=$(sq tb edit "$m1" --set employer=别的公司 2>&1)
rc=$?
set -e
expect_eq "$rc" 4 "exit of a forbidden edit by B's township ($out)"
grep -q "employer: the other place may set only submitted_date and feedback_date" <<<"$out" || fail "wording: $out"
sq tb edit "$m1" --set feedback_date="$(day 0)"
r=0
out=$(sq tb sync 2>&1) || r=$?
expect_eq "$r" 0 "B's feedback accepted by B's popsyncd ($out)"
for _ in $(seq 1 120); do
    sq ta sync --quiet
    fb=$(sq ta show "$m1" --format json 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin); r=r[0] if isinstance(r,list) else r; print(r.get("feedback_date",""))' 2>/dev/null || true)
    [ "$fb" = "$(day 0)" ] && break
    sleep 0.5
done
expect_eq "$fb" "$(day 0)" "feedback date in A's record"
open=$(sq ta migrations --json | python3 -c 'import json,sys; print(len([c for c in json.load(sys.stdin) if c["id"]==sys.argv[1]]))' "$m1")
expect_eq "$open" 0 "A's case still open after B's feedback"
pass "B's feedback came back to A's record and closed the case there"

# --- 3. no echo: both districts settle on one revision ------------------------------------
headA() { "$POPSYNCD" status --data "$T/server" | sed -n 's/^feed head: *\([0-9]*\).*/\1/p'; }
headB() { "$POPSYNCD" status --data "$T/serverB" | sed -n 's/^feed head: *\([0-9]*\).*/\1/p'; }
sleep 3
a0=$(headA)
b0=$(headB)
sleep 4
expect_eq "$(headA) $(headB)" "$a0 $b0" "feed heads (an echo loop would move them)"
revs() {
    mdb_dump -s records "$1" | python3 -c '
import sys
l=[x.strip() for x in sys.stdin if x.startswith(" ")]
for k,v in zip(l[0::2],l[1::2]):
    if k==sys.argv[1]: print(v[68:100])' "$(echo "$m1" | tr -d -)"
}
ra=$(revs "$T/server")
rb=$(revs "$T/serverB")
[ -n "$ra" ] && [ "$ra" = "$rb" ] || fail "A and B hold different revisions of the case: '$ra' / '$rb'"
pass "no echo: heads still, the same revision (gen, hlc) in both districts"

# B's report counters: A's cases count in A only (their owner), never in B.
mdb_dump -s counters "$T/serverB" | grep -q "$(printf 110105 | od -An -tx1 | tr -d ' \n')" &&
    fail "A's case counted in B's report counters"
mdb_dump -s counters "$T/server" | grep -q "$(printf 110105001000 | od -An -tx1 | tr -d ' \n')" ||
    fail "A's case not counted in A's report counters"
pass "the shared case counts in its owner district's report only"

# --- 3b. concurrent edits in both districts merge into one version ---------------------
m2=$(sq ta add migration --set person_id="$p" --set direction=outflow --set other_place_code=$TB1 \
    --set start_date="$(day -10)" --set submitted_date="$(day -1)" --set employer=首钢公司)
sq ta sync --quiet
wait_case tb "$m2" 60 'c["awaiting"]=="feedback"' --awaiting feedback >/dev/null
# NATS down: each district edits its copy without hearing of the other's edit.
nats_kill 1; nats_kill 2; nats_kill 3
sq ta edit "$m2" --set employer=京西公司
sq ta sync --quiet
sq tb edit "$m2" --set feedback_date="$(day 0)"
sq tb sync --quiet
for n in 1 2 3; do nats_start $n; done
nats_wait_ready 30 || fail "cluster did not come back"
field() { sq "$1" show "$2" --format json | python3 -c 'import json,sys; r=json.load(sys.stdin); r=r[0] if isinstance(r,list) else r; print(r.get(sys.argv[1],""))' "$3"; }
ok=""
for _ in $(seq 1 120); do
    sq ta sync --quiet >/dev/null 2>&1 || true
    sq tb sync --quiet >/dev/null 2>&1 || true
    if [ "$(field ta "$m2" feedback_date)" = "$(day 0)" ] && [ "$(field tb "$m2" employer)" = 京西公司 ] &&
        [ "$(field ta "$m2" employer)" = 京西公司 ] && [ "$(field tb "$m2" feedback_date)" = "$(day 0)" ]; then
        ok=1
        break
    fi
    sleep 0.5
done
[ -n "$ok" ] || fail "concurrent edits did not merge: A $(field ta "$m2" employer)/$(field ta "$m2" feedback_date), B $(field tb "$m2" employer)/$(field tb "$m2" feedback_date)"
sleep 3
a0=$(headA)
b0=$(headB)
sleep 4
expect_eq "$(headA) $(headB)" "$a0 $b0" "feed heads after the merge (an echo loop would move them)"
m1save=$m1
m1=$m2
ra=$(revs "$T/server")
rb=$(revs "$T/serverB")
m1=$m1save
[ -n "$ra" ] && [ "$ra" = "$rb" ] || fail "A and B hold different revisions of the merged case: '$ra' / '$rb'"
pass "concurrent edits in A (employer) and B (feedback) merged field by field into one revision in both, no echo"

# --- 4. B killed with SIGKILL mid-consume ----------------------------------------------
N=300
stop_b
python3 - "$idn" "$N" "$(day -10)" >"$T/cases.csv" <<'PY'
import sys
idn, n, start = sys.argv[1], int(sys.argv[2]), sys.argv[3]
units = ["110108001000", "110108002000"]
# Each row its own case (an import adds a row repeating another only once).
print("person_id,direction,other_place_code,start_date,employer")
for i in range(n):
    print("%s,outflow,%s,%s,公司%d" % (idn, units[i % 2], start, i))
PY
sq ta import "$T/cases.csv" --kind migration >/dev/null
sq ta sync --quiet
MPORT=$(nats_free_ports 1)
# Wait for A to have published them all (B is down: they wait in the stream).
for _ in $(seq 1 240); do
    lag=$("$POPSYNCD" status --data "$T/server" | sed -n 's/^upstream lag: *\([0-9]*\) records.*/\1/p')
    [ "$lag" = 0 ] && break
    sleep 0.25
done
expect_eq "$lag" 0 "A's upstream lag before B comes back"
POPSYNC_TEST_MIGRANTS_BATCH=4 POPSYNC_TEST_MIGRANTS_PAUSE_MS=20 start_b --metrics "127.0.0.1:$MPORT"
python3 - "$MPORT" "$B_PID" "$N" <<'PY' || fail "B did not start consuming within 120 s"
import os, re, signal, sys, time, urllib.request
port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
end = time.time() + 120
while time.time() < end:
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=2).read().decode()
        m = re.search(r"^popsync_migrants_stored_total (\d+)$", body, re.M)
        if m and 0 < int(m.group(1)):
            os.kill(pid, signal.SIGKILL)
            print(m.group(1))
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.002)
sys.exit(1)
PY
wait "$B_PID" 2>/dev/null || true
B_PID=""
count_b() {
    mdb_dump -s records "$T/serverB" | python3 -c '
import sys
l=[x.strip() for x in sys.stdin if x.startswith(" ")]
print(sum(1 for v in l[1::2] if v[16:18]=="04"))'
}
killed_at=$(count_b)
[ "$killed_at" -lt $((N + 2)) ] || fail "B had consumed every case before the kill: nothing tested"
start_b
for _ in $(seq 1 240); do
    [ "$(count_b)" = $((N + 2)) ] && break
    sleep 0.5
done
expect_eq "$(count_b)" $((N + 2)) "cases in B's store after the restart (killed at $killed_at)"
mdb_dump -s feed "$T/serverB" | python3 -c '
import sys,collections
l=[x.strip() for x in sys.stdin if x.startswith(" ")]
# a record entry: id(16) | 0x02 | ... (47 bytes), or id(16) in an older store; exits are 29 bytes
ids=[v[:32] for v in l[1::2] if len(v) in (32, 94)]
c=collections.Counter(ids)
d=[k for k,n in c.items() if n>1]
sys.exit(1 if d or len(ids) < int(sys.argv[1]) else 0)' $((N + 2)) || fail "a record has two feed entries in B, or entries are missing"
n=$(sq tb sync --quiet && sq tb migrations --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" -ge $((N / 2)) ] || fail "B's township sees only $n cases"
pass "B killed with SIGKILL mid-consume (at $killed_at of $((N + 2))): every case once after the restart"

# --- 4b. the third district received nothing of A's cases for B ---------------------------
for _ in $(seq 1 60); do
    [ "$(c_metric popsync_migrants_connected 2>/dev/null)" = 1 ] && break
    sleep 0.5
done
expect_eq "$(c_metric popsync_migrants_connected)" 1 "C's migrant consumer bound"
sleep 2 # a fetch round or two after binding: anything matching would have come
expect_eq "$(c_metric popsync_migrants_received_total)" 0 "migration messages C's consumer received"
expect_eq "$(c_metric popsync_migrants_stored_total)" 0 "cases C stored"
grep -q "consuming popsync.\*._to.$DC as popsync-migrants-to-$DC" "$T/serverC.log" ||
    fail "C does not consume its addressed subject: $(grep migrants "$T/serverC.log" | tail -3)"
copies=$("$PS_NATSTOOL" "$NATS_URLS" dump "popsync.$DA._to.$DB" | wc -l)
[ "$copies" -ge $((N + 2)) ] || fail "A's copies addressed to B: $copies"
pass "C (migrants = addressed) received none of A's $((N + 2)) cases for B; B got them from A's copies addressed to it"

# A district that claims another's name in its headers is not believed:
# the subject (which NATS lets it publish only under its own code) says who sent it.
"$PS_NATSTOOL" "$NATS_URLS" publish "popsync.$DB._to.$DC" Popsync-District=$DA Popsync-Kind=migration \
    Popsync-Unit=110105001000 Popsync-Other=110106001000 Popsync-Seq=1 || fail "could not publish the forged case"
for _ in $(seq 1 40); do
    [ "$(c_metric popsync_migrants_refused_total)" = 1 ] && break
    sleep 0.25
done
expect_eq "$(c_metric popsync_migrants_refused_total)" 1 "C's refused count after a case forged in A's name"
grep -q "a case from district $DA on another district's subject: ignored" "$T/serverC.log" ||
    fail "C's log does not say why: $(grep migrants "$T/serverC.log" | tail -2)"
expect_eq "$(c_metric popsync_migrants_stored_total)" 0 "cases C stored"
pass "a case on B's subject claiming to be A's: ignored by C (fetching under its own inbox prefix), which believes the subject"
# Everything B stored is in the stream before it goes (the rebuild below).
for _ in $(seq 1 240); do
    lag=$("$POPSYNCD" status --data "$T/serverB" | sed -n 's/^upstream lag: *\([0-9]*\) records.*/\1/p')
    [ "$lag" = 0 ] && break
    sleep 0.25
done
expect_eq "$lag" 0 "B's upstream lag before it stops"
stop_b
"$POPSYNCD" counters check --data "$T/serverB" >/dev/null || fail "B's counters do not recount"
# Every foreign write is in the audit chain, named as the sending district's.
hexof() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
for d in server serverB; do
    "$POPSYNCD" audit verify --data "$T/$d" >"$T/verify.$d" || fail "audit verify of $d: $(cat "$T/verify.$d")"
done
mdb_dump -s audit "$T/serverB" | tr -d ' \n' >"$T/auditB.hex"
mdb_dump -s audit "$T/server" | tr -d ' \n' >"$T/auditA.hex"
grep -q "$(hexof foreign_create)" "$T/auditB.hex" || fail "no foreign_create entry in B's audit log"
grep -q "$(hexof foreign_update)" "$T/auditA.hex" || fail "no foreign_update entry in A's audit log"
pass "foreign writes are in both audit chains (foreign_create in B, foreign_update in A), which verify intact"

# --- 5. a rebuilt B equals B, the shared cases included ---------------------------------
"$POPSYNCD" rebuild --from-upstream --data "$T/rebuiltB" --config "$T/B.conf" --advance-head 0 >"$T/rebuildB.out" ||
    fail "rebuild of B failed: $(cat "$T/rebuildB.out")"
for db in records feed counters foreign; do
    mdb_dump -s $db "$T/serverB" | sed 1,/HEADER=END/d >"$T/origB.$db"
    mdb_dump -s $db "$T/rebuiltB" | sed 1,/HEADER=END/d >"$T/newB.$db"
    cmp -s "$T/origB.$db" "$T/newB.$db" ||
        fail "rebuilt B's $db differs from B's: $(diff "$T/origB.$db" "$T/newB.$db" | head -6 | cut -c1-120)"
done
# B's foreign database holds the summaries of A's cases ('S', one per case).
# A merged version of m2 ('V') is there only when B was the district that
# merged the two edits of 3b: which one merges depends on which publisher
# reaches the restarted cluster first, and either way both districts hold
# one revision (3b); when it is there, the comparison above checked it.
python3 - "$T/origB.foreign" "$(echo "$m2" | tr -d -)" $((N + 2)) <<'PY' || fail "B's foreign database: not what the test expects"
import sys
l=[x.strip() for x in open(sys.argv[1]) if x.startswith(" ")]
keys=l[0::2]
s=[k for k in keys if k.startswith("53")]
v=[k for k in keys if k.startswith("56")]
sys.exit(0 if len(s)==int(sys.argv[3]) and all(k[2:34]==sys.argv[2] for k in v) else 1)
PY
"$POPSYNCD" counters check --data "$T/rebuiltB" >/dev/null || fail "counters of the rebuilt B do not recount"
pass "rebuild --from-upstream of B: records, feed, counters and foreign (A's summaries, a merged version if B merged) equal B's"

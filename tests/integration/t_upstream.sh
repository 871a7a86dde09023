# upstream (issue 19 points 1, 4, 5): popsyncd publishes its feed to a real
# 3-node NATS JetStream cluster on loopback: every entry once, in order, msg
# id <district>:<seq>; one NATS node killed mid-stream loses nothing; with
# every NATS node down the district keeps serving and catches up after;
# popsyncd killed with SIGKILL mid-publish loses and doubles nothing; and
# `popsyncd rebuild --from-upstream` makes a store equal to the original.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_nats.sh"
: "${PS_NATSTOOL:?PS_NATSTOOL must point at ps_natstool}"
command -v mdb_dump >/dev/null || { echo "SKIP: mdb_dump (lmdb-utils) missing"; exit 77; }

make_pki
UNITS="$T/units.csv"
cat >"$UNITS" <<'EOF'
code,parent,name,kind
110105000000,,朝阳区,district
110105001000,110105000000,建外街道,subdistrict
110105001001,110105001000,永安里社区,community
110105002000,110105000000,朝外街道,subdistrict
110105002001,110105002000,吉祥里社区,community
110105003000,110105000000,东坝镇,town
110105003201,110105003000,单店村,village
EOF

nats_cluster_start "$T/nats"
cat >"$T/up.conf" <<EOF
[upstream]
urls = $NATS_URLS
district = $DISTRICT
max_in_flight = 16
EOF
# The caches know the server by its port: a restart keeps it.
up_server() { start_server --orgunits "$UNITS" --config "$T/up.conf" --listen "127.0.0.1:${PORT:-0}" "$@"; }
up_server
for n in 1 2 3; do client t$n town$n; done

# status_field NAME: a number from `popsyncd status` (head | published | lag).
status_field() {
    "$POPSYNCD" status --data "$T/server" | python3 -c '
import re,sys
t=sys.stdin.read()
m={"head":r"feed head:\s+(\d+)","published":r"published: up to seq (\d+)","lag":r"lag:\s+(\d+) records"}[sys.argv[1]]
print(re.search(m,t).group(1))' "$1"
}

# wait_caught_up SECONDS: the mark reaches the head (every entry acknowledged).
wait_caught_up() {
    local i
    for i in $(seq 1 $(($1 * 4))); do
        [ "$(status_field lag)" = 0 ] && return 0
        sleep 0.25
    done
    fail "upstream did not catch up within $1 s (lag $(status_field lag), head $(status_field head))"
}

# feed_seqs: the seqs in the store's feed, sorted (what must be in the stream).
feed_seqs() {
    mdb_dump -s feed "$T/server" | python3 -c '
import sys
lines=[l.strip() for l in sys.stdin if l.startswith(" ")]
for k in lines[0::2]:
    print(int(k,16))' | LC_ALL=C sort
}

# stream_dump: this district's entries (not the node marks, not the copies
# addressed to other districts) in stream order.
stream_dump() {
    "$PS_NATSTOOL" "$NATS_URLS" dump "popsync.$DISTRICT.>" >"$T/all.txt"
    grep -v ' _nodes ' "$T/all.txt" | grep -v " popsync\.$DISTRICT\._to\." || true
}

# check_stream WHAT: every feed entry in the stream, no msg id twice.
check_stream() {
    local d="$T/dump.txt"
    stream_dump >"$d"
    feed_seqs >"$T/feed.txt"
    [ -s "$T/feed.txt" ] || fail "$1: empty feed"
    awk '{print $3}' "$d" | sort | uniq -d >"$T/dups.txt"
    [ ! -s "$T/dups.txt" ] || fail "$1: message ids stored twice: $(head -3 "$T/dups.txt")"
    awk '{print $4}' "$d" | LC_ALL=C sort -u >"$T/stream_seqs.txt"
    comm -23 "$T/feed.txt" "$T/stream_seqs.txt" >"$T/missing.txt"
    [ ! -s "$T/missing.txt" ] || fail "$1: feed entries missing from the stream: $(head -3 "$T/missing.txt" | tr '\n' ' ')"
    awk -v d="$DISTRICT" '$3 != d":"$4 {bad=1} END {exit bad}' "$d" || fail "$1: a msg id is not <district>:<seq>"
    # Copies of shared migrations (docs/upstream.md §7): <district>:<seq>:<to>, never to ourselves.
    awk -v d="$DISTRICT" '$2 ~ /\._to\./ { split($2, p, "."); if ($3 != d":"$4":"p[4] || p[4] == d) bad=1 }
        END {exit bad}' "$T/all.txt" || fail "$1: a copy's msg id is not <district>:<seq>:<to>"
}

# --- 1. every entry once, in order --------------------------------------------
ps --data "$T/t1" generate --persons 200 --seed 1 --orgunits "$UNITS" >/dev/null
ps --data "$T/t1" sync >/dev/null
wait_caught_up 60
check_stream "steady"
awk 'NR > 1 && $4 + 0 <= prev {bad=1} {prev = $4 + 0} END {exit bad}' "$T/dump.txt" || fail "stream not in feed order"
entries=$(wc -l <"$T/dump.txt")
[ "$entries" -ge 200 ] || fail "only $entries entries published"
"$PS_NATSTOOL" "$NATS_URLS" info | grep -q "replicas 3 duplicate_window_s 86400" ||
    fail "stream not R3 with a 24 h window: $("$PS_NATSTOOL" "$NATS_URLS" info)"
grep -q "^[0-9]* popsync.$DISTRICT.person $DISTRICT:[0-9]* [0-9]* person [0-9]*$" "$T/dump.txt" ||
    fail "subject/kind format: $(head -2 "$T/dump.txt")"
pass "$entries feed entries published once each, in feed order, R3 stream, msg id <district>:<seq>"

# --- 2. one NATS node killed mid-stream ------------------------------------------
ps --data "$T/t2" generate --persons 300 --seed 2 --orgunits "$UNITS" >/dev/null
p0=$(status_field published)
ps --data "$T/t2" sync >/dev/null
for _ in $(seq 1 200); do
    [ "$(status_field published)" -gt "$p0" ] && break
    sleep 0.02
done
nats_kill 2
wait_caught_up 90
nats_start 2
nats_wait_ready 30 || fail "node 2 did not come back"
check_stream "one node killed"
pass "one NATS node killed mid-stream: nothing lost, nothing doubled"

# --- 3. every NATS node down: the district serves on, then catches up ------------
before=$(status_field published)
nats_kill 1; nats_kill 2; nats_kill 3
ps --data "$T/t3" generate --persons 100 --seed 3 --orgunits "$UNITS" >/dev/null
ps --data "$T/t3" sync >/dev/null || fail "sync refused while NATS is down"
ps --data "$T/t1" sync >/dev/null || fail "pull refused while NATS is down"
sleep 1
[ "$(status_field lag)" -gt 0 ] || fail "no lag shown while NATS is down"
# ... and to the district's admin: `popsync status --all` carries it (NodeStatusResult.upstream_*).
client adm admin
ok=""
for _ in $(seq 1 40); do
    j=$(ps --data "$T/adm" status --all --json)
    python3 -c 'import json,sys; u=json.loads(sys.argv[1])["upstream"]; sys.exit(0 if int(u["lag_records"])>0 and not u["connected"] else 1)' "$j" && { ok=1; break; }
    sleep 0.5
done
[ -n "$ok" ] || fail "status --all does not show the upstream lag while NATS is down: $j"
ps --data "$T/adm" status --all | grep -q "^upstream: published up to seq [0-9]*; lag [1-9][0-9]* records, oldest waiting [0-9]* s (NATS not connected)$" ||
    fail "status --all text: $(ps --data "$T/adm" status --all)"
expect_eq "$(status_field published)" "$before" "mark moved while NATS was down"
for n in 1 2 3; do nats_start $n; done
nats_wait_ready 30 || fail "cluster did not come back"
wait_caught_up 120
check_stream "all nodes down"
j=$(ps --data "$T/adm" status --all --json)
python3 -c 'import json,sys; u=json.loads(sys.argv[1])["upstream"]; sys.exit(0 if int(u["lag_records"])==0 and int(u["lag_seconds"])==0 and u["connected"] else 1)' "$j" ||
    fail "status --all after the catch-up: $j"
pass "all NATS nodes down: syncs served, lag shown, caught up afterwards"

# --- 4. popsyncd SIGKILL mid-publish ------------------------------------------------
# Four in flight, and a watcher that kills popsyncd the moment its metrics
# show the mark moving: the backlog is caught half-way.
stop_server
sed -i 's/^max_in_flight = .*/max_in_flight = 4/' "$T/up.conf"
MPORT=$(nats_free_ports 1)
up_server --metrics "127.0.0.1:$MPORT"
nats_kill 1; nats_kill 2; nats_kill 3
ps --data "$T/t2" generate --persons 1500 --seed 4 --orgunits "$UNITS" >/dev/null
ps --data "$T/t2" sync >/dev/null
mark0=$(status_field published)
for n in 1 2 3; do nats_start $n; done
python3 - "$MPORT" "$mark0" "$SERVER_PID" <<'PY' || fail "the mark did not move within 180 s"
import os, re, signal, sys, time, urllib.request
port, mark0, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
end = time.time() + 180
while time.time() < end:
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=2).read().decode()
        m = re.search(r"^popsync_upstream_published_seq (\d+)$", body, re.M)
        if m and int(m.group(1)) > mark0:
            os.kill(pid, signal.SIGKILL)
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.005)
sys.exit(1)
PY
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
nats_wait_ready 30 || fail "cluster did not come back"
[ "$(status_field lag)" -gt 0 ] || fail "the backlog was all published before the kill: nothing tested"
up_server
wait_caught_up 120
check_stream "popsyncd killed"
pass "popsyncd SIGKILL mid-publish: resumed from its mark, nothing missing or stored twice"

# --- 5. rebuild from the stream -----------------------------------------------------
stop_server
"$POPSYNCD" rebuild --from-upstream --data "$T/rebuilt" --config "$T/up.conf" --advance-head 0 >"$T/rebuild.out" ||
    fail "rebuild failed: $(cat "$T/rebuild.out")"
grep -q "node marks as of seq [1-9]" "$T/rebuild.out" || fail "no node marks recovered: $(cat "$T/rebuild.out")"
for db in records feed counters nodes idnum feed_town cols; do
    mdb_dump -s $db "$T/server" | sed 1,/HEADER=END/d >"$T/orig.$db"
    mdb_dump -s $db "$T/rebuilt" | sed 1,/HEADER=END/d >"$T/new.$db"
done
# idnum, feed_town, cols: every index the apply path keeps (a rebuilt
# district refuses a second registration of a number as the original did).
for db in records feed counters idnum feed_town cols; do
    cmp -s "$T/orig.$db" "$T/new.$db" || fail "rebuilt $db differs from the original"
done
"$POPSYNCD" counters check --data "$T/rebuilt" >/dev/null || fail "counters of the rebuilt store do not recount"
# Node marks: each node's high-water mark (first 8 bytes of node(16)) as in the original.
python3 - "$T/orig.nodes" "$T/new.nodes" <<'PY' || fail "node marks not recovered"
import sys
def marks(p):
    l=[x.strip() for x in open(p) if x.startswith(" ")]
    return {k:v[:16] for k,v in zip(l[0::2],l[1::2]) if len(k)==32}
a,b=marks(sys.argv[1]),marks(sys.argv[2])
sys.exit(0 if a and a==b else 1)
PY
pass "rebuild --from-upstream: records, feed and counters equal the original; node marks recovered"

# --- 6. caches carry on with the rebuilt store ---------------------------------------
records_total() { "$POPSYNCD" status --data "$T/server" | sed -n 's/^records: *\([0-9]*\).*/\1/p'; }
before=$(records_total)
mv "$T/server" "$T/server.orig"
mv "$T/rebuilt" "$T/server"
start_server --orgunits "$UNITS" --listen "127.0.0.1:$PORT"
cnt() { ps --data "$T/t1" list --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
n0=$(cnt)
ps --data "$T/t1" generate --persons 5 --seed 9 --orgunits "$UNITS" >/dev/null
n1=$(cnt)
out=$(ps --data "$T/t1" sync 2>&1) || fail "sync with the rebuilt server: $out"
out=$(ps --data "$T/t3" sync 2>&1) || fail "second cache with the rebuilt server: $out"
stop_server
after=$(records_total)
expect_eq "$((after - before))" "$((n1 - n0))" "records the cache made after the rebuild, on the rebuilt server"
pass "caches that synced before carry on with the rebuilt server"

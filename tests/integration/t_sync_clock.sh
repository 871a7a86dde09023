# Wrong clocks (issue 21, point 12): clashing edits are ordered by when each
# was made, as the server's clock sees it, not by the device's clock:
#   1. an edit made on a device whose clock is a year ahead, 2 s before a
#      right-clock edit of the same field, loses in both push orders;
#   2. so does one from a device 9 minutes fast (inside the old 10-minute
#      bound), and it drags no other cache's clock ahead;
#   3. a new record from a device a year ahead is counted in the month the
#      server received it, not in its clock's month.
# The device is told its clock is wrong (sync and status), and once it has
# synced, its own edits are timed by the server's clock.
. "$(dirname "$0")/lib4.sh"
YEAR_MS=31536000000
NINE_MS=540000
make_pki4
issue township $TA ta
start_server4
client admin admin
client a ta      # right clocks
client a2 ta
client fut ta    # synced while its clock was right; then the clock jumps a year ahead
client nine ta   # the same, 9 minutes fast
client far ta    # a year ahead from the start

now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }
hlc_ms() { field "$1" "$2" 'int(r["rev"]["hlc"]) >> 16'; }
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], -1))' "$1"; }

p1=$(add_person a 1)
p2=$(add_person a 2)
p3=$(add_person a 3)
p4=$(add_person a 4)
psync a
for c in a2 fut nine admin; do psync $c; done

# --- 1 and 2: the wrong clocks edit first, the right ones 2 s later.
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS sq fut edit "$p1" --set phone=13900000001
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS sq fut edit "$p2" --set phone=13900000001
POPSYNC_CLOCK_OFFSET_MS=+$NINE_MS sq nine edit "$p3" --set phone=13900000001
POPSYNC_CLOCK_OFFSET_MS=+$NINE_MS sq nine edit "$p4" --set phone=13900000001
sleep 2
sq a edit "$p1" --set phone=13900000002
sq a edit "$p3" --set phone=13900000002
sq a2 edit "$p2" --set phone=13900000002
sq a2 edit "$p4" --set phone=13900000002
# p1, p3: the right clock pushes first; p2, p4: the wrong clock does.
psync a 2>/dev/null
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS sq fut sync --json >"$T/fut.json" 2>"$T/fut.err" || [ $? -eq 6 ] || fail "fut's sync failed"
POPSYNC_CLOCK_OFFSET_MS=+$NINE_MS sq nine sync --json >"$T/nine.json" 2>"$T/nine.err" || [ $? -eq 6 ] || fail "nine's sync failed"
psync a2 2>/dev/null
psync admin
for p in "$p1" "$p2"; do
    expect_soft "$(field admin "$p" 'r["phone"]')" 13900000002 \
        "the later right-clock edit wins over the year-ahead device's earlier one ($([ "$p" = "$p1" ] && echo right first || echo wrong first))"
done
for p in "$p3" "$p4"; do
    expect_soft "$(field admin "$p" 'r["phone"]')" 13900000002 \
        "the later right-clock edit wins over the 9-minutes-fast device's earlier one ($([ "$p" = "$p3" ] && echo right first || echo wrong first))"
done
for p in "$p1" "$p2" "$p3" "$p4"; do
    conflicts_json admin | python3 -c '
import json,sys
c=[x for x in json.load(sys.stdin) if x["record_id"]==sys.argv[1]]
assert c and c[-1]["lost"]["phone"]=="13900000001" and c[-1]["kept"]["phone"]=="13900000002", c' "$p" ||
        soft_fail "the wrong clock's edit of $p is not the conflict's lost side"
done

# No stored time lies in the future, and the right caches are not dragged.
t=$(now_ms)
for p in "$p1" "$p2" "$p3" "$p4"; do
    h=$(hlc_ms admin "$p")
    [ "$h" -le $((t + 1000)) ] || soft_fail "record $p stored with a time $(((h - t) / 1000)) s in the future"
done
psync a
sq a edit "$p1" --set address=一号楼
psync a
h=$(hlc_ms a "$p1")
[ "$h" -le $(($(now_ms) + 1000)) ] || soft_fail "a's next edit was dragged $(((h - $(now_ms)) / 1000)) s ahead"

# The devices are told, in sync and in status.
skew=$(jget clock_skew_ms <"$T/fut.json")
[ "$skew" -gt $((YEAR_MS - 60000)) ] && [ "$skew" -lt $((YEAR_MS + 60000)) ] ||
    soft_fail "fut's sync --json clock_skew_ms is $skew"
expect_soft "$(jget retimed <"$T/fut.json")" 2 "fut's two changes re-timed by the server"
skew=$(jget clock_skew_ms <"$T/nine.json")
[ "$skew" -gt $((NINE_MS - 10000)) ] && [ "$skew" -lt $((NINE_MS + 10000)) ] ||
    soft_fail "nine's sync --json clock_skew_ms is $skew"
POPSYNC_CLOCK_OFFSET_MS=+$NINE_MS sq nine sync >/dev/null 2>"$T/nine.err" || [ $? -eq 6 ] || fail "nine's second sync failed"
grep -q "clock is 9 min [0-9]* s ahead of the server's" "$T/nine.err" ||
    soft_fail "sync does not warn of the 9-minute clock: $(cat "$T/nine.err")"
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS sq fut status >"$T/fut.status" 2>&1
grep -q "clock is 36[456] days ahead of the server's" "$T/fut.status" ||
    soft_fail "status does not warn of the year-ahead clock: $(cat "$T/fut.status")"
expect_soft "$(sq a status --json | jget clock_skew_ms)" 0 "a right clock is not warned"
sq a status >"$T/a.status" 2>&1
grep -q "clock is" "$T/a.status" && soft_fail "a right clock is warned: $(cat "$T/a.status")"

# After a sync, the year-ahead device times its edits by the server's clock.
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS sq fut edit "$p4" --set address=二号楼
t0=$(now_ms)
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS psync fut 2>/dev/null
h=$(hlc_ms fut "$p4")
[ "$h" -le $((t0 + 1000)) ] && [ "$h" -ge $((t0 - 60000)) ] ||
    soft_fail "fut's edit after a sync is timed $(((h - t0) / 1000)) s from now"

# --- 3: a new record from a device a year ahead counts in this month.
month=$(date -u +%Y-%m)
ahead=$(python3 -c 'import datetime,time; print(datetime.datetime.utcfromtimestamp(time.time()+31536000).strftime("%Y-%m"))')
f=$(POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS add_person far 5)
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS psync far 2>/dev/null
psync admin
c=$(field admin "$f" 'int(r["created_ms"])')
[ "$c" -le $(($(now_ms) + 1000)) ] || soft_fail "the new record's created_ms is $(((c - $(now_ms)) / 86400000)) days ahead"
newin() {
    sq admin report monthly --month "$1" --format json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][-1]["persons_new"])'
}
expect_soft "$(newin "$ahead")" 0 "persons_new of $ahead (the wrong clock's month)"
[ "$(date -u +%Y-%m)" = "$month" ] && expect_soft "$(newin "$month")" 5 "persons_new of $month (the month received)"
stop_server
finish_soft
pass "edits are ordered by when they were made on the server's clock; wrong clocks are told, and counted by receipt"

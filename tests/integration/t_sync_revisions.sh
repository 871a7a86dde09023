# Revisions (issue 4, case 1): rev.gen counts accepted changes; rev.hlc is
# a hybrid logical clock that the server bounds (never after its own clock
# at acceptance; issue 21 point 12 and t_sync_clock tighten this test's
# 10-minute check) so a device a year ahead cannot win every later comparison, and
# a device a year behind converges and, once a sync has carried the
# server's clock to it, orders its new edits after what it has heard of.
. "$(dirname "$0")/lib4.sh"
YEAR_MS=31536000000
make_pki4
issue township $TA ta
start_server4
client a ta
client admin admin
client fut ta      # same township, a second device whose clock is a year ahead
client past ta     # and one whose clock is a year behind

now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }
hlc_ms() { field "$1" "$2" 'int(r["rev"]["hlc"]) >> 16'; }

# --- gen: 1 for a new record, +1 per accepted change, untouched otherwise.
p=$(add_person a 1)
psync a
expect_eq "$(field a "$p" 'r["rev"]["gen"]')" 1 "gen of a new record"
sq a edit "$p" --set phone=13800000001
psync a
expect_eq "$(field a "$p" 'r["rev"]["gen"]')" 2 "gen after one edit"
psync admin
sq admin edit "$p" --set address=一号楼
psync admin
psync a
expect_eq "$(field a "$p" 'r["rev"]["gen"]') $(field a "$p" 'r["address"]')" "3 一号楼" "gen after another cache's edit"
# Two edits made offline before one sync are two accepted changes.
sq a edit "$p" --set phone=13800000002
sq a edit "$p" --set address=二号楼
psync a
expect_eq "$(field a "$p" 'r["rev"]["gen"]')" 5 "gen after two offline edits"
expect_eq "$(field a "$p" 'r["phone"]') $(field a "$p" 'r["address"]')" "13800000002 二号楼" "both offline edits kept"
# A sync with nothing to send moves nothing.
psync a
expect_eq "$(field a "$p" 'r["rev"]["gen"]')" 5 "an idle sync changes no gen"
pass "rev.gen counts accepted changes"

# --- A clock a year ahead: the server bounds the stored HLC.
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS psync fut
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS sq fut edit "$p" --set phone=13900000001
f=$(POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS add_person fut 2)
t0=$(now_ms)
POPSYNC_CLOCK_OFFSET_MS=+$YEAR_MS psync fut
t1=$(now_ms)
psync admin
for id in "$p" "$f"; do
    h=$(hlc_ms admin "$id")
    [ "$h" -le $((t1 + 600000 + 1000)) ] ||
        fail "a year-ahead device's HLC was stored unbounded: $h ms is $(((h - t1) / 1000)) s after now"
    [ "$h" -ge $((t0 - 60000)) ] || fail "bounded HLC $h is far before the push ($t0)"
done
# The admin's own next change is not dragged a year ahead by what it pulled.
sq admin edit "$f" --set phone=13900000002
psync admin
h=$(hlc_ms admin "$f")
[ "$h" -le $(($(now_ms) + 600000)) ] || fail "the admin's clock was dragged ahead by a pulled revision ($h)"
pass "a year-ahead clock is bounded to the server's now + 10 minutes"

# A later edit by a device with a right clock wins over the year-ahead one
# (a concurrent edit of the same field, both based on the same version).
sleep 0.05
sq a edit "$p" --set phone=13900000003   # a has not pulled fut's edit: same base
psync a 2>/dev/null
psync admin
expect_eq "$(field admin "$p" 'r["phone"]')" 13900000003 "the later edit wins over the year-ahead device's"
cf=$(conflict_of admin "$p")
[ -n "$cf" ] || fail "no conflict kept for the losing year-ahead edit"
conflicts_json admin | python3 -c '
import json,sys
c=[x for x in json.load(sys.stdin) if x["id"]==sys.argv[1]][0]
assert c["lost"]["phone"]=="13900000001" and c["fields"]==["phone"], c' "$cf" || fail "conflict does not hold the year-ahead edit"
pass "a right clock's later edit is ordered after the year-ahead device's"

# --- A clock a year behind: its records converge.
for i in 11 12 13; do POPSYNC_CLOCK_OFFSET_MS=-$YEAR_MS add_person past $i >/dev/null; done
POPSYNC_CLOCK_OFFSET_MS=-$YEAR_MS psync past
psync admin
expect_eq "$(count admin)" 5 "the year-behind device's records reached the admin"
diff <(all_ids past) <(all_ids admin) >/dev/null || fail "year-behind cache differs from the admin's"
# q: a record both hold at the same version.
q=$(add_person a 20)
psync a
POPSYNC_CLOCK_OFFSET_MS=-$YEAR_MS psync past
psync admin
sleep 0.05
# The admin edits q's phone now.
sq admin edit "$q" --set phone=13700000001
psync admin
admin_hlc=$(field admin "$q" 'r["rev"]["hlc"]')
sleep 0.05
# The year-behind device syncs only as far as the Welcome (the connection is
# cut at the next frame), so it learns the server's clock but not the edit.
set +e
POPSYNC_TEST_CUT_AFTER_FRAMES=1 POPSYNC_CLOCK_OFFSET_MS=-$YEAR_MS sq past sync --quiet >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 3 "a cut sync exits 3"
expect_eq "$(field past "$q" 'r["rev"]["gen"]')" 1 "the cut sync did not pull the admin's edit"
# Its next edit of the same field, made after the admin's, wins.
POPSYNC_CLOCK_OFFSET_MS=-$YEAR_MS sq past edit "$q" --set phone=13700000002
POPSYNC_CLOCK_OFFSET_MS=-$YEAR_MS psync past 2>/dev/null
psync admin
expect_eq "$(field admin "$q" 'r["phone"]')" 13700000002 \
    "the year-behind device's edit, made after the admin's and after a sync, is ordered after it"
new_hlc=$(field admin "$q" 'r["rev"]["hlc"]')
[ "$new_hlc" -gt "$admin_hlc" ] || fail "the new revision's HLC $new_hlc is not after the admin's $admin_hlc"
expect_eq "$(field past "$q" 'r["phone"]') $(field admin "$q" 'r["rev"]["gen"]')" "13700000002 3" "past converged"
stop_server
pass "a year-behind clock converges and, after a sync, orders its edits after what it heard of"

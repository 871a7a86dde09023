# Concurrent edits (issue 4, case 2): the server merges field by field
# against the common base.  Edits to different fields both survive; edits
# to the same field pick the later HLC (then node) everywhere and keep the
# loser as a conflict; `conflicts resolve --keep mine|theirs|FILE` settles
# it and the resolution syncs to everyone.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TA ta2        # a second clerk of the same township
start_server4
client a1 ta
client a2 ta2
client a3 ta                  # a third device of the first clerk's township
client admin admin
CACHES="a1 a2 a3 admin"
sync_all() { for c in $CACHES; do psync "$c" 2>/dev/null; done; }
# same_everywhere ID EXPR WANT WHAT
same_everywhere() {
    for c in $CACHES; do expect_eq "$(field "$c" "$1" "$2")" "$3" "$4 in $c"; done
}
# conflict_check CF PYTHON-ASSERTION (on the conflict c) [--all]
conflict_check() {
    local cf=$1 cond=$2
    shift 2
    conflicts_json admin "$@" | python3 -c '
import json,sys
c=[x for x in json.load(sys.stdin) if x["id"]==sys.argv[1]]
assert c, "conflict not listed"
c=c[0]
assert '"$cond"', c' "$cf"
}

p=$(add_person a1 1)
p2=$(add_person a1 2)
p3=$(add_person a1 3)
psync a1
sync_all

# --- Different fields of the same version: both survive everywhere.
sq a1 edit "$p" --set phone=13800000001
sq a2 edit "$p" --set address=二号楼
psync a1
psync a2
sync_all
same_everywhere "$p" 'r["phone"], r["address"], r["rev"]["gen"]' "13800000001 二号楼 3" "both field edits"
expect_eq "$(conflict_of admin "$p" --all)" "" "no conflict for edits of different fields"
pass "edits to different fields both survive"

# --- The same field: the later HLC wins, whatever order the pushes came in.
sq a1 edit "$p" --set name=甲一      # earlier
sleep 0.02
sq a2 edit "$p" --set name=乙一      # later
psync a2                             # the later edit is pushed first
# Exit 6: the sync completed, but a change raised a conflict (issue 21, point 3).
out=$(sq a1 sync 2>&1) && fail "a1 sync exited 0 although its change raised a conflict: $out" ||
    [ $? -eq 6 ] || fail "a1 sync: $out"
grep -q "1 conflicts" <<<"$out" || fail "the clerk is not told of the conflict: $out"
grep -q "clashed with other edits.*conflicts list" <<<"$out" || fail "no hint to 'conflicts list': $out"
sync_all
same_everywhere "$p" 'r["name"]' 乙一 "the later edit wins although it was pushed first"

sq a1 edit "$p2" --set name=甲二     # earlier, and pushed first
sleep 0.02
sq a2 edit "$p2" --set name=乙二
psync a1
psync a2 2>/dev/null
sync_all
same_everywhere "$p2" 'r["name"]' 乙二 "the later edit wins when pushed last"

sq a2 edit "$p3" --set phone=13900000002
sleep 0.02
sq a1 edit "$p3" --set phone=13900000001
psync a1
psync a2 2>/dev/null
sync_all
same_everywhere "$p3" 'r["phone"]' 13900000001 "the later edit wins (third record)"
pass "the same field: the later HLC wins in every cache"

cf1=$(conflict_of admin "$p")
cf2=$(conflict_of admin "$p2")
cf3=$(conflict_of admin "$p3")
[ -n "$cf1" ] && [ -n "$cf2" ] && [ -n "$cf3" ] || fail "a same-field clash left no conflict ($cf1/$cf2/$cf3)"
conflict_check "$cf1" 'c["fields"]==["name"] and c["lost"]["name"]=="甲一" and c["kept"]["name"]=="乙一" and not c["resolved"]'
conflict_check "$cf2" 'c["fields"]==["name"] and c["lost"]["name"]=="甲二" and c["kept"]["name"]=="乙二"'
conflict_check "$cf3" 'c["fields"]==["phone"] and c["lost"]["phone"]=="13900000002"'
# The owning township sees them too, in text form.
sq a1 conflicts list | grep -A2 "^$cf1 " | grep -q "^ *name  " || fail "township list lacks the conflict"
pass "the loser is kept as a conflict, visible to the admin and the township"

# --- --keep mine (by the clerk whose value lost): the loser's value returns.
out=$(sq a1 conflicts resolve "$cf1" --keep mine) || fail "resolve mine"
expect_eq "$out" "resolved $cf1 (kept mine)" "resolve output"
sync_all
same_everywhere "$p" 'r["name"]' 甲一 "--keep mine puts the losing value back"
conflicts_json admin | grep -q "$cf1" && fail "a resolved conflict is still listed as open"
conflict_check "$cf1" 'c["resolved"] is True' --all
# The resolution is a change like any other: no new conflict from it.
expect_eq "$(conflict_of admin "$p")" "" "no open conflict left on the record"

# --- --keep theirs (by the admin): the winner stays, the conflict closes.
gen_before=$(field admin "$p2" 'r["rev"]["gen"]')
out=$(sq admin conflicts resolve "$cf2" --keep theirs) || fail "resolve theirs"
expect_eq "$out" "resolved $cf2 (kept theirs)" "resolve output"
sync_all
same_everywhere "$p2" 'r["name"]' 乙二 "--keep theirs keeps the winner"
conflict_check "$cf2" 'c["resolved"] is True' --all
expect_eq "$(conflict_of admin "$p2")" "" "--keep theirs closes the conflict"

# --- --keep FILE: a JSON object of field values to set.
echo '{"phone": "13900000003", "address": "三号楼"}' >"$T/fix.json"
out=$(sq a2 conflicts resolve "$cf3" --keep "$T/fix.json") || fail "resolve FILE"
expect_eq "$out" "resolved $cf3 (kept $T/fix.json)" "resolve output"
sync_all
same_everywhere "$p3" 'r["phone"], r["address"]' "13900000003 三号楼" "--keep FILE sets the given values"
conflict_check "$cf3" 'c["resolved"] is True' --all
expect_eq "$(sq admin conflicts list)" "no open conflicts" "every conflict resolved"
# A resolved conflict cannot be resolved again; a bad id is "not found".
set +e
sq admin conflicts resolve "$cf1" --keep theirs >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 5 "resolving a resolved conflict"
pass "conflicts resolve --keep mine|theirs|FILE sync to everyone"

# --- A sync cut right after the server merged our change (before the pull
# brings the merged version back), then an offline edit: the other side's
# edit must still survive.
q=$(add_person a1 4)
psync a1
sync_all
sq a1 edit "$q" --set phone=13600000001
sq a2 edit "$q" --set address=四号楼
psync a2
set +e
POPSYNC_TEST_CUT_AFTER_FRAMES=2 sq a1 sync --quiet >/dev/null 2>&1   # Welcome, PushResult, then cut
rc=$?
set -e
expect_eq "$rc" 3 "a cut sync exits 3"
sq a1 edit "$q" --set ethnicity=汉
sync_all
for c in $CACHES; do
    expect_soft "$(field "$c" "$q" 'r["phone"], r["address"], r["ethnicity"]')" "13600000001 四号楼 汉" \
        "after a cut between merge and pull, every edit survives ($c)"
done

# --- Two edits of the same field made one after the other by one clerk
# are not concurrent: the second simply replaces the first, no conflict.
sq a1 edit "$q" --set phone=13600000002
sq a1 edit "$q" --set phone=13600000003
out=$(sq a1 sync 2>&1 | tr "\n" " ")
sync_all
same_everywhere "$q" 'r["phone"]' 13600000003 "a clerk's second edit of a field"
expect_soft "$(conflict_of admin "$q")" "" "a clerk's own two offline edits of one field raised a conflict (sync said: $out)"
# --- Three edits of one field, all on the same version, made at T1 < T2 <
# T3 and pushed T3, T1, T2: the latest (T3) must win, as it does when pushed
# in time order.  (A merged version must not carry an HLC older than the
# version it replaced, or a later push compares against the wrong time.)
r=$(add_person a1 5)
psync a1
sync_all
sq a1 edit "$r" --set name=时一
sleep 0.02
sq a3 edit "$r" --set name=时二
sleep 0.02
sq a2 edit "$r" --set name=时三
psync a2
h2=$(sq a2 show "$r" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rev"]["hlc"])')
psync a1 2>/dev/null
psync admin
h3=$(field admin "$r" 'r["rev"]["hlc"]')
[ "$h3" -ge "$h2" ] || soft_fail "a merge in which the pushed edit lost stamped the record with an older HLC ($h3 < $h2)"
psync a3 2>/dev/null
sync_all
for c in $CACHES; do
    expect_soft "$(field "$c" "$r" 'r["name"]')" 时三 "the latest of three edits wins whatever the push order ($c)"
done
stop_server
finish_soft
pass "concurrent edits merge field by field; conflicts resolve and sync"

# Conflict sides (issue 21, point 4): `conflicts resolve --keep mine|theirs`
# is relative to the cache that runs it (its own edit vs the other side),
# not to the winner and loser; the cache whose edit lost is told at its next
# sync; the author of either side may list the conflict with both values,
# even when the record has since left its scope.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TA ta2        # a second clerk of township A
start_server4
client a ta
client b ta2
client admin admin
p=$(add_person admin 1 --set orgunit=$TA_V1)
q=$(add_person admin 2 --set orgunit=$TA_V1)
psync admin
psync a
psync b

# --- Clerks A and B change the same field; B's edit is the later one and wins.
sq a edit "$p" --set phone=13100000001 >/dev/null
sleep 1.1
sq b edit "$p" --set phone=13100000002 >/dev/null
psync a
sq b sync >/dev/null 2>&1 || true
psync a
expect_eq "$(field a "$p" 'r["phone"]')" 13100000002 "B's later value wins at A"
cf=$(conflict_of b "$p")
[ -n "$cf" ] || fail "no conflict kept for A's losing edit"

# --- B (whose edit won) keeps mine: B's value stays, the conflict stays
# open for A.
out=$(sq b conflicts resolve "$cf" --keep mine) || fail "B --keep mine: $out"
grep -q "your edit is the one the record kept" <<<"$out" || fail "B was not told its value stands: $out"
psync b
psync a
for c in a b admin; do
    psync "$c"
    expect_eq "$(field "$c" "$p" 'r["phone"]')" 13100000002 "$c after B's --keep mine"
done
pass "--keep mine by the cache whose edit won keeps its own value"

# --- A's next sync tells it about the conflict its edit lost.
out=$(sq a sync 2>&1) || fail "A sync: $out"
grep -q "1 open conflict(s) where an edit made in this cache lost" <<<"$out" ||
    fail "A is not told about the conflict its edit lost: $out"
expect_eq "$(sq a sync --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["conflicts_lost"])')" 1 \
    "conflicts_lost in A's sync --json"
out=$(sq b sync 2>&1)
grep -q "open conflict" <<<"$out" && fail "B, whose edit won, is told of a conflict to look at: $out"
pass "the cache whose edit lost is told at its next sync"

# --- A lists it and sees both values, marked as its own losing edit.
conflicts_json a | python3 -c '
import json,sys
c=[x for x in json.load(sys.stdin) if x["id"]==sys.argv[1]]
assert c, "A cannot list the conflict"
c=c[0]
assert c["lost"]["phone"]=="13100000001" and c["kept"]["phone"]=="13100000002", c
assert c["mine"]=="lost", c["mine"]' "$cf" || fail "A's view of the conflict"

# --- A keeps mine: A's value.
out=$(sq a conflicts resolve "$cf" --keep mine) || fail "A --keep mine: $out"
expect_eq "$out" "resolved $cf (kept mine)" "A's resolve output"
for c in a b admin a; do psync "$c"; done
for c in a b admin; do
    expect_eq "$(field "$c" "$p" 'r["phone"]')" 13100000001 "$c after A's --keep mine"
done
out=$(sq a sync 2>&1)
grep -q "open conflict" <<<"$out" && fail "A is still told of a settled conflict: $out"
pass "--keep mine by the cache whose edit lost puts its value back everywhere"

# --- A third party has no "mine".
p2=$(add_person admin 3 --set orgunit=$TA_V1)
psync admin
psync a
psync b
sq a edit "$p2" --set phone=13200000001 >/dev/null
sleep 1.1
sq b edit "$p2" --set phone=13200000002 >/dev/null
psync a
sq b sync >/dev/null 2>&1 || true
cf2=$(conflict_of admin "$p2")
set +e
out=$(sq admin conflicts resolve "$cf2" --keep mine 2>&1)
rc=$?
set -e
expect_eq "$rc" 2 "--keep mine by a cache that made neither edit"
grep -q "made neither edit" <<<"$out" || fail "no reason given: $out"
sq admin conflicts resolve "$cf2" --keep lost >/dev/null || fail "--keep lost by the admin"
for c in admin a b; do psync "$c"; done
expect_eq "$(field b "$p2" 'r["phone"]')" 13200000001 "--keep lost puts the losing value back"
pass "a cache that made neither edit says kept or lost"

# --- A's edit of Q moves it to township B and loses its phone to the
# admin's later edit: every unit of the conflict is outside A's scope now,
# yet A, its author, is told, lists it with both values, and is told why
# it cannot settle it itself.
sq a edit "$q" --set orgunit=$TB_V1 --set phone=13300000001 >/dev/null
sleep 1.1
sq admin edit "$q" --set phone=13300000002 >/dev/null
psync a
sq admin sync >/dev/null 2>&1 || true
out=$(sq a sync 2>&1) || fail "A sync: $out"
grep -q "1 open conflict(s) where an edit made in this cache lost" <<<"$out" ||
    fail "A is not told about its out-of-scope conflict: $out"
cq=$(conflicts_json a | python3 -c '
import json,sys
c=[x for x in json.load(sys.stdin) if x["record_id"]==sys.argv[1]]
assert c, "A cannot list the conflict its own out-of-scope edit caused"
c=c[-1]
assert c["kept"]["orgunit"]==sys.argv[2] and c["lost"]["phone"]=="13300000001" and c["kept"]["phone"]=="13300000002", c
print(c["id"])' "$q" $TB_V1) || fail "A's view of its out-of-scope conflict"
set +e
out=$(sq a conflicts resolve "$cq" --keep mine 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] || fail "A settled a conflict on a record outside its scope"
grep -q "outside this cache's scope" <<<"$out" || fail "no reason given: $out"
stop_server
pass "the author of an edit that lost sees its conflict even when the record left its scope"

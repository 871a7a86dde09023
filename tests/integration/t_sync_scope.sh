# Scope (issue 4, case 4): a township pulls its subtree plus the migration
# records naming it as the other place, a collector its unit's subtree, an
# admin everything, a viewer no records at all.  A record that leaves a
# cache's scope (a person moved to another township) is dropped there and
# arrives at the new township; an edit made offline to it before the move
# was known becomes a conflict, not an error and not a loss.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TB tb
issue collector $TA_V1 coll
issue viewer $D4 viewer
start_server4
client a ta
client b tb
client coll coll
client admin admin
client viewer viewer
sync_all() { for c in a b coll admin; do psync "$c" 2>/dev/null; done; }
ids_of() { all_ids "$1" --deleted | tr '\n' ' '; }
sorted() { printf '%s\n' "$@" | sort | tr '\n' ' '; }

# Records: A's township level, two of A's communities, B, and a migration
# owned by B that names A as the other place; another names a place outside
# the district.
pa=$(add_person a 1)
pv2=$(add_person a 2 --set orgunit=$TA_V2)
pv1=$(add_person coll 3)                      # the collector's own unit by default
pb=$(add_person b 4)
mb=$(sq b add migration --set person_id="$pb" --set direction=outflow --set other_place_code=$TA \
    --set other_place=建设路街道 --set start_date=2024-03-01)
mx=$(sq b add migration --set person_id="$pb" --set direction=outflow --set other_place_code=110105001000 \
    --set other_place=北京市朝阳区 --set start_date=2024-04-01)
expect_eq "$(field coll "$pv1" 'r["orgunit"]')" $TA_V1 "collector's default unit"
# A collector cannot make a record outside its unit.
set +e
sq coll add person --set "id_number=$(idnum 1985-06-10 9 male)" --set name=越界 --set sex=male \
    --set birth_date=1985-06-10 --set orgunit=$TA_V2 >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 4 "collector adding outside its unit"
sync_all
sync_all

expect_eq "$(ids_of a)" "$(sorted "$pa" "$pv1" "$pv2" "$mb")" "township A: its subtree plus the migration naming it"
expect_eq "$(ids_of b)" "$(sorted "$pb" "$mb" "$mx")" "township B: its subtree only"
expect_eq "$(ids_of coll)" "$(sorted "$pv1")" "collector: its community only"
expect_eq "$(ids_of admin)" "$(sorted "$pa" "$pv1" "$pv2" "$pb" "$mb" "$mx")" "admin: everything"
pass "each role pulls its scope"

# A viewer may not sync records: exit 3 and an access error.
set +e
out=$(sq viewer sync 2>&1)
rc=$?
set -e
expect_eq "$rc" 3 "viewer sync exit code"
grep -qi "viewer may not\|access\|not allowed\|permission" <<<"$out" || fail "viewer sync: no access error: $out"
expect_eq "$(count viewer)" 0 "a viewer holds no records"
echo "viewer sync says: $out"
pass "a viewer cannot sync records"

# --- A moves out of scope: the admin moves pa from township A to B while
# A, offline, edits it.
sq admin edit "$pa" --set orgunit=$TB
psync admin
sq a edit "$pa" --set phone=13800000001
out=$(sq a sync 2>&1) && fail "a sync exited 0 although its edit was kept as a conflict: $out" ||
    [ $? -eq 6 ] || fail "a sync with an edit to a moved record failed: $out"
echo "township A sync says: $out"
grep -q "1 conflicts" <<<"$out" || fail "A is not told its edit was kept as a conflict: $out"
has a "$pa" && fail "township A still holds the record that moved to B"
psync b
expect_eq "$(field b "$pa" 'r["orgunit"], r["phone"]')" "$TB " "B holds the moved record, without A's stray edit"
cf=$(conflict_of admin "$pa")
[ -n "$cf" ] || fail "A's edit to a moved record was dropped without a conflict"
conflicts_json admin | python3 -c '
import json,sys
c=[x for x in json.load(sys.stdin) if x["id"]==sys.argv[1]][0]
assert c["lost"]["phone"]=="13800000001" and c["lost"]["orgunit"]=="'$TA'" and c["kept"]["orgunit"]=="'$TB'", c' "$cf" ||
    fail "the conflict does not hold A's edit whole"
# Both townships can see it (it concerns a record of each, then and now).
conflict_of a "$pa" | grep -qx "$cf" || fail "township A cannot see the conflict on its edit"
conflict_of b "$pa" | grep -qx "$cf" || fail "township B cannot see the conflict on its new record"
expect_eq "$(status_json a | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')" 0 "A's outbox is empty"
pass "a record moved away is dropped; a pending edit to it is a conflict"

# A move with no pending edit: dropped by the old township, received by the
# new one; a move inside A leaves the collector but not A.
sq admin edit "$pv2" --set orgunit=$TB_V1
sq admin edit "$pv1" --set orgunit=$TA_V2
psync admin
sync_all
expect_eq "$(ids_of a)" "$(sorted "$pv1" "$mb")" "township A after the moves"
expect_eq "$(ids_of b)" "$(sorted "$pa" "$pv2" "$pb" "$mb" "$mx")" "township B after the moves"
expect_eq "$(ids_of coll)" "" "the collector after its only record moved to another community"
# B points its migration elsewhere: A is no longer its other place.
sq b edit "$mb" --set other_place_code=$TC --set other_place=韩城镇
psync b
psync a
expect_eq "$(ids_of a)" "$(sorted "$pv1")" "A drops a migration that no longer names it"
# Moving back brings it back.
sq admin edit "$pa" --set orgunit=$TA
psync admin
psync a
has a "$pa" || fail "A did not receive the record moved back to it"
# Every cache equals the server's view of its scope.
for c in a b coll admin; do
    expect_eq "$(sq "$c" verify)" "in sync" "verify of $c after the moves"
done
stop_server
pass "scope exits and entries follow every move"

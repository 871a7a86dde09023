# delete_refs: deleting a record that others refer to (issue 21 point 8).
# Refused with the list of referring records unless --cascade (deletes them
# too, listed first) or --force (leaves them; the quality report flags every
# dangling reference); `popsync restore ID` undoes a delete and syncs like
# any edit; a delete pushed by a cache that cannot see the referring record
# is accepted by the server and shows in the quality report.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA townA
issue township $TA townA2
issue township $TB townB
start_server4
client admin admin
client ta townA
client ta2 townA2
client tb townB

# add_mother SEQ: a woman in ta, prints her id.
add_mother() {
    sq ta add person --set "id_number=$(idnum 1990-04-0$1 $1 female)" --set "name=母亲$1" --set sex=female \
        --set birth_date=1990-04-0$1
}
add_birth() { sq ta add birth --set mother_id="$1" --set child_sex=female --set birth_date=2024-02-02 --set birth_order=1; }
add_benefit() {
    sq ta add benefit --set person_id="$1" --set scheme=rural_reward --set period=2024 --set amount_fen=96000 \
        --set status=approved
}
add_visit() { sq ta add service_visit --set person_id="$1" --set service=followup --set visit_date=2024-03-01; }
add_migration() { sq ta add migration --set person_id="$1" --set direction=inflow --set start_date=2024-01-01; }
live() { sq "$1" list --format json | python3 -c 'import json,sys; print(sys.argv[1] in {r["id"] for r in json.load(sys.stdin)})' "$2"; }
quality() { sq admin report quality --format json; }
# issue_of JSON CHECK ID: is record ID reported under CHECK?
issue_of() {
    python3 -c 'import json,sys; q=json.loads(sys.argv[1]); print(any(i["check"]==sys.argv[2] and i["record_id"]==sys.argv[3] for i in q["issues"]))' "$@"
}

# --- Refused: a mother with a birth, a benefit, a visit and a migration.
m1=$(add_mother 1)
b1=$(add_birth "$m1")
bn1=$(add_benefit "$m1")
v1=$(add_visit "$m1")
g1=$(add_migration "$m1")
p0=$(pending ta)
set +e
sq ta delete "$m1" >"$T/del.out" 2>"$T/del.err"
rc=$?
set -e
expect_eq "$rc" 4 "deleting a referenced person is refused (exit 4)"
expect_eq "$(live ta "$m1")" True "the refused record stays"
expect_eq "$(pending ta)" "$p0" "a refused delete writes nothing"
for x in "$b1" "$bn1" "$v1" "$g1"; do grep -q "$x" "$T/del.err" || fail "the refusal does not list $x: $(cat "$T/del.err")"; done
grep -q "birth .*mother_id" "$T/del.err" || fail "the refusal does not say how the birth refers: $(cat "$T/del.err")"
grep -q -- "--cascade" "$T/del.err" && grep -q -- "--force" "$T/del.err" || fail "the refusal does not say what to do"
grep -qE '[0-9]{17}[0-9X]' "$T/del.err" && fail "an ID number in the refusal"
pass "delete of a referenced person is refused with the list of referring records"


# --- Cascade: the dependents first, then the record, all deleted.
sq ta delete "$m1" --cascade >"$T/casc.out" || fail "delete --cascade"
for x in "$b1" "$bn1" "$v1" "$g1" "$m1"; do expect_eq "$(live ta "$x")" False "cascade deleted $x"; done
grep -q "$b1" "$T/casc.out" || fail "cascade does not list the birth"
expect_eq "$(pending ta)" $((p0 + 5)) "cascade: five tombstones to push"
pass "delete --cascade deletes the dependents too"

# A birth names its child too: the child's record is not deleted silently.
m5=$(add_mother 5)
c5=$(sq ta add person --set "id_number=$(idnum 2024-02-02 55 female)" --set name=孩子 --set sex=female \
    --set birth_date=2024-02-02) || fail "add the child"
b5=$(sq ta add birth --set mother_id="$m5" --set child_id="$c5" --set child_sex=female --set birth_date=2024-02-02 \
    --set birth_order=1) || fail "add a birth naming its child"
set +e
sq ta delete "$c5" 2>"$T/c5.err"
rc=$?
set -e
expect_eq "$rc" 4 "deleting a child named by a birth is refused"
grep -q "$b5.*child_id" "$T/c5.err" || fail "the birth naming the child is not listed: $(cat "$T/c5.err")"
pass "a birth's child_id counts as a reference"

# --- A household: its members and its head.
m3=$(add_mother 3)
h3=$(sq ta add household --set head_id="$m3" --set address=三号院)
sq ta edit "$m3" --set household_id="$h3"
p3=$(add_person ta 33 --set household_id="$h3")
b3=$(sq ta add birth --set mother_id="$m3" --set child_sex=male --set birth_date=2023-05-05 --set birth_order=1)
set +e
sq ta delete "$h3" 2>"$T/h.err"
rc=$?
set -e
expect_eq "$rc" 4 "deleting a household with members is refused"
grep -q "$p3.*household_id" "$T/h.err" || fail "the member is not listed: $(cat "$T/h.err")"
grep -q "$m3.*household_id" "$T/h.err" || fail "the head (also a member) is not listed: $(cat "$T/h.err")"
set +e
sq ta delete "$m3" 2>"$T/m3.err"
rc=$?
set -e
expect_eq "$rc" 4 "deleting the head of a household is refused"
grep -q "$h3.*head_id" "$T/m3.err" || fail "the household she heads is not listed: $(cat "$T/m3.err")"
sq ta delete "$m3" --cascade >"$T/m3.out" || fail "cascade of the head"
# The member (referring to the household) is deleted before the household.
lp=$(grep -n "$p3" "$T/m3.out" | cut -d: -f1)
lh=$(grep -n "$h3" "$T/m3.out" | cut -d: -f1)
[ -n "$lp" ] && [ -n "$lh" ] && [ "$lp" -lt "$lh" ] || fail "cascade order: member line $lp, household line $lh"
for x in "$p3" "$h3" "$b3" "$m3"; do expect_eq "$(live ta "$x")" False "cascade of the head deleted $x"; done
pass "a household with members, and its head, are refused; --cascade takes the members too"

# --- Force: the person goes, her records stay and dangle.
m2=$(add_mother 2)
b2=$(add_birth "$m2")
bn2=$(add_benefit "$m2")
v2=$(add_visit "$m2")
psync ta
psync ta2
expect_eq "$(live ta2 "$m2")" True "the second cache holds the person"
sq ta delete "$m2" --force 2>"$T/force.err" || fail "delete --force"
grep -q "$bn2" "$T/force.err" || fail "--force does not say what it leaves: $(cat "$T/force.err")"
expect_eq "$(live ta "$m2") $(live ta "$bn2")" "False True" "--force deletes only the record"
psync ta
psync admin
psync ta2
expect_eq "$(live ta2 "$m2")" False "the delete reached the second cache"
q=$(quality) || fail "report quality"
expect_eq "$(issue_of "$q" missing_mother "$b2")" True "quality: the birth of the deleted mother"
expect_eq "$(issue_of "$q" dangling_reference "$bn2")" True "quality: the benefit of the deleted person"
expect_eq "$(issue_of "$q" dangling_reference "$v2")" True "quality: the visit of the deleted person"
python3 -c 'import json,sys; q=json.loads(sys.argv[1]); d=[i["detail"] for i in q["issues"] if i["record_id"]==sys.argv[2]]; assert d==["person_id: no live person record"], d' "$q" "$bn2" ||
    fail "dangling detail"
pass "delete --force leaves the dependents; the quality report flags every dangling reference"

# --- Restore: a new revision, synced like any edit.
gen=$(field ta "$m2" 'r["rev"]["gen"]')
sq ta restore "$m2" || fail "restore"
expect_eq "$(live ta "$m2")" True "restored locally"
expect_eq "$(pending ta)" 1 "a restore is one change to push"
psync ta
psync ta2
psync admin
expect_eq "$(live ta2 "$m2")" True "after sync the other cache sees the record again"
expect_eq "$(field ta2 "$m2" 'int(r["rev"]["gen"])')" $((gen + 1)) "restore is a new revision"
q=$(quality)
expect_eq "$(issue_of "$q" dangling_reference "$bn2") $(issue_of "$q" missing_mother "$b2")" "False False" \
    "after the restore nothing dangles"
"$POPSYNCD" audit verify --data "$T/server" >/dev/null || fail "audit chain"
sq ta restore "$m2" 2>"$T/again.err" || fail "restoring a live record"
grep -q "not deleted" "$T/again.err" || fail "restore of a live record does not say so"
# A restored birth whose mother is still deleted says so.
sq ta restore "$b1" 2>"$T/b1.err" || fail "restore of a birth"
grep -q "mother_id .*deleted" "$T/b1.err" || fail "restore does not point at the deleted mother: $(cat "$T/b1.err")"
pass "restore undoes a delete and syncs to the other caches"

# --- A delete the cache cannot see the consequences of: the admin records a
# visit in township B for a person of township A; township A does not hold
# the visit, so its delete is not refused, and the server accepts it (it
# does not refuse deletes: the quality report catches the dangling visit).
m4=$(add_mother 4)
psync ta
psync admin
v4=$(sq admin add service_visit --set person_id="$m4" --set service=consultation --set visit_date=2024-03-02 \
    --set orgunit=$TB_V1) || fail "admin adds a visit in B"
psync admin
psync ta
expect_eq "$(live ta "$v4")" False "township A does not hold B's visit"
sq ta delete "$m4" || fail "the delete is refused although the cache holds no referring record"
psync ta
psync admin
expect_eq "$(issue_of "$(quality)" dangling_reference "$v4")" True "quality: the out-of-scope visit dangles"
pass "a pushed delete of a record referred to outside the cache's scope is accepted and reported"

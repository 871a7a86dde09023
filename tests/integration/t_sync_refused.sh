# Refused changes are kept whole (issue 21, point 1): a new record, an edit
# and a delete that the server refuses stay in the cache, with the server's
# reasons, until the clerk corrects them (`popsync refused edit`: back into
# the outbox, accepted at the next sync) or discards them.  No sync, however
# often it runs, drops them; `status` counts them like `refused list`.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TB tb
start_server4
client a ta
client b tb
client admin admin

# refused_json NAME: `popsync refused list --json`.
refused_json() { sq "$1" refused list --json; }
nrefused() { refused_json "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
nstatus() { status_json "$1" | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["refused_count"]==s["rejected_count"]==len(s["rejected"]); print(s["refused_count"])'; }

gone=$(add_person a 1)
live=$(add_person a 2)
v=$(sq a add service_visit --set person_id="$live" --set service=followup --set visit_date=2025-05-06)
m=$(sq a add migration --set person_id="$live" --set direction=inflow --set other_place_code=$TB \
    --set other_place=文化路街道 --set start_date=2024-03-01 --set employer=钢城钢铁公司)
psync a
psync admin
psync b
# The admin deletes a person that A's cache still shows alive.
sq admin delete "$gone"
psync admin

# Offline, A makes a new visit for that person and moves its visit to him:
# locally both look fine; the server refuses each.  B (the migration's
# other place) may not delete A's migration: since issue 16 point 5 the CLI
# refuses that offline with the server's words, so nothing is queued.
nv=$(sq a add service_visit --set person_id="$gone" --set service=consultation --set visit_date=2025-06-01 \
    --set provider=王医生 --set outcome=随访完成)
sq a edit "$v" --set person_id="$gone" --set outcome=复查
set +e
outd=$(sq b delete "$m" 2>&1)
rcd=$?
set -e
expect_eq "$rcd" 4 "exit of the other place's delete ($outd)"
grep -q "deleted: the other place may not delete or restore the record" <<<"$outd" || fail "offline refusal: $outd"

set +e
out=$(sq a sync 2>&1)
rc=$?
outb=$(sq b sync 2>&1)
rcb=$?
set -e
echo "A's sync: $out"
echo "B's sync: $outb"
expect_eq "$rc" 6 "exit code of a sync with refused changes"
expect_eq "$rcb" 0 "exit code of B's sync (its delete was refused offline)"
grep -q "2 rejected" <<<"$out" || fail "A's sync does not count its refusals: $out"
grep -q "refused edit" <<<"$out" || fail "A's sync does not say how to correct: $out"

# Kept whole, with the server's reasons.
refused_json a | python3 -c '
import json,sys
e={x["id"]:x for x in json.load(sys.stdin)}
nv,v=sys.argv[1],sys.argv[2]
assert set(e)=={nv,v}, e.keys()
n=e[nv]; assert n["change"]=="new" and n["status"]=="rejected" and n["kind"]=="service_visit", n
assert n["record"]["provider"]=="王医生" and n["record"]["outcome"]=="随访完成" and n["record"]["visit_date"]=="2025-06-01", n
assert any(x["field"]=="person_id" for x in n["errors"]), n
d=e[v]; assert d["change"]=="edit" and d["record"]["outcome"]=="复查" and d["record"]["person_id"]==sys.argv[3], d
assert any(x["field"]=="person_id" and x["reason"] for x in d["errors"]), d
' "$nv" "$v" "$gone" || fail "A's refused changes are not kept whole with their reasons"
refused_json b | python3 -c '
import json,sys
e=json.load(sys.stdin)
assert len(e)==0, e
' || fail "B's cache holds a refused change"
pass "a refused new record and edit are kept whole with the server's reasons; the other place's delete is refused offline"

# The record view shows what the server holds: the edit is not applied, the
# new visit is not there, the migration is alive in B.
expect_eq "$(field a "$v" 'r["person_id"], r.get("outcome","")')" "$live " "A's view of the refused edit"
has a "$nv" && fail "the refused new record is shown as if the server held it"
sq a show "$nv" 2>&1 | grep -q "refused show $nv" || fail "show of a refused new record does not point to 'refused show'"
expect_eq "$(field b "$m" 'r["deleted"]')" False "B's view of the refused delete"
sq a refused show "$nv" | grep -q "person_id" || fail "refused show lacks the reason"
sq a refused show "$nv" | grep -q "王医生" || fail "refused show lacks the record"

# Nothing but discard removes them: more syncs, a verify, a restart.
for _ in 1 2; do sq a sync --quiet || fail "an idle sync with kept refusals failed"; done
sq a verify >/dev/null || fail "verify"
expect_eq "$(nrefused a)" 2 "refused changes after more syncs and a verify"
expect_eq "$(nstatus a)" 2 "status counts the refused changes like the list"
sq a status | grep -q "^refused: *2" || fail "the text status does not count 2 refused: $(sq a status)"
pass "syncs and verify keep refused changes; status counts them like the list"

# Correct them: back into the outbox, accepted at the next sync.
sq a refused edit "$nv" --set person_id="$live" | grep -q "corrected" || fail "refused edit"
expect_eq "$(nrefused a)" 1 "refused changes after one correction"
expect_eq "$(pending a)" 1 "the correction waits in the outbox"
set +e
sq a refused edit "$v" --set person_id=not-a-uuid >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 4 "an invalid correction is refused locally"
expect_eq "$(nrefused a)" 1 "an invalid correction keeps the refused change"
sq a refused edit "$v" --set person_id="$live" >/dev/null || fail "refused edit of the edit"
sq a sync --quiet || fail "the sync of corrected changes did not exit 0"
expect_eq "$(nrefused a)" 0 "refused changes after the corrections were accepted"
psync admin
expect_eq "$(field admin "$nv" 'r["person_id"], r["provider"], r["outcome"]')" "$live 王医生 随访完成" \
    "the corrected new visit, as the clerk typed it, on the server"
expect_eq "$(field admin "$v" 'r["person_id"], r["outcome"]')" "$live 复查" "the corrected edit on the server"
pass "refused edit puts the corrected change back in the outbox; the next sync is accepted"

# Discard is deliberate and final.
set +e
sq b refused discard 0190f5c2-0000-7000-8000-000000000001 >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 5 "discarding an unknown refused change"
g2=$(add_person a 3)
psync a
psync admin
sq admin delete "$g2"
psync admin
sq a edit "$v" --set person_id="$g2" --set outcome=再查
sq a sync --quiet 2>/dev/null || [ $? -eq 6 ] || fail "sync of a change to be refused"
expect_eq "$(nrefused a)" 1 "refused changes before discard"
sq a refused discard "$v" | grep -q "discarded 1" || fail "refused discard"
expect_eq "$(nrefused a)" 0 "refused changes after discard"
sq a sync --quiet || fail "sync after discard"
psync admin
expect_eq "$(field admin "$v" 'r["outcome"]')" 复查 "the discarded edit never reaches the server"
sq b sync --quiet || fail "sync of b"
expect_eq "$(field admin "$m" 'r["deleted"]')" False "the migration stays alive"
expect_eq "$(sq b refused list)" "no refused changes" "text list after discard"
pass "refused discard drops a refused change deliberately"
stop_server

# Two-place exchange (issue 4, case 5): a migration record made by the
# inflow township names the outflow township as its other place; the other
# place sees it, may set submitted_date and feedback_date (nothing else),
# and dates set on either side sync to both.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TB tb
start_server4
client a ta
client b tb
client admin admin
sync_all() { for c in a b admin; do psync "$c" 2>/dev/null; done; }
dates() { field "$1" "$m" 'r["submitted_date"], r["feedback_date"], r["employer"]'; }

# raw_push NAME ID FIELD=VALUE...: sends NAME's copy of record ID with these
# values straight to the server (ps_testclient, a hand-made Push), past the
# client's local checks, then syncs NAME.  Prints the frames received.
raw_push() {
    local name=$1 id=$2 cert
    shift 2
    cert=$(status_json "$name" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')
    sq "$name" show "$id" --format json | python3 -c '
import json,sys
r=json.load(sys.stdin)
for kv in sys.argv[1:]:
    k,v=kv.split("=",1); r[k]=v
print(json.dumps(r))' "$@" >"$T/raw.json"
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/$cert.crt" --key "$T/pki/$cert.key" \
        --hello --hex "$(push_hex "$T/raw.json" 1)" --wait 1000 | grep frame | tr '\n' ' '
    psync "$name"
}

# b_edit ID FIELD=VALUE...: the outflow township edits the migration with
# the CLI.  If the CLI refuses, the failure is recorded and the same change
# is sent to the server directly, so the server's own rules are still
# tested.
b_edit() {
    local id=$1 out rc a sets=()
    shift
    for a in "$@"; do sets+=(--set "$a"); done
    set +e
    out=$(sq b edit "$id" "${sets[@]}" 2>&1)
    rc=$?
    set -e
    [ $rc -eq 0 ] && return 0
    soft_fail "the other place cannot make a permitted edit ($*) with the CLI: exit $rc: $(echo "$out" | tr '\n' ' ')"
    echo "sent directly: $(raw_push b "$id" "$@")"
}

p=$(add_person a 1 --set registration=migrant)
m=$(sq a add migration --set person_id="$p" --set direction=inflow --set other_place_code=$TB \
    --set other_place=文化路街道 --set start_date=2024-03-01 --set employer=钢城钢铁公司)
psync a
psync b
has b "$m" || fail "the outflow township does not see the migration naming it"
has b "$p" && fail "the outflow township received the person, which is outside its scope"
expect_eq "$(dates b)" "  钢城钢铁公司" "B's copy of the migration"
pass "the other place sees the migration record"

# B answers: submitted and feedback dates.
b_edit "$m" submitted_date=2024-03-05 feedback_date=2024-03-09
out=$(sq b sync 2>&1) || true
echo "B's sync says: $out"
sync_all
for c in a b admin; do
    expect_soft "$(dates "$c")" "2024-03-05 2024-03-09 钢城钢铁公司" "dates set by the other place, seen by $c"
done
expect_soft "$(status_json b | python3 -c 'import json,sys; print(json.load(sys.stdin)["rejected_count"])')" 0 \
    "rejections of the other place's permitted edit"

# A changes the submission date: B sees it.
sq a edit "$m" --set submitted_date=2024-03-06
sync_all
for c in a b admin; do
    expect_soft "$(field "$c" "$m" 'r["submitted_date"]')" 2024-03-06 "A's submission date seen by $c"
done

# B may not change anything else: the server refuses, B's status says so,
# and A's employer stays everywhere.
set +e
out=$(sq b edit "$m" --set employer=别的公司 2>&1)
rc=$?
[ $rc -eq 0 ] && out=$(sq b sync 2>&1)
set -e
if [ $rc -ne 0 ]; then
    # The CLI already refuses it locally; the server must refuse it too.
    soft_fail "B's employer change was refused locally (exit $rc), so 'popsync status' cannot show the server's rejection: $(echo "$out" | tr '\n' ' ')"
    echo "sent directly: $(raw_push b "$m" employer=别的公司)"
else
    echo "B's sync says: $out"
    grep -q "1 rejected" <<<"$out" || fail "the sync does not report the rejection: $out"
    status_json b | python3 -c '
import json,sys
s=json.load(sys.stdin)
errs=[e for r in s["rejected"] if r["id"]==sys.argv[1] for e in r["errors"]]
assert any(e["field"]=="employer" and "submitted_date and feedback_date" in e["reason"] for e in errs), s["rejected"]
' "$m" || fail "popsync status does not show why the employer change was rejected"
    sq b status | grep "rejected $m: employer" || fail "the text status does not show the rejection"
fi
sync_all
for c in a b admin; do
    expect_eq "$(field "$c" "$m" 'r["employer"]')" 钢城钢铁公司 "A's employer kept in $c"
done
# Nor may B delete A's record: a tombstone changes no field, and is refused
# on its own account.
sq b delete "$m"
out=$(sq b sync 2>&1 || true)
grep -q "1 rejected" <<<"$out" || fail "the other place's delete was not rejected: $out"
sq b status | grep -q "rejected $m: deleted" || fail "status does not say why the delete was refused"
sync_all
for c in a b admin; do
    expect_eq "$(field "$c" "$m" 'r["deleted"]')" False "A's record still live in $c"
done
stop_server
finish_soft
pass "two-place exchange: dates sync both ways, other fields stay the owner's"

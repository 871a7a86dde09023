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

# raw_result NAME ID FIELD=VALUE...: like raw_push, but prints the server's
# PushResult's reasons (the text in its body) and does not sync.
raw_result() {
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
        --hello --dump --hex "$(push_hex "$T/raw.json" 99)" --wait 1000 | grep -o "PushResult req=2 body [0-9a-f]*" |
        python3 -c 'import sys; b=bytes.fromhex(sys.stdin.read().split()[-1]); print(b.decode("utf-8","replace"))'
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

# B may not change anything else: the CLI refuses it offline with the
# server's wording (issue 16 point 5), and the server refuses the same
# change sent past the CLI; A's employer stays everywhere.
set +e
out=$(sq b edit "$m" --set employer=别的公司 2>&1)
rc=$?
set -e
expect_eq "$rc" 4 "exit of the other place's employer edit ($out)"
grep -q "employer: the other place may set only submitted_date and feedback_date" <<<"$out" ||
    fail "the offline refusal does not use the server's wording: $out"
expect_eq "$(pending b)" 0 "changes queued by the refused edit"
r=$(raw_result b "$m" employer=别的公司)
grep -q "the other place may set only submitted_date and feedback_date" <<<"$r" ||
    fail "the server did not refuse the employer change sent past the CLI: $r"
sync_all
for c in a b admin; do
    expect_eq "$(field "$c" "$m" 'r["employer"]')" 钢城钢铁公司 "A's employer kept in $c"
done
# Nor may B delete A's record: refused offline, and by the server (a
# tombstone changes no field, and is refused on its own account).
set +e
out=$(sq b delete "$m" 2>&1)
rc=$?
set -e
expect_eq "$rc" 4 "exit of the other place's delete ($out)"
grep -q "deleted: the other place may not delete or restore the record" <<<"$out" ||
    fail "the offline refusal of the delete: $out"
r=$(raw_result b "$m" deleted=True)
grep -q "the other place may not delete or restore the record" <<<"$r" ||
    fail "the server did not refuse the delete sent past the CLI: $r"
sync_all
for c in a b admin; do
    expect_eq "$(field "$c" "$m" 'r["deleted"]')" False "A's record still live in $c"
done
stop_server
finish_soft
pass "two-place exchange: dates sync both ways, other fields stay the owner's"

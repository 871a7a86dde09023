# A certificate whose org unit is not in the server's org-unit tree has no
# scope the tree can decide (issue 14, point 2).  The access policy refuses
# it consistently, at Hello, with an error that says why.  Before, the two
# forms of the subtree rule disagreed: it was refused when it created a
# record (the tree: unknown unit) but pulled and edited the administrator's
# migration whose other place shared its code prefix (the code rule).
. "$(dirname "$0")/lib4.sh"
: "${PS_TESTCLIENT:?}"
STRANGER=110105001000    # a township of another district: not in the demo tree
make_pki4
issue township $STRANGER stranger
issue township $TA ta
start_server4
client admin admin
client stranger stranger
client ta ta

p=$(add_person admin 1 --set orgunit=$TA_V1)
m=$(sq admin add migration --set person_id="$p" --set orgunit=$TA_V1 --set direction=outflow \
    --set other_place_code=$STRANGER --set other_place=北京市东城区 --set start_date=2024-03-01 \
    --set submitted_date=2024-03-05)
psync admin

# --- The stranger's sync is refused at Hello, with the reason.
set +e
out=$(sq stranger sync 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] || fail "a certificate outside the tree synced (exit 0): $out"
grep -q "org unit $STRANGER is not in the server's org-unit tree" <<<"$out" ||
    fail "the refusal does not say why: $out"
has stranger "$m" && fail "the stranger pulled the administrator's migration"
pass "a certificate whose unit is not in the tree is refused at Hello with a clear error"

# --- Nothing it sends past Hello is served: an edit of the migration as
# its "other place" (feedback_date), sent straight to the server.
sq admin show "$m" --format json | python3 -c '
import json,sys
r=json.load(sys.stdin); r["feedback_date"]="2024-04-01"
print(json.dumps(r))' >"$T/raw.json"
frames=$("$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/stranger.crt" \
    --key "$T/pki/stranger.key" --hello --hex "$(push_hex "$T/raw.json" 1)" --wait 1000 | grep frame | tr '\n' ' ')
grep -q "frame Error req=1 error (fatal): certificate org unit $STRANGER is not in" <<<"$frames" ||
    fail "Hello was not refused: $frames"
grep -q "frame PushResult" <<<"$frames" && fail "a Push after the refused Hello was answered: $frames"
psync admin
expect_eq "$(field admin "$m" 'r["feedback_date"]')" "" "the stranger's edit of the migration"
pass "its edit of another unit's record is not applied"

# --- A certificate of a unit in the tree still syncs, and the admin too.
psync ta
has ta "$p" || fail "township A did not get its person"
stop_server
pass "certificates of units in the tree are unaffected"

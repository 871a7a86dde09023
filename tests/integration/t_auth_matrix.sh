# Authorisation matrix (issue 5, item 8): every role x every message a
# client may send x a record in and out of its scope, asked by
# ps_authmatrix, compared whole with the policy written below.  Request
# types of the message table (common/msgtab.def) that the tool has no case
# for are asked with an empty body ("-"), and the tool itself fails when
# the server lets a role send what the access policy does not.  The same
# table is in docs/security.md §8.
. "$(dirname "$0")/lib4.sh"
: "${PS_AUTHMATRIX:?}"
make_pki4
issue township $TA ta
issue collector $TA_V1 coll
issue viewer $TA viewer
start_server4
client admin admin
client admin2 admin

# Three persons: in township A's community 1 (the collector's), in A's
# community 2, and in township B.  Each has a migration submitted long ago
# without feedback (a quality issue in its unit: feedback_overdue) and a
# conflict (two admins edit its phone at once).
add() { # add CACHE UNIT SEQ -> id
    add_person "$1" "$3" --set orgunit="$2"
}
pa=$(add admin $TA_V1 1)
pa2=$(add admin $TA_V2 2)
pb=$(add admin $TB_V1 3)
for p in "$pa:$TA_V1" "$pa2:$TA_V2" "$pb:$TB_V1"; do
    sq admin add migration --set person_id="${p%%:*}" --set orgunit="${p#*:}" --set direction=outflow \
        --set other_place_code=110105001000 --set other_place=北京市东城区 --set start_date=2024-03-01 \
        --set submitted_date=2024-03-05 >/dev/null
done
psync admin
psync admin2
for r in "$pa" "$pa2" "$pb"; do
    sq admin edit "$r" --set phone=13000000001 >/dev/null
    sq admin2 edit "$r" --set phone=13000000002 >/dev/null
done
psync admin
sq admin2 sync --quiet >/dev/null 2>&1 || true
for r in "$pa" "$pa2" "$pb"; do
    [ -n "$(conflict_of admin "$r" --all)" ] || fail "no conflict was made on $r"
done
idn() { field admin "$1" 'r["id_number"]'; }
month=$(date +%Y-%m)

# matrix WHO CLOSE_MONTH IN_ID IN_UNIT IN_TOWN OUT_ID OUT_UNIT OUT_TOWN
matrix() {
    "$PS_AUTHMATRIX" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/$1.crt" --key "$T/pki/$1.key" \
        --month "$month" --close-month "$2" \
        --in-id "$3" --in-idnum "$(idn "$3")" --in-unit "$4" --in-town "$5" \
        --out-id "$6" --out-idnum "$(idn "$6")" --out-unit "$7" --out-town "$8" 2>>"$T/matrix.err" |
        sed "s/^/$1 /"
}
{
    # The admin's scope is the whole district: "out" is township B and must be allowed too.
    matrix admin 2024-01 "$pa" $TA_V1 $TA "$pb" $TB_V1 $TB
    matrix ta 2024-02 "$pa" $TA_V1 $TA "$pb" $TB_V1 $TB
    # The collector's "out" is a community of its own township.
    matrix coll 2024-03 "$pa" $TA_V1 $TA "$pa2" $TA_V2 $TA
    matrix viewer 2024-04 "$pa" $TA_V1 $TA "$pb" $TB_V1 $TB
} >"$T/matrix.out" || fail "ps_authmatrix failed: $(cat "$T/matrix.err")"

# ROLE MESSAGE CASE RESULT.  "in": a record (or township) in the role's
# scope; "out": one outside it; "-": no record involved.  allowed = answered
# (with the record when a record is asked for), refused = an access Error,
# no-data = answered without the record.
cat >"$T/expected" <<'EOF'
admin Push in allowed
admin Push out allowed
admin Pull in allowed
admin Pull out allowed
admin Ping - allowed
admin OrgUnitsRequest - allowed
admin ConflictList in allowed
admin ConflictList out allowed
admin VerifyRequest - allowed
admin VerifyBucketRequest in allowed
admin VerifyBucketRequest out allowed
admin FetchRequest in allowed
admin FetchRequest out allowed
admin Query/group in allowed
admin Query/group out allowed
admin Query/list in allowed
admin Query/list out allowed
admin ReportRequest/monthly in allowed
admin ReportRequest/monthly out allowed
admin ReportRequest/quality in allowed
admin ReportRequest/quality out allowed
admin CloseRequest/submit in allowed
admin CloseRequest/submit out allowed
admin CloseRequest/approve in allowed
admin CloseRequest/status in allowed
admin HistoryRequest in allowed
admin HistoryRequest out allowed
admin NodeStatusRequest - allowed
ta Push in allowed
ta Push out refused
ta Pull in allowed
ta Pull out no-data
ta Ping - allowed
ta OrgUnitsRequest - allowed
ta ConflictList in allowed
ta ConflictList out no-data
ta VerifyRequest - allowed
ta VerifyBucketRequest in allowed
ta VerifyBucketRequest out no-data
ta FetchRequest in allowed
ta FetchRequest out no-data
ta Query/group in allowed
ta Query/group out no-data
ta Query/list in allowed
ta Query/list out no-data
ta ReportRequest/monthly in allowed
ta ReportRequest/monthly out no-data
ta ReportRequest/quality in allowed
ta ReportRequest/quality out no-data
ta CloseRequest/submit in allowed
ta CloseRequest/submit out refused
ta CloseRequest/approve in refused
ta CloseRequest/status in allowed
ta HistoryRequest in allowed
ta HistoryRequest out no-data
ta NodeStatusRequest - refused
coll Push in allowed
coll Push out refused
coll Pull in allowed
coll Pull out no-data
coll Ping - allowed
coll OrgUnitsRequest - allowed
coll ConflictList in no-data
coll ConflictList out no-data
coll VerifyRequest - allowed
coll VerifyBucketRequest in allowed
coll VerifyBucketRequest out no-data
coll FetchRequest in allowed
coll FetchRequest out no-data
coll Query/group in refused
coll Query/group out refused
coll Query/list in refused
coll Query/list out refused
coll ReportRequest/monthly in refused
coll ReportRequest/monthly out refused
coll ReportRequest/quality in refused
coll ReportRequest/quality out refused
coll CloseRequest/submit in refused
coll CloseRequest/submit out refused
coll CloseRequest/approve in refused
coll CloseRequest/status in refused
coll HistoryRequest in allowed
coll HistoryRequest out no-data
coll NodeStatusRequest - refused
viewer Push in refused
viewer Push out refused
viewer Pull in refused
viewer Pull out refused
viewer Ping - allowed
viewer OrgUnitsRequest - allowed
viewer ConflictList in refused
viewer ConflictList out refused
viewer VerifyRequest - refused
viewer VerifyBucketRequest in refused
viewer VerifyBucketRequest out refused
viewer FetchRequest in refused
viewer FetchRequest out refused
viewer Query/group in allowed
viewer Query/group out no-data
viewer Query/list in refused
viewer Query/list out refused
viewer ReportRequest/monthly in allowed
viewer ReportRequest/monthly out no-data
viewer ReportRequest/quality in allowed
viewer ReportRequest/quality out no-data
viewer CloseRequest/submit in refused
viewer CloseRequest/submit out refused
viewer CloseRequest/approve in refused
viewer CloseRequest/status in allowed
viewer HistoryRequest in refused
viewer HistoryRequest out refused
viewer NodeStatusRequest - refused
EOF
if ! diff -u "$T/expected" "$T/matrix.out" >"$T/matrix.diff"; then
    cat "$T/matrix.diff" >&2
    echo "--- reasons given by the server:" >&2
    cat "$T/matrix.err" >&2
    fail "the authorisation matrix differs from the policy"
fi
pass "authorisation matrix: $(wc -l <"$T/expected") cases as the policy says"
stop_server

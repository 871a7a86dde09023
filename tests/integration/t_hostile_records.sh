# Hostile peer, record size (issue 15, point 3).  A Push of three new
# persons: one carrying a 12 MiB unknown field number 100, one plain, one
# tombstone whose (unvalidated) name is 20,000 bytes.  The first and third
# are refused with a per-record error naming what to do, the plain one
# lands; a record with a small unknown field (100 bytes) is accepted, kept
# and replicated (forward compatibility).  The store does not grow by the
# refused megabytes.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"
make_pki
start_server
tc() {
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/town1.crt" \
        --key "$T/pki/town1.key" --wait 60000 --hello "$@"
}
store_kb() { du -sk "$T/server" | cut -f1; }
before=$(store_kb)
tc --push-unknown $((12 << 20)) >"$T/big.out" 2>&1
grep -q "^frame PushResult req=2" "$T/big.out" || fail "no PushResult: $(cat "$T/big.out")"
grep -qx "result lcn=1 status=3 errors: record: carries 1258[0-9]* bytes of unknown fields (limit 4096), made by a newer or foreign program: update popsync or re-enter the record" "$T/big.out" ||
    fail "the 12 MiB unknown field was not refused: $(cat "$T/big.out")"
grep -q "^result lcn=2 status=1$" "$T/big.out" || fail "the plain record did not land: $(cat "$T/big.out")"
grep -qx "result lcn=3 status=3 errors: record: is 20[0-9]* bytes, over the limit of 8192 for a person: shorten its fields" \
    "$T/big.out" || fail "the oversized tombstone was not refused: $(cat "$T/big.out")"
after=$(store_kb)
[ $((after - before)) -lt 4096 ] || fail "the store grew by $((after - before)) KiB"
pass "12 MiB unknown field refused per record, the rest landed; store grew $((after - before)) KiB"
pass "  $(grep '^result lcn=1' "$T/big.out")"

tc --push-unknown 100 >"$T/small.out" 2>&1
grep -q "^result lcn=1 status=1$" "$T/small.out" || fail "a 100-byte unknown field was refused: $(cat "$T/small.out")"
# The admin pulls it: 3 records in all (two plain ones and this one).
client admin admin
ps --data "$T/admin" sync --quiet || fail "admin pull"
expect_eq "$(count admin)" 3 "records the admin holds"
pass "a 100-byte unknown field is kept and replicated"
stop_server

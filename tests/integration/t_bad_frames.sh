# A garbage frame closes only that connection; the server keeps serving the
# others, including one that was open at the time.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"
make_pki
start_server --handshake-timeout 1000 --idle-timeout 20000
tc() {
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/town1.crt" \
        --key "$T/pki/town1.key" "$@"
}
# A well-behaved connection stays open through all of the below.
tc --hello --wait 6000 > "$T/bystander.out" &
bystander=$!
sleep 0.3

# Garbage after Hello: a valid header whose body is not a Push.
out=$(tc --hello --hex 0000000c0300000000000007ffffffff --wait 3000)
grep -q "error (fatal): malformed Push" <<<"$out" || fail "garbage body: $out"
echo "$out" | tail -1 | grep -qx closed || fail "garbage body did not close: $out"
# Random bytes as a header: length far over the limit.
out=$(tc --hello --hex deadbeefdeadbeefdeadbeef --wait 3000)
grep -q "larger than the limit" <<<"$out" || fail "oversized: $out"
echo "$out" | tail -1 | grep -qx closed || fail "oversized did not close: $out"
# A length too short to hold a header.
out=$(tc --hello --hex 00000003010000 --wait 3000)
echo "$out" | tail -1 | grep -qx closed || fail "short length did not close: $out"
# Push before Hello.
out=$(tc --hex 0000000803000000000000 --hex 01 --wait 3000)
grep -q "before Hello" <<<"$out" || fail "push before hello: $out"
# Unknown type and unknown flags: an Error, and the connection stays open.
out=$(tc --hello --hex 000000087700000000000005 --hex 000000080880000000000006 --wait 1500)
grep -q "req=5 error: unknown or unexpected message type 119" <<<"$out" || fail "unknown type: $out"
grep -q "req=6 error: unknown frame flags" <<<"$out" || fail "unknown flags: $out"
echo "$out" | tail -1 | grep -qx open || fail "unknown type closed the connection: $out"
# Every server -> client type of the message table (common/msgtab.def),
# Error included, sent to the server: refused as unexpected, connection open.
: "${PS_MSGTAB:?}"
frames=()
for t in $("$PS_MSGTAB" --types s2c); do
    frames+=(--hex "$(printf '00000008%02x000000%08x' "$t" $((100 + t)))")
done
[ ${#frames[@]} -ge 13 ] || fail "ps_msgtab listed ${#frames[@]} server -> client types"
out=$(tc --hello "${frames[@]}" --wait 2000)
for t in $("$PS_MSGTAB" --types s2c); do
    grep -q "req=$((100 + t)) error: unknown or unexpected message type $t\$" <<<"$out" ||
        fail "server -> client type $t was not refused: $out"
done
echo "$out" | tail -1 | grep -qx open || fail "a server -> client type closed the connection: $out"

# A peer that connects and never starts TLS is dropped at the handshake deadline.
start=$(date +%s)
exec 3<>/dev/tcp/127.0.0.1/$PORT
timeout 10 cat <&3 >/dev/null || fail "silent connection was not closed within 10 s"
exec 3<&-
grep -q "closing: timed out" "$T/server.log" || fail "no timeout logged"

wait $bystander
tail -1 "$T/bystander.out" | grep -qx open || fail "bystander connection was disturbed: $(cat "$T/bystander.out")"
kill -0 $SERVER_PID || fail "server died"
client t1 town1
ps --data "$T/t1" generate --persons 50 >/dev/null
ps --data "$T/t1" sync --quiet || fail "normal client after bad frames"
stop_server
pass "bad frames close only their own connection"

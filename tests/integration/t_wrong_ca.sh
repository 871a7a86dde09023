# A client whose certificate comes from another CA is refused, with a logged
# reason, and the server goes on serving good clients.
. "$(dirname "$0")/lib.sh"
make_pki
ps pki init-ca --dir "$T/other" --name "rogue CA" >/dev/null
ps pki issue --dir "$T/other" --role admin --orgunit $DISTRICT --name intruder >/dev/null
start_server
# The intruder trusts our CA (so it would accept the server) but its own
# certificate is from the other CA.
ps --data "$T/bad" init --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/other/intruder.crt" \
    --key "$T/other/intruder.key" >/dev/null
set +e
ps --data "$T/bad" sync --quiet 2>"$T/bad.err"
rc=$?
set -e
expect_eq "$rc" 3 "refused client's exit status"
grep -q "handshake refused" "$T/server.log" || fail "server did not log the refusal"
grep "handshake refused" "$T/server.log" | grep -qi "verif\|certificate" || fail "refusal has no reason: $(grep refused "$T/server.log")"
# A client that trusts the wrong CA refuses the server.
ps --data "$T/wary" init --server 127.0.0.1:$PORT --ca "$T/other/ca.crt" --cert "$T/pki/town1.crt" \
    --key "$T/pki/town1.key" >/dev/null
set +e
ps --data "$T/wary" sync --quiet 2>"$T/wary.err"
rc=$?
set -e
expect_eq "$rc" 3 "client that does not trust the server"
grep -qi "tls\|certificate\|verif" "$T/wary.err" || fail "client gave no TLS reason: $(cat "$T/wary.err")"
client good town1
ps --data "$T/good" generate --persons 10 >/dev/null
ps --data "$T/good" sync --quiet || fail "good client after refusals"
stop_server
pass "foreign CA refused both ways; server keeps serving"

# Revocation end to end: `pki revoke` writes a CRL that openssl verifies;
# popsyncd re-reads it on SIGHUP, closes the revoked device's open
# connection, refuses its next handshake with a logged reason, and goes on
# serving everyone else.  A broken CRL file on SIGHUP keeps the old list.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?PS_TESTCLIENT must point at ps_testclient}"
command -v openssl >/dev/null || fail "openssl is needed to check the CRL"

make_pki
ps pki crl --dir "$T/pki" >/dev/null
openssl crl -in "$T/pki/ca.crl" -CAfile "$T/pki/ca.crt" -verify -noout 2>&1 | grep -q "verify OK" ||
    fail "empty CRL does not verify"
# The server gets its own copy, as it would from a USB stick or scp.
cp "$T/pki/ca.crl" "$T/server.crl"
start_server --crl "$T/server.crl"
grep -q "loaded CRL .*: 0 revoked" "$T/server.log" || fail "server did not report the CRL it loaded"

# Each device keeps its own copy of its certificate and key.
for n in town1 town2; do
    mkdir -p "$T/dev-$n"
    cp "$T/pki/$n.crt" "$T/pki/$n.key" "$T/dev-$n/"
    ps --data "$T/$n" init --server "127.0.0.1:$PORT" --ca "$T/pki/ca.crt" \
        --cert "$T/dev-$n/$n.crt" --key "$T/dev-$n/$n.key" >/dev/null
done
ps --data "$T/town1" generate --persons 5 >/dev/null
ps --data "$T/town1" sync --quiet || fail "town1 sync before revocation"
ps --data "$T/town2" sync --quiet || fail "town2 sync before revocation"
pass "both townships sync with the empty CRL"

# A town2 connection that stays open.
"$PS_TESTCLIENT" --server "127.0.0.1:$PORT" --ca "$T/pki/ca.crt" --cert "$T/dev-town2/town2.crt" \
    --key "$T/dev-town2/town2.key" --server-name popsyncd --hello --wait 8000 >"$T/held.out" 2>&1 &
HELD=$!
for _ in $(seq 1 100); do
    grep -q "^frame" "$T/held.out" && break
    sleep 0.05
done
grep -q "^frame" "$T/held.out" || fail "held connection got no reply: $(cat "$T/held.out")"

serial=$(openssl x509 -in "$T/dev-town2/town2.crt" -noout -serial | cut -d= -f2)
ps pki revoke --dir "$T/pki" --name town2 --reason keyCompromise >"$T/revoke.out" ||
    fail "pki revoke failed"
grep -qi "$serial" "$T/revoke.out" || fail "revoke did not name the serial: $(cat "$T/revoke.out")"
[ ! -e "$T/pki/town2.crt" ] && [ -e "$T/pki/revoked/town2.$(echo "$serial" | tr 'A-F' 'a-f').crt" ] ||
    fail "revoked certificate not moved aside"
grep -qi "^$serial	" "$T/pki/revoked.txt" || fail "revoked.txt lacks the serial"
openssl crl -in "$T/pki/ca.crl" -CAfile "$T/pki/ca.crt" -verify -noout 2>&1 | grep -q "verify OK" ||
    fail "CRL does not verify with openssl"
crl_text=$(openssl crl -in "$T/pki/ca.crl" -noout -text)
grep -q "Serial Number: $serial" <<<"$crl_text" || fail "CRL does not list $serial"
grep -q "Key Compromise" <<<"$crl_text" || fail "CRL lacks the reason code"
grep -q "Version 2" <<<"$crl_text" || fail "CRL is not v2"
pass "pki revoke wrote a v2 CRL that openssl verifies"

# Until the server is told, nothing changes; then SIGHUP.
cp "$T/pki/ca.crl" "$T/server.crl"
kill -HUP "$SERVER_PID"
for _ in $(seq 1 100); do
    grep -q "^closed" "$T/held.out" && break
    sleep 0.05
done
wait "$HELD" || true
grep -q "^closed" "$T/held.out" || fail "held town2 connection not closed: $(cat "$T/held.out")"
grep -q "certificate revoked" "$T/held.out" || fail "client was not told why: $(cat "$T/held.out")"
grep -q "SIGHUP: reloaded CRL .*: 1 revoked" "$T/server.log" || fail "server did not log the reload"
grep -q "SIGHUP: closed 1 connection with a revoked certificate" "$T/server.log" ||
    fail "server did not log the closed connection"
pass "SIGHUP reloaded the CRL and closed the open town2 connection"

set +e
ps --data "$T/town2" sync --quiet >/dev/null 2>"$T/town2.err"
rc=$?
set -e
expect_eq "$rc" 3 "revoked client's exit status"
grep "handshake refused" "$T/server.log" | grep -q "revoked" ||
    fail "server gave no revocation reason: $(grep refused "$T/server.log" || true)"
ps --data "$T/town1" sync --quiet || fail "town1 sync after revocation"
pass "revoked town2 refused at the handshake; town1 still syncs"

# A broken CRL on SIGHUP: logged, old list stays in force.
echo "not a CRL" >"$T/server.crl"
kill -HUP "$SERVER_PID"
for _ in $(seq 1 100); do
    grep -q "CRL not reloaded" "$T/server.log" && break
    sleep 0.05
done
grep -q "CRL not reloaded, the previous one stays in force" "$T/server.log" || fail "failed reload not logged"
set +e
ps --data "$T/town2" sync --quiet >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 3 "revoked client after a failed reload"
ps --data "$T/town1" sync --quiet || fail "town1 sync after a failed reload"
# Re-issued CRL (new number, same list) is accepted again.
ps pki crl --dir "$T/pki" >/dev/null
cp "$T/pki/ca.crl" "$T/server.crl"
kill -HUP "$SERVER_PID"
for _ in $(seq 1 100); do
    [ "$(grep -c "SIGHUP: reloaded" "$T/server.log")" -ge 2 ] && break
    sleep 0.05
done
[ "$(grep -c "SIGHUP: reloaded" "$T/server.log")" -ge 2 ] || fail "re-issued CRL not reloaded"
openssl crl -in "$T/pki/ca.crl" -CAfile "$T/pki/ca.crt" -verify -noout 2>&1 | grep -q "verify OK" ||
    fail "re-issued CRL does not verify"
pass "a broken CRL keeps the old list; a re-issued one is taken"

# The name can be issued again (a replacement device) and it syncs.
ps pki issue --dir "$T/pki" --role township --orgunit $TOWN2 --name town2 >/dev/null
ps --data "$T/town2b" init --server "127.0.0.1:$PORT" --ca "$T/pki/ca.crt" --cert "$T/pki/town2.crt" \
    --key "$T/pki/town2.key" >/dev/null
ps --data "$T/town2b" sync --quiet || fail "replacement town2 certificate refused"
stop_server
pass "revocation end to end"

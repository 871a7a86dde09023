# TLS policy seen from outside: openssl s_client (a probing tool only)
# offers what popsyncd must refuse - TLS 1.0/1.1/1.3, CBC, RSA and static
# key exchange, no client certificate, a server certificate used as a
# client's, expired and not-yet-valid certificates - and shows what a good
# client gets: TLS 1.2, an ECDHE-ECDSA AEAD suite, extended master secret,
# secure renegotiation signalling and a one-day session ticket.
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl is needed for this test"

make_pki
# Validity: one certificate not valid for two more days, one expired nine
# days ago (hidden test option of `pki issue`).
ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name early --not-before-days 2 >/dev/null
ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name late --days 1 --not-before-days -10 >/dev/null
start_server

# probe NAME [s_client options]: connects as certificate NAME ("-" for
# none), writes the transcript to $T/probe.NAME.N and returns 0 when the
# handshake completed.  SECLEVEL=0 lets OpenSSL 3 offer old protocols and
# suites at all, so a refusal is the server's and not the client's.
N=0
probe() {
    local who=$1
    shift
    N=$((N + 1))
    local out="$T/probe.$N"
    local certopts=()
    [ "$who" != "-" ] && certopts=(-cert "$T/pki/$who.crt" -key "$T/pki/$who.key")
    local rc=0
    timeout 15 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$T/pki/ca.crt" -verify_return_error \
        -verify_hostname popsyncd "${certopts[@]}" "$@" </dev/null >"$out" 2>&1 || rc=$?
    PROBE_OUT=$out
    # s_client prints a session summary even after a failed handshake; its
    # exit status says whether the handshake finished, which in TLS 1.2
    # with client authentication means the server accepted us.
    [ $rc -eq 0 ] && grep -q "^New, TLSv1.2, Cipher is ECDHE-ECDSA" "$out"
}

must_pass() {
    local what=$1
    shift
    probe "$@" || fail "$what: handshake failed: $(tail -n 5 "$PROBE_OUT")"
    pass "$what"
}

must_fail() {
    local what=$1
    shift
    if probe "$@"; then fail "$what: handshake completed: $(grep -m1 'Cipher is' "$PROBE_OUT")"; fi
    pass "refused: $what"
}

must_pass "TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256" town1 -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256
good=$PROBE_OUT
grep -q "Protocol  *: TLSv1.2" "$good" || fail "protocol is not TLS 1.2"
grep -q "Extended master secret: yes" "$good" || fail "no extended master secret"
grep -q "Secure Renegotiation IS supported" "$good" || fail "no RFC 5746 signalling"
grep -q "Compression: NONE" "$good" || fail "compression offered"
grep -q "session ticket lifetime hint: 86400" "$good" || fail "ticket lifetime is not one day"
grep -q "^Peer signature type: ECDSA" "$good" || fail "server did not sign with ECDSA"
must_pass "TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384" town1 -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384
must_pass "TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305" town1 -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305
must_pass "TLS 1.2 offered everything: server picks an AEAD suite" admin -cipher 'ALL:@SECLEVEL=0'
grep -q "Cipher is ECDHE-ECDSA-\(AES..*-GCM\|CHACHA20\)" "$PROBE_OUT" || fail "server picked $(grep -m1 'Cipher is' "$PROBE_OUT")"

must_fail "TLS 1.0" town1 -tls1 -cipher 'ALL:@SECLEVEL=0'
must_fail "TLS 1.1" town1 -tls1_1 -cipher 'ALL:@SECLEVEL=0'
must_fail "TLS 1.3" town1 -tls1_3
for suite in ECDHE-ECDSA-AES128-SHA256 ECDHE-ECDSA-AES256-SHA384 ECDHE-ECDSA-AES128-SHA \
    ECDHE-ECDSA-AES256-SHA ECDHE-ECDSA-AES128-CCM ECDHE-ECDSA-ARIA128-GCM-SHA256 \
    ECDHE-ECDSA-CAMELLIA128-SHA256 AES128-GCM-SHA256 AES256-SHA ECDHE-RSA-AES128-GCM-SHA256 \
    DHE-RSA-AES128-GCM-SHA256 PSK-AES128-GCM-SHA256 ECDHE-ECDSA-NULL-SHA; do
    must_fail "suite $suite" town1 -tls1_2 -cipher "$suite:@SECLEVEL=0"
done
must_fail "no client certificate" - -tls1_2
must_fail "server certificate presented by a client" popsyncd -tls1_2
must_fail "client certificate not valid yet" early -tls1_2
must_fail "expired client certificate" late -tls1_2
grep "handshake refused" "$T/server.log" | grep -q "future" || fail "no logged reason for the early certificate"
grep "handshake refused" "$T/server.log" | grep -q "expired" || fail "no logged reason for the expired certificate"
grep "handshake refused" "$T/server.log" | grep -qi "clientAuth\|key usage" ||
    fail "no logged reason for the server certificate as a client's"

# Our own client with the expired certificate fails the same way.
client late late
set +e
ps --data "$T/late" sync --quiet >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 3 "expired certificate's sync"
stop_server
pass "TLS policy"

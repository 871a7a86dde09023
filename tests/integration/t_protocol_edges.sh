# Protocol edges (issue 21 point 10): request_id 0 is the server's, a
# compressed Hello is fatal like anything else before Hello, and the server
# answers a client's close_notify with its own.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}"
make_pki
start_server --handshake-timeout 2000 --idle-timeout 20000
tc() {
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/town1.crt" \
        --key "$T/pki/town1.key" "$@"
}
# The Hello of docs/protocol.md §16.2 with request_id REQ and flags FLAGS.
hello_hex() {
    echo "00000030 01 $1 0000 $2 0801 1210 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf 18ac02 220d 706f7073796e6320302e312e30 2801" |
        tr -d ' '
}

# A request with id 0 after Hello: refused with an Error carrying 0, not fatal;
# the same Ping with id 7 is answered.
out=$(tc --hello --hex 0000000a0800000000000000082a --hex 0000000a0800000000000007082a --wait 1500)
grep -q "req=0 error: request_id 0 is reserved for the server" <<<"$out" || fail "request id 0: $out"
grep -q "frame Pong req=7" <<<"$out" || fail "the next request was not answered: $out"
tail -1 <<<"$out" | grep -qx open || fail "request id 0 after Hello closed the connection: $out"
pass "a request with id 0 is refused with an Error (id 0), the connection goes on"

# A Hello with id 0: fatal.
out=$(tc --hex "$(hello_hex 00 00000000)" --wait 3000)
grep -q "req=0 error (fatal): request_id 0 is reserved" <<<"$out" || fail "Hello with id 0: $out"
tail -1 <<<"$out" | grep -qx closed || fail "Hello with id 0 did not close: $out"
# The same Hello with id 1 is welcomed (the bytes above are a good Hello).
out=$(tc --hex "$(hello_hex 00 00000001)" --wait 1000)
grep -q "frame Welcome req=1" <<<"$out" || fail "the example Hello was not welcomed: $out"
pass "a Hello with id 0 is refused and closes the connection"

# A compressed Hello (flag bit 0, nothing agreed yet): fatal.
out=$(tc --hex "$(hello_hex 01 00000001)" --wait 3000)
grep -q "req=1 error (fatal): compressed frame but compression was not agreed" <<<"$out" ||
    fail "compressed Hello: $out"
tail -1 <<<"$out" | grep -qx closed || fail "compressed Hello did not close: $out"
# Unknown flag bits and unknown types before Hello are fatal too.
out=$(tc --hex 000000087700000000000005 --wait 3000)
grep -q "req=5 error (fatal): unknown or unexpected message type 119" <<<"$out" || fail "unknown type before Hello: $out"
tail -1 <<<"$out" | grep -qx closed || fail "unknown type before Hello did not close: $out"
pass "a compressed Hello, and any unknown frame before Hello, is fatal"

# close_notify: the client closes its TLS session; the server must answer with
# its own close_notify (ssl.unwrap() waits for it; a bare TCP close fails it).
python3 - "$PORT" "$T/pki" "$(hello_hex 00 00000001)" <<'EOF' || fail "no close_notify from the server"
import socket, ssl, sys
port, pki, hello = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(pki + "/ca.crt")
ctx.load_cert_chain(pki + "/town1.crt", pki + "/town1.key")
ctx.check_hostname = False
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    s = ctx.wrap_socket(raw)
    s.sendall(hello)
    hdr = b""
    while len(hdr) < 12:
        chunk = s.recv(12 - len(hdr))
        if not chunk:
            sys.exit("closed before Welcome")
        hdr += chunk
    assert hdr[4] == 2, "expected Welcome, got type %d" % hdr[4]
    left = int.from_bytes(hdr[:4], "big") - 8
    while left > 0:
        left -= len(s.recv(left))
    try:
        s.unwrap()
    except (ssl.SSLError, OSError) as e:
        sys.exit("server did not answer close_notify: %r" % e)
print("close_notify answered")
EOF
pass "the server answers the client's close_notify with its own"
stop_server

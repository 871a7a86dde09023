# popsync ui --listen takes IPv6 as well as IPv4: "[ADDR]:PORT", as in a
# URL.  On ::1 it serves plain HTTP like 127.0.0.1, answers at the address
# it prints ("http://[::1]:PORT/?token=..."), and its Host check takes
# "[::1]:PORT" (and localhost:PORT) and refuses another name.  [::] is
# refused like 0.0.0.0 (the Host check needs one address), and so are an
# IPv6 address without brackets and a missing port.  Served over TLS (the
# test build's POPSYNC_UI_TLS=1 on loopback stands for an address beyond
# it), a cache certificate issued with --ui-address ::1 verifies against
# the district CA alone.  Skipped where the machine has no IPv6 loopback.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ui.sh"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
    { echo "skip: no IPv6 loopback (::1) here"; exit 77; }

make_pki
ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name web6 --ui-address ::1 >/dev/null ||
    fail "pki issue --ui-address ::1"
client t1 town1
client w6 web6

# Refused addresses: exit 1 (no start), with what to give instead.
for bad in '[::]:0' '::1:0' '[::1]' '[::1]:' '[::1]:70000' '[127.0.0.1]:0'; do
    rc=0; "$POPSYNC" --data "$T/t1" ui --listen "$bad" >/dev/null 2>"$T/bad.err" || rc=$?
    expect_eq "$rc" 1 "--listen $bad"
done
"$POPSYNC" --data "$T/t1" ui --listen '[::]:0' 2>&1 | grep -q 'not \[::\]' || fail "why [::] is refused"
"$POPSYNC" --data "$T/t1" ui --listen '::1:0' 2>&1 | grep -q '\[ADDR\]:PORT (an IPv6 address)' ||
    fail "no hint to put IPv6 in brackets"
pass "--listen: [::], IPv6 without brackets, no port or a bad one refused with what to give"

ui_start t1 --listen '[::1]:0'
case "$UI_URL" in http://\[::1\]:*/\?token=*) ;; *) fail "not served at http://[::1]: $UI_URL" ;; esac
port=${UI_URL#http://\[::1\]:}
port=${port%%/*}
code=$(curl -sS -g --noproxy '*' -c "$T/jar" -o /dev/null -w '%{http_code}' --max-time 30 "$UI_URL") ||
    fail "curl to $UI_URL"
expect_eq "$code" 303 "the token exchange over IPv6"
code=$(curl -sS -g --noproxy '*' -b "$T/jar" -o "$T/s.json" -w '%{http_code}' --max-time 30 \
    "http://[::1]:$port/api/session") || fail "GET /api/session"
expect_eq "$code" 200 "GET /api/session with Host [::1]:$port"
grep -q '"orgunit"' "$T/s.json" || fail "session answer: $(cat "$T/s.json")"
# The session cookie by value: curl matches a jar's cookies to the Host
# header given, and the check under test is the Host one.
cookie=$(awk '$6 ~ /^popsync_ui_/ {print $6 "=" $7}' "$T/jar")
[ -n "$cookie" ] || fail "no session cookie in the jar: $(cat "$T/jar")"
code=$(curl -sS -g --noproxy '*' -b "$cookie" -H "Host: localhost:$port" -o "$T/h.json" -w '%{http_code}' \
    --max-time 30 "http://[::1]:$port/api/session") || fail "GET with Host localhost"
expect_eq "$code" 200 "Host localhost:$port ($(cat "$T/h.json"))"
code=$(curl -sS -g --noproxy '*' -b "$cookie; popsync_lang=en" -H "Host: rebind.example:$port" -o "$T/h.json" -w '%{http_code}' \
    --max-time 30 "http://[::1]:$port/api/session") || fail "GET with another Host"
expect_eq "$code" 403 "Host rebind.example:$port"
grep -q 'wrong Host header' "$T/h.json" || fail "refused, but not for its Host: $(cat "$T/h.json")"
ui_stop
pass "::1: plain HTTP at http://[::1]:PORT; Host [::1]:PORT and localhost taken, another name refused"

POPSYNC_UI_TLS=1 ui_start w6 --listen '[::1]:0'
case "$UI_URL" in https://\[::1\]:*) ;; *) fail "not served at https://[::1]: $UI_URL" ;; esac
grep -q 'browsers will refuse' "$T/ui-w6.err" && fail "a warning for a certificate that serves: $(cat "$T/ui-w6.err")"
code=$(curl -sS -g --noproxy '*' --cacert "$T/pki/ca.crt" -o /dev/null -w '%{http_code}' --max-time 30 "$UI_URL") ||
    fail "curl --cacert (the district CA only) refused the certificate at [::1]"
expect_eq "$code" 303 "the token exchange over verified TLS at [::1]"
ui_stop
POPSYNC_UI_TLS=1 ui_start t1 --listen '[::1]:0'
grep -q "browsers will refuse this cache's certificate at ::1" "$T/ui-t1.err" ||
    fail "no warning naming ::1 for a clientAuth-only certificate: $(cat "$T/ui-t1.err")"
ui_stop
pass "TLS at [::1]: a certificate issued with --ui-address ::1 verifies; one without is warned about at ::1"

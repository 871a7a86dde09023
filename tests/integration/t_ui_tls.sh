# popsync ui beyond loopback over TLS that a browser accepts (issue 18,
# gap b).  A cache certificate issued with `popsync pki issue --ui-address
# ADDR` is for serverAuth too and names ADDR in its subjectAltName: served
# with `--listen ADDR:PORT` it verifies against the district CA alone
# (curl --cacert, and headless Chromium trusting the CA through an NSS
# database, when installed).  A certificate issued without it still serves
# (clients that skip verification) with a warning saying why browsers
# refuse it and how to get one.  Loopback only: ADDR is 127.0.0.2, served
# over TLS through the test build's POPSYNC_UI_TLS=1 (127.0.0.0/8 is plain
# HTTP otherwise).  The serverAuth certificate stays the cache's identity
# for popsyncd.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ui.sh"
make_pki
ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name web1 --ui-address 127.0.0.2 >/dev/null ||
    fail "pki issue --ui-address"
txt=$(openssl x509 -in "$T/pki/web1.crt" -noout -text) || fail "openssl cannot read the certificate"
grep -q 'TLS Web Client Authentication, TLS Web Server Authentication' <<<"$txt" || fail "EKU: $txt"
grep -q 'IP Address:127.0.0.2' <<<"$txt" || fail "SAN: $txt"
# ecdsa-with-SHA256 without NULL parameters (RFC 5758; Chromium refuses
# them with ERR_CERT_INVALID, and mbedTLS 2.28 writes them).
der=$(openssl x509 -in "$T/pki/web1.crt" -outform DER | od -An -tx1 | tr -d ' \n')
grep -q 300a06082a8648ce3d040302 <<<"$der" || fail "no ecdsa-with-SHA256 AlgorithmIdentifier"
grep -q 300c06082a8648ce3d0403020500 <<<"$der" && fail "the AlgorithmIdentifier carries NULL parameters"
openssl verify -x509_strict -CAfile "$T/pki/ca.crt" "$T/pki/web1.crt" >/dev/null || fail "openssl -x509_strict"
grep -q 'TLS Web Server Authentication' <<<"$(openssl x509 -in "$T/pki/town1.crt" -noout -text)" &&
    fail "a certificate issued without --ui-address is for serverAuth"
rc=0; ps pki issue --dir "$T/pki" --role server --orgunit $DISTRICT --name s2 --ui-address 127.0.0.2 \
    >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "--ui-address on the server's certificate"
rc=0; ps pki issue --dir "$T/pki" --role township --orgunit $TOWN1 --name w2 --ui-address 0.0.0.0 \
    >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "--ui-address 0.0.0.0"
pass "pki issue --ui-address: serverAuth and clientAuth, the address in subjectAltName; refused for the server and 0.0.0.0"

start_server
client w web1
client plain town1
ps --data "$T/w" sync >/dev/null || fail "the serverAuth certificate no longer syncs"
pass "the certificate is still the cache's identity for popsyncd"

POPSYNC_UI_TLS=1 ui_start w --listen 127.0.0.2:0
case "$UI_URL" in https://127.0.0.2:*) ;; *) fail "not served at https://127.0.0.2: $UI_URL" ;; esac
grep -q 'browsers will refuse' "$T/ui-w.err" && fail "a warning for a certificate that serves: $(cat "$T/ui-w.err")"
code=$(curl -sS --noproxy '*' --cacert "$T/pki/ca.crt" -o /dev/null -D "$T/headers" -w '%{http_code}' "$UI_URL") ||
    fail "curl --cacert (the district CA only) refused the certificate"
expect_eq "$code" 303 "the token exchange over verified TLS"
grep -qi '^set-cookie:.*; Secure' "$T/headers" || fail "no Secure cookie: $(cat "$T/headers")"
pass "curl verifies the cache's certificate at 127.0.0.2 against the district CA"

if [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ] &&
    command -v certutil >/dev/null && /usr/bin/python3 -c 'import selenium' 2>/dev/null; then
    UI_PY=/usr/bin/python3
    mkdir -p "$T/home/.pki/nssdb"
    certutil -N -d "sql:$T/home/.pki/nssdb" --empty-password || fail "certutil -N"
    certutil -A -d "sql:$T/home/.pki/nssdb" -n "popsync district CA" -t "C,," -i "$T/pki/ca.crt" || fail "certutil -A"
    (export HOME="$T/home"; ui_browser tls_browser.py tls) || fail "Chromium over TLS"
    pass "Chromium trusting the district CA opens the pages over TLS"
else
    echo "skip: Chromium part (chromium, chromium-driver, python3-selenium or certutil from libnss3-tools missing)"
fi
ui_stop

POPSYNC_UI_TLS=1 ui_start plain --listen 127.0.0.2:0
grep -q "browsers will refuse this cache's certificate at 127.0.0.2: it is not for serverAuth" "$T/ui-plain.err" ||
    fail "no warning for a clientAuth-only certificate: $(cat "$T/ui-plain.err")"
grep -q -- "--ui-address 127.0.0.2" "$T/ui-plain.err" || fail "the warning does not say how to get one"
rc=0; curl -sS --noproxy '*' --cacert "$T/pki/ca.crt" -o /dev/null "$UI_URL" 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "curl accepted a certificate without serverAuth"
ui_stop
pass "a clientAuth-only certificate: warned at start with how to get one; verification refuses it"

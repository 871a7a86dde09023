# Config file (issue 9): popsyncd --config FILE (INI); flags override the
# file; --check-config reports every problem with its line, or "config OK".
. "$(dirname "$0")/lib.sh"
make_pki
SRC=${PS_TEST_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

# The sample config in the repository checks, once its paths point here.
sed -e "s#/etc/popsync/pki/#$T/pki/#" -e "s#/var/lib/popsync/store#$T/store#" \
    -e "s#/etc/popsync/orgunits.csv#$SRC/demo/orgunits.csv#" -e "s#^crl = .*#crl = $T/pki/ca.crl#" \
    "$SRC/packaging/popsyncd.conf.sample" >"$T/sample.conf"
ps pki crl --dir "$T/pki" >/dev/null
out=$("$POPSYNCD" --check-config --config "$T/sample.conf") || fail "sample config: $out"
expect_eq "$out" "config OK" "sample config check"
pass "the sample config checks OK"

# Every key, with values this test can observe.
cat >"$T/good.conf" <<CONF
# a comment
[server]
listen = 127.0.0.1:0
data = $T/server
map_size_mb = 64
map_size_max_mb = 1024
log_level = warn
allow_synthetic = true

[tls]
ca = $T/pki/ca.crt
cert = $T/pki/popsyncd.crt
key = $T/pki/popsyncd.key
crl = $T/pki/ca.crl

[limits]
max_conns = 100
max_conns_per_cert = 8
max_frame = 1048576
max_push = 7
pull_batch = 100
handshake_timeout_ms = 5000
idle_timeout_ms = 60000
max_future_ms = 600000
max_output = 4194304

[metrics]
listen = 127.0.0.1:0
allow_remote = false
CONF
out=$("$POPSYNCD" --check-config --config "$T/good.conf") || fail "good config: $out"
expect_eq "$out" "config OK" "good config check"
out=$("$POPSYNCD" --check-config --config "$T/good.conf" --orgunits "$SRC/demo/orgunits.csv") || fail "orgunits: $out"

# Serve from it: the file gives TLS, data, limits and metrics; the flag
# --port-file is only on the command line.
"$POPSYNCD" --config "$T/good.conf" --port-file "$T/port" --log-level info >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "popsyncd --config did not start"
PORT=$(cat "$T/port")
grep -q "serving /metrics on 127.0.0.1:" "$T/server.log" || fail "metrics from the config not started"
grep -q "CRL $T/pki/ca.crl" "$T/server.log" || fail "crl from the config not loaded"
client t1 town1
ps --data "$T/t1" generate --persons 20 --seed 1 >/dev/null
ps --data "$T/t1" sync --quiet --batch 1000
[ -s "$T/server/data.mdb" ] || fail "data directory from the config not used"
stop_server
pass "popsyncd serves from a config file"

# Flags override the file: the file's data directory cannot be made, the
# flag's can; the file's log level (warn) is overridden by --log-level info.
sed -e "s#^data = .*#data = /nonexistent/dir/store#" "$T/good.conf" >"$T/override.conf"
rm -f "$T/port"
: >"$T/server.log"
"$POPSYNCD" --config "$T/override.conf" --data "$T/server2" --port-file "$T/port" --log-level info \
    >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "flags did not override the config"
grep -q "INFO main: popsyncd .* store $T/server2" "$T/server.log" || fail "override: $(cat "$T/server.log")"
stop_server
# ... and the file's level applies when no flag says otherwise.
rm -f "$T/port"
: >"$T/server.log"
"$POPSYNCD" --config "$T/override.conf" --data "$T/server2" --port-file "$T/port" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "popsyncd --config did not start"
stop_server
if grep -q "^INFO" "$T/server.log"; then fail "log_level = warn from the file ignored"; fi
pass "command-line flags override the config file"

# Every problem is reported, with line numbers, and the exit status is 1.
printf 'garbage line 1\n' >"$T/junk.csv"
cat >"$T/bad.conf" <<CONF
[server]
listen = 127.0.0.1:0
data = $T/server3
colour = blue
map_size_mb = lots

[tls]
ca = $T/pki/ca.crt
cert = $T/pki/nosuch.crt
key = $T/pki/popsyncd.key
listen = 127.0.0.1:1

[limits]
max_conns = -3
max_frame = 0
idle_timeout_ms = 1e3

[metrics]
listen = 10.1.2.3:9464
allow_remote = perhaps

[server]
orgunits = $T/junk.csv
CONF
set +e
out=$("$POPSYNCD" --check-config --config "$T/bad.conf" 2>&1); rc=$?
set -e
expect_eq "$rc" 1 "check-config exit status on a bad file"
for want in "bad.conf:4: unknown key 'colour' in \[server\]" \
            "bad.conf:5: \[server\] map_size_mb: 'lots' is not a non-negative whole number" \
            "bad.conf:11: unknown key 'listen' in \[tls\] (it belongs in \[server\]" \
            "bad.conf:14: \[limits\] max_conns: '-3' is not" \
            "bad.conf:15: \[limits\] max_frame: must be at least 1" \
            "bad.conf:16: \[limits\] idle_timeout_ms: '1e3' is not" \
            "bad.conf:20: \[metrics\] allow_remote: 'perhaps' is not true or false" \
            "server certificate $T/pki/nosuch.crt" \
            "org-unit file $T/junk.csv does not load" \
            "metrics address 10.1.2.3:9464 is not loopback"; do
    grep -q -- "$want" <<<"$out" || fail "check-config did not report: $want
--- got:
$out"
done
grep -q "problems in the configuration" <<<"$out" || fail "no summary line: $out"
pass "--check-config reports every problem with its line"

# Without --check-config a bad file stops popsyncd before it serves.
set +e
"$POPSYNCD" --config "$T/bad.conf" >"$T/bad.log" 2>&1; rc=$?
set -e
expect_eq "$rc" 2 "popsyncd exit status on a bad config"
grep -q "check-config" "$T/bad.log" || fail "no hint to --check-config: $(cat "$T/bad.log")"

# A syntax error, a missing file, missing required settings.
printf '[server\nlisten = 127.0.0.1:0\n' >"$T/syntax.conf"
set +e
out=$("$POPSYNCD" --check-config --config "$T/syntax.conf" 2>&1); rc=$?
set -e
expect_eq "$rc" 1 "syntax error exit status"
grep -q "syntax.conf:1: syntax error" <<<"$out" || fail "syntax error: $out"
grep -q "no data directory" <<<"$out" || fail "missing data not reported: $out"
grep -q "no CA certificate" <<<"$out" || fail "missing ca not reported: $out"
set +e
out=$("$POPSYNCD" --check-config --config "$T/none.conf" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q "cannot read config file" <<<"$out" || fail "missing config file: $out"
# A key file that does not match the certificate.
sed -e "s#^key = .*#key = $T/pki/town1.key#" "$T/good.conf" >"$T/mismatch.conf"
set +e
out=$("$POPSYNCD" --check-config --config "$T/mismatch.conf" 2>&1); rc=$?
set -e
expect_eq "$rc" 1 "mismatched key exit status"
grep -q "TLS files do not load" <<<"$out" || fail "mismatched key: $out"
pass "syntax errors, missing settings and unloadable files are reported"

# Metrics (issue 9): popsyncd --metrics 127.0.0.1:PORT serves GET /metrics
# in the Prometheus text format; the counters move with a sync; other paths
# are 404; a non-loopback address is refused unless allowed.
. "$(dirname "$0")/lib.sh"
make_pki
start_server --metrics 127.0.0.1:0
MPORT=""
for _ in $(seq 1 100); do
    MPORT=$(sed -n 's/.*serving \/metrics on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/server.log" | tail -1)
    [ -n "$MPORT" ] && break
    sleep 0.05
done
[ -n "$MPORT" ] || fail "no metrics address in the log"

# http PATH [METHOD]: prints "STATUS" then the body (python3: curl may be absent).
http() {
    python3 - "$MPORT" "$1" "${2:-GET}" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), method=sys.argv[3])
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status); print(r.headers.get("Content-Type")); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.headers.get("Content-Type")); sys.stdout.write(e.read().decode())
PY
}
scrape() { http /metrics >"$1"; head -1 "$1" | grep -qx 200 || fail "GET /metrics: $(head -3 "$1")"; }
# val FILE 'name{labels}': the sample's value.
val() { python3 - "$1" "$2" <<'PY'
import sys
for line in open(sys.argv[1]):
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[-1]); break
else:
    print("missing")
PY
}

scrape "$T/m0"
sed -n 2p "$T/m0" | grep -q "^text/plain; version=0.0.4" || fail "content type: $(sed -n 2p "$T/m0")"
for m in popsync_connections popsync_connections_accepted_total popsync_handshakes_total \
         popsync_handshake_failures_total popsync_pushes_total popsync_changes_accepted_total \
         popsync_changes_rejected_total popsync_changes_duplicate_total popsync_changes_conflicts_total \
         popsync_commits_total popsync_commit_seconds_count popsync_feed_head popsync_lmdb_map_bytes \
         popsync_lmdb_used_bytes popsync_conflicts_open; do
    [ "$(val "$T/m0" $m)" != missing ] || fail "metric $m missing"
done
grep -q '^# TYPE popsync_commit_seconds histogram' "$T/m0" || fail "no commit histogram"
grep -q '^popsync_commit_seconds_bucket{le="+Inf"} 0' "$T/m0" || fail "histogram +Inf bucket"
[ "$(val "$T/m0" popsync_lmdb_map_bytes)" -gt 0 ] && [ "$(val "$T/m0" popsync_lmdb_used_bytes)" -gt 0 ] ||
    fail "LMDB gauges are zero"
expect_eq "$(val "$T/m0" popsync_pushes_total)" 0 "pushes before any sync"
pass "GET /metrics answers in the Prometheus text format"

client t1 town1
client adm admin
ps --data "$T/t1" generate --persons 50 --seed 4 >/dev/null
ps --data "$T/t1" sync --quiet --batch 40
n=$(ps --data "$T/t1" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["records"]+s["deleted"])')
ps --data "$T/adm" sync --quiet
scrape "$T/m1"
[ "$(val "$T/m1" popsync_pushes_total)" -ge 2 ] || fail "pushes_total $(val "$T/m1" popsync_pushes_total) after a sync of two pushes"
# Issue 17 point 2: every push was decoded off the loop, into an arena.
expect_eq "$(val "$T/m1" popsync_push_decodes_pool_total)" "$(val "$T/m1" popsync_pushes_total)" "pushes decoded on a pool thread"
[ "$(val "$T/m1" popsync_push_arena_bytes_total)" -gt 0 ] || fail "push arena bytes"
expect_eq "$(val "$T/m1" popsync_changes_accepted_total)" "$n" "changes accepted"
expect_eq "$(val "$T/m1" popsync_connections_accepted_total)" 2 "connections accepted"
expect_eq "$(val "$T/m1" popsync_handshakes_total)" 2 "handshakes"
[ "$(val "$T/m1" popsync_commits_total)" -ge 1 ] || fail "commits_total"
expect_eq "$(val "$T/m1" popsync_commit_seconds_count)" "$(val "$T/m1" popsync_commits_total)" "histogram count"
expect_eq "$(val "$T/m1" 'popsync_commit_seconds_bucket{le="+Inf"}')" "$(val "$T/m1" popsync_commits_total)" "+Inf bucket"
expect_eq "$(val "$T/m1" popsync_feed_head)" "$n" "feed head"
t1node=$(ps --data "$T/t1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["node"])')
# town1 pulled everything, then the admin added nothing: no lag.
expect_eq "$(val "$T/m1" "popsync_pull_lag{node=\"$t1node\",orgunit=\"$TOWN1\",role=\"township\"}")" 0 "town1's pull lag"
pass "counters move with a sync: pushes, changes, connections, commit histogram, head, lag"

# A change by town2 puts town1 behind by one... once the head moved.
client t2 town2
ps --data "$T/t2" generate --persons 1 --seed 9 >/dev/null
ps --data "$T/t2" sync --quiet
scrape "$T/m2"
lag=$(val "$T/m2" "popsync_pull_lag{node=\"$t1node\",orgunit=\"$TOWN1\",role=\"township\"}")
head2=$(val "$T/m2" popsync_feed_head)
expect_eq "$lag" $((head2 - n)) "town1's lag after town2's push"
[ "$(val "$T/m2" popsync_handshake_failures_total)" = 0 ] || fail "handshake failures"
pass "pull lag per node follows the head"

# A bad handshake counts as a failure.
python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS at all
try:
    s.recv(100)
except Exception:
    pass
s.close()
PY
sleep 0.3
scrape "$T/m3"
[ "$(val "$T/m3" popsync_handshake_failures_total)" -ge 1 ] || fail "a broken handshake was not counted"
pass "handshake failures are counted"

# Other paths and methods.
expect_eq "$(http /nothing | head -1)" 404 "GET /nothing"
expect_eq "$(http / | head -1)" 404 "GET /"
expect_eq "$(http /metrics POST | head -1)" 405 "POST /metrics"
pass "other paths are 404, other methods 405"

# The main port still serves, and a slow metrics client does not block it.
python3 - "$MPORT" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /metr")  # and never finish
time.sleep(3)
PY
slow=$!
ps --data "$T/t1" sync --quiet
wait $slow
pass "a stalled metrics client does not stop syncing"

# Non-loopback addresses are refused unless allowed.
set +e
"$POPSYNCD" --listen 127.0.0.1:0 --data "$T/s2" --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" \
    --key "$T/pki/popsyncd.key" --metrics 0.0.0.0:0 >"$T/s2.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || fail "a non-loopback metrics address was accepted"
grep -q "not a loopback address" "$T/s2.log" || fail "refusal message: $(cat "$T/s2.log")"
printf '[server]\nlisten = 127.0.0.1:0\n[metrics]\nlisten = 0.0.0.0:9464\n' >"$T/c.conf"
set +e
out=$("$POPSYNCD" --check-config --config "$T/c.conf" --data "$T/s3" --ca "$T/pki/ca.crt" \
    --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" 2>&1); rc=$?
set -e
expect_eq "$rc" 1 "check-config with a remote metrics address"
grep -q "allow_remote" <<<"$out" || fail "check-config message: $out"
printf '[server]\nlisten = 127.0.0.1:0\n[metrics]\nlisten = 0.0.0.0:9464\nallow_remote = true\n' >"$T/c.conf"
"$POPSYNCD" --check-config --config "$T/c.conf" --data "$T/s3" --ca "$T/pki/ca.crt" \
    --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" | grep -qx "config OK" || fail "allow_remote not honoured"
pass "a non-loopback metrics address needs allow_remote"
stop_server

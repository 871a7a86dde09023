# Hostile peer, edges (issue 15, point 4): a Pull whose cursor is beyond
# the server's head (2^64-1 used to wrap round to the whole scope, others
# were echoed back) is refused with a clear Error and the connection stays
# usable; a full disk (ENOSPC from LMDB) reaches the client and the log as
# "disk full", is counted in popsync_commit_failures_total{reason="disk_full"},
# and once space is back the pending changes land.
. "$(dirname "$0")/lib.sh"
: "${PS_TESTCLIENT:?}" "${PS_ENOSPC_LIB:?}"
make_pki
# The shim fails writes to data.mdb while $T/diskfull exists; only
# popsyncd is run with it (a wrapper), not the test's other commands.
export PS_ENOSPC_FLAG="$T/diskfull"
printf '#!/bin/sh\nLD_PRELOAD="%s" exec "%s" "$@"\n' "$PS_ENOSPC_LIB" "$POPSYNCD" >"$T/popsyncd-enospc"
chmod +x "$T/popsyncd-enospc"
POPSYNCD="$T/popsyncd-enospc" start_server --metrics 127.0.0.1:0
MPORT=""
for _ in $(seq 1 100); do
    MPORT=$(sed -n 's/.*serving \/metrics on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/server.log" | tail -1)
    [ -n "$MPORT" ] && break
    sleep 0.05
done
[ -n "$MPORT" ] || fail "no metrics address in the log"
metric() {
    python3 - "$MPORT" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
for line in body.splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[-1]); break
else:
    print("absent")
PY
}
tc() {
    "$PS_TESTCLIENT" --server 127.0.0.1:$PORT --ca "$T/pki/ca.crt" --cert "$T/pki/town1.crt" \
        --key "$T/pki/town1.key" --wait 500 "$@"
}
client t1 town1
ps --data "$T/t1" generate --persons 20 --seed 5 >/dev/null
ps --data "$T/t1" sync --quiet || fail "warm-up sync"

# pull_hex CURSOR_VARINT_HEX REQ: a Pull frame (field 1 = cursor).
pull_hex() {
    local body="08$1" len
    len=$(( ${#body} / 2 + 8 ))
    printf '%08x0500%04x%08x%s' "$len" 0 "$2" "$body"
}
# --- 1. Cursor 2^64-1 (varint ff x9 01): refused, not the whole scope.
tc --hello --hex "$(pull_hex ffffffffffffffffff01 7)" >"$T/wrap.out" 2>&1
grep -q "frame Error req=7 error: Pull.cursor 18446744073709551615 is beyond the server's head" "$T/wrap.out" ||
    fail "cursor 2^64-1 not refused: $(cat "$T/wrap.out")"
grep -q "frame PullBatch" "$T/wrap.out" && fail "cursor 2^64-1 got a PullBatch: $(cat "$T/wrap.out")"
grep -qx "open" "$T/wrap.out" || fail "the connection did not stay open: $(cat "$T/wrap.out")"
grep -q "make a new cache with 'popsync init'" "$T/wrap.out" || fail "the error says not what to do"
pass "a Pull with cursor 2^64-1 is refused: $(grep -o 'error: .*' "$T/wrap.out" | head -1)"
# --- 2. Cursor 1,000,000 (head is about a hundred): refused, not echoed.
tc --hello --hex "$(pull_hex c0843d 8)" >"$T/beyond.out" 2>&1
grep -q "frame Error req=8 error: Pull.cursor 1000000 is beyond the server's head" "$T/beyond.out" ||
    fail "cursor beyond head not refused: $(cat "$T/beyond.out")"
grep -q "frame PullBatch" "$T/beyond.out" && fail "cursor beyond head answered: $(cat "$T/beyond.out")"
# A cursor at 0 and a normal client still work.
tc --hello --hex "$(pull_hex 00 9)" >"$T/zero.out" 2>&1
grep -q "frame PullBatch req=9" "$T/zero.out" || fail "cursor 0 not answered: $(cat "$T/zero.out")"
pass "a Pull with a cursor beyond head is refused, cursor 0 still answered"

# --- 3. Disk full.
expect_eq "$(metric 'popsync_commit_failures_total{reason="disk_full"}')" 0 "disk_full failures before"
ps --data "$T/t1" generate --persons 5 --seed 6 >/dev/null
touch "$T/diskfull"
set +e
ps --data "$T/t1" sync --quiet >"$T/full.out" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a push onto a full disk succeeded"
grep -q "disk full" "$T/full.out" || fail "the client is not told the disk is full: $(cat "$T/full.out")"
grep -qi "database error" "$T/full.out" && fail "the client is told 'database error': $(cat "$T/full.out")"
grep -q "push refused: disk full" "$T/server.log" || fail "the log does not say disk full"
n=$(metric 'popsync_commit_failures_total{reason="disk_full"}')
[ "$n" -ge 1 ] || fail "popsync_commit_failures_total{reason=\"disk_full\"} is $n"
expect_eq "$(metric 'popsync_commit_failures_total{reason="other"}')" 0 "other commit failures"
kill -0 "$SERVER_PID" || fail "popsyncd died on a full disk"
pass "a full disk: client told '$(grep -o 'disk full[^;]*' "$T/full.out" | head -1)', metric $n"
rm -f "$T/diskfull"
ps --data "$T/t1" sync --quiet || fail "sync once the disk has room again"
pending=$(ps --data "$T/t1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')
expect_eq "$pending" 0 "pending changes after the disk has room"
pass "space back: the pending changes landed"
stop_server

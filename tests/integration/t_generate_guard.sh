# `popsync generate` cannot fill a real district's server with invented
# people: its records are marked synthetic; a server without
# --allow-synthetic refuses them (kept in the cache's refused list, nothing
# lands), and once a cache knows its server is such a one, generate refuses
# to run.  A test server (--allow-synthetic) takes them.
. "$(dirname "$0")/lib.sh"
make_pki
rm -f "$T/port"
"$POPSYNCD" --listen 127.0.0.1:0 --port-file "$T/port" --data "$T/server" \
    --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port")
client t1 town1
client t2 town1
client admin admin

# Before the first sync the cache cannot know: it warns, and marks.
ps --data "$T/t1" generate --persons 5 --seed 3 >/dev/null 2>"$T/g1.err" || fail "generate before any sync"
grep -q "marked synthetic" "$T/g1.err" || fail "warned: $(cat "$T/g1.err")"
rc=0; ps --data "$T/t1" sync --quiet 2>/dev/null || rc=$?
expect_eq "$rc" 6 "the real server refuses them"
ps --data "$T/t1" refused list --json | python3 -c '
import json, sys; r = json.load(sys.stdin)
assert len(r) > 0 and all(any(e["field"] == "synthetic" for e in x["errors"]) for x in r), r' \
    || fail "refused for being synthetic"
ps --data "$T/admin" sync --quiet || fail "admin sync"
expect_eq "$(count admin)" 0 "no synthetic person reached the district"

# Now the cache knows: generate refuses.
ps --data "$T/t2" sync --quiet || fail "t2 sync"
rc=0; ps --data "$T/t2" generate --persons 5 >/dev/null 2>"$T/g2.err" || rc=$?
expect_eq "$rc" 1 "generate against a real server"
grep -q "does not take generated test data" "$T/g2.err" || fail "says why: $(cat "$T/g2.err")"
expect_eq "$(count t2)" 0 "nothing generated"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# A test server takes them.
start_server
ps --data "$T/t2" config set server "127.0.0.1:$PORT" >/dev/null || fail "point t2 at the test server"
ps --data "$T/t2" sync --quiet || fail "t2 sync with a test server"
ps --data "$T/t2" generate --persons 5 --seed 4 >/dev/null || fail "generate against a test server"
ps --data "$T/t2" sync --quiet || fail "synthetic records accepted by a test server"
ps --data "$T/t2" list --kind person --format json | python3 -c '
import json, sys; r = json.load(sys.stdin); assert r and all(x["synthetic"] for x in r), r' || fail "marked synthetic"
stop_server
pass "generated records are marked synthetic and only a test server takes them"

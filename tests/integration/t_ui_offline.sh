# popsync ui remembers that the district server did not answer: once a
# page's question timed out or could not connect, the pages that ask the
# server (a record's versions, the dashboard, the monthly report, the
# close, quality and node pages) answer at once from what the cache holds,
# without connecting, for ui_retry_after seconds (`popsync config set`,
# default 60), and say since when the server has not answered.  再试 Try
# again (POST /api/server/retry) and a sync that reached the server end it
# at once.  No clock is asserted: the silent listener's count of accepted
# connections shows whether a page asked (tests/tools/silent_server.py).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ui.sh"
. "$(dirname "$0")/lib_silent.sh"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }

silent_setup
p=$PERSON
start_silent silent tcp

# How long the pages leave a silent server alone is the cache's setting.
ps --data "$T/t1" config show | grep -q '^ui_retry_after 60 s (default)$' || fail "config show: default ui_retry_after"
for bad in 3601 -1 abc 5m ""; do
    rc=0; ps --data "$T/t1" config set ui_retry_after "$bad" >/dev/null 2>"$T/cfg.err" || rc=$?
    expect_eq "$rc" 4 "config set ui_retry_after '$bad'"
    grep -q "ui_retry_after must be a whole number of seconds from 1 to 3600" "$T/cfg.err" ||
        fail "why: $(cat "$T/cfg.err")"
done
for c in t1 admin; do
    ps --data "$T/$c" config set server "$SILENT" >/dev/null || fail "$c: set server"
    ps --data "$T/$c" config set ui_timeout 2 >/dev/null || fail "$c: ui_timeout 2"
    expect_eq "$(ps --data "$T/$c" config set ui_retry_after 300)" "ui_retry_after set to 300 s" "$c: ui_retry_after"
done
ps --data "$T/t1" config show | grep -q '^ui_retry_after 300 s$' || fail "config show: ui_retry_after 300"
pass "config set ui_retry_after: 1-3600 s, shown by config show"

# since_ms of $T/a.json; SINCE_RE the time in the held sentences.
since() { field since_ms; }
T_RE='[0-2][0-9]:[0-5][0-9]:[0-6][0-9]'

login t1
ask "/api/history/$p"
expect_eq "$CODE/$(field late)/$(field held)" "200/True/False" "history: late, asked"
first=$(since)
[ "$first" != None ] && [ "$first" -gt 0 ] || fail "history: no since_ms after the timeout: $(cat "$T/a.json")"
held "/api/history/$p"
expect_eq "$CODE/$(field offline)/$(field held)" "200/True/True" "history again: offline, held"
expect_eq "$(since)" "$first" "held: since the first timeout"
field error | grep -Eqx "区县服务器自 $T_RE 起未答复；$T_RE 前本页不再询问" || fail "held, zh: $(field error)"
held "/api/history/$p" en
field error | grep -Eqx "The district server has not answered since $T_RE; this page does not ask it again before $T_RE" ||
    fail "held, en: $(field error)"
get "/api/record/$p"
python3 - "$T/a.json" <<'PY' || fail "the record from the cache: $(cat "$T/a.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["record"]["name"] == "吴十" and d["history"], d
PY
pass "after a timeout the record's versions answer at once without connecting, saying since when"

retry
ask "/api/history/$p"
expect_eq "$(field late)/$(field held)/$(since)" "True/False/$first" "Try again: asked, late again, the same silence"
held "/api/history/$p"
expect_eq "$(field held)" True "after Try again and another timeout: held again"
ui_stop
pass "Try again asks the server again; another timeout holds again, since the first"

# The administrator's pages: one timeout, then every page at once.
login admin
ask "/api/district/dashboard"
expect_eq "$CODE/$(field late)/$(field held)" "200/True/False" "dashboard: late, asked"
held "/api/district/dashboard" en
expect_eq "$CODE/$(field offline)/$(field held)" "200/True/True" "dashboard again: held"
field note | grep -Eqx "The district server has not answered since $T_RE; this page does not ask it again before $T_RE" ||
    fail "dashboard's note: $(field note)"
[ "$(field stamp)" != "" ] || fail "dashboard held: no stamp"
held "/api/district/report?month=$(date -u +%Y-%m)"
expect_eq "$CODE/$(field held)" "200/True" "report: held, the cache's counters"
for path in "/api/district/nodes" "/api/district/quality" "/api/district/close?month=$(date -u +%Y-%m)"; do
    held "$path" en
    expect_eq "$CODE/$(field held)" "504/True" "$path: held"
    field error | grep -Eqx "The district server has not answered since $T_RE; .*: this page needs its answer; press Try again or come back later" ||
        fail "$path: $(field error)"
done
retry
ask "/api/district/nodes"
expect_eq "$CODE/$(field held)" "504/False" "nodes after Try again: asked"
ui_stop
pass "the district's pages: held after one timeout (dashboard and report from the cache, the rest 504), Try again asks"

# The hold ends by itself: with ui_retry_after 1, a page 2 s after the
# timeout asks again (a lower bound on the time passed, not a speed check).
ps --data "$T/t1" config set ui_retry_after 1 >/dev/null || fail "ui_retry_after 1"
login t1
ask "/api/history/$p"
sleep 2
ask "/api/history/$p"
expect_eq "$(field late)/$(field held)" "True/False" "after ui_retry_after: asked"
ui_stop
ps --data "$T/t1" config set ui_retry_after 300 >/dev/null || fail "ui_retry_after 300"
pass "after ui_retry_after the pages ask again"

# A refused connection holds too; a sync that reaches the server ends it.
# The port of a stopped listener refuses; then popsyncd listens there.
start_silent gone tcp
gone=$(cat "$T/gone.port")
kill "$SILENT_PID"
wait "$SILENT_PID" 2>/dev/null || true
ps --data "$T/t1" config set server "127.0.0.1:$gone" >/dev/null || fail "t1: set server to the closed port"
login t1
get "/api/history/$p"
expect_eq "$(field offline)/$(field held)" "True/False" "refused: offline, asked"
field error | grep -q "^无法连接服务器：" || fail "refused: $(field error)"
[ "$(since)" != None ] || fail "refused: no since_ms"
get "/api/history/$p"
expect_eq "$(field held)" True "refused, then: held"
field error | grep -Eqx "无法连接服务器（自 $T_RE 起）；$T_RE 前本页不再询问" || fail "held after a refusal: $(field error)"
rm -f "$T/port"
"$POPSYNCD" --listen "127.0.0.1:$gone" --port-file "$T/port" --data "$T/server" --allow-synthetic \
    --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
    [ -s "$T/port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "popsyncd did not start on port $gone"
    sleep 0.05
done
expect_eq "$(cat "$T/port" 2>/dev/null)" "$gone" "popsyncd's port"
get "/api/history/$p"
expect_eq "$(field held)" True "the server back, not yet asked: held"
code=$(curl -sS --noproxy '*' -b "$T/jar" -H "X-CSRF-Token: $CSRF" -X POST -o /dev/null -w '%{http_code}' \
    --max-time 30 "$BASE/api/sync") || fail "POST /api/sync"
expect_eq "$code" 202 "sync started"
for _ in $(seq 1 120); do
    get "/api/sync"
    [ "$(field running)" = False ] && break
    sleep 0.5
done
python3 - "$T/a.json" <<'PY' || fail "the sync: $(cat "$T/a.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert not d["running"] and d["last"]["ok"], d
PY
get "/api/history/$p"
expect_eq "$(field offline)/$(field held)/$(since)" "False/False/None" "after the sync: the server asked, no silence"
python3 - "$T/a.json" <<'PY' || fail "the versions: $(cat "$T/a.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["history"]["versions"][0]["gen"] == 1, d
PY
ui_stop
stop_server
pass "a refused connection holds the pages; a sync that reached the server ends it at once"

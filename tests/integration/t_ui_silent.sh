# popsync ui against a district server that accepts and then stays silent:
# the pages that ask the server (a record's versions, the dashboard, the
# monthly report, the close, quality and node pages) give up after the
# page's wait (`popsync config set ui_timeout`, default 10 s) instead of the
# CLI's one-minute silence timeout, say plainly that the district server
# did not answer in time, and show what the cache holds where it holds
# something (the record, the cache's report counters).  Each question here
# comes after 再试 Try again: the pages spare a silent server the next
# questions for a while (t_ui_offline.sh).  The silent servers
# are tests/tools/silent_server.py on loopback: one accepts and never
# writes, one shakes hands and says Welcome and then nothing.  Plain HTTP
# through curl: the answers' JSON is what the pages show; then, when a
# browser is installed, the pages themselves (tests/browser/ui_late.py).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ui.sh"
. "$(dirname "$0")/lib_silent.sh"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }

silent_setup
p=$PERSON

start_silent silent tcp

# The page's wait is the cache's: checked, shown, 0 back to the default.
ps --data "$T/t1" config show | grep -q '^ui_timeout   10 s (default)$' || fail "config show: default ui_timeout"
for bad in 301 -1 abc 2s ""; do
    rc=0; ps --data "$T/t1" config set ui_timeout "$bad" >/dev/null 2>"$T/cfg.err" || rc=$?
    expect_eq "$rc" 4 "config set ui_timeout '$bad'"
    grep -q "ui_timeout must be a whole number of seconds from 1 to 300" "$T/cfg.err" || fail "why: $(cat "$T/cfg.err")"
done
expect_eq "$(ps --data "$T/t1" config set ui_timeout 2)" "ui_timeout set to 2 s" "config set ui_timeout 2"
ps --data "$T/t1" config show | grep -q '^ui_timeout   2 s$' || fail "config show: ui_timeout 2"
ps --data "$T/t1" config set server "$SILENT" >/dev/null || fail "t1: set server"
ps --data "$T/admin" config set server "$SILENT" >/dev/null || fail "admin: set server"
pass "config set ui_timeout: 1-300 s, shown by config show"

login t1
ask "/api/history/$p"
expect_eq "$CODE" 200 "history: status"
expect_eq "$(field offline)/$(field late)" "True/True" "history: offline and late"
expect_eq "$(field error)" "区县服务器未在 2 秒内答复" "history: the plain sentence"
retry # the pages ask again only then, or a minute later (t_ui_offline.sh)
ask "/api/history/$p" en
expect_eq "$(field error)" "The district server did not answer within 2 s" "history in English"
get "/api/record/$p"
python3 - "$T/a.json" <<'PY' || fail "the record from the cache: $(cat "$T/a.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["record"]["name"] == "吴十", d["record"]
assert d["history"], d
PY
ui_stop
pass "a record's versions: 'did not answer within 2 s', the record and its history from the cache"

# The administrator's pages with the default wait (10 s).
login admin
ask "/api/district/dashboard"
expect_eq "$CODE" 200 "dashboard: status"
expect_eq "$(field offline)/$(field late)" "True/True" "dashboard: offline and late"
expect_eq "$(field note)" "区县服务器未在 10 秒内答复" "dashboard: the note"
python3 - "$T/a.json" <<'PY' || fail "dashboard from the cache: $(head -c 600 "$T/a.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["data"]) == 12 and d["stamp"], d.keys()
PY
pass "dashboard: 'did not answer within 10 s' (the default), the cache's counters"

ui_stop
ps --data "$T/admin" config set ui_timeout 3 >/dev/null || fail "admin: ui_timeout 3"
login admin
ask "/api/district/report?month=$(date -u +%Y-%m)" en
expect_eq "$CODE" 200 "report: status"
expect_eq "$(field late)/$(field note)" "True/The district server did not answer within 3 s" "report: the note"
[ -n "$(field stamp)" ] || fail "report: no stamp"
for path in "/api/district/nodes" "/api/district/quality" "/api/district/close?month=$(date -u +%Y-%m)"; do
    retry
    ask "$path" en
    expect_eq "$CODE" 504 "$path: status"
    expect_eq "$(field error)" "The district server did not answer within 3 s: this page needs its answer; try again later" \
        "$path: the error"
done
ui_stop
pass "report from the cache, close, quality and nodes 504, each 'did not answer within 3 s'"

# A server that shakes hands and says Welcome, then never answers the
# question: the wait covers the whole exchange, and the page says the
# server was late (not that it refused).
start_silent welcomer welcome "$T/pki"
ps --data "$T/t1" config set server "$SILENT" >/dev/null || fail "t1: set server to the welcomer"
login t1
ask "/api/history/$p"
expect_eq "$(cat "$T/welcomer.w" 2>/dev/null || echo 0)" 1 "Welcomes sent"
expect_eq "$CODE/$(field offline)/$(field late)" "200/True/True" "history after a Welcome: offline and late"
expect_eq "$(field error)" "区县服务器未在 2 秒内答复" "history after a Welcome: the plain sentence"
ui_stop
pass "a server that says Welcome and then nothing: 'did not answer within 2 s' too"

# The same in a real browser, when one is installed: the pages show the
# sentence and what the cache holds.
if [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ] &&
    /usr/bin/python3 -c 'import selenium' 2>/dev/null; then
    UI_PY=/usr/bin/python3
    ui_start t1
    ui_browser ui_late.py silent_town "{\"id\": \"$p\", \"wait\": 2}"
    ui_stop
    ui_start admin
    ui_browser ui_late.py silent_district "{\"month\": \"$(date -u +%Y-%m)\", \"wait\": 3}"
    ui_stop
    pass "in the browser: the record page and the dashboard and report say the server did not answer in time"
else
    echo "skip: browser part (chromium, chromium-driver or python3-selenium missing)"
fi

# popsync ui, the district's pages in a real browser (issue 18 points 3
# and 5, district half): a real popsyncd, three townships' generated data,
# the administrator's `popsync ui` and headless chromium
# (tests/browser/district.py: the dashboard's charts drawn with the
# report's counts, drill-down, return with a note and approve, the monthly
# report printed to PDF, quality links, node table; district_town.py: the
# township sees the note).  Screenshots and the PDF go to
# BUILD/ui-shots/district/.  Skipped (77) without chromium, chromium-driver,
# python3-selenium or libjs-chart.js.
. "$(dirname "$0")/lib4.sh"
. "$(dirname "$0")/lib_ui.sh"
ui_need_browser
[ -r /usr/share/javascript/chart.js/chart.min.js ] || { echo "skip: libjs-chart.js is not installed"; exit 77; }
make_pki4
issue township $TA townA
issue township $TB townB
issue township $TC townC
start_server4
client admin admin
client ta townA
client tb townB
client tc townC
seed=21
for c in ta tb tc; do
    sq $c generate --persons 150 --seed $seed --orgunits "$ORGUNITS" >/dev/null || fail "generate in $c"
    seed=$((seed + 1))
    psync $c
done
psync admin
# A past month with births in every township that has any.
M=$(sq admin query --kind birth --date-field birth_date --group-by month --format json |
    python3 -c 'import json,sys,time; r=[x for x in json.load(sys.stdin) if x["month"] < time.strftime("%Y-%m")]
print(max(r, key=lambda x: (x["count"], x["month"]))["month"])')
sq ta report submit --month "$M" >/dev/null || fail "A submits"
sq tb report submit --month "$M" >/dev/null || fail "B submits"
sq admin report monthly --month "$M" --format json >"$T/report.json" || fail "report"
NOTE="出生数与医院登记不符，请核对后重报"
OVERDUE=$(sq admin report quality --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"].get("feedback_overdue", 0))')

ui_start admin
ui_browser district.py district "$(python3 -c 'import json,sys; print(json.dumps({"month": sys.argv[1],
    "report": sys.argv[2], "returned": sys.argv[3], "approved": sys.argv[4], "note": sys.argv[5],
    "nodes": ["admin", "townA", "townB", "townC"], "overdue": int(sys.argv[6])}))' "$M" "$T/report.json" $TA $TB "$NOTE" "$OVERDUE")"
ui_stop
pass "the administrator's month in the browser"

# The server holds what the browser did.
sq admin report status --month "$M" --format json >"$T/close.json" || fail "status"
python3 - "$T/close.json" $TA $TB "$NOTE" <<'PY' || fail "close states on the server"
import json, sys
s = {r["orgunit"]: r for r in json.load(open(sys.argv[1]))}
assert s[sys.argv[2]]["state"] == "returned" and s[sys.argv[2]]["note"] == sys.argv[4], s[sys.argv[2]]
assert s[sys.argv[3]]["state"] == "approved", s[sys.argv[3]]
PY
pass "the server has A returned with the note and B approved"

ui_start ta
ui_browser district_town.py district "$(python3 -c 'import json,sys; print(json.dumps({"month": sys.argv[1],
    "code": sys.argv[2], "note": sys.argv[3], "name": "建设路街道"}))' "$M" $TA "$NOTE")"
ui_stop
pass "the township sees the note in its browser and submits again"

# The server stopped: the dashboard and the report from the cache's counters.
psync admin
stop_server
ui_start admin
ui_browser district_offline.py district "$(python3 -c 'import json,sys; print(json.dumps({"month": sys.argv[1],
    "report": sys.argv[2]}))' "$M" "$T/report.json")"
ui_stop
pass "offline, the district's pages show the cache's counters, stamped"

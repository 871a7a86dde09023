# popsync ui in a real browser (issue 18, township half): a real popsyncd,
# real caches, `popsync ui`, and headless chromium driven by selenium
# (tests/browser/town.py: the form, search, pick-list, sync, refused,
# conflict, the record's versions, and the security refusals;
# tests/browser/town_other.py: the migration's other place refused next to
# the field; town_other_conflict.py: and on the conflict page).  Screenshots go to
# BUILD/ui-shots/town/.  Skipped (77) without chromium, chromium-driver or
# python3-selenium.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ui.sh"
ui_need_browser
make_pki
start_server
client t1 town1
client t2 town1
client admin admin

mkid() {  # mkid 17DIGITS -> the ID number with its check character
    python3 -c '
import sys; w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; d=sys.argv[1]
print(d+"10X98765432"[sum(int(a)*b for a,b in zip(d,w))%11])' "$1"
}
good=$(mkid 11010519900307182)
bad=${good:0:17}$( [ "${good:17}" = 1 ] && echo 2 || echo 1 )

# A person the district deletes while township 1 still shows him: a visit
# for him made in the browser is refused by the server.
gone=$(ps --data "$T/t1" add person --set name=赵六 --set "id_number=$(mkid 11010519800101001)") || fail "add 赵六"
ps --data "$T/t1" sync >/dev/null || fail "t1 sync"
ps --data "$T/admin" sync >/dev/null || fail "admin sync"
ps --data "$T/admin" delete "$gone" >/dev/null || fail "admin delete"
ps --data "$T/admin" sync >/dev/null || fail "admin sync 2"
# A migration case waiting for this place's submission.
sun=$(ps --data "$T/t1" add person --set name=孙七 --set "id_number=$(mkid 11010519850505002)") || fail "add 孙七"
ps --data "$T/t1" add migration --set person_id="$sun" --set direction=inflow --set other_place_code=$TOWN2 \
    --set other_place=文化路街道 --set start_date="$(date -d '3 days ago' +%F)" --set employer=钢城钢铁公司 >/dev/null ||
    fail "add migration"
imp=$(mkid 11010519700707003)

ui_start t1
ui_browser town.py town "{\"id_good\": \"$good\", \"id_bad\": \"$bad\", \"gone_name\": \"赵六\", \"id_import\": \"$imp\", \"t2\": \"$T/t2\"}"
ui_stop
pass "township pages in the browser"

# The other place of 孙七's case (township 2) edits it in the browser: the
# form refuses, next to the field, what the CLI and the server refuse.
client t3 town2
ps --data "$T/t1" sync >/dev/null || fail "t1 sync before the other place"
ps --data "$T/t3" sync >/dev/null || fail "t3 sync"
mig=$(ps --data "$T/t3" migrations --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])') ||
    fail "the other place does not see the case"
ui_start t3
ui_browser town_other.py town_other "{\"mig\": \"$mig\", \"submitted\": \"$(date -d '2 days ago' +%F)\"}"
ui_stop
pass "the other place's forbidden edit refused next to the field in the browser"

# The registering township sets the submitted date too while the other
# place's (still waiting) is on its way: a conflict at the other place,
# which resolves it in the browser under the form's rule.
ps --data "$T/t1" edit "$mig" --set submitted_date="$(date -d '1 day ago' +%F)" >/dev/null || fail "t1 edit the case"
ps --data "$T/t1" sync >/dev/null || fail "t1 sync the edit"
ui_start t3
ui_browser town_other_conflict.py town_other_conflict "{\"mig\": \"$mig\", \"typed\": \"$(date +%F)\", \"t1\": \"$T/t1\"}"
ui_stop
pass "the other place's merge on the conflict page is checked against the other-place rule"

# --listen beyond loopback means TLS with the cache's certificate, and a
# warning; 0.0.0.0 is refused (the Host check needs one address).
rc=0; "$POPSYNC" --data "$T/t2" ui --listen 0.0.0.0:0 2>"$T/any.err" || rc=$?
expect_eq "$rc" 1 "--listen 0.0.0.0 refused"
grep -q "not 0.0.0.0" "$T/any.err" || fail "why 0.0.0.0 is refused: $(cat "$T/any.err")"
POPSYNC_UI_TLS=1 ui_start t2
grep -q "WARNING: serving beyond this computer" "$T/ui-t2.err" || fail "no warning for TLS serving"
(cd "$UI_SRC/tests/browser" && "$UI_PY" tls_check.py "$UI_URL" "$T/pki/town1.crt") || fail "TLS check"
ui_stop
pass "TLS when serving beyond loopback"

# The record page offline (issue 18, gap a): the versions are the
# server's; the page says it cannot reach it and keeps the cache's history.
pid=$(ps --data "$T/t1" find 孙七 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])') ||
    fail "find 孙七"
stop_server
ui_start t1
ui_browser town_offline.py town_offline "{\"id\": \"$pid\"}"
ui_stop
pass "record page offline: says so, shows what the cache holds"

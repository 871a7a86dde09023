# Dates are judged in the district's time zone (issue 21, point 1): popsyncd
# runs in UTC but judges by `timezone` (default Asia/Shanghai), sent to the
# clients in Welcome; both sides allow one day of grace for "in the future".
# A clerk in Beijing shortly after local midnight enters a visit dated
# today: accepted.  A device whose clock is days ahead enters a date two days
# ahead: refused, kept whole, corrected with `popsync refused edit`, accepted.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta

# The test plays 00:30 in Beijing (16:30 UTC) with the clock hook.
now_ms=$(python3 -c 'import time; print(int(time.time()*1000))')
target=$(python3 -c '
import sys
now=int(sys.argv[1])//1000
day=now - now % 86400
t=day + 16*3600 + 30*60
if t <= now: t += 86400
print(t)' "$now_ms")
off=$((target * 1000 - now_ms))
sh_day() { date -u -d "@$((target + 8 * 3600 + $1 * 86400))" +%F; }
today=$(sh_day 0)
utc_today=$(date -u -d "@$target" +%F)
echo "playing $(date -u -d "@$target" '+%F %T') UTC = $today 00:30 in Beijing"
[ "$today" != "$utc_today" ] || fail "the test clock is not past midnight in Beijing only"

# Config: the key is checked like the rest.
printf '[server]\ntimezone = Mars/Olympus_Mons\n' >"$T/bad.conf"
set +e
out=$("$POPSYNCD" --config "$T/bad.conf" --check-config 2>&1)
set -e
grep -q "timezone" <<<"$out" || fail "--check-config does not name a bad timezone: $out"

# The server runs in UTC; it judges by Asia/Shanghai (the default).
export POPSYNC_CLOCK_OFFSET_MS=$off
TZ=UTC start_server4
TZ=Asia/Shanghai client a ta
TZ=Asia/Shanghai client fast ta
client admin admin
psync admin
p=$(TZ=Asia/Shanghai add_person a 1)
TZ=Asia/Shanghai psync a
expect_eq "$(status_json a | python3 -c 'import json,sys; print(json.load(sys.stdin)["timezone"])')" Asia/Shanghai \
    "the zone the client learnt in Welcome"

# Today in Beijing, and (the day of grace) tomorrow: both accepted.
v=$(TZ=Asia/Shanghai sq a add service_visit --set person_id="$p" --set service=followup --set visit_date="$today")
w=$(TZ=Asia/Shanghai sq a add service_visit --set person_id="$p" --set service=followup --set visit_date="$(sh_day 1)")
set +e
out=$(TZ=Asia/Shanghai sq a sync 2>&1)
rc=$?
set -e
expect_eq "$rc" 0 "sync of visits dated today in Beijing ($out)"
expect_eq "$(sq a refused list)" "no refused changes" "refused changes of a clerk in Beijing"
psync admin
expect_eq "$(field admin "$v" 'r["visit_date"]')" "$today" "a visit dated today in Beijing, on the server"
expect_eq "$(field admin "$w" 'r["visit_date"]')" "$(sh_day 1)" "a visit dated tomorrow in Beijing, on the server"
pass "a date that is today in the district is accepted by a server running in UTC"

# A client in UTC judges by the district's calendar it learnt, not its own.
TZ=UTC sq a add service_visit --set person_id="$p" --set service=consultation --set visit_date="$(sh_day 1)" >/dev/null ||
    fail "a client running in UTC refused the district's tomorrow"
pass "local checks use the district's time zone from Welcome"

# A device whose clock is three days fast: its own check passes, the server
# refuses a date two days ahead; the clerk's entry is kept and corrected.
psync fast
ahead=$(sh_day 2)
f=$(POPSYNC_CLOCK_OFFSET_MS=$((off + 3 * 86400000)) TZ=Asia/Shanghai sq fast add service_visit \
    --set person_id="$p" --set service=followup --set visit_date="$ahead" --set provider=李医生)
set +e
out=$(TZ=Asia/Shanghai sq fast sync 2>&1)
rc=$?
set -e
echo "fast device's sync: $out"
expect_eq "$rc" 6 "exit code when a date two days ahead is refused"
sq fast refused list --json | python3 -c '
import json,sys
e=json.load(sys.stdin)
assert len(e)==1 and e[0]["id"]==sys.argv[1] and e[0]["change"]=="new", e
assert e[0]["record"]["visit_date"]==sys.argv[2] and e[0]["record"]["provider"]=="李医生", e
assert any(x["field"]=="visit_date" and "future" in x["reason"] for x in e[0]["errors"]), e
' "$f" "$ahead" || fail "the refused visit is not kept whole with its reason"
TZ=Asia/Shanghai sq fast refused edit "$f" --set visit_date="$today" >/dev/null || fail "refused edit"
set +e
out=$(TZ=Asia/Shanghai sq fast sync 2>&1)
rc=$?
set -e
expect_eq "$rc" 0 "sync of the corrected visit ($out)"
psync admin
expect_eq "$(field admin "$f" 'r["visit_date"], r["provider"]')" "$today 李医生" "the corrected visit on the server"
pass "a date two days ahead is refused, kept, corrected with refused edit and accepted"
stop_server

# --timezone UTC: the server judges by UTC and tells the clients so.
TZ=Asia/Shanghai start_server4 --timezone UTC
client admin2 admin
psync admin2
expect_eq "$(status_json admin2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["timezone"])')" UTC \
    "the zone carried in Welcome after --timezone UTC"
stop_server

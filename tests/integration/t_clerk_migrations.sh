# The two places of a migration (issue 16 point 5): the other place sees
# the migrant's name, sex, birth date and masked ID number with the case
# (FeedEntry.migrant) and nothing else of the person; `popsync migrations`
# lists each place's open cases with deadline and days left or overdue
# (urgent 15 days, others 30, as the monthly report); the CLI refuses
# offline what the server would refuse from the other place.
. "$(dirname "$0")/lib4.sh"
make_pki4
issue township $TA ta
issue township $TB tb
issue township $TC tc
start_server4
client a ta
client b tb
client c tc

day() { python3 -c 'import sys,datetime,zoneinfo; print((datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date()+datetime.timedelta(days=int(sys.argv[1]))).isoformat())' "$1"; }
idn=$(idnum 1990-04-12 7 female)
p=$(sq a add person --set id_number="$idn" --set name=王秀英 --set sex=female --set birth_date=1990-04-12 \
    --set registration=migrant --set phone=13912345678 --set address=建设路1号)
m1=$(sq a add migration --set person_id="$p" --set direction=inflow --set other_place_code=$TB \
    --set start_date="$(day -20)" --set urgent=true --set employer=钢城钢铁公司)
m2=$(sq a add migration --set person_id="$p" --set direction=inflow --set other_place_code=$TB \
    --set start_date="$(day -10)")
psync a
psync b
psync c

# The owner: both cases await its submission; deadlines from the start.
j=$(sq a migrations --awaiting submission --json)
python3 - "$j" "$m1" "$m2" "$(day -5)" "$(day 20)" <<'PY' || fail "A's cases awaiting submission: $j"
import json,sys
cs={c["id"]:c for c in json.loads(sys.argv[1])}
m1,m2,d1,d2=sys.argv[2:]
assert set(cs)=={m1,m2}, cs
a,b=cs[m1],cs[m2]
assert a["side"]=="registered here" and a["direction"]=="inflow" and a["other_place_code"]=="130203002000", a
assert a["other_place_name"]=="文化路街道", a
assert a["deadline"]==d1 and a["days_left"]==-5 and a["urgent"] and a["who_acts"]=="this place", a
assert b["deadline"]==d2 and b["days_left"]==20 and not b["urgent"], b
assert a["migrant"]["name"]=="王秀英" and "*" in a["migrant"]["id_number_masked"], a
PY
sq a migrations | grep -q "OVERDUE 5 days" || fail "A's text list does not say overdue: $(sq a migrations)"
pass "the registering township lists its cases with deadlines"

# The other place: the migrant's summary, masked; nothing else of the person.
j=$(sq b migrations --json)
masked="${idn:0:6}********${idn:14:4}"
python3 - "$j" "$m1" "$masked" <<'PY' || fail "B's view of the migrant: $j"
import json,sys
cs={c["id"]:c for c in json.loads(sys.argv[1])}
c=cs[sys.argv[2]]
assert c["side"]=="other place" and c["direction"]=="outflow" and c["other_place_code"]=="130203001000", c
assert c["other_place_name"]=="建设路街道", c
assert c["migrant"]=={"name":"王秀英","sex":"female","birth_date":"1990-04-12","id_number_masked":sys.argv[3]}, c
assert c["awaiting"]=="submission" and c["who_acts"]=="the other place", c
PY
has b "$p" && fail "the other place received the person record"
all=$( (sq b migrations --json; sq b list --format json; sq b export --kind migration --out "$T/b.csv" >/dev/null 2>&1; cat "$T/b.csv" 2>/dev/null) )
grep -q "$idn" <<<"$all" && fail "the whole ID number reached the other place"
grep -q "13912345678\|建设路1号" <<<"$all" && fail "the phone or address reached the other place"
j=$(sq c migrations --json)
expect_eq "$j" "[]" "a township that is neither place"
pass "the other place sees name, sex, birth date and the masked ID number only"

# A submits the urgent case: B awaits its own feedback, counted from the submission.
sq a edit "$m1" --set submitted_date="$(day -2)"
psync a
psync b
j=$(sq b migrations --awaiting feedback --json)
python3 - "$j" "$m1" "$(day 13)" <<'PY' || fail "B's cases awaiting feedback: $j"
import json,sys
cs=json.loads(sys.argv[1])
assert [c["id"] for c in cs]==[sys.argv[2]], cs
c=cs[0]
assert c["awaiting"]=="feedback" and c["who_acts"]=="this place" and c["deadline"]==sys.argv[3] and c["days_left"]==13, c
assert c["migrant"]["name"]=="王秀英", c
PY
out=$(sq b migrations --awaiting feedback --lang zh)
grep -q "王秀英" <<<"$out" && grep -q "剩 13 天" <<<"$out" && grep -q "待反馈" <<<"$out" ||
    fail "B's Chinese list: $out"
pass "the other place lists the cases awaiting its feedback"

# B may set the feedback date; any other edit or a delete is refused offline.
set +e
out=$(sq b edit "$m1" --set employer=别的公司 2>&1)
rc=$?
set -e
expect_eq "$rc" 4 "exit of a forbidden edit by the other place ($out)"
grep -q "employer: the other place may set only submitted_date and feedback_date" <<<"$out" || fail "wording: $out"
set +e
out=$(sq b delete "$m1" 2>&1)
rc=$?
set -e
expect_eq "$rc" 4 "exit of a delete by the other place ($out)"
grep -q "deleted: the other place may not delete or restore the record" <<<"$out" || fail "wording: $out"
expect_eq "$(pending b)" 0 "changes queued by refused edits"
sq b edit "$m1" --set feedback_date="$(day 0)"
r=0
sq b sync --quiet || r=$?
expect_eq "$r" 0 "the other place's feedback is accepted"
psync a
expect_eq "$(sq a migrations --json | python3 -c 'import json,sys; print(sorted(c["id"] for c in json.load(sys.stdin)))')" \
    "['$m2']" "open cases after the feedback"
pass "the CLI refuses offline what the server refuses; the feedback closes the case"
